"""An embedded Toxiproxy-compatible server (a drop-in for ``toxiproxy-server`` 2.12).

:class:`ToxiproxyServer` runs on the caller's event loop; :class:`BackgroundToxiproxy` runs one in
a daemon thread with its own loop. ``python -m chaos.toxiproxy`` is the command-line server
(flags ``-host -port -config -seed -version``), and ``python -m chaos.toxiproxy.selfcheck``
checks that it relays data and applies a latency toxic.

The server: ``server`` (public), ``_api``, ``_collection``, ``_proxy``, ``_link``, ``_toxics``,
``_gojson``. The client: ``control`` (:class:`ToxiproxyControl` and the choice of server),
``errors`` (the :class:`ToxiproxyError` tree), ``models`` (:class:`ProxyInfo`,
:class:`ToxicInfo`). Neither side imports the other's internals, nor ``resilient``, nor the
harness engine.
"""

from chaos.toxiproxy.control import (
    ToxiproxyControl,
    ToxiproxyEndpoint,
    normalize_toxiproxy_url,
    open_control,
    running_toxiproxy,
    toxiproxy_server,
)
from chaos.toxiproxy.errors import (
    AlreadyExists,
    BadRequest,
    NotFound,
    ProxyNotFound,
    ToxicNotFound,
    ToxiproxyError,
    ToxiproxyUnavailable,
)
from chaos.toxiproxy.models import ProxyInfo, ToxicInfo
from chaos.toxiproxy.server import (
    DEFAULT_HOST,
    TOXIPROXY_VERSION,
    BackgroundToxiproxy,
    ToxiproxyServer,
)

__all__ = [
    "DEFAULT_HOST",
    "TOXIPROXY_VERSION",
    "AlreadyExists",
    "BackgroundToxiproxy",
    "BadRequest",
    "NotFound",
    "ProxyInfo",
    "ProxyNotFound",
    "ToxicInfo",
    "ToxicNotFound",
    "ToxiproxyControl",
    "ToxiproxyEndpoint",
    "ToxiproxyError",
    "ToxiproxyServer",
    "ToxiproxyUnavailable",
    "normalize_toxiproxy_url",
    "open_control",
    "running_toxiproxy",
    "toxiproxy_server",
]

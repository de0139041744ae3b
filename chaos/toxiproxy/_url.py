"""Where a Toxiproxy server is: its URL, normalized and chosen, and its version, asked plainly.

:func:`normalize_toxiproxy_url` accepts what users write (``host:port``, a full URL, a
trailing slash) and refuses the rest naming the value. :func:`chosen_url` applies the rule
every entry point shares: the URL given, else ``$TOXIPROXY_URL``, else none (start the
embedded server). :func:`version_blocking` asks ``GET /version`` with the standard library,
for callers outside an event loop.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from chaos.toxiproxy.errors import ToxiproxyUnavailable, error_from_reply

__all__ = [
    "TOXIPROXY_URL_ENV",
    "USER_AGENT",
    "chosen_url",
    "naming_source",
    "normalize_toxiproxy_url",
    "parse_version",
    "version_blocking",
]

TOXIPROXY_URL_ENV = "TOXIPROXY_URL"
"""The environment variable naming an external server (as toxiproxy-cli reads it)."""

USER_AGENT = "resilient-chaos-toxiproxy-control/0.1"
"""The ``User-Agent`` of every request the facade sends."""


def normalize_toxiproxy_url(value: str) -> str:
    """``http://h:p``, ``http://h:p/`` or ``h:p`` -> ``http://h:p`` (no trailing slash).

    The scheme must be http or https, and the host and a port (1-65535) must be present;
    anything else raises :class:`ValueError` naming the value.
    """
    if not isinstance(value, str):
        raise ValueError(f"Toxiproxy URL must be a string, got {value!r}")
    text = value.strip()
    candidate = text if "://" in text else f"http://{text}"
    try:
        parts = urlsplit(candidate)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"bad Toxiproxy URL {value!r}: {exc}") from None
    problem = None
    if parts.scheme not in ("http", "https"):
        problem = f"scheme must be http or https, not {parts.scheme!r}"
    elif not parts.hostname:
        problem = "no host"
    elif port is None or port == 0:
        problem = "no port (expected host:port, e.g. 127.0.0.1:8474)"
    elif parts.username is not None or parts.query or parts.fragment:
        problem = "credentials, query and fragment are not allowed"
    if problem is not None:
        raise ValueError(f"bad Toxiproxy URL {value!r}: {problem}")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def chosen_url(url: str | None) -> tuple[str | None, str]:
    """The external server's URL and where it came from, or ``(None, "")`` for embedded."""
    if url is not None:
        return normalize_toxiproxy_url(url), "the url argument"
    from_env = os.environ.get(TOXIPROXY_URL_ENV, "").strip()
    if not from_env:
        return None, ""
    try:
        return normalize_toxiproxy_url(from_env), f"${TOXIPROXY_URL_ENV}"
    except ValueError as exc:
        raise ValueError(f"${TOXIPROXY_URL_ENV}: {exc}") from None


def naming_source(exc: ToxiproxyUnavailable, source: str) -> ToxiproxyUnavailable:
    """The same error, saying where the URL came from (one line)."""
    message = f"{exc.message} (URL from {source}; is the server running?)"
    return ToxiproxyUnavailable(0, message, method=exc.method, path=exc.path, url=exc.url)


def version_blocking(url: str, timeout: float) -> str:
    """``GET /version`` with the standard library, for callers outside an event loop."""
    request = urllib.request.Request(url + "/version", headers={"User-Agent": USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return parse_version(response.read().decode("utf-8", errors="replace"))
    except urllib.error.HTTPError as exc:
        text = exc.read().decode("utf-8", errors="replace")
        raise error_from_reply(exc.code, text, method="GET", path="/version", url=url) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        if isinstance(reason, TimeoutError):
            why = f"no answer within {timeout:g} s"
        else:
            why = f"cannot connect: {getattr(reason, 'strerror', None) or reason}"
        raise ToxiproxyUnavailable(0, why, method="GET", path="/version", url=url) from None


def parse_version(text: str) -> str:
    try:
        data = json.loads(text)
    except ValueError:
        return text.strip()  # servers before 2.7 answered with the bare version string
    version = data.get("version") if isinstance(data, dict) else None
    return version if isinstance(version, str) else text.strip()

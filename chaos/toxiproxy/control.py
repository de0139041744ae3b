"""Async control of one Toxiproxy server, embedded or real: the facade the harness drives.

:class:`ToxiproxyControl` speaks the Toxiproxy 2.x HTTP API (``toxiproxy-api.md`` section 4) to
the server at its own URL, with a timeout on every request, and turns every error reply into a
typed :class:`ToxiproxyError` that carries the server's exact message. :func:`toxiproxy_server`
picks the server: the URL given, else ``$TOXIPROXY_URL``, else an embedded server started on a
free loopback port for the duration of the ``async with`` block.

Every error is a :class:`~chaos.toxiproxy.errors.ToxiproxyError` (the tree is drawn in
:mod:`chaos.toxiproxy.errors`); the server's proxies and toxics come back as the values of
:mod:`chaos.toxiproxy.models`. Both are re-exported here and from :mod:`chaos.toxiproxy`.

Why this facade is built on aiohttp rather than on toxiproxy-python
-------------------------------------------------------------------
toxiproxy-python 0.1.1 keeps the server address on the class ``APIConsumer``, and its ``Proxy``
and ``Toxiproxy`` objects call that class by its module-global name. A subclass therefore cannot
give one instance its own server: every instance in the process talks to whichever host and port
was set last, so two controls on two servers (run in worker threads to keep the event loop free)
would race on that shared state. Its requests carry no timeout, so a call to a server that
accepts and never answers would pin a worker thread for ever, and a thread cannot be cancelled.
The parts of it that are sound (list, get and delete proxies, list toxics, reset) are one HTTP
request each; wrapping them in threads and patched globals would add those hazards and save
nothing, while its gaps (no toxic update, no listen/upstream change, client-side ``populate``,
errors as raw bytes, 500s surfacing as ``KeyError``) would need replacing anyway. So every call
here is a direct aiohttp request, per instance and cancellable. Users' own toxiproxy-python code
keeps working against the embedded server; ``tests/chaos/toxiproxy/test_python_client.py``
proves it endpoint by endpoint.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import quote

import aiohttp
from yarl import URL

from chaos.toxiproxy._url import (
    TOXIPROXY_URL_ENV,
    USER_AGENT,
    chosen_url,
    naming_source,
    normalize_toxiproxy_url,
    parse_version,
    version_blocking,
)
from chaos.toxiproxy.errors import (
    AlreadyExists,
    BadRequest,
    NotFound,
    ProxyNotFound,
    ToxicNotFound,
    ToxiproxyError,
    ToxiproxyUnavailable,
    error_from_reply,
)
from chaos.toxiproxy.models import ProxyInfo, ToxicInfo

__all__ = [
    "DEFAULT_TIMEOUT",
    "TOXIPROXY_URL_ENV",
    "AlreadyExists",
    "BadRequest",
    "NotFound",
    "ProxyInfo",
    "ProxyNotFound",
    "ToxicInfo",
    "ToxicNotFound",
    "ToxiproxyControl",
    "ToxiproxyEndpoint",
    "ToxiproxyError",
    "ToxiproxyUnavailable",
    "normalize_toxiproxy_url",
    "open_control",
    "running_toxiproxy",
    "toxiproxy_server",
]

DEFAULT_TIMEOUT = 5.0
"""Seconds a whole request (connect, send, read the full reply) may take before it fails."""


# --------------------------------------------------------------------------------------------
# The facade


class ToxiproxyControl:
    """Drive one Toxiproxy server over its HTTP API, without blocking the event loop.

    Each instance has its own URL and its own HTTP session, so controls of different servers in
    one process never interfere. Every request fails with :class:`ToxiproxyUnavailable` after
    ``timeout`` seconds at most. The session is opened on first use and belongs to the event
    loop that opened it; use one control per loop, and :meth:`aclose` it (or use ``async with``).

    ``embedded`` is true when :func:`toxiproxy_server` started the server in this process;
    ``server_version`` is the version the server last reported to :meth:`version`.
    """

    def __init__(
        self, url: str, *, timeout: float = DEFAULT_TIMEOUT, embedded: bool = False
    ) -> None:
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
        self.url = normalize_toxiproxy_url(url)
        self.timeout = timeout
        self.embedded = embedded
        self.server_version: str | None = None
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        kind = "embedded" if self.embedded else "external"
        return f"ToxiproxyControl({self.url!r}, timeout={self.timeout}, {kind})"

    async def __aenter__(self) -> ToxiproxyControl:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP session (the server is left as it is). Safe to call twice."""
        session, self._session = self._session, None
        self._loop = None
        if session is not None:
            await session.close()

    # -- server ---------------------------------------------------------------------------

    async def version(self) -> str:
        """The server's version string, e.g. ``"2.12.0"`` (plain-text bodies of <2.7 accepted)."""
        _, text = await self._request("GET", "/version", expect=(200,), raw=True)
        self.server_version = parse_version(text)
        return self.server_version

    async def reset(self) -> None:
        """Enable every proxy and remove every toxic (proxies are kept)."""
        await self._request("POST", "/reset", expect=(204, 200))

    # -- proxies --------------------------------------------------------------------------

    async def proxies(self) -> dict[str, ProxyInfo]:
        """Every proxy on the server, by name."""
        data = await self._request("GET", "/proxies", expect=(200,))
        if not isinstance(data, dict):
            raise self._malformed("GET", "/proxies", f"expected an object of proxies: {data!r}")
        return {name: self._proxy(value, "GET", "/proxies") for name, value in data.items()}

    async def create_proxy(
        self, name: str, upstream: str, *, listen: str = "127.0.0.1:0", enabled: bool = True
    ) -> ProxyInfo:
        """Create a proxy; ``listen`` port 0 lets the server pick a free port (see ``.listen``).

        Raises :class:`AlreadyExists` if the name is taken, :class:`BadRequest` for a missing
        name or upstream, and a 500 :class:`ToxiproxyError` if ``listen`` cannot be bound.
        """
        _check_name(name, "proxy")
        body = {"name": name, "listen": listen, "upstream": upstream, "enabled": enabled}
        data = await self._request("POST", "/proxies", body, expect=(201, 200))
        return self._proxy(data, "POST", "/proxies")

    async def get_proxy(self, name: str) -> ProxyInfo:
        """One proxy; :class:`ProxyNotFound` if there is none of that name."""
        path = _proxy_path(name)
        return self._proxy(await self._request("GET", path, expect=(200,)), "GET", path)

    async def update_proxy(
        self,
        name: str,
        *,
        listen: str | None = None,
        upstream: str | None = None,
        enabled: bool | None = None,
    ) -> ProxyInfo:
        """``PATCH`` the given fields only. A new listen or upstream drops live connections."""
        body: dict[str, object] = {}
        if listen is not None:
            body["listen"] = listen
        if upstream is not None:
            body["upstream"] = upstream
        if enabled is not None:
            body["enabled"] = enabled
        if not body:
            raise ValueError("update_proxy needs at least one of listen, upstream, enabled")
        path = _proxy_path(name)
        return self._proxy(await self._request("PATCH", path, body, expect=(200,)), "PATCH", path)

    async def enable(self, name: str) -> ProxyInfo:
        """Listen again (on the same port it had)."""
        return await self.update_proxy(name, enabled=True)

    async def disable(self, name: str) -> ProxyInfo:
        """Stop listening and close every live connection of the proxy ("down")."""
        return await self.update_proxy(name, enabled=False)

    async def delete_proxy(self, name: str) -> None:
        """Delete a proxy and close its connections; :class:`ProxyNotFound` if absent."""
        await self._request("DELETE", _proxy_path(name), expect=(204, 200))

    async def populate(self, proxies: Sequence[Mapping[str, object]]) -> list[ProxyInfo]:
        """``POST /populate``: create or replace the listed proxies, on the server, in order.

        A proxy whose listen address and upstream are unchanged is kept as it is, with its
        toxics; proxies not listed are untouched. On failure the error's ``body["proxies"]``
        lists the entries handled before it.
        """
        entries = [dict(entry) for entry in proxies]
        data = await self._request("POST", "/populate", entries, expect=(201, 200))
        if not isinstance(data, dict):
            raise self._malformed("POST", "/populate", f"expected an object: {data!r}")
        listed = data.get("proxies") or []
        if not isinstance(listed, list):
            raise self._malformed("POST", "/populate", f"proxies must be an array: {listed!r}")
        return [self._proxy(item, "POST", "/populate") for item in listed]

    # -- toxics ---------------------------------------------------------------------------

    async def toxics(self, proxy: str) -> list[ToxicInfo]:
        """The proxy's toxics: upstream ones first, then downstream, each in the order added."""
        path = f"{_proxy_path(proxy)}/toxics"
        data = await self._request("GET", path, expect=(200,))
        if not isinstance(data, list):
            raise self._malformed("GET", path, f"expected an array of toxics, got {data!r}")
        return [self._toxic(item, "GET", path) for item in data]

    async def get_toxic(self, proxy: str, name: str) -> ToxicInfo:
        """One toxic; :class:`ProxyNotFound` or :class:`ToxicNotFound` if absent."""
        path = _toxic_path(proxy, name)
        return self._toxic(await self._request("GET", path, expect=(200,)), "GET", path)

    async def add_toxic(
        self,
        proxy: str,
        type: str,
        *,
        name: str | None = None,
        stream: str = "downstream",
        toxicity: float = 1.0,
        attributes: Mapping[str, int] | None = None,
    ) -> ToxicInfo:
        """Add a toxic; it acts on open connections at once. Returns it as the server stored it.

        ``name`` defaults (on the server) to ``<type>_<stream>``. Raises :class:`BadRequest`
        for an invalid type, stream or attribute, :class:`AlreadyExists` for a taken name.
        """
        body: dict[str, object] = {
            "type": type,
            "stream": stream,
            "toxicity": toxicity,
            "attributes": dict(attributes or {}),
        }
        if name is not None:
            _check_name(name, "toxic")
            body["name"] = name
        path = f"{_proxy_path(proxy)}/toxics"
        return self._toxic(await self._request("POST", path, body, expect=(200, 201)), "POST", path)

    async def update_toxic(
        self,
        proxy: str,
        name: str,
        *,
        attributes: Mapping[str, int] | None = None,
        toxicity: float | None = None,
    ) -> ToxicInfo:
        """``PATCH`` a toxic: the attributes given are merged in, the others keep their values."""
        body: dict[str, object] = {}
        if attributes is not None:
            body["attributes"] = dict(attributes)
        if toxicity is not None:
            body["toxicity"] = toxicity
        if not body:
            raise ValueError("update_toxic needs attributes or toxicity")
        path = _toxic_path(proxy, name)
        return self._toxic(await self._request("PATCH", path, body, expect=(200,)), "PATCH", path)

    async def remove_toxic(self, proxy: str, name: str) -> None:
        """Remove a toxic (data it held is flushed onward)."""
        await self._request("DELETE", _toxic_path(proxy, name), expect=(204, 200))

    # -- plumbing -------------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        body: object = None,
        *,
        expect: tuple[int, ...],
        raw: bool = False,
    ) -> Any:
        """Send one request; return the parsed JSON reply (or ``(status, text)`` when ``raw``)."""
        session = self._session_for_running_loop()
        payload = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if payload is not None else None
        try:
            async with session.request(
                method, URL(self.url + path, encoded=True), data=payload, headers=headers
            ) as response:
                status = response.status
                text = (await response.read()).decode("utf-8", errors="replace")
        except TimeoutError:
            raise self._unavailable(method, path, f"no answer within {self.timeout:g} s") from None
        except aiohttp.ClientError as exc:
            raise self._unavailable(method, path, _describe_client_error(exc)) from exc
        if status not in expect:
            raise error_from_reply(status, text, method=method, path=path, url=self.url)
        if raw:
            return status, text
        if not text.strip():
            return None
        try:
            return json.loads(text)
        except ValueError:
            raise self._malformed(method, path, f"reply is not JSON: {text[:200]!r}") from None

    def _session_for_running_loop(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                headers={"User-Agent": USER_AGENT},
            )
            self._loop = loop
        elif self._loop is not loop:
            raise RuntimeError(
                f"{self!r} is bound to another event loop; make one control per loop "
                "(or aclose() it before using it from a new loop)"
            )
        return self._session

    def _unavailable(self, method: str, path: str, why: str) -> ToxiproxyUnavailable:
        return ToxiproxyUnavailable(0, why, method=method, path=path, url=self.url)

    def _malformed(self, method: str, path: str, why: str) -> ToxiproxyError:
        return ToxiproxyError(
            200, f"malformed reply: {why}", method=method, path=path, url=self.url
        )

    def _proxy(self, data: object, method: str, path: str) -> ProxyInfo:
        try:
            return ProxyInfo.from_json(data)
        except (ValueError, TypeError) as exc:
            raise self._malformed(method, path, str(exc)) from None

    def _toxic(self, data: object, method: str, path: str) -> ToxicInfo:
        try:
            return ToxicInfo.from_json(data)
        except (ValueError, TypeError) as exc:
            raise self._malformed(method, path, str(exc)) from None


# --------------------------------------------------------------------------------------------
# Choosing the server


@dataclass(frozen=True)
class ToxiproxyEndpoint:
    """A running server chosen by :func:`running_toxiproxy`: its URL, kind and version."""

    url: str
    embedded: bool
    version: str


@asynccontextmanager
async def toxiproxy_server(
    url: str | None = None, *, seed: int | None = None, timeout: float = DEFAULT_TIMEOUT
) -> AsyncIterator[ToxiproxyControl]:
    """A control of the server to use, open for the ``async with`` block.

    ``url`` if given, else ``$TOXIPROXY_URL`` (a full URL or ``host:port``; empty means unset):
    that external server is used as it is, after ``GET /version`` proves it answers (else
    :class:`ToxiproxyUnavailable` with one line naming the URL and where it came from).
    Otherwise the embedded server starts on a free loopback port, seeded with ``seed``, and
    stops when the block exits. ``control.embedded`` says which; ``control.server_version`` is
    set. Starting and stopping happen off the event loop.
    """
    chosen, source = chosen_url(url)
    if chosen is not None:
        async with open_control(chosen, timeout=timeout, source=source) as control:
            yield control
        return

    from chaos.toxiproxy.server import BackgroundToxiproxy

    server = BackgroundToxiproxy(seed=seed)
    await asyncio.to_thread(server.start)
    try:
        async with open_control(server.url, timeout=timeout, embedded=True) as control:
            yield control
    finally:
        await asyncio.to_thread(server.stop)


@asynccontextmanager
async def open_control(
    url: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    embedded: bool = False,
    source: str | None = None,
) -> AsyncIterator[ToxiproxyControl]:
    """A control of the server at ``url``, proven to answer (``GET /version``, which sets
    ``server_version``) and closed when the block exits. ``source`` says where ``url`` came
    from; the :class:`ToxiproxyUnavailable` raised when the server does not answer names it.
    """
    control = ToxiproxyControl(url, timeout=timeout, embedded=embedded)
    try:
        try:
            await control.version()
        except ToxiproxyUnavailable as exc:
            if source is None:
                raise
            raise naming_source(exc, source) from None
        yield control
    finally:
        await control.aclose()


@contextmanager
def running_toxiproxy(
    url: str | None = None, *, seed: int | None = None, timeout: float = DEFAULT_TIMEOUT
) -> Iterator[ToxiproxyEndpoint]:
    """The blocking twin of :func:`toxiproxy_server`, for code outside an event loop.

    Chooses the server by the same rules (``url``, ``$TOXIPROXY_URL``, else embedded on a
    free loopback port, stopped on exit) and yields its :class:`ToxiproxyEndpoint`. The pytest
    plugin's session fixture uses it.
    """
    chosen, source = chosen_url(url)
    if chosen is not None:
        try:
            version = version_blocking(chosen, timeout)
        except ToxiproxyUnavailable as exc:
            raise naming_source(exc, source) from None
        yield ToxiproxyEndpoint(chosen, embedded=False, version=version)
        return

    from chaos.toxiproxy.server import BackgroundToxiproxy

    server = BackgroundToxiproxy(seed=seed)
    server.start()
    try:
        embedded_url = normalize_toxiproxy_url(server.url)
        version = version_blocking(embedded_url, timeout)
        yield ToxiproxyEndpoint(embedded_url, embedded=True, version=version)
    finally:
        server.stop()


# --------------------------------------------------------------------------------------------
# Helpers


def _describe_client_error(exc: aiohttp.ClientError) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError):
        error = exc.os_error  # errno > 0: a socket error; otherwise e.g. a name lookup failure
        reason = os.strerror(error.errno) if error.errno and error.errno > 0 else error.strerror
        return f"cannot connect: {reason or error}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection without a reply"
    return f"{type(exc).__name__}: {exc}"


def _check_name(name: str, what: str) -> None:
    if not isinstance(name, str) or not name:
        raise ValueError(f"{what} name must be a non-empty string, got {name!r}")
    if "/" in name:
        raise ValueError(f"{what} name {name!r} contains '/': the API could never address it")


def _proxy_path(name: str) -> str:
    return f"/proxies/{quote(name, safe='')}"


def _toxic_path(proxy: str, name: str) -> str:
    return f"{_proxy_path(proxy)}/toxics/{quote(name, safe='')}"

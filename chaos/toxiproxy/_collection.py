"""The server's state: proxies by name and their toxics, changed only through these operations.

Each operation takes the raw request body (bytes) where the API has one, checks it in the order
Toxiproxy does, and raises :class:`ApiError` (status and exact message) before changing
anything. A lock serialises the operations, as Toxiproxy's collection mutex does.
"""

from __future__ import annotations

import asyncio
from typing import Final

from chaos.toxiproxy import _gojson
from chaos.toxiproxy._accept import FdGuard
from chaos.toxiproxy._gojson import MISSING, BadBody
from chaos.toxiproxy._link import WorkBudget
from chaos.toxiproxy._loops import Endpoint, find_loop
from chaos.toxiproxy._proxy import Proxy, ProxyError, resolve_listen
from chaos.toxiproxy._toxics import (
    TOXIC_TYPES,
    InvalidAttribute,
    Toxic,
    parse_attributes,
    validate_attributes,
)

__all__ = ["ApiError", "PopulateError", "ProxyCollection"]

_PROXY_TYPE: Final = "toxiproxy.Proxy"
_POPULATE_TYPE: Final = (
    '[]struct { Name string "json:\\"name\\""; Listen string "json:\\"listen\\""; '
    'Upstream string "json:\\"upstream\\""; Enabled *bool "json:\\"enabled\\"" }'
)
_TOXIC_TYPE: Final = "toxics.ToxicWrapper"


class ApiError(Exception):
    """An API failure: the HTTP ``status`` and Toxiproxy's exact ``message``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class PopulateError(ApiError):
    """``/populate`` failed; ``proxies`` are the ones handled before the failure."""

    def __init__(self, error: ApiError, proxies: list[Proxy] | None) -> None:
        super().__init__(error.status, error.message)
        self.proxies = proxies


def _bad_body(error: BadBody | InvalidAttribute) -> ApiError:
    return ApiError(400, f"bad request body: {error}")


_NOT_FOUND: Final = "proxy not found"
_TOXIC_NOT_FOUND: Final = "toxic not found"


class ProxyCollection:
    """Every proxy of one server, with the operations of the HTTP API."""

    def __init__(self, *, seed: int | None) -> None:
        self._proxies: dict[str, Proxy] = {}
        self._seed = seed
        self.guard = FdGuard()
        """Shared by every listener of the server (the server opens and closes it)."""
        self.budget = WorkBudget()
        """The toxic work of every link of the server per loop iteration."""
        self._lock = asyncio.Lock()

    def all(self) -> dict[str, Proxy]:
        """Proxies sorted by name, as Go's JSON encoder sorts map keys."""
        return {name: self._proxies[name] for name in sorted(self._proxies)}

    def get(self, name: str) -> Proxy:
        proxy = self._proxies.get(name)
        if proxy is None:
            raise ApiError(404, _NOT_FOUND)
        return proxy

    async def create(self, body: bytes) -> Proxy:
        """``POST /proxies``: check the body, refuse a taken name, bind if enabled."""
        name, listen, upstream, enabled = _parse_proxy(body)
        if not name:
            raise ApiError(400, "missing required field: name")
        if not upstream:
            raise ApiError(400, "missing required field: upstream")
        async with self._lock:
            if name in self._proxies:
                raise ApiError(409, "proxy already exists")
            await self._refuse_loop(name, listen, upstream)
            proxy = Proxy(
                name, listen, upstream, seed=self._seed, guard=self.guard, budget=self.budget
            )
            if enabled:
                await self._start_checked(proxy)
            self._proxies[name] = proxy
            return proxy

    async def update(self, name: str, body: bytes) -> Proxy:
        """``PATCH /proxies/{name}``: restart on a new listen/upstream, enable or disable."""
        async with self._lock:
            proxy = self.get(name)
            try:
                obj = _gojson.as_object(_gojson.decode(body), _PROXY_TYPE)
                listen = _optional_string(obj, "listen", proxy.listen)
                upstream = _optional_string(obj, "upstream", proxy.upstream)
                enabled_value = _gojson.field(obj, "enabled")
                enabled = (
                    proxy.enabled
                    if enabled_value is MISSING
                    else _gojson.as_bool(enabled_value, "Proxy", "enabled")
                )
            except BadBody as error:
                raise _bad_body(error) from None
            if await _differs(proxy, listen, upstream):
                await self._refuse_loop(name, listen, upstream)
                await proxy.stop()
                proxy.listen = listen
                proxy.upstream = upstream
            if enabled and not proxy.enabled:
                await self._start_checked(proxy)
            elif not enabled and proxy.enabled:
                await proxy.stop()
            return proxy

    async def delete(self, name: str) -> None:
        """``DELETE /proxies/{name}``: stop it (closing its connections) and forget it."""
        async with self._lock:
            proxy = self.get(name)
            await proxy.stop()
            del self._proxies[name]

    async def populate(self, body: bytes) -> list[Proxy]:
        """``POST /populate``: create or replace the listed proxies, stopping at the first failure.

        Raises :class:`PopulateError` carrying the proxies handled before the failure.
        """
        try:
            value = _gojson.decode(body)
            if value is None:
                value = []
            if not isinstance(value, list):
                raise BadBody(
                    f"json: cannot unmarshal {_gojson.kind(value)} into Go value of type "
                    f"{_POPULATE_TYPE}"
                )
            entries = [_parse_populate_entry(item) for item in value]
        except BadBody as error:
            raise PopulateError(_bad_body(error), None) from None
        for number, (name, _listen, upstream, _enabled) in enumerate(entries, start=1):
            if not name:
                raise PopulateError(
                    ApiError(400, f"missing required field: name at proxy {number}"), None
                )
            if not upstream:
                raise PopulateError(
                    ApiError(400, f"missing required field: upstream at proxy {number}"), None
                )
        handled: list[Proxy] = []
        async with self._lock:
            for name, listen, upstream, enabled in entries:
                existing = self._proxies.get(name)
                try:
                    if existing is not None and not await _differs(existing, listen, upstream):
                        handled.append(existing)
                        continue
                    await self._refuse_loop(name, listen, upstream)
                    if existing is not None:
                        await existing.stop()
                        del self._proxies[name]
                    proxy = Proxy(
                        name,
                        listen,
                        upstream,
                        seed=self._seed,
                        guard=self.guard,
                        budget=self.budget,
                    )
                    if enabled:
                        await self._start_checked(proxy)
                except ApiError as error:
                    raise PopulateError(error, handled) from None
                self._proxies[name] = proxy
                handled.append(proxy)
        return handled

    async def reset(self) -> None:
        """``POST /reset``: enable every proxy and remove every toxic."""
        async with self._lock:
            for proxy in list(self._proxies.values()):
                if not proxy.enabled:
                    await _start(proxy)
                for toxic in list(proxy.toxics):
                    proxy.remove_toxic(toxic)

    async def _refuse_loop(self, name: str, listen: str, upstream: str) -> None:
        """400 if ``upstream`` leads back to the proxy ``name`` listening on ``listen``."""
        others = (Endpoint(p.name, p.listen, p.upstream) for p in self._proxies.values())
        message = await find_loop(Endpoint(name, listen, upstream), others)
        if message is not None:
            raise ApiError(400, message)

    async def _start_checked(self, proxy: Proxy) -> None:
        """Start ``proxy``; a port picked by the system is checked for a loop once known."""
        requested = proxy.listen
        await _start(proxy)
        if proxy.listen != requested:
            try:
                await self._refuse_loop(proxy.name, proxy.listen, proxy.upstream)
            except ApiError:
                await proxy.stop()
                proxy.listen = requested
                raise

    async def stop_all(self) -> None:
        """Stop every proxy at once, dropping unsent data (server shutdown)."""
        async with self._lock:
            for proxy in self._proxies.values():
                await proxy.stop(abort=True)

    # -- toxics --------------------------------------------------------------------------------

    def get_toxic(self, proxy_name: str, toxic_name: str) -> Toxic:
        proxy = self.get(proxy_name)
        for toxic in proxy.toxics:
            if toxic.name == toxic_name:
                return toxic
        raise ApiError(404, _TOXIC_NOT_FOUND)

    async def add_toxic(self, proxy_name: str, body: bytes) -> Toxic:
        """``POST /proxies/{p}/toxics``, checked in Toxiproxy's order, then our attribute bounds."""
        async with self._lock:
            proxy = self.get(proxy_name)
            try:
                obj = _gojson.as_object(_gojson.decode(body), _TOXIC_TYPE)
                name = _optional_string(obj, "name", "", struct="ToxicWrapper")
                toxic_type = _optional_string(obj, "type", "", struct="ToxicWrapper")
                stream = _optional_string(obj, "stream", "downstream", struct="ToxicWrapper")
                toxicity_value = _gojson.field(obj, "toxicity")
                toxicity = (
                    1.0
                    if toxicity_value is MISSING
                    else _gojson.as_float32(toxicity_value, "ToxicWrapper", "toxicity")
                )
                attributes_value = _gojson.field(obj, "attributes")
                if attributes_value is not MISSING:
                    _gojson.as_object_field(attributes_value, "attributes", "NoopToxic")
            except BadBody as error:
                raise _bad_body(error) from None
            if stream.lower() not in ("upstream", "downstream"):
                raise ApiError(400, "stream was invalid, can be either upstream or downstream")
            if not name:
                name = f"{toxic_type}_{stream}"
            if toxic_type not in TOXIC_TYPES:
                raise ApiError(400, "invalid toxic type")
            if any(toxic.name == name for toxic in proxy.toxics):
                raise ApiError(409, "toxic already exists")
            try:
                attributes = parse_attributes(toxic_type, attributes_value, {})
                validate_attributes(toxic_type, attributes)
            except InvalidAttribute as error:
                raise ApiError(400, str(error)) from None
            except BadBody as error:
                raise _bad_body(error) from None
            toxic = Toxic(
                name=name,
                type=toxic_type,
                stream=stream,
                upstream=stream.lower() == "upstream",
                toxicity=toxicity,
                attributes=attributes,
            )
            proxy.add_toxic(toxic)
            return toxic

    async def update_toxic(self, proxy_name: str, toxic_name: str, body: bytes) -> Toxic:
        """``PATCH /proxies/{p}/toxics/{t}``: merge attributes, keep what is not sent."""
        async with self._lock:
            proxy = self.get(proxy_name)
            toxic = self.get_toxic(proxy_name, toxic_name)
            try:
                obj = _gojson.as_object(_gojson.decode(body), "struct { Attributes ... }")
                toxicity_value = _gojson.field(obj, "toxicity")
                toxicity = (
                    toxic.toxicity
                    if toxicity_value is MISSING
                    else _gojson.as_float32(toxicity_value, "", "toxicity")
                )
                attributes = parse_attributes(
                    toxic.type, _gojson.field(obj, "attributes"), toxic.attributes
                )
                validate_attributes(toxic.type, attributes)
            except BadBody as error:
                raise _bad_body(error) from None
            except InvalidAttribute as error:
                raise ApiError(400, str(error)) from None
            toxic.attributes = attributes
            toxic.toxicity = toxicity
            proxy.update_toxic(toxic)
            return toxic

    async def remove_toxic(self, proxy_name: str, toxic_name: str) -> None:
        async with self._lock:
            proxy = self.get(proxy_name)
            toxic = self.get_toxic(proxy_name, toxic_name)
            proxy.remove_toxic(toxic)


def _optional_string(
    obj: dict[str, object], key: str, default: str, *, struct: str = "Proxy"
) -> str:
    value = _gojson.field(obj, key)
    return default if value is MISSING else _gojson.as_string(value, struct, key)


def _parse_proxy(body: bytes) -> tuple[str, str, str, bool]:
    try:
        obj = _gojson.as_object(_gojson.decode(body), _PROXY_TYPE)
        return _proxy_fields(obj, "Proxy")
    except BadBody as error:
        raise _bad_body(error) from None


def _parse_populate_entry(item: object) -> tuple[str, str, str, bool]:
    if not isinstance(item, dict):
        raise BadBody(
            f"json: cannot unmarshal {_gojson.kind(item)} into Go value of type struct "
            '{ Name string "json:\\"name\\""; ... }'
        )
    return _proxy_fields(item, "")


def _proxy_fields(obj: dict[str, object], struct: str) -> tuple[str, str, str, bool]:
    name = _optional_string(obj, "name", "", struct=struct)
    listen = _optional_string(obj, "listen", "", struct=struct)
    upstream = _optional_string(obj, "upstream", "", struct=struct)
    enabled_value = _gojson.field(obj, "enabled")
    enabled = (
        True if enabled_value is MISSING else _gojson.as_bool(enabled_value, struct, "enabled")
    )
    return name, listen, upstream, enabled


async def _start(proxy: Proxy) -> None:
    try:
        await proxy.start()
    except ProxyError as error:
        raise ApiError(500, str(error)) from None


async def _differs(proxy: Proxy, listen: str, upstream: str) -> bool:
    """Whether ``listen`` (compared after resolving) or ``upstream`` differ from ``proxy``'s."""
    if upstream != proxy.upstream:
        return True
    if listen == proxy.listen:
        return False
    try:
        new = await resolve_listen(listen)
        current = await resolve_listen(proxy.listen)
    except ProxyError as error:
        raise ApiError(500, str(error)) from None
    return new != current

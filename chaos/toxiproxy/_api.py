"""The HTTP API (aiohttp.web): Toxiproxy 2.12's routes, statuses, headers and bodies.

The middleware reads each request's whole body before its handler runs (under the read deadline
of :mod:`chaos.toxiproxy._http`), so a client that goes away mid-body costs one debug line, not
an ERROR traceback, and no handler ever waits on a slow body.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Awaitable, Callable
from typing import Final

from aiohttp import web

from chaos.toxiproxy import _gojson
from chaos.toxiproxy._collection import ApiError, PopulateError, ProxyCollection
from chaos.toxiproxy._http import ApiConnections
from chaos.toxiproxy._proxy import Proxy

__all__ = ["TOXIPROXY_VERSION", "make_app"]

TOXIPROXY_VERSION: Final = "2.12.0"
"""The toxiproxy-server version this server behaves as."""

_log = logging.getLogger("chaos.toxiproxy")

_COLLECTION: Final = web.AppKey("collection", ProxyCollection)
_CONNECTIONS: Final = web.AppKey("connections", ApiConnections)
_ERROR_HEADERS: Final = {
    "Content-Type": "text/plain; charset=utf-8",
    "X-Content-Type-Options": "nosniff",
}
_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_request_ids = itertools.count(1)


def make_app(collection: ProxyCollection, connections: ApiConnections) -> web.Application:
    """An aiohttp application serving the Toxiproxy API over ``collection``.

    ``connections`` are the read deadlines of the connections it is served on.
    """
    app = web.Application(middlewares=[_conventions])
    app[_COLLECTION] = collection
    app[_CONNECTIONS] = connections
    routes = [
        web.get("/version", _version, allow_head=False),
        web.post("/reset", _reset),
        web.get("/proxies", _list_proxies, allow_head=False),
        web.post("/proxies", _create_proxy),
        web.post("/populate", _populate),
        web.get("/proxies/{proxy}", _get_proxy, allow_head=False),
        web.patch("/proxies/{proxy}", _update_proxy),
        web.post("/proxies/{proxy}", _update_proxy),
        web.delete("/proxies/{proxy}", _delete_proxy),
        web.get("/proxies/{proxy}/toxics", _list_toxics, allow_head=False),
        web.post("/proxies/{proxy}/toxics", _create_toxic),
        web.get("/proxies/{proxy}/toxics/{toxic}", _get_toxic, allow_head=False),
        web.patch("/proxies/{proxy}/toxics/{toxic}", _update_toxic),
        web.post("/proxies/{proxy}/toxics/{toxic}", _update_toxic),
        web.delete("/proxies/{proxy}/toxics/{toxic}", _delete_toxic),
    ]
    app.add_routes(routes)
    return app


@web.middleware
async def _conventions(request: web.Request, handler: _Handler) -> web.StreamResponse:
    """Read the whole request, answer it by Go's conventions, then mark the connection idle."""
    connections = request.app[_CONNECTIONS]
    transport = request.transport
    try:
        try:
            await request.read()  # the handler's request.read() returns it again
        except ConnectionError:  # the client went away mid-body: nobody to answer
            _log.debug(
                "API: %s %s: client gone before its body arrived", request.method, request.path
            )
            return web.Response(status=400)
        connections.request_read(transport)
        return await _answer(request, handler)
    finally:
        connections.request_done(transport)


async def _answer(request: web.Request, handler: _Handler) -> web.StreamResponse:
    """Go's conventions: unrouted requests skip the middleware; browsers get 403; errors as text."""
    unrouted = request.match_info.http_exception
    if isinstance(unrouted, web.HTTPMethodNotAllowed):
        return web.Response(status=405)
    if unrouted is not None:
        return web.Response(status=404, body=b"404 page not found\n", headers=dict(_ERROR_HEADERS))
    response: web.StreamResponse
    if request.headers.get("User-Agent", "").startswith("Mozilla/"):
        response = web.Response(
            status=403, body=b"User agent not allowed\n", headers=dict(_ERROR_HEADERS)
        )
    else:
        try:
            response = await handler(request)
        except PopulateError as error:
            response = _populate_response(error.status, error.proxies, error)
        except ApiError as error:
            body = _gojson.encode({"error": error.message, "status": error.status})
            response = web.Response(
                status=error.status, body=(body + "\n").encode(), headers=dict(_ERROR_HEADERS)
            )
    response.headers["X-Toxiproxy-Request-Id"] = f"{next(_request_ids):020d}"
    return response


def _json(data: object, status: int = 200) -> web.Response:
    body = _gojson.encode(data).encode()
    return web.Response(status=status, body=body, content_type="application/json")


def _collection(request: web.Request) -> ProxyCollection:
    return request.app[_COLLECTION]


async def _version(request: web.Request) -> web.Response:
    return web.Response(
        body=f'{{"version": "{TOXIPROXY_VERSION}"}}\n'.encode(),
        headers={"Content-Type": "application/json;charset=utf-8"},
    )


async def _reset(request: web.Request) -> web.Response:
    await _collection(request).reset()
    return web.Response(status=204)


async def _list_proxies(request: web.Request) -> web.Response:
    proxies = _collection(request).all()
    return _json({name: proxy.to_json() for name, proxy in proxies.items()})


async def _create_proxy(request: web.Request) -> web.Response:
    proxy = await _collection(request).create(await request.read())
    return _json(proxy.to_json(), status=201)


async def _populate(request: web.Request) -> web.Response:
    proxies = await _collection(request).populate(await request.read())
    return _populate_response(201, proxies, None)


def _populate_response(
    status: int, proxies: list[Proxy] | None, error: ApiError | None
) -> web.Response:
    data: dict[str, object] = {}
    if error is not None:
        data["error"] = error.message
        data["status"] = error.status
    data["proxies"] = [proxy.to_json() for proxy in proxies] if proxies else None
    return _json(data, status=status)


async def _get_proxy(request: web.Request) -> web.Response:
    return _json(_collection(request).get(request.match_info["proxy"]).to_json())


async def _update_proxy(request: web.Request) -> web.Response:
    body = await request.read()
    proxy = await _collection(request).update(request.match_info["proxy"], body)
    return _json(proxy.to_json())


async def _delete_proxy(request: web.Request) -> web.Response:
    await _collection(request).delete(request.match_info["proxy"])
    return web.Response(status=204)


async def _list_toxics(request: web.Request) -> web.Response:
    proxy = _collection(request).get(request.match_info["proxy"])
    return _json(proxy.to_json()["toxics"])


async def _create_toxic(request: web.Request) -> web.Response:
    body = await request.read()
    toxic = await _collection(request).add_toxic(request.match_info["proxy"], body)
    return _json(toxic.to_json())


async def _get_toxic(request: web.Request) -> web.Response:
    info = request.match_info
    return _json(_collection(request).get_toxic(info["proxy"], info["toxic"]).to_json())


async def _update_toxic(request: web.Request) -> web.Response:
    info = request.match_info
    body = await request.read()
    toxic = await _collection(request).update_toxic(info["proxy"], info["toxic"], body)
    return _json(toxic.to_json())


async def _delete_toxic(request: web.Request) -> web.Response:
    info = request.match_info
    await _collection(request).remove_toxic(info["proxy"], info["toxic"])
    return web.Response(status=204)

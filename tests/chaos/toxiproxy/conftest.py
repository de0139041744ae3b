"""Fixtures for the embedded Toxiproxy server's tests: the API, proxies, and real TCP peers.

``toxiproxy`` talks raw HTTP (aiohttp client) to the server under test: a real Toxiproxy when
``TOXIPROXY_URL`` is set, else an embedded :class:`ToxiproxyServer` started for the test. Every
proxy a test creates gets a unique name and is deleted afterwards, so the tests also run against
a shared external server. Peers (echo, sink, closing servers) run on loopback on free ports.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest

from chaos.toxiproxy import ToxiproxyServer


@dataclass
class Reply:
    """An HTTP reply: status, headers, raw text, and the body parsed as JSON when it is."""

    status: int
    headers: Any
    text: str

    @property
    def json(self) -> Any:
        return json.loads(self.text)


class ToxiproxyApi:
    """Raw HTTP access to the server under test, remembering proxies to delete afterwards."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session = session
        self.url = url.rstrip("/")
        self.created: set[str] = set()
        self.prefix = f"t{uuid.uuid4().hex[:8]}_"

    def name(self, base: str) -> str:
        """A proxy name unique to this test."""
        return self.prefix + base

    async def request(
        self,
        method: str,
        path: str,
        body: object = None,
        *,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        async with self.session.request(
            method, self.url + path, data=data, headers=headers
        ) as response:
            return Reply(response.status, response.headers, await response.text())

    async def create_proxy(
        self, base: str, upstream: str, *, listen: str = "127.0.0.1:0", enabled: bool = True
    ) -> Proxy:
        name = self.name(base)
        reply = await self.request(
            "POST",
            "/proxies",
            {"name": name, "listen": listen, "upstream": upstream, "enabled": enabled},
        )
        assert reply.status == 201, reply.text
        self.created.add(name)
        return Proxy(self, name, reply.json["listen"])

    async def cleanup(self) -> None:
        for name in self.created:
            await self.request("DELETE", f"/proxies/{name}")


@dataclass
class Proxy:
    """A proxy created by a test: its name and the address it listens on."""

    api: ToxiproxyApi
    name: str
    listen: str

    @property
    def port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])

    async def add_toxic(self, toxic_type: str, **body: object) -> dict[str, Any]:
        reply = await self.api.request(
            "POST", f"/proxies/{self.name}/toxics", {"type": toxic_type, **body}
        )
        assert reply.status == 200, reply.text
        result: dict[str, Any] = reply.json
        return result

    async def update_toxic(self, name: str, **body: object) -> dict[str, Any]:
        reply = await self.api.request("PATCH", f"/proxies/{self.name}/toxics/{name}", body)
        assert reply.status == 200, reply.text
        result: dict[str, Any] = reply.json
        return result

    async def remove_toxic(self, name: str) -> None:
        reply = await self.api.request("DELETE", f"/proxies/{self.name}/toxics/{name}")
        assert reply.status == 204, reply.text

    async def set_enabled(self, enabled: bool) -> None:
        reply = await self.api.request("PATCH", f"/proxies/{self.name}", {"enabled": enabled})
        assert reply.status == 200, reply.text

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.port)


@dataclass
class Peer:
    """A TCP server on loopback: its ``address`` (``127.0.0.1:port``) and what it saw."""

    address: str
    reads: list[bytes] = field(default_factory=list)
    connections: int = 0


async def round_trip(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, payload: bytes = b"ping"
) -> float:
    """Seconds for ``payload`` to come back through an echo peer."""
    started = time.perf_counter()
    writer.write(payload)
    await asyncio.wait_for(reader.readexactly(len(payload)), 5)
    return time.perf_counter() - started


async def read_until_eof(reader: asyncio.StreamReader, timeout: float = 5.0) -> bytes:
    return await asyncio.wait_for(reader.read(), timeout)


@pytest.fixture
async def toxiproxy_url() -> AsyncIterator[str]:
    """The server under test: ``TOXIPROXY_URL`` when set, else an embedded server."""
    external = os.environ.get("TOXIPROXY_URL", "").strip()
    if external:
        yield external if "://" in external else f"http://{external}"
        return
    async with ToxiproxyServer(seed=1) as server:
        yield server.url


@pytest.fixture
async def toxiproxy(toxiproxy_url: str) -> AsyncIterator[ToxiproxyApi]:
    """Raw HTTP access to the server under test; created proxies are deleted afterwards."""
    async with aiohttp.ClientSession() as session:
        api = ToxiproxyApi(session, toxiproxy_url)
        try:
            yield api
        finally:
            await api.cleanup()


async def _serve(
    handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter, Peer], Any],
) -> AsyncIterator[Peer]:
    peer = Peer(address="")
    writers: set[asyncio.StreamWriter] = set()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer.connections += 1
        writers.add(writer)
        try:
            await handler(reader, writer, peer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            writers.discard(writer)

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    peer.address = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        yield peer
    finally:
        server.close()
        for writer in list(writers):
            writer.close()
        await server.wait_closed()


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: Peer) -> None:
    while data := await reader.read(65536):
        peer.reads.append(data)
        writer.write(data)
        await writer.drain()


async def _sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: Peer) -> None:
    while data := await reader.read(65536):
        peer.reads.append(data)


async def _close_on_data(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: Peer
) -> None:
    data = await reader.read(65536)
    peer.reads.append(data)


@pytest.fixture
async def echo_peer() -> AsyncIterator[Peer]:
    """A server that echoes every byte back (and records each read)."""
    async for peer in _serve(_echo):
        yield peer


@pytest.fixture
async def sink_peer() -> AsyncIterator[Peer]:
    """A server that reads and records every chunk, answering nothing."""
    async for peer in _serve(_sink):
        yield peer


@pytest.fixture
async def closing_peer() -> AsyncIterator[Peer]:
    """A server that closes the connection as soon as it reads something."""
    async for peer in _serve(_close_on_data):
        yield peer


@pytest.fixture
async def embedded_toxiproxy() -> AsyncIterator[ToxiproxyApi]:
    """Raw HTTP access to an embedded server, even when ``TOXIPROXY_URL`` is set.

    For behaviour only the embedded server has (refusing attribute values that crash a real
    Toxiproxy, reproducible seeds).
    """
    async with ToxiproxyServer(seed=1) as server, aiohttp.ClientSession() as session:
        yield ToxiproxyApi(session, server.url)

"""No leak: thousands of connections, with toxics coming and going, leave no socket and no task.

Always runs against the embedded server (it inspects the server's event loop). The echo peer,
the clients and the server share the test's loop and process, so the open file descriptors of
the process (``/proc/self/fd``) and the loop's tasks must come back exactly to their baseline.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable

import aiohttp
import pytest

from chaos.toxiproxy import ToxiproxyServer
from tests.chaos.toxiproxy.conftest import Peer, Proxy, ToxiproxyApi

pytestmark = pytest.mark.real_server

CONNECTIONS = 2000
CONCURRENCY = 50
PAYLOAD = bytes(range(256)) * 4


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def _settled(server: ToxiproxyServer, fds: int, tasks: int) -> tuple[int, int]:
    """(fds, tasks) once both are back to their baseline, or after 5 s."""
    for _ in range(500):
        now = (_open_fds(), len(asyncio.all_tasks()))
        if now == (fds, tasks) and all(
            proxy.connection_count == 0 for proxy in server.collection.all().values()
        ):
            return now
        await asyncio.sleep(0.01)
    return _open_fds(), len(asyncio.all_tasks())


async def _run_clients(count: int, client: Callable[[int], Awaitable[None]]) -> None:
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(index: int) -> None:
        async with gate:
            await client(index)

    await asyncio.gather(*(one(index) for index in range(count)))


async def _echo_client(proxy: Proxy) -> None:
    reader, writer = await proxy.connect()
    try:
        writer.write(PAYLOAD)
        assert await asyncio.wait_for(reader.readexactly(len(PAYLOAD)), 10) == PAYLOAD
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def _churn_toxics(proxy: Proxy, stop: asyncio.Event) -> int:
    """Add and remove toxics in a loop while traffic flows; returns how many changes it made."""
    toxics: list[tuple[str, dict[str, object]]] = [
        ("latency", {"stream": "downstream", "attributes": {"latency": 1}}),
        ("noop", {"stream": "upstream"}),
        ("slicer", {"stream": "downstream", "attributes": {"average_size": 256}}),
        ("bandwidth", {"stream": "upstream", "attributes": {"rate": 100_000}}),
    ]
    changes = 0
    while not stop.is_set():
        for toxic_type, body in toxics:
            await proxy.add_toxic(toxic_type, **body)
            changes += 1
            await asyncio.sleep(0.003)
        for toxic_type, body in toxics:
            await proxy.remove_toxic(f"{toxic_type}_{body['stream']}")
            changes += 1
            await asyncio.sleep(0.003)
    return changes


async def test_connections_and_toxic_churn_leave_no_fd_and_no_task(echo_peer: Peer) -> None:
    async with ToxiproxyServer() as server, aiohttp.ClientSession() as session:
        api = ToxiproxyApi(session, server.url)
        proxy = await api.create_proxy("leak", echo_peer.address)
        await _echo_client(proxy)  # warm up: lazy imports and the HTTP keep-alive connection
        await api.request("GET", "/version")
        fds, tasks = await _settled(server, _open_fds(), len(asyncio.all_tasks()))

        stop = asyncio.Event()
        churn = asyncio.create_task(_churn_toxics(proxy, stop))
        await _run_clients(CONNECTIONS, lambda _index: _echo_client(proxy))
        stop.set()
        assert await churn > 8

        await proxy.add_toxic("limit_data", attributes={"bytes": 100})
        await _run_clients(200, lambda _index: _limited_client(proxy))
        await proxy.remove_toxic("limit_data_downstream")
        await proxy.add_toxic("reset_peer", stream="upstream", attributes={"timeout": 0})
        await _run_clients(200, lambda _index: _reset_client(proxy))
        await proxy.remove_toxic("reset_peer_upstream")

        assert await _settled(server, fds, tasks) == (fds, tasks)


async def _limited_client(proxy: Proxy) -> None:
    reader, writer = await proxy.connect()
    writer.write(PAYLOAD)
    assert await asyncio.wait_for(reader.read(), 10) == PAYLOAD[:100]
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()


async def _reset_client(proxy: Proxy) -> None:
    reader, writer = await proxy.connect()
    writer.write(PAYLOAD)
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(), 10)
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()


async def test_stop_closes_every_connection_and_leaves_no_task_or_fd(echo_peer: Peer) -> None:
    fds, tasks = _open_fds(), len(asyncio.all_tasks())
    server = ToxiproxyServer()
    await server.start()
    clients: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    async with aiohttp.ClientSession() as session:
        api = ToxiproxyApi(session, server.url)
        proxy = await api.create_proxy("stop", echo_peer.address)
        await proxy.add_toxic("latency", attributes={"latency": 10_000})  # holds the echoes
        for _ in range(5):
            reader, writer = await proxy.connect()
            writer.write(PAYLOAD)
            clients.append((reader, writer))
        await asyncio.sleep(0.05)
    await server.stop()
    for reader, writer in clients:
        with contextlib.suppress(ConnectionError):
            assert await asyncio.wait_for(reader.read(), 2) == b""
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    for _ in range(200):  # the echo peer closes its side of each connection
        if (_open_fds(), len(asyncio.all_tasks())) == (fds, tasks):
            break
        await asyncio.sleep(0.01)
    assert (_open_fds(), len(asyncio.all_tasks())) == (fds, tasks)

"""A proxy cannot loop to itself, and running out of descriptors is survived (point 10).

Toxiproxy accepts a proxy whose upstream is its own listen address; it then dials itself until
the process has no descriptors left, and (``ulimit -n 1024``) its API stops answering while
asyncio logged 8.6 MB of tracebacks in 8 s. The embedded server refuses such a proxy (and a
cycle through its other proxies) with 400; a loop it cannot see (through an outside relay), or a
plain flood of clients, exhausts the descriptors of a server started with a low limit here, and
the API must keep answering, log a line or two, and give every descriptor back afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.chaos.toxiproxy._process import ServerProcess, p99, poll_version, server_process
from tests.chaos.toxiproxy.conftest import Peer, ToxiproxyApi, round_trip
from tests.chaos.toxiproxy.test_bad_input import go_json

pytestmark = pytest.mark.real_server

NOFILE = 160
"""The server's open-file limit in the exhaustion tests (a few dozen proxied connections)."""


LOOPS = 8
"""Connections that start going round the outside loop at once."""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _loop_error(upstream: str, name: str, through: str = "") -> str:
    where = f" through {through}" if through else " itself"
    message = f'upstream {upstream} loops back to proxy "{name}"{where}'
    return go_json({"error": message, "status": 400}) + "\n"


@pytest.mark.parametrize(
    ("listen_host", "upstream_host"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("127.0.0.1", "localhost"),
        ("0.0.0.0", "127.0.0.1"),  # refused before anything is bound
        ("127.0.0.1", "0.0.0.0"),
    ],
)
@pytest.mark.parametrize("enabled", [True, False])
async def test_a_proxy_whose_upstream_is_its_own_listen_address_is_refused(
    embedded_toxiproxy: ToxiproxyApi, listen_host: str, upstream_host: str, enabled: bool
) -> None:
    port = _free_port()
    name = embedded_toxiproxy.name("self")
    upstream = f"{upstream_host}:{port}"
    body = {"name": name, "listen": f"{listen_host}:{port}", "upstream": upstream}
    reply = await embedded_toxiproxy.request("POST", "/proxies", {**body, "enabled": enabled})
    assert (reply.status, reply.text) == (400, _loop_error(upstream, name))
    assert (await embedded_toxiproxy.request("GET", f"/proxies/{name}")).status == 404


async def test_updating_a_proxy_into_a_loop_is_refused_and_changes_nothing(
    embedded_toxiproxy: ToxiproxyApi, echo_peer: Peer
) -> None:
    proxy = await embedded_toxiproxy.create_proxy("to_self", echo_peer.address)
    path = f"/proxies/{proxy.name}"
    reply = await embedded_toxiproxy.request("PATCH", path, {"upstream": proxy.listen})
    assert (reply.status, reply.text) == (400, _loop_error(proxy.listen, proxy.name))
    after = (await embedded_toxiproxy.request("GET", path)).json
    assert (after["upstream"], after["enabled"]) == (echo_peer.address, True)
    reader, writer = await proxy.connect()
    assert await round_trip(reader, writer) < 1
    writer.close()


async def test_a_cycle_through_other_proxies_is_refused_but_a_chain_is_not(
    embedded_toxiproxy: ToxiproxyApi, echo_peer: Peer
) -> None:
    b_port, c_port = _free_port(), _free_port()
    first = await embedded_toxiproxy.create_proxy("a", f"127.0.0.1:{b_port}")
    second = await embedded_toxiproxy.create_proxy(
        "b", f"127.0.0.1:{c_port}", listen=f"127.0.0.1:{b_port}"
    )
    name = embedded_toxiproxy.name("c")
    reply = await embedded_toxiproxy.request(
        "POST",
        "/proxies",
        {"name": name, "listen": f"127.0.0.1:{c_port}", "upstream": first.listen},
    )
    through = f'proxies "{first.name}", "{second.name}"'
    assert (reply.status, reply.text) == (400, _loop_error(first.listen, name, through))
    chained = await embedded_toxiproxy.create_proxy(
        "c", echo_peer.address, listen=f"127.0.0.1:{c_port}"
    )
    reader, writer = await first.connect()  # a -> b -> c -> echo
    assert await round_trip(reader, writer) < 1
    writer.close()
    assert chained.port == c_port


async def test_populate_stops_at_a_loop_with_the_proxies_before_it(
    embedded_toxiproxy: ToxiproxyApi, echo_peer: Peer
) -> None:
    port = _free_port()
    good, looping = embedded_toxiproxy.name("good"), embedded_toxiproxy.name("loop")
    embedded_toxiproxy.created.update({good, looping})
    entries = [
        {"name": good, "listen": "127.0.0.1:0", "upstream": echo_peer.address},
        {"name": looping, "listen": f"127.0.0.1:{port}", "upstream": f"127.0.0.1:{port}"},
    ]
    reply = await embedded_toxiproxy.request("POST", "/populate", entries)
    assert reply.status == 400
    assert (
        reply.json["error"] == f'upstream 127.0.0.1:{port} loops back to proxy "{looping}" itself'
    )
    assert [proxy["name"] for proxy in reply.json["proxies"]] == [good]


@contextlib.asynccontextmanager
async def _relay(target: dict[str, int]) -> AsyncIterator[str]:
    """A TCP relay to ``127.0.0.1:target["port"]`` (set later); closes every stream on exit."""
    writers: set[asyncio.StreamWriter] = set()

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target["port"])
        except OSError:
            writer.close()
            return
        writers.add(up_writer)
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(relay, "127.0.0.1", 0)
    try:
        yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        for writer in writers:
            writer.close()
        await server.wait_closed()


async def _settled_fds(server: ServerProcess, baseline: int) -> int:
    for _ in range(100):
        if server.open_fds() <= baseline:
            break
        await asyncio.sleep(0.05)
    return server.open_fds()


def _exhaustion_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if "too many open files" in line]


async def test_a_loop_through_an_outside_relay_is_survived() -> None:
    target: dict[str, int] = {}
    connector = aiohttp.TCPConnector(force_close=True)  # every poll needs a new descriptor
    async with (
        server_process(nofile=NOFILE) as server,
        _relay(target) as relay,
        aiohttp.ClientSession(connector=connector) as session,
    ):
        api = ToxiproxyApi(session, server.url)
        proxy = await api.create_proxy("relay_loop", relay)
        target["port"] = proxy.port
        baseline = server.open_fds()
        starters = [(await proxy.connect())[1] for _ in range(LOOPS)]
        for writer in starters:
            writer.write(b"round and round")
        started = time.perf_counter()
        samples = await poll_version(
            session, server.url, lambda: time.perf_counter() - started < 2.0, interval=0.02
        )
        deleted = time.perf_counter()
        reply = await api.request("DELETE", f"/proxies/{proxy.name}")
        delete_seconds = time.perf_counter() - deleted
        for writer in starters:
            writer.close()
        fds = await _settled_fds(server, baseline)
        log = server.log_text()
    assert reply.status == 204
    assert delete_seconds < 1.0
    assert max(samples) < 1.5, samples  # never unanswered; at worst one full pause
    assert p99(samples) < 1.2, samples
    assert fds <= baseline
    assert "Traceback" not in log
    assert len(log) < 2000, log[:2000]
    assert 1 <= len(_exhaustion_lines(log)) <= 2, log


async def test_a_flood_of_held_connections_leaves_the_api_answering(sink_peer: Peer) -> None:
    connector = aiohttp.TCPConnector(force_close=True)
    clients: list[asyncio.StreamWriter] = []
    async with (
        server_process(nofile=NOFILE) as server,
        aiohttp.ClientSession(connector=connector) as session,
    ):
        api = ToxiproxyApi(session, server.url)
        proxy = await api.create_proxy("flood", sink_peer.address)
        baseline = server.open_fds()
        try:
            for _ in range(NOFILE):  # far more than the server can hold (2 descriptors each)
                _reader, writer = await proxy.connect()
                writer.write(b"hold")
                clients.append(writer)
            await asyncio.sleep(0.3)
            started = time.perf_counter()
            samples = await poll_version(
                session, server.url, lambda: time.perf_counter() - started < 1.0, interval=0.02
            )
            reply = await api.request("DELETE", f"/proxies/{proxy.name}")
        finally:
            for writer in clients:
                writer.close()
        fds = await _settled_fds(server, baseline)
        log = server.log_text()
    assert reply.status == 204
    assert max(samples) < 0.5, samples  # served with the spare descriptors, without a pause
    assert fds <= baseline
    assert "Traceback" not in log
    assert len(_exhaustion_lines(log)) <= 2, log

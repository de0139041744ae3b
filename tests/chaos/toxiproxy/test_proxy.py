"""One proxy (``chaos.toxiproxy._proxy``) driven directly: its listener, connections and draws.

``test_api.py`` and ``test_toxics.py`` check proxies through the API; here a :class:`Proxy` is
started on loopback against an echo peer, so what the API does not show is exact: the log line
of a start, the accept loop's name and shedding, each socket's write buffer limit, the grace
before a closing connection is aborted (and that a finished one cancels it), the draws of seeded
and unseeded proxies, which stop outdates an accepted connection, what a failed dial logs, how
a socket tells its links about flow control and end of stream, and how Go's addresses are split,
formatted and resolved. Waiting for connections to close is timed in virtual time.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import socket
from collections.abc import AsyncIterator
from typing import cast

import pytest

from chaos.toxiproxy import _link
from chaos.toxiproxy._accept import FdGuard
from chaos.toxiproxy._link import WorkBudget
from chaos.toxiproxy._proxy import (
    Connection,
    Proxy,
    ProxyError,
    Side,
    format_address,
    resolve_listen,
    split_host_port,
)
from chaos.toxiproxy._toxics import Stage, Toxic
from tests.chaos.toxiproxy.conftest import Peer, round_trip

pytestmark = pytest.mark.real_server


def _proxy(peer: Peer, seed: int | None = None) -> Proxy:
    return Proxy("p", "127.0.0.1:0", peer.address, seed=seed, guard=FdGuard(), budget=WorkBudget())


@pytest.fixture
async def started(echo_peer: Peer) -> AsyncIterator[Proxy]:
    proxy = _proxy(echo_peer, seed=7)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop(abort=True)


async def _connected(proxy: Proxy) -> tuple[Connection, asyncio.StreamWriter]:
    host, port = proxy.listen.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    await round_trip(reader, writer)  # accepted, dialled and relaying
    (connection,) = proxy._connections
    return connection, writer


async def test_a_start_is_one_info_line_naming_the_proxy_its_address_and_upstream(
    echo_peer: Peer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="chaos.toxiproxy")
    proxy = _proxy(echo_peer)
    await proxy.start()
    try:
        assert [r.getMessage() for r in caplog.records if r.name == "chaos.toxiproxy"] == [
            f"proxy p listening on {proxy.listen}, upstream {echo_peer.address}"
        ]
    finally:
        await proxy.stop(abort=True)


async def test_a_proxys_accept_loop_is_named_after_it_and_sheds_load(started: Proxy) -> None:
    acceptor = started._acceptor
    assert acceptor is not None
    assert (acceptor._name, acceptor._shed) == ("proxy p", True)


async def test_every_socket_pauses_its_source_above_256_kib_unsent(started: Proxy) -> None:
    connection, writer = await _connected(started)
    for side in (connection.client, connection.server):
        assert side.transport is not None
        assert side.transport.get_write_buffer_limits() == (64 * 1024, 256 * 1024)
    writer.close()


async def test_a_closing_connection_is_aborted_after_a_grace_of_10_seconds(
    started: Proxy,
) -> None:
    connection, writer = await _connected(started)
    loop = asyncio.get_running_loop()
    connection.close()
    assert connection._grace is not None
    assert connection._grace.when() - loop.time() == pytest.approx(10.0, abs=0.5)
    writer.close()


async def test_a_plain_stop_closes_connections_without_waiting_for_them(echo_peer: Peer) -> None:
    proxy = _proxy(echo_peer)
    await proxy.start()
    _connection, writer = await _connected(proxy)
    await proxy.stop()  # flushing: the sockets close in their own time
    assert proxy.connection_count == 1
    await proxy.wait_connections_closed()
    assert proxy.connection_count == 0
    writer.close()


async def test_a_seeded_proxy_draws_per_connection_number_from_1_and_direction(
    started: Proxy,
) -> None:
    connection, writer = await _connected(started)
    assert connection.up.rng.random() == random.Random("7/p/1/up").random()
    assert connection.down.rng.random() == random.Random("7/p/1/down").random()
    writer.close()


def test_an_unseeded_proxy_shares_one_generator_among_its_links(echo_peer: Peer) -> None:
    proxy = _proxy(echo_peer)
    shared = proxy._link_rng(1, "up")
    assert isinstance(shared, random.Random)
    assert proxy._link_rng(2, "down") is shared


async def test_a_connection_accepted_before_any_later_stop_does_not_live_on(
    echo_peer: Peer,
) -> None:
    proxy = _proxy(echo_peer)
    await proxy.start()
    await proxy.stop()
    await proxy.start()  # the second life of the same proxy
    acceptor = proxy._acceptor
    assert acceptor is not None
    client = socket.create_connection(acceptor.address, timeout=2)
    acceptor._ready()  # accepted; its setup is scheduled but has not run
    await proxy.stop()
    reader, writer = await asyncio.open_connection(sock=client)
    assert await asyncio.wait_for(reader.read(), 2) == b""  # closed at once
    writer.close()
    await proxy.wait_connections_closed()
    assert proxy.connection_count == 0


@pytest.mark.parametrize(("listen", "port"), [("", 0), (":5000", 5000)])
async def test_an_empty_listen_host_means_loopback(listen: str, port: int) -> None:
    assert await resolve_listen(listen) == ("127.0.0.1", port)


async def test_waiting_for_connections_returns_as_soon_as_they_are_gone(
    echo_peer: Peer,
) -> None:
    proxy = _proxy(echo_peer)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await proxy.wait_connections_closed()  # none: at once
    assert loop.time() - started < 0.5
    await proxy.start()
    _connection, writer = await _connected(proxy)
    await proxy.stop()
    started = loop.time()
    await proxy.wait_connections_closed()  # polled every 5 ms, not every second
    assert loop.time() - started < 0.5
    assert proxy.connection_count == 0
    writer.close()


async def test_a_toxic_updated_restarts_its_stage_on_every_open_connection(
    started: Proxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Counting(Stage):
        def start(self) -> None:
            self.starts = getattr(self, "starts", 0) + 1
            super().start()

    monkeypatch.setattr(_link, "make_stage", Counting)
    connection, writer = await _connected(started)
    toxic = Toxic("t", "noop", "downstream", False, 1.0, {})
    started.add_toxic(toxic)
    (stage,) = connection.down.stages
    assert cast(Counting, stage).starts == 1
    started.update_toxic(toxic)
    assert cast(Counting, stage).starts == 2
    started.remove_toxic(toxic)
    assert connection.down.stages == []
    writer.close()


@pytest.mark.parametrize(
    ("address", "host", "port"),
    [
        ("127.0.0.1:80", "127.0.0.1", "80"),
        ("[::1]:8474", "::1", "8474"),
        ("[::1]:", "::1", ""),
        (":80", "", "80"),
        ("host:", "host", ""),
    ],
)
def test_an_address_splits_into_host_and_port_like_go(address: str, host: str, port: str) -> None:
    assert split_host_port(address) == (host, port)


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("[::1", "address [::1: missing ']' in address"),
        ("[::1]", "address [::1]: missing port in address"),
        ("[::1]8474", "address [::1]8474: missing port in address"),
        ("localhost", "address localhost: missing port in address"),
        ("::1:80", "address ::1:80: too many colons in address"),
    ],
)
def test_an_address_that_does_not_split_has_gos_message(address: str, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        split_host_port(address)


def test_an_address_is_formatted_with_brackets_only_around_ipv6() -> None:
    assert format_address("127.0.0.1", 8474) == "127.0.0.1:8474"
    assert format_address("::1", 8474) == "[::1]:8474"


@pytest.mark.parametrize(
    ("listen", "resolved"),
    [
        ("127.0.0.1:", ("127.0.0.1", 0)),
        ("127.0.0.1:65535", ("127.0.0.1", 65535)),
        ("[::1]:8474", ("::1", 8474)),
        ("[0:0::1]:1", ("::1", 1)),  # an IP literal in its canonical form
        ("localhost:1", ("127.0.0.1", 1)),
    ],
)
async def test_a_listen_address_resolves_to_the_ip_and_port_to_bind(
    listen: str, resolved: tuple[str, int]
) -> None:
    assert await resolve_listen(listen) == resolved


@pytest.mark.parametrize(
    ("listen", "message"),
    [
        ("127.0.0.1:65536", "listen tcp: address 65536: invalid port"),
        ("127.0.0.1:http", "listen tcp: lookup tcp/http: unknown port"),
        ("127.0.0.1", "address 127.0.0.1: missing port in address"),
    ],
)
async def test_a_listen_address_that_cannot_be_used_has_gos_message(
    listen: str, message: str
) -> None:
    with pytest.raises(ProxyError, match=f"^{re.escape(message)}$"):
        await resolve_listen(listen)


async def test_a_host_name_with_both_families_listens_on_its_ipv4_address(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop = asyncio.get_running_loop()
    answers = {
        socket.AF_INET6: (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", 1, 0, 0)),
        socket.AF_INET: (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.2", 1)),
    }

    async def getaddrinfo(host: str, port: int, **kwargs: object) -> list[object]:
        assert (host, port, kwargs) == ("dual.example", 1, {"type": socket.SOCK_STREAM})
        return [answers[socket.AF_INET6], answers[socket.AF_INET]]  # IPv6 first, as glibc may

    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)
    assert await resolve_listen("dual.example:1") == ("127.0.0.2", 1)


async def test_each_connection_of_a_seeded_proxy_draws_from_its_own_number(
    started: Proxy,
) -> None:
    first, first_writer = await _connected(started)
    host, port = started.listen.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    await round_trip(reader, writer)
    (second,) = started._connections - {first}
    assert second.up.rng.random() == random.Random("7/p/2/up").random()
    assert first.up.rng.random() == random.Random("7/p/1/up").random()
    first_writer.close()
    writer.close()


async def test_a_dial_that_fails_is_one_info_line_and_closes_the_client(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="chaos.toxiproxy")
    proxy = Proxy(
        "p", "127.0.0.1:0", "127.0.0.1:1", seed=None, guard=FdGuard(), budget=WorkBudget()
    )
    await proxy.start()
    try:
        caplog.clear()
        host, port = proxy.listen.rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed: nothing to relay to
        writer.close()
        records = [r for r in caplog.records if r.name == "chaos.toxiproxy"]
        assert [r.levelno for r in records] == [logging.INFO]  # not an exhaustion warning
        assert records[0].getMessage().startswith("proxy p: dial 127.0.0.1:1 failed: ")
        await proxy.wait_connections_closed()
        assert proxy.connection_count == 0
    finally:
        await proxy.stop(abort=True)


async def test_a_finished_connection_leaves_no_grace_timer_behind(started: Proxy) -> None:
    connection, writer = await _connected(started)
    connection.close()
    grace = connection._grace
    assert grace is not None
    await started.wait_connections_closed()
    assert started.connection_count == 0
    assert grace.cancelled()
    writer.close()


async def test_waiting_for_connections_polls_every_5_ms_for_5_seconds_at_most(
    echo_peer: Peer, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = _proxy(echo_peer)
    proxy._connections.add(cast(Connection, object()))  # one that never closes
    loop = asyncio.get_running_loop()
    clock = [1000.0]
    polls: list[float] = []

    async def sleep(seconds: float) -> None:  # virtual time: the wait never suspends
        polls.append(seconds)
        clock[0] += seconds

    with monkeypatch.context() as patched:
        patched.setattr(loop, "time", lambda: clock[0])
        patched.setattr(asyncio, "sleep", sleep)
        await proxy.wait_connections_closed()
        waited = clock[0] - 1000.0
        zero = len(polls)
        await proxy.wait_connections_closed(0)  # no time left: no poll at all
    assert set(polls) == {0.005}
    assert waited == pytest.approx(5.0, abs=0.006)
    assert len(polls) == zero


class _FakeTransport:
    """A transport as a side sees it: reading paused or not, writes, closing or not."""

    def __init__(self, closing: bool = False) -> None:
        self.closing = closing
        self.calls: list[str] = []
        self.written: list[bytes] = []

    def is_closing(self) -> bool:
        return self.closing

    def pause_reading(self) -> None:
        self.calls.append("pause")

    def resume_reading(self) -> None:
        self.calls.append("resume")

    def write(self, data: bytes) -> None:
        self.written.append(data)


async def test_a_side_asks_its_transport_once_per_change_of_reading(started: Proxy) -> None:
    connection, writer = await _connected(started)
    side = connection.server
    real = side.transport
    fake = _FakeTransport()
    side.transport = cast(asyncio.Transport, fake)
    try:
        side.set_reading(paused=False)  # already reading
        side.set_reading(paused=True)
        side.set_reading(paused=True)
        side.set_reading(paused=False)
        assert fake.calls == ["pause", "resume"]
        fake.closing = True
        side.set_reading(paused=True)  # a closing socket is not asked
        assert fake.calls == ["pause", "resume"]
    finally:
        side.transport = real
        writer.close()


async def test_a_direct_relay_drops_data_for_a_closing_sink(started: Proxy) -> None:
    connection, writer = await _connected(started)
    real = connection.up.sink_transport
    closing = _FakeTransport(closing=True)
    connection.up.sink_transport = cast(asyncio.Transport, closing)
    try:
        connection.client.data_received(b"late")
        assert closing.written == []
    finally:
        connection.up.sink_transport = real
        writer.close()


async def test_a_side_tells_the_link_it_feeds_when_its_writes_pause_and_resume(
    started: Proxy,
) -> None:
    connection, writer = await _connected(started)
    side, link = connection.client, connection.down  # the client is the downstream link's sink
    seen: list[bool] = []
    link.sink_changed = lambda: seen.append(side.write_paused)  # type: ignore[method-assign]
    side.pause_writing()
    side.resume_writing()
    side.pause_writing()
    assert seen == [True, False, True]
    writer.close()


async def test_end_of_stream_from_a_peer_keeps_the_socket_open_for_the_other_way(
    started: Proxy,
) -> None:
    connection, writer = await _connected(started)
    fed: list[str] = []
    connection.up.feed_eof = lambda: fed.append("eof")  # type: ignore[method-assign]
    assert connection.client.eof_received() is True  # asyncio must not close the transport
    assert fed == ["eof"]
    writer.close()


async def test_an_aborting_stop_returns_once_the_tasks_it_cancelled_have_ended(
    started: Proxy,
) -> None:
    connection, writer = await _connected(started)
    started.add_toxic(Toxic("t", "noop", "downstream", False, 1.0, {}))
    task = connection.down.task
    assert task is not None  # the link's task, waiting for data
    await asyncio.wait_for(started.stop(abort=True), 10)  # its cancellation is not an error
    assert task.cancelled()
    assert started.connection_count == 0
    writer.close()


async def test_a_connection_counts_until_both_its_sockets_are_released(started: Proxy) -> None:
    connection, writer = await _connected(started)
    server = connection.server
    held: list[Exception | None] = []
    server.connection_lost = held.append  # type: ignore[method-assign]  # the upstream lingers
    writer.close()  # the client goes: the proxy closes both sockets
    for _ in range(500):
        if held:
            break
        await asyncio.sleep(0.01)
    assert held  # both sockets are closed, the upstream's loss not yet handled
    assert started.connection_count == 1
    Side.connection_lost(server, held[0])
    assert started.connection_count == 0

"""The API connections' read deadlines (``chaos.toxiproxy._http``), one protocol event at a time.

``test_http_limits.py`` checks the timeouts on real sockets; here a fake transport and a fake
inner protocol show exactly when a deadline is armed, cleared and re-armed, what is forwarded,
and what an expired deadline does.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re

import pytest

from chaos.toxiproxy._http import DEFAULT_IDLE_TIMEOUT, DEFAULT_READ_TIMEOUT, ApiConnections

READ = 0.2
"""The read timeout in these tests; checks come well before it (``EARLY``) or wait it out."""
EARLY = 0.05


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.closed = 0
        self.closing = False

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closed += 1
        self.closing = True


class FakeInner(asyncio.Protocol):
    def __init__(self, eof_answer: bool | None = None) -> None:
        self.calls: list[object] = []
        self.eof_answer = eof_answer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.calls.append(("made", transport))

    def data_received(self, data: bytes) -> None:
        self.calls.append(("data", data))

    def eof_received(self) -> bool | None:
        self.calls.append("eof")
        return self.eof_answer

    def pause_writing(self) -> None:
        self.calls.append("pause")

    def resume_writing(self) -> None:
        self.calls.append("resume")

    def connection_lost(self, exc: Exception | None) -> None:
        self.calls.append(("lost", exc))


def _open(
    connections: ApiConnections, inner: FakeInner | None = None
) -> tuple[asyncio.Protocol, FakeTransport, FakeInner]:
    inner = inner or FakeInner()
    protocol = connections.factory(lambda: inner)()
    transport = FakeTransport()
    protocol.connection_made(transport)
    return protocol, transport, inner


async def _elapse(seconds: float) -> None:
    await asyncio.sleep(seconds)


async def _closed_after(transport: FakeTransport, limit: float = 5.0) -> float:
    """Seconds until ``transport`` is closed (polled every 5 ms; fails past ``limit``)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while not transport.closed:
        assert loop.time() - started < limit, "never closed"
        await asyncio.sleep(0.005)
    return loop.time() - started


def test_the_defaults_are_toxiproxys_15_and_60_seconds() -> None:
    assert (DEFAULT_READ_TIMEOUT, DEFAULT_IDLE_TIMEOUT) == (15.0, 60.0)
    assert ApiConnections().read_timeout == 15.0


@pytest.mark.parametrize("timeout", [0, -1.0, math.nan])
def test_a_read_timeout_must_be_positive(timeout: float) -> None:
    message = re.escape(f"read_timeout must be > 0 seconds, got {timeout!r}")
    with pytest.raises(ValueError, match=f"^{message}$"):
        ApiConnections(timeout)


async def test_everything_is_forwarded_to_the_inner_protocol() -> None:
    protocol, transport, inner = _open(ApiConnections(READ), FakeInner(eof_answer=True))
    protocol.data_received(b"GET")
    assert protocol.eof_received() is True
    protocol.pause_writing()
    protocol.resume_writing()
    error = ConnectionResetError()
    protocol.connection_lost(error)
    assert inner.calls == [
        ("made", transport),
        ("data", b"GET"),
        "eof",
        "pause",
        "resume",
        ("lost", error),
    ]


async def test_a_new_connection_has_the_read_timeout_for_its_first_request(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, "chaos.toxiproxy")
    _protocol, transport, _inner = _open(ApiConnections(READ))
    assert READ * 0.9 <= await _closed_after(transport) <= READ + 1.0
    assert transport.closed == 1
    assert caplog.messages == ["API: no whole request within 0.2 s; closing"]


async def test_a_request_read_in_full_clears_its_deadline_until_it_is_answered() -> None:
    connections = ApiConnections(READ)
    protocol, transport, _inner = _open(connections)
    protocol.data_received(b"GET /version HTTP/1.1\r\n\r\n")
    connections.request_read(transport)
    await _elapse(READ * 3)  # a slow handler is not a slow client
    assert transport.closed == 0
    connections.request_done(transport)  # idle now: aiohttp's keep-alive timeout applies
    await _elapse(READ * 3)
    assert transport.closed == 0


async def test_the_first_byte_after_an_idle_wait_starts_a_new_deadline() -> None:
    read = 0.6
    connections = ApiConnections(read)
    protocol, transport, _inner = _open(connections)
    connections.request_read(transport)
    connections.request_done(transport)
    await _elapse(read * 1.5)
    assert transport.closed == 0
    protocol.data_received(b"G")
    await _elapse(read / 2)
    protocol.data_received(b"ET")  # more of the same request: its deadline stays where it was
    assert read * 0.3 <= await _closed_after(transport) <= read * 0.8


async def test_a_request_pipelined_behind_one_being_handled_gets_its_deadline_when_answered() -> (
    None
):
    connections = ApiConnections(READ)
    protocol, transport, _inner = _open(connections)
    connections.request_read(transport)
    protocol.data_received(b"GET /next")  # arrives while the first is handled
    await _elapse(READ * 2)
    assert transport.closed == 0
    connections.request_done(transport)  # now the next one must arrive in time
    assert READ * 0.9 <= await _closed_after(transport) <= READ + 1.0


async def test_an_answered_request_with_nothing_pipelined_leaves_the_connection_idle() -> None:
    connections = ApiConnections(READ)
    protocol, transport, _inner = _open(connections)
    protocol.data_received(b"GET")
    connections.request_read(transport)
    connections.request_done(transport)
    connections.request_done(transport)  # twice: still nothing pending
    await _elapse(READ * 3)
    assert transport.closed == 0


async def test_a_closed_connection_is_forgotten_and_its_deadline_dropped() -> None:
    connections = ApiConnections(READ)
    protocol, transport, inner = _open(connections)
    protocol.connection_lost(None)
    await _elapse(READ * 2)
    assert transport.closed == 0
    connections.request_read(transport)  # unknown now: nothing happens
    connections.request_done(transport)
    connections.request_read(None)
    connections.request_done(None)
    assert inner.calls[-1] == ("lost", None)
    assert connections._connections == {}


async def test_an_expired_deadline_leaves_a_closing_transport_alone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, "chaos.toxiproxy")
    _protocol, transport, _inner = _open(ApiConnections(READ))
    transport.closing = True
    await _elapse(READ * 2)
    assert transport.closed == 0
    assert caplog.messages == []


async def test_requests_of_two_connections_have_their_own_deadlines() -> None:
    connections = ApiConnections(READ)
    _first, one, _inner = _open(connections)
    _second, two, _inner = _open(connections)
    connections.request_read(one)
    await _closed_after(two)
    await _elapse(EARLY)
    assert (one.closed, two.closed) == (0, 1)


async def test_a_pipelined_request_once_answered_leaves_no_deadline_behind() -> None:
    connections = ApiConnections(READ)
    protocol, transport, _inner = _open(connections)
    connections.request_read(transport)
    protocol.data_received(b"GET /next")  # pipelined behind the first
    connections.request_done(transport)
    assert protocol._timer is not None  # type: ignore[attr-defined]  # the next one's deadline
    connections.request_read(transport)  # the pipelined request is read in full
    assert protocol._timer is None  # type: ignore[attr-defined]
    connections.request_done(transport)  # and answered: idle, nothing pending any more
    assert protocol._timer is None  # type: ignore[attr-defined]
    assert transport.closed == 0


async def test_a_connection_closed_by_its_deadline_is_then_forgotten() -> None:
    connections = ApiConnections(READ)
    protocol, transport, inner = _open(connections)
    protocol._expired()  # type: ignore[attr-defined]  # the deadline passes (called at once)
    assert transport.closed == 1
    protocol.connection_lost(None)  # the transport reports the close
    assert connections._connections == {}
    assert inner.calls[-1] == ("lost", None)

"""GatedConnector (``resilient.aiohttp``): which gate a request's connect passes, with the
connector's options, clock and events, how long it may wait there (the request's
``ClientTimeout.total``), and its refusals in exact words. Against a real aiohttp server on a
free loopback port; the gates run on a virtual clock that never moves, so a wait the gate
cannot cut short is refused at once and nothing here waits for real time.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

import resilient.aiohttp as adapter
from resilient.aiohttp import GatedConnector
from resilient.clock import VirtualClock
from resilient.errors import ConfigurationError, ConnectRefusedError
from resilient.events import EventBus, EventRecorder
from resilient.pool import GateOptions, shared_gate
from resilient.ratelimit import Rate

pytestmark = [pytest.mark.real_server]

ONE_PER_10S = GateOptions(connect_rate=Rate(1, 10.0))
"""A gate that lets one connect start, then the next only 10 s later (on its clock)."""


@pytest.fixture
async def port() -> AsyncIterator[int]:
    """An aiohttp server answering ``hello`` on a free loopback port."""

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


def recorded() -> tuple[EventBus, EventRecorder]:
    bus, recorder = EventBus(log_when_unobserved=False), EventRecorder()
    bus.subscribe(recorder)
    return bus, recorder


async def get(session: aiohttp.ClientSession, port: int) -> str:
    async with session.get(f"http://127.0.0.1:{port}/") as response:
        return await response.text()


async def test_the_connects_pass_the_gate_of_their_host_and_port_made_as_the_connector_says(
    port: int,
) -> None:
    clock, (bus, recorder) = VirtualClock(), recorded()
    connector = GatedConnector(ONE_PER_10S, clock=clock, events=bus, force_close=True)
    assert connector.gate_options is ONE_PER_10S
    async with aiohttp.ClientSession(connector=connector) as session:
        assert await get(session, port) == "hello"
        gate = shared_gate(f"127.0.0.1:{port}", ONE_PER_10S)
        assert connector._gates == {f"127.0.0.1:{port}": gate}
        assert (gate.options, gate._clock) == (ONE_PER_10S, clock)
        assert (gate.stats.attempts, gate.stats.connects) == (1, 1)
        # The next connect must wait 10 s of the gate's clock, longer than the request may.
        with pytest.raises(aiohttp.ClientOSError) as raised:
            await session.get(f"http://127.0.0.1:{port}/", timeout=aiohttp.ClientTimeout(5))
    refusal = raised.value.__cause__
    assert isinstance(refusal, ConnectRefusedError)
    assert refusal.destination == f"127.0.0.1:{port}"
    assert gate.stats.refused == 1
    (event,) = recorder.named("refused")
    assert (event.source, event.attributes["destination"]) == ("pool.gate", f"127.0.0.1:{port}")
    assert event.time == clock.monotonic()


@pytest.mark.parametrize("total", [0.5, 1.0, 2.5])
async def test_a_request_waits_at_the_gate_at_most_its_total_timeout(
    port: int, total: float
) -> None:
    """A total below the 10 s wait is refused at once (no real second passes: the gate's clock
    is virtual), whatever its size; without the bound it would wait for the clock for ever."""
    connector = GatedConnector(ONE_PER_10S, clock=VirtualClock(), force_close=True)
    timeout = aiohttp.ClientTimeout(total=total)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        assert await get(session, port) == "hello"
        with pytest.raises(aiohttp.ClientOSError) as raised:
            await get(session, port)
    assert isinstance(raised.value.__cause__, ConnectRefusedError)
    assert raised.value.__cause__.retry_after == pytest.approx(10.0)


async def test_each_destination_has_its_own_gate_and_the_connector_holds_each(
    port: int,
) -> None:
    clock = VirtualClock()
    connector = GatedConnector(ONE_PER_10S, clock=clock, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        assert await get(session, port) == "hello"
        async with session.get(f"http://localhost:{port}/") as response:
            assert await response.text() == "hello"
        assert sorted(connector._gates) == [f"127.0.0.1:{port}", f"localhost:{port}"]
        for destination, gate in connector._gates.items():
            assert gate is shared_gate(destination, ONE_PER_10S)
            assert gate.stats.connects == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"gate_options": 5}, "GatedConnector.gate_options must be a GateOptions, got 5"),
        ({"clock": "now"}, "GatedConnector.clock must be a Clock, got 'now'"),
        ({"events": None}, "GatedConnector.events must be an EventBus, got None"),
    ],
)
async def test_bad_gate_arguments_are_refused_when_made_naming_the_field(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises((TypeError, ValueError)) as raised:
        GatedConnector(**kwargs)  # type: ignore[arg-type]
    assert str(raised.value) == message


def test_an_aiohttp_whose_create_connection_changed_is_refused_in_exact_words(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def changed(self: object, req: object, traces: object) -> None:
        return None

    monkeypatch.setattr(aiohttp.TCPConnector, "_create_connection", changed)
    with pytest.raises(ConfigurationError) as raised:
        adapter._check_aiohttp()
    assert str(raised.value) == (
        "GatedConnector overrides aiohttp.TCPConnector._create_connection"
        "('self', 'req', 'traces', 'timeout'), but aiohttp "
        f"{aiohttp.__version__} has ('self', 'req', 'traces'): this aiohttp is not supported"
    )


def test_the_signature_the_connector_overrides_is_aiohttps() -> None:
    found = tuple(inspect.signature(aiohttp.TCPConnector._create_connection).parameters)
    assert found == adapter._CREATE_CONNECTION == ("self", "req", "traces", "timeout")

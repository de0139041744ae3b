"""The open-loop load generator: schedules, recording, outcomes, and the load process."""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import AsyncIterator

import numpy as np
import pytest
from aiohttp import web

from chaos.load import (
    OUTCOME_CONN_ERROR,
    OUTCOME_OVERFLOW,
    OUTCOME_TIMEOUT,
    Load,
    LoadError,
    LoadProcess,
    Reply,
    RequestSpec,
    run_load,
    schedule,
)
from chaos.servers import free_port

# -- schedules (pure, no time involved) -----------------------------------------------------


def test_same_seed_gives_the_same_poisson_schedule() -> None:
    load = Load(rate=500, duration=4, arrivals="poisson")
    assert np.array_equal(schedule(load, 7), schedule(load, 7))


def test_different_seeds_give_different_poisson_schedules() -> None:
    load = Load(rate=500, duration=4, arrivals="poisson")
    first, second = schedule(load, 7), schedule(load, 8)
    assert len(first) != len(second) or not np.array_equal(first, second)


def test_poisson_schedule_has_the_declared_mean_rate() -> None:
    offsets = schedule(Load(rate=1000, duration=20, arrivals="poisson"), 3)
    assert abs(len(offsets) - 20_000) < 5 * np.sqrt(20_000)
    assert offsets[0] >= 0
    assert offsets[-1] < 20
    assert np.all(np.diff(offsets) >= 0)


def test_constant_schedule_is_evenly_spaced_and_seed_free() -> None:
    load = Load(rate=200, duration=1.5)
    offsets = schedule(load, 1)
    assert len(offsets) == 300
    assert np.allclose(np.diff(offsets), 1 / 200)
    assert np.array_equal(offsets, schedule(load, 99))


def test_ramp_reaches_the_rate_linearly() -> None:
    offsets = schedule(Load(rate=100, duration=20, ramp=10, ramp_from=0), 1)
    first_second = int((offsets < 1).sum())
    last_ramp_second = int(((offsets >= 9) & (offsets < 10)).sum())
    after_ramp = int(((offsets >= 15) & (offsets < 16)).sum())
    assert first_second <= 10
    assert 90 <= last_ramp_second <= 100
    assert after_ramp == 100
    assert len(offsets) == 500 + 1000


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"rate": 0}, "Load.rate"),
        ({"duration": -1}, "Load.duration"),
        ({"ramp": 5}, "Load.ramp"),
        ({"arrivals": "bursty"}, "Load.arrivals"),
        ({"timeout": 0}, "Load.timeout"),
        ({"max_in_flight": 0}, "Load.max_in_flight"),
    ],
)
def test_bad_load_names_the_field(changes: dict[str, object], field: str) -> None:
    arguments: dict[str, object] = {"rate": 10, "duration": 1, **changes}
    with pytest.raises(ValueError, match=re.escape(field)):
        Load(**arguments)  # type: ignore[arg-type]


def test_scaled_load_keeps_the_rate() -> None:
    scaled = Load(rate=300, duration=60, ramp=10).scaled(0.25)
    assert (scaled.rate, scaled.duration, scaled.ramp) == (300, 15, 2.5)


# -- recording against a real aiohttp service on loopback ----------------------------------


def tagged_request(index: int, rng: random.Random) -> RequestSpec:
    if index % 4 == 0:
        return RequestSpec(path="/limited", tag="abusive")
    return RequestSpec(path="/ok", tag="normal")


def false_429_classify(spec: RequestSpec, reply: Reply) -> str:
    if reply.status == 429:
        return "limited" if spec.tag == "abusive" else "false_429"
    return "ok" if reply.status == 200 else "error"


async def _ok(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _limited(request: web.Request) -> web.Response:
    return web.Response(status=429)


async def _echo(request: web.Request) -> web.Response:
    return web.Response(body=await request.read(), headers={"X-Method": request.method})


async def _never(request: web.Request) -> web.Response:
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


@pytest.fixture
async def service() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/", _ok)
    app.router.add_get("/ok", _ok)
    app.router.add_get("/limited", _limited)
    app.router.add_get("/never", _never)
    app.router.add_post("/echo", _echo)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}/"
    await runner.cleanup()


@pytest.mark.real_server
async def test_every_request_is_recorded_with_its_outcome_and_tag(service: str) -> None:
    load = Load(rate=200, duration=0.5, request=tagged_request, classify=false_429_classify)
    result = await run_load(load, service, seed=1)
    assert len(result.scheduled) == 100
    assert result.counts() == {"limited": 25, "ok": 75}
    abusive = result.tag_mask("abusive")
    assert int(abusive.sum()) == 25
    assert np.all(result.outcome_mask("limited") == abusive)
    assert np.all(result.status[abusive] == 429)
    sent = ~np.isnan(result.started)
    assert sent.all()
    assert np.all(result.latency >= result.service_time)
    assert np.all(result.lag >= 0)


@pytest.mark.real_server
async def test_a_request_past_its_timeout_is_recorded_as_timeout(service: str) -> None:
    def never(index: int, rng: random.Random) -> RequestSpec:
        return RequestSpec(path="/never")

    load = Load(rate=20, duration=0.2, timeout=0.2, request=never)
    result = await run_load(load, service, seed=1)
    assert result.counts() == {OUTCOME_TIMEOUT: 4}


@pytest.mark.real_server
async def test_requests_beyond_max_in_flight_are_recorded_as_overflow(service: str) -> None:
    def never(index: int, rng: random.Random) -> RequestSpec:
        return RequestSpec(path="/never")

    load = Load(rate=50, duration=0.2, timeout=0.5, max_in_flight=2, request=never)
    result = await run_load(load, service, seed=1)
    assert result.counts() == {OUTCOME_TIMEOUT: 2, OUTCOME_OVERFLOW: 8}
    overflow = result.outcome_mask(OUTCOME_OVERFLOW)
    assert np.isnan(result.started[overflow]).all()
    assert np.isnan(result.latency[overflow]).all()


@pytest.mark.real_server
async def test_a_refused_connection_is_recorded_as_conn_error() -> None:
    result = await run_load(Load(rate=20, duration=0.1), f"http://127.0.0.1:{free_port()}/", seed=1)
    assert result.counts() == {OUTCOME_CONN_ERROR: 2}


@pytest.mark.real_server
async def test_a_raising_classifier_is_recorded_not_hidden(service: str) -> None:
    def broken(spec: RequestSpec, reply: Reply) -> str:
        raise KeyError("nope")

    result = await run_load(Load(rate=20, duration=0.1, classify=broken), service, seed=1)
    assert result.counts() == {"classify_error": 2}
    assert result.errors == ["classify raised KeyError: 'nope'"]


@pytest.mark.real_server
async def test_load_process_runs_the_same_plan_in_a_child(service: str) -> None:
    load = Load(rate=100, duration=0.3, request=tagged_request, classify=false_429_classify)
    process = LoadProcess(load, service, seed=3)
    try:
        await process.start()
        process.begin(asyncio.get_running_loop().time() + 0.05)
        result = await process.result()
    finally:
        await process.close()
    assert np.array_equal(result.scheduled, schedule(load, 3))
    assert result.counts() == {"limited": 8, "ok": 22}
    assert result.event_loop in ("uvloop", "asyncio")
    assert process.progress.completed == 30


def test_load_process_refuses_a_function_it_cannot_send() -> None:
    load = Load(rate=10, duration=1, request=lambda i, rng: RequestSpec())
    with pytest.raises(LoadError, match=r"Load\.request"):
        LoadProcess(load, "http://127.0.0.1:1/", seed=1)


def posted(index: int, rng: random.Random) -> RequestSpec:
    return RequestSpec(method="POST", path="/echo", body=f"n={index}".encode())


def echoed(spec: RequestSpec, reply: Reply) -> str:
    ok = reply.body == spec.body and reply.headers.get("X-Method") == "POST"
    return "ok" if ok else "error"


@pytest.mark.real_server
async def test_a_request_carries_its_method_and_body(service: str) -> None:
    result = await run_load(
        Load(rate=50, duration=0.1, request=posted, classify=echoed), service, seed=1
    )
    assert result.counts() == {"ok": 5}

"""The engine judged on a scenario whose outcome is known (tests/chaos/selftest_scenarios.py).

An aiohttp backend behind the proxy, a 400 ms latency toxic for a while: the naive service
(no deadline) must reproduce the slowdown, the guarded one (50 ms deadline, fallback answer)
must mitigate it, and a "guard" whose deadline outlasts the fault must fail the run with the
guard-failed exit status. Scaled to 0.4 of their length to stay short.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Awaitable
from pathlib import Path

import aiohttp
import jsonschema
import numpy as np
import pytest
import redis.asyncio
from aiohttp import web

from chaos._proxy_process import run_toxiproxy
from chaos.cli import EXIT_GUARD_FAILED, EXIT_HARNESS_ERROR, EXIT_OK, exit_status, main
from chaos.engine import run_scenario
from chaos.load import Load, schedule
from chaos.report import load_schema
from chaos.scenario import (
    AddedLatency,
    AiohttpServer,
    Arm,
    ArmContext,
    DisableProxy,
    EnableProxy,
    Gauge,
    Incident,
    Proxy,
    RedisServer,
    Scenario,
    SuccessRatio,
    TcpServer,
    Window,
)
from chaos.toxiproxy.control import toxiproxy_server
from tests.chaos.selftest_scenarios import SCENARIOS

SCALE = 0.4
BY_NAME: dict[str, Scenario] = {s.name: s for s in SCENARIOS}

pytestmark = [pytest.mark.chaos, pytest.mark.real_server]


async def test_naive_reproduces_and_guarded_mitigates_on_the_same_schedule() -> None:
    scenario = BY_NAME["selftest-deadline"]
    async with toxiproxy_server(seed=1) as control:
        result = await run_scenario(scenario, control, seed=5, scale=SCALE)
    naive, guarded = result.arms
    assert (naive.name, naive.verdict, naive.error) == ("naive", "reproduced", None)
    assert (guarded.name, guarded.verdict, guarded.error) == ("guarded", "mitigated", None)
    assert naive.load is not None
    assert guarded.load is not None
    assert np.array_equal(naive.load.scheduled, guarded.load.scheduled)
    assert np.array_equal(naive.load.scheduled, schedule(scenario.load.scaled(SCALE), 5))
    assert guarded.load.counts().get("fallback", 0) > 0
    assert "fallback" not in naive.load.counts()
    for arm in result.arms:
        assert [f.kind for f in arm.faults] == ["AddToxic", "RemoveToxic"]
        assert [f.at for f in arm.faults] == pytest.approx([0.8, 1.6])
        assert all(f.applied_at >= f.at for f in arm.faults)
        samples = arm.gauges["in_flight"]
        assert len(samples.t) >= 10
        assert np.all(np.diff(samples.t) > 0)
    assert result.toxiproxy_version


def test_a_broken_guard_fails_the_run_with_the_guard_failed_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(
        [
            "run", "selftest-broken-guard",
            "--scenarios-module", "tests.chaos.selftest_scenarios",
            "--scale", str(SCALE), "--arms", "guarded", "--seed", "3",
            "--json", "--report", str(tmp_path),
        ]
    )  # fmt: skip
    assert status == EXIT_GUARD_FAILED
    printed = json.loads(capsys.readouterr().out)
    written = json.loads((tmp_path / "report.json").read_text())
    for document in (printed, written):
        jsonschema.validate(document, load_schema(), cls=jsonschema.Draft202012Validator)
    (scenario,) = written["scenarios"]
    (arm,) = scenario["arms"]
    assert (arm["name"], arm["verdict"]) == ("guarded", "failed")
    failed = [slo["name"] for slo in arm["slos"] if not slo["passed"]]
    assert failed == ["p99-during-fault"]
    assert written["exit_status"] == EXIT_GUARD_FAILED
    assert written["seed"] == 3
    page = (tmp_path / "report.html").read_text()
    assert "data:image/png;base64," in page
    assert "selftest-broken-guard" in page


# -- topology: every kind of server, each behind its proxy, faults on the timeline -------------


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(await reader.readline())
    await writer.drain()
    writer.close()


def _plain_backend() -> web.Application:
    return web.Application()


async def _reach_everything(ctx: ArmContext) -> web.Application:
    """An arm that proves, before the load, that every dependency answers through its proxy."""
    client = redis.asyncio.Redis.from_url(ctx.url("redis", scheme="redis", path="0"))
    try:
        assert await client.ping()
    finally:
        await client.aclose()
    reader, writer = await asyncio.open_connection(*ctx.address("echo"))
    writer.write(b"hello\n")
    assert await reader.readline() == b"hello\n"
    writer.close()
    assert ctx.address("echo") != ctx.direct_address("echo")
    async with aiohttp.ClientSession() as session, session.get(ctx.url("backend")) as response:
        assert response.status == 404  # the backend app has no routes: it answered
    ticks = [0.0]

    def tick() -> float:
        ticks[0] += 1
        return ticks[0]

    ctx.gauge("ticks", tick)
    direct = redis.asyncio.Redis.from_url(ctx.url("redis", scheme="redis", path="0"))

    async def connected_clients() -> float:
        info = await direct.info("clients")
        return float(info["connected_clients"])

    ctx.gauge("redis_clients", connected_clients)
    app = web.Application()

    async def close(app: web.Application) -> None:
        await direct.aclose()

    app.on_cleanup.append(close)
    app.router.add_get("/", _ok)
    return app


async def _ok(request: web.Request) -> web.Response:
    return web.Response(text="ok")


TOPOLOGY = Scenario(
    name="selftest-topology",
    incident=Incident("selftest.txt", "every server kind behind a proxy"),
    pattern="none",
    load=Load(rate=50, duration=1.0),
    arms=(
        Arm("naive", "naive", _reach_everything),
        Arm("guarded", "guarded", _reach_everything),
    ),
    servers=(
        RedisServer("redis"),
        TcpServer("echo", _echo),
        AiohttpServer("backend", _plain_backend),
    ),
    proxies=(Proxy("redis", "redis"), Proxy("echo", "echo"), Proxy("backend", "backend")),
    faults=(DisableProxy(0.2, "echo"), EnableProxy(0.5, "echo")),
    windows=(Window("all", 0.0, 1.0),),
    hypothesis=(
        SuccessRatio("all-ok", min=1.0),
        Gauge("ticked", "ticks", min=1),
        Gauge("redis-seen", "redis_clients", min=1),
    ),
    breaks=("all-ok",),
)


async def test_every_server_kind_is_started_proxied_and_cleaned_up() -> None:
    async with toxiproxy_server(seed=1) as control:
        before = set(await control.proxies())
        result = await run_scenario(TOPOLOGY, control, seed=1, arms=["guarded"])
        assert set(await control.proxies()) == before
    (arm,) = result.arms
    assert (arm.verdict, arm.error) == ("mitigated", None)
    assert [f.kind for f in arm.faults] == ["DisableProxy", "EnableProxy"]
    assert arm.load is not None
    assert arm.load.counts() == {"ok": 50}
    assert [slo.passed for slo in arm.slos] == [True, True, True]


async def test_an_arm_that_cannot_build_is_a_harness_error_not_a_guard_failure() -> None:
    async def broken(ctx: ArmContext) -> web.Application:
        raise ConnectionRefusedError("dependency down before the load")

    scenario = dataclasses.replace(
        TOPOLOGY, arms=(Arm("naive", "naive", broken), Arm("guarded", "guarded", broken))
    )
    async with toxiproxy_server(seed=1) as control:
        result = await run_scenario(scenario, control, seed=1, arms=["guarded"])
    (arm,) = result.arms
    assert arm.verdict == "error"
    assert arm.error == "ConnectionRefusedError: dependency down before the load"
    assert exit_status([result]) == EXIT_HARNESS_ERROR


async def test_chaos_run_starts_the_embedded_toxiproxy_in_its_own_process_and_stops_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TOXIPROXY_URL", raising=False)
    async with run_toxiproxy(None, seed=1) as control:
        assert control.embedded
        assert await control.version()
        host, port = control.url.removeprefix("http://").rsplit(":", 1)
        assert host == "127.0.0.1"
        _, writer = await asyncio.open_connection(host, int(port))
        writer.close()
        await writer.wait_closed()
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection(host, int(port))


async def test_a_gauge_that_raises_ends_the_arm_as_a_harness_error() -> None:
    async def raising_gauge(ctx: ArmContext) -> web.Application:
        def broken() -> float:
            raise ZeroDivisionError("no capacity figure")

        ctx.gauge("capacity", broken)
        app = web.Application()
        app.router.add_get("/", _ok)
        return app

    scenario = dataclasses.replace(
        TOPOLOGY,
        arms=(Arm("naive", "naive", raising_gauge), Arm("guarded", "guarded", raising_gauge)),
    )
    async with toxiproxy_server(seed=1) as control:
        result = await run_scenario(scenario, control, seed=1, arms=["guarded"])
    (arm,) = result.arms
    assert arm.verdict == "error"
    assert arm.error == "gauge 'capacity' raised ZeroDivisionError: no capacity figure"


async def test_too_few_control_requests_for_an_added_latency_is_a_harness_error() -> None:
    scenario = dataclasses.replace(
        TOPOLOGY,
        hypothesis=(*TOPOLOGY.hypothesis, AddedLatency("added", max=1.0, window="all")),
    )
    async with toxiproxy_server(seed=1) as control:
        result = await run_scenario(scenario, control, seed=1, arms=["guarded"])
    (arm,) = result.arms
    assert arm.verdict == "error"
    assert arm.error is not None
    assert "SLO 'added': insufficient data: 0 'control' requests" in arm.error
    assert exit_status([result]) == EXIT_HARNESS_ERROR


# -- measurements the harness cannot trust -----------------------------------------------------

_LATE = ["--scenarios-module", "tests.chaos.selftest_scenarios", "--scale", str(SCALE)]


def test_a_broken_guard_measured_by_a_late_load_is_a_harness_error_not_a_guard_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The guard is broken, but the load ran late on every attempt: CI must get status 2 (the
    harness could not trust itself), with both attempts reported, and never 1."""
    command = ["run", "selftest-late-broken-guard", *_LATE, "--arms", "guarded"]
    status = main([*command, "--retries", "1", "--json", "--report", str(tmp_path)])
    assert status == EXIT_HARNESS_ERROR
    document = json.loads(capsys.readouterr().out)
    jsonschema.validate(document, load_schema(), cls=jsonschema.Draft202012Validator)
    (arm,) = document["scenarios"][0]["arms"]
    (earlier,) = arm["attempts"]
    for attempt in (earlier, arm):
        assert attempt["verdict"] == "error"
        assert attempt["trustworthy"] is False
        assert attempt["untrusted"][0].startswith("the load ran late: scheduling lag p99")
        assert attempt["error"].startswith("untrusted measurement: the load ran late")
    assert "attempt 1: error: untrusted measurement" in (tmp_path / "report.html").read_text()


def test_an_arm_untrusted_once_is_judged_on_its_next_attempt(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tests.chaos.selftest_scenarios import reset_late_once

    command = ["run", "selftest-late-once", *_LATE, "--arms", "guarded", "--json"]
    reset_late_once()
    assert main([*command, "--retries", "0"]) == EXIT_HARNESS_ERROR
    capsys.readouterr()
    reset_late_once()
    assert main([*command, "--retries", "1"]) == EXIT_OK
    (arm,) = json.loads(capsys.readouterr().out)["scenarios"][0]["arms"]
    assert (arm["verdict"], arm["trustworthy"], arm["untrusted"]) == ("mitigated", True, [])
    (earlier,) = arm["attempts"]
    assert earlier["verdict"] == "error"
    assert earlier["untrusted"][0].startswith("the load ran late")


# -- an arm's own steps on the timeline, its proxies, its notes --------------------------------


async def _steps_and_notes(ctx: ArmContext) -> web.Application:
    """Takes its backend's proxy away at 0.3 s and back at 0.6 s (its own steps, not faults),
    and notes what it did."""
    seen: list[int] = []

    async def away() -> None:
        await ctx.disable_proxy("backend")
        ctx.note("backend away")

    def back() -> Awaitable[None]:
        ctx.note("backend back")
        return ctx.enable_proxy("backend")

    ctx.at(0.3, away, "take the backend away")
    ctx.at(0.6, back, "bring the backend back")
    ctx.at(0.6, lambda: seen.append(1), "a sync step")
    with pytest.raises(ValueError, match=r"outside the load \(0\.\.1\.0\)"):
        ctx.at(1.5, back, "too late")
    with pytest.raises(KeyError, match="no proxy named 'nothing'"):
        await ctx.disable_proxy("nothing")
    session = aiohttp.ClientSession()
    app = web.Application()

    async def relay(request: web.Request) -> web.Response:
        try:
            async with session.get(ctx.url("backend")) as response:
                await response.read()
                return web.Response(text="ok")
        except aiohttp.ClientError:
            return web.Response(status=502)

    async def close(app: web.Application) -> None:
        ctx.note(f"sync steps run: {len(seen)}")
        await session.close()

    app.on_cleanup.append(close)
    app.router.add_get("/", relay)
    return app


async def test_an_arm_runs_its_own_steps_on_the_timeline_and_notes_what_it_did(
    tmp_path: Path,
) -> None:
    scenario = dataclasses.replace(
        TOPOLOGY,
        arms=(Arm("naive", "naive", _steps_and_notes), Arm("guarded", "guarded", _steps_and_notes)),
        faults=(DisableProxy(0.6, "echo"), EnableProxy(0.8, "echo")),
        hypothesis=(SuccessRatio("all-ok", min=0.0),),
        breaks=("all-ok",),
        windows=(Window("all", 0.0, 1.0), Window("away", 0.35, 0.55)),
    )
    async with toxiproxy_server(seed=1) as control:
        before = set(await control.proxies())
        result = await run_scenario(scenario, control, seed=1, arms=["guarded"])
        assert set(await control.proxies()) == before
    (arm,) = result.arms
    assert (arm.verdict, arm.error) == ("mitigated", None)
    assert [(f.kind, f.at, f.proxy) for f in arm.faults] == [  # a fault first at one offset
        ("ArmStep", 0.3, ""),
        ("DisableProxy", 0.6, "echo"),
        ("ArmStep", 0.6, ""),
        ("ArmStep", 0.6, ""),
        ("EnableProxy", 0.8, "echo"),
    ]
    assert [f.description for f in arm.faults if f.kind == "ArmStep"] == [
        "take the backend away",
        "bring the backend back",
        "a sync step",
    ]
    assert arm.notes == ("backend away", "backend back", "sync steps run: 1")
    assert arm.load is not None
    away = (arm.load.scheduled >= 0.35) & (arm.load.scheduled < 0.55)
    assert arm.load.counts(away) == {"error": int(away.sum())}
    late = arm.load.scheduled >= 0.7
    assert arm.load.counts(late) == {"ok": int(late.sum())}

    from chaos.report import build_report, write_reports

    document = build_report([result], exit_status=0, seed=1, scale=1.0)
    jsonschema.validate(document, load_schema(), cls=jsonschema.Draft202012Validator)
    (doc_arm,) = document["scenarios"][0]["arms"]
    assert doc_arm["notes"] == list(arm.notes)
    assert doc_arm["faults_applied"][0]["kind"] == "ArmStep"
    write_reports(document, tmp_path)
    page = (tmp_path / "report.html").read_text()
    assert "<td>backend away</td>" in page
    assert "take the backend away" in page


async def test_a_step_that_raises_ends_the_arm_as_a_harness_error() -> None:
    async def raising_step(ctx: ArmContext) -> web.Application:
        def broken() -> None:
            raise RuntimeError("plan service gone")

        ctx.at(0.2, broken, "publish the plan")
        app = web.Application()
        app.router.add_get("/", _ok)
        return app

    scenario = dataclasses.replace(
        TOPOLOGY,
        arms=(Arm("naive", "naive", raising_step), Arm("guarded", "guarded", raising_step)),
    )
    async with toxiproxy_server(seed=1) as control:
        result = await run_scenario(scenario, control, seed=1, arms=["guarded"])
    (arm,) = result.arms
    assert arm.verdict == "error"
    assert arm.error == "step at 0.2 s (publish the plan): RuntimeError: plan service gone"

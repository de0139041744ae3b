"""Running a scenario: topology up, proxies in place, load, faults on time, gauges, verdicts.

Each arm gets a fresh topology (servers, proxies) so no state leaks between arms; every arm
runs on the same timeline with the same seed. The load runs in its own process
(:class:`chaos.load.LoadProcess`) so the service under test and the generator do not share one
interpreter lock; the service, the gauges and the fault timeline run on the caller's loop.

Before the first request the engine collects garbage and freezes what the setup allocated
(:func:`gc.freeze`), so that a collection in the service's process during the load does not
walk the whole setup (see :func:`_freeze_setup_objects`).

Errors of the harness itself (a server that does not start, a proxy that cannot be created, a
fault the Toxiproxy server refuses) end the arm with verdict ``error`` and the reason; they are
never mistaken for a guard's failure. So does a measurement the harness cannot trust (see
:mod:`chaos.scenario._verdicts`); with ``retries``, such an arm is run again, on a fresh
topology, up to that many times, and every attempt is kept in the result. An attempt that
kept its timeline but was inconclusive is not thrown away: its requests are pooled with the
next attempt's where an SLO can use them (``RunData.earlier``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import math
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from typing import Any

import numpy as np

from chaos._context import BuildContext, Step
from chaos._fleet import Fleet, FleetError, run_fleet
from chaos._results import (
    ArmProgress,
    ArmResult,
    FaultRecord,
    ProgressCallback,
    ScenarioResult,
)
from chaos._serving import ServeError, check_answers, serve_app, serve_server
from chaos.load import LoadError, LoadProcess, LoadResult
from chaos.scenario import (
    AddToxic,
    Arm,
    DisableProxy,
    EnableProxy,
    Fault,
    GaugeSeries,
    RemoveToxic,
    RunData,
    Scenario,
    UpdateToxic,
    judge_guarded,
    judge_naive,
)
from chaos.servers import free_port
from chaos.toxiproxy.control import ToxiproxyControl
from chaos.toxiproxy.errors import ToxiproxyError

__all__ = ["ArmProgress", "ArmResult", "FaultRecord", "ScenarioResult", "run_scenario"]

_START_MARGIN = 0.3
"""Seconds between the load process reporting ready and the first request."""

_SETUP_TIMEOUT = 60.0
"""Seconds an arm may take to start its topology, build its service and answer once."""


async def run_scenario(
    scenario: Scenario,
    control: ToxiproxyControl,
    *,
    seed: int,
    scale: float = 1.0,
    arms: Sequence[str] | None = None,
    on_progress: ProgressCallback | None = None,
    retries: int = 0,
) -> ScenarioResult:
    """Run the arms of ``scenario`` (all, or those named) one after the other and judge them.

    ``scale`` shortens (or stretches) every offset, duration and window. An arm whose
    measurement is untrusted is run again, up to ``retries`` times; the first trusted attempt
    (or the last one) is its result, the earlier ones are in its ``attempts``. Raises
    :class:`KeyError` for an unknown arm name and :class:`ValueError` for negative
    ``retries``; harness failures become ``error`` verdicts.
    """
    if retries < 0:
        raise ValueError(f"retries must be >= 0, got {retries}")
    scaled = scenario.scaled(scale)
    chosen = list(scaled.arms) if arms is None else [scaled.arm(name) for name in arms]
    version = control.server_version or await control.version()
    results = []
    for arm in chosen:
        earlier: list[ArmResult] = []
        pooled: list[LoadResult] = []  # loads of untrusted attempts that kept the timeline
        while True:
            runner = _ArmRun(
                scaled, arm, control, seed=seed, on_progress=on_progress,
                attempt=(len(earlier) + 1, retries + 1), earlier=tuple(pooled),
            )  # fmt: skip
            result = await runner.run()
            if not runner.retryable or len(earlier) == retries:
                break
            earlier.append(result)
            if runner.timeline_kept and result.load is not None:
                pooled.append(result.load)
        result.attempts = tuple(earlier)
        results.append(result)
    return ScenarioResult(
        scenario=scaled,
        seed=seed,
        scale=scale,
        arms=results,
        toxiproxy_url=control.url,
        toxiproxy_version=version,
        toxiproxy_embedded=control.embedded,
    )


class _HarnessError(Exception):
    """The harness could not run an arm; the message says what failed."""


class _ArmRun:
    def __init__(
        self,
        scenario: Scenario,
        arm: Arm,
        control: ToxiproxyControl,
        *,
        seed: int,
        on_progress: ProgressCallback | None,
        attempt: tuple[int, int] = (1, 1),
        earlier: tuple[LoadResult, ...] = (),
    ) -> None:
        self.scenario = scenario
        self.attempt = attempt
        self.earlier = earlier
        self.retryable = False  # set by run(): untrusted, and nothing a rerun cannot mend
        self.timeline_kept = True
        self.arm = arm
        self.control = control
        self.seed = seed
        self.on_progress = on_progress
        self.context = BuildContext(scenario, seed, control)
        self.proxy_names = self.context.proxy_names
        self.faults: list[FaultRecord] = []
        self.samples: dict[str, list[tuple[float, float]]] = {}
        self.phase = "starting"
        self.t0: float | None = None
        self.load_process: LoadProcess | None = None

    async def run(self) -> ArmResult:
        started = time.monotonic()
        try:
            load, gauges = await self._run()
        except Exception as exc:
            # Anything that stops an arm before its verdict is the harness's (or the arm
            # code's) failure, never the guard's: it ends as verdict "error" with the reason.
            self._progress("error")
            return ArmResult(
                name=self.arm.name,
                role=self.arm.role,
                verdict="error",
                faults=tuple(self.faults),
                error=_describe(exc),
                wall_time=time.monotonic() - started,
                notes=tuple(self.context.notes),
            )
        run = RunData(
            load,
            gauges,
            {w.name: w for w in self.scenario.windows},
            gauge_interval=self.scenario.gauge_interval,
            fault_delays=tuple(max(0.0, f.applied_at - f.at) for f in self.faults),
            earlier=self.earlier,
        )
        judge = judge_naive if self.arm.role == "naive" else judge_guarded
        judged = judge(self.scenario, run)
        errors = [*load.errors, *judged.problems]
        self.retryable = bool(judged.untrusted) and len(errors) == 0
        self.timeline_kept = judged.timeline_kept
        if judged.untrusted:
            errors.append("untrusted measurement: " + "; ".join(judged.untrusted))
        self._progress("done")
        return ArmResult(
            name=self.arm.name,
            role=self.arm.role,
            verdict="error" if errors else judged.verdict,
            slos=judged.slos,
            signature=judged.signature,
            load=load,
            gauges=gauges,
            faults=tuple(self.faults),
            error="; ".join(errors) or None,
            wall_time=time.monotonic() - started,
            untrusted=judged.untrusted,
            premises=judged.premises,
            notes=tuple(self.context.notes),
        )

    async def _run(self) -> tuple[LoadResult, dict[str, GaugeSeries]]:
        async with AsyncExitStack() as stack:
            try:
                async with asyncio.timeout(_SETUP_TIMEOUT):
                    base_url = await self._set_up(stack)
            except TimeoutError:
                raise _HarnessError(
                    f"arm {self.arm.name!r} was not ready within {_SETUP_TIMEOUT:.0f} s "
                    f"(phase: {self.phase})"
                ) from None
            targets = {
                name: self.context.url(name)
                for name in (*self.context.servers, *self.context.proxies)
            }
            process = LoadProcess(self.scenario.load, base_url, seed=self.seed, targets=targets)
            self.load_process = process
            stack.push_async_callback(process.close)
            await process.start()
            _freeze_setup_objects(stack)
            self.t0 = t0 = time.monotonic() + _START_MARGIN
            process.begin(t0)
            self.phase = "running"
            tasks = [
                asyncio.create_task(self._timeline(t0)),
                asyncio.create_task(self._sample_gauges(t0)),
                asyncio.create_task(self._report_progress()),
            ]
            result_task = asyncio.create_task(process.result())
            try:
                watched: set[asyncio.Task[Any]] = {result_task, *tasks}
                while not result_task.done():
                    done, watched = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
                    for task in done:
                        if task is not result_task and task.exception() is not None:
                            raise task.exception()  # type: ignore[misc]
                result = result_task.result()
                await tasks[0]  # the timeline: every fault applied (or its error raised)
            finally:
                result_task.cancel()
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            gauges = {
                name: GaugeSeries(
                    np.array([t for t, _ in points], dtype=np.float64),
                    np.array([v for _, v in points], dtype=np.float64),
                )
                for name, points in self.samples.items()
            }
            return result, gauges

    async def _set_up(self, stack: AsyncExitStack) -> str | tuple[str, ...]:
        """Topology, proxies, the arm's service; returns the service's base URL (one per
        replica for a fleet)."""
        for server in self.scenario.servers:
            address = await stack.enter_async_context(serve_server(server, self.context.servers))
            self.context.servers[server.name] = address
        await self._create_proxies(stack)
        self.phase = "building"
        self._progress(self.phase)
        if self.arm.replicas > 1:
            return await self._set_up_fleet(stack)
        app = await self.arm.build(self.context)
        base_url = await stack.enter_async_context(serve_app(app))
        self.phase = "checking"
        await check_answers(base_url)
        return base_url

    async def _set_up_fleet(self, stack: AsyncExitStack) -> tuple[str, ...]:
        """The arm's replicas (``chaos/_fleet.py``): their gauges and steps join the arm's."""
        context = self.context
        started: list[Fleet] = []
        # Registered first, so it runs after the replicas stopped: their notes come then.
        stack.callback(lambda: context.notes.extend(n for f in started for n in f.notes()))
        fleet = await stack.enter_async_context(
            run_fleet(
                self.arm,
                self.scenario,
                seed=self.seed,
                servers=context.servers,
                proxies=context.proxies,
                proxy_names=context.proxy_names,
                control_url=self.control.url,
                timeout=_SETUP_TIMEOUT,
            )
        )
        started.append(fleet)
        interval = self.scenario.gauge_interval
        for name in fleet.gauge_names:
            context.gauge(name, fleet.gauge(name, interval))
        for index, (offset, what) in enumerate(fleet.steps):
            context.at(offset, fleet.step(index), what)
        self.phase = "checking"
        for base_url in fleet.base_urls:
            await check_answers(base_url)
        return tuple(fleet.base_urls)

    async def _create_proxies(self, stack: AsyncExitStack) -> None:
        run_id = secrets.token_hex(3)
        for proxy in self.scenario.proxies:
            name = f"chaos-{self.scenario.name}-{self.arm.name}-{proxy.name}-{run_id}"
            host, port = self.context.servers[proxy.upstream]
            listen = f"127.0.0.1:{free_port()}"
            info = await self.control.create_proxy(name, f"{host}:{port}", listen=listen)
            stack.push_async_callback(self._delete_proxy, name)
            self.proxy_names[proxy.name] = name
            self.context.proxies[proxy.name] = (info.listen_host, info.listen_port)

    async def _delete_proxy(self, name: str) -> None:
        with contextlib.suppress(ToxiproxyError):
            await self.control.delete_proxy(name)

    async def _timeline(self, t0: float) -> None:
        """Apply the faults and run the arm's steps, each at its offset, in offset order (a
        fault before a step at the same offset)."""
        entries: list[Fault | Step] = [*self.scenario.faults, *self.context.steps]
        for entry in sorted(entries, key=lambda e: (e.at, isinstance(e, Step))):
            delay = t0 + entry.at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            applied = time.monotonic() - t0
            try:
                if isinstance(entry, Step):
                    done = entry.run()
                    if inspect.isawaitable(done):
                        await done
                else:
                    await self._apply(entry)
            except Exception as exc:
                raise _HarnessError(
                    f"{'step' if isinstance(entry, Step) else 'fault'} at {entry.at:g} s "
                    f"({entry.describe()}): {_describe(exc)}"
                ) from exc
            self.faults.append(
                FaultRecord(
                    at=entry.at,
                    applied_at=applied,
                    kind="ArmStep" if isinstance(entry, Step) else type(entry).__name__,
                    proxy="" if isinstance(entry, Step) else entry.proxy,
                    description=entry.describe(),
                )
            )

    async def _apply(self, fault: Fault) -> None:
        proxy = self.proxy_names[fault.proxy]
        match fault:
            case AddToxic():
                await self.control.add_toxic(
                    proxy,
                    fault.type,
                    name=fault.name,
                    stream=fault.stream,
                    toxicity=fault.toxicity,
                    attributes=dict(fault.attributes),
                )
            case UpdateToxic():
                await self.control.update_toxic(
                    proxy, fault.name, attributes=dict(fault.attributes), toxicity=fault.toxicity
                )
            case RemoveToxic():
                await self.control.remove_toxic(proxy, fault.name)
            case DisableProxy():
                await self.control.disable(proxy)
            case EnableProxy():
                await self.control.enable(proxy)

    async def _sample_gauges(self, t0: float) -> None:
        gauges = self.context.gauges
        if not gauges:
            return
        self.samples = {name: [] for name in gauges}
        interval = self.scenario.gauge_interval
        delay = t0 - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tick = 0
        while True:
            now = time.monotonic() - t0
            for name, read in gauges.items():
                self.samples[name].append((now, await self._read_gauge(name, read, interval)))
            tick += 1
            await asyncio.sleep(max(0.0, t0 + tick * interval - time.monotonic()))

    async def _read_gauge(
        self, name: str, read: Callable[[], float | Awaitable[float]], interval: float
    ) -> float:
        try:
            value = read()
            if inspect.isawaitable(value):
                try:
                    async with asyncio.timeout(interval):
                        value = await value
                except TimeoutError:
                    return math.nan
            return float(value)
        except Exception as exc:
            raise _HarnessError(f"gauge {name!r} raised {type(exc).__name__}: {exc}") from exc

    async def _report_progress(self) -> None:
        if self.on_progress is None:
            return
        while True:
            self._progress(self.phase)
            await asyncio.sleep(0.25)

    def _progress(self, phase: str) -> None:
        if self.on_progress is None:
            return
        elapsed = 0.0 if self.t0 is None else max(0.0, time.monotonic() - self.t0)
        self.on_progress(
            ArmProgress(
                scenario=self.scenario.name,
                arm=self.arm.name,
                role=self.arm.role,
                phase=phase,
                elapsed=min(elapsed, self.scenario.duration),
                planned=self.scenario.duration,
                load=self.load_process.progress if self.load_process is not None else None,
                ok_outcomes=tuple(self.scenario.ok_outcomes),
                attempt=self.attempt[0],
                max_attempts=self.attempt[1],
            )
        )


def _freeze_setup_objects(stack: AsyncExitStack) -> None:
    """Collect garbage now, and keep every object alive so far out of later collections.

    The service under test runs in this process. Without this, a collection during the load
    walks every object the setup made (imported modules, the app, the servers): a stall of
    milliseconds (tens for a full collection) charged to whatever requests are in flight.
    Frozen, a collection walks only what the load itself allocated. Undone when the arm ends.
    """
    gc.collect()
    gc.freeze()
    stack.callback(gc.unfreeze)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, _HarnessError | ServeError | LoadError | ToxiproxyError | FleetError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"

"""Running a load in the current event loop: every request fired on time and recorded.

:func:`run_load` builds the plan (schedule and requests, from the seed) before the first
request, then fires each request when it is due whatever earlier ones are doing, up to
:attr:`~chaos.load.Load.max_in_flight` at once (beyond it: ``overflow``, recorded, never
sent). The load process (:mod:`chaos.load._child`) runs the same plan in its own loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import aiohttp
import numpy as np
import numpy.typing as npt
from yarl import URL

from chaos.load._load import (
    OUTCOME_CLASSIFY_ERROR,
    OUTCOME_CONN_ERROR,
    OUTCOME_OVERFLOW,
    OUTCOME_TIMEOUT,
    Load,
    LoadError,
    Reply,
    RequestSpec,
    schedule,
)
from chaos.load._result import LoadProgress, LoadResult

__all__ = ["Plan", "run_load"]

_PROGRESS_INTERVAL = 0.25


async def run_load(
    load: Load,
    base_url: str | Sequence[str],
    *,
    seed: int,
    targets: Mapping[str, str] | None = None,
    start_at: float | None = None,
    on_progress: Callable[[LoadProgress], None] | None = None,
) -> LoadResult:
    """Run ``load`` against ``base_url`` in the current event loop and record every request.

    Several base URLs (the replicas of a fleet) share the load round-robin: request ``i`` goes
    to ``base_url[i % len(base_url)]``. A request with a ``target`` goes to
    ``targets[target]`` instead.

    The first request is due at ``start_at`` (a ``time.monotonic()`` value; default: now).
    Returns once every request has finished or timed out.
    """
    plan = Plan.build(load, seed)
    return await plan.run(base_url, start_at=start_at, on_progress=on_progress, targets=targets)


@dataclass
class Plan:
    """A load turned into arrays: due times and request specs, built before the start."""

    load: Load
    offsets: npt.NDArray[np.float64]
    specs: list[RequestSpec]

    @classmethod
    def build(cls, load: Load, seed: int) -> Plan:
        offsets = schedule(load, seed)
        rng = random.Random(seed)
        specs = [load.request(i, rng) for i in range(len(offsets))]
        return cls(load, offsets, specs)

    async def run(
        self,
        base_url: str | Sequence[str],
        *,
        start_at: float | None,
        on_progress: Callable[[LoadProgress], None] | None,
        targets: Mapping[str, str] | None = None,
    ) -> LoadResult:
        recorder = _Recorder(self, base_url, targets or {})
        return await recorder.run(start_at, on_progress)


class _Recorder:
    """Fires the requests of one plan on time and records them."""

    def __init__(
        self, plan: Plan, base_url: str | Sequence[str], targets: Mapping[str, str]
    ) -> None:
        self.plan = plan
        self.load = plan.load
        n = len(plan.offsets)
        self.started = np.full(n, np.nan)
        self.finished = np.full(n, np.nan)
        self.status = np.zeros(n, dtype=np.int16)
        self.outcome = np.zeros(n, dtype=np.int16)
        self.outcome_names: list[str] = []
        self.outcome_codes: dict[str, int] = {}
        self.counts: dict[str, int] = {}
        self.tag_names: list[str] = []
        tag_codes: dict[str, int] = {}
        self.tag = np.zeros(n, dtype=np.int16)
        for i, spec in enumerate(plan.specs):
            code = tag_codes.get(spec.tag)
            if code is None:
                code = tag_codes[spec.tag] = len(self.tag_names)
                self.tag_names.append(spec.tag)
            self.tag[i] = code
        bases = [URL(base_url)] if isinstance(base_url, str) else [URL(b) for b in base_url]
        if not bases:
            raise LoadError("the load needs at least one base URL")
        paths = {spec.path for spec in plan.specs if not spec.target}
        self.urls = [{path: base.join(URL(path)) for path in paths} for base in bases]
        self.target_urls: dict[str, dict[str, URL]] = {}
        for spec in plan.specs:
            if spec.target:
                if spec.target not in targets:
                    raise LoadError(
                        f"a request targets {spec.target!r}, which the topology does not have "
                        f"(it has {sorted(targets)})"
                    )
                by_path = self.target_urls.setdefault(spec.target, {})
                if spec.path not in by_path:
                    by_path[spec.path] = URL(targets[spec.target]).join(URL(spec.path))
        self.errors: list[str] = []
        self.in_flight = 0
        self.sent = 0
        self.completed = 0
        self.t0 = 0.0
        self.session: aiohttp.ClientSession | None = None
        self.timeout = aiohttp.ClientTimeout(total=self.load.timeout)
        self.tasks: set[asyncio.Task[None]] = set()

    async def run(
        self, start_at: float | None, on_progress: Callable[[LoadProgress], None] | None
    ) -> LoadResult:
        connector = aiohttp.TCPConnector(
            limit=self.load.max_in_flight, limit_per_host=0, ttl_dns_cache=None
        )
        async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:
            self.session = session
            self.t0 = time.monotonic() if start_at is None else start_at
            reporter = (
                asyncio.create_task(self._report(on_progress)) if on_progress is not None else None
            )
            try:
                await self._dispatch()
                while self.tasks:
                    await asyncio.wait(set(self.tasks))
            finally:
                if reporter is not None:
                    reporter.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await reporter
                for task in self.tasks:
                    task.cancel()
            if on_progress is not None:
                on_progress(self._progress())
        return LoadResult(
            t0=self.t0,
            duration=self.load.duration,
            scheduled=self.plan.offsets,
            started=self.started,
            finished=self.finished,
            status=self.status,
            outcome=self.outcome,
            tag=self.tag,
            outcome_names=self.outcome_names,
            tag_names=self.tag_names,
            errors=self.errors,
            event_loop=type(asyncio.get_running_loop()).__module__.split(".")[0],
        )

    async def _dispatch(self) -> None:
        loop = asyncio.get_running_loop()
        due = (self.plan.offsets + self.t0).tolist()
        max_in_flight = self.load.max_in_flight
        clock = time.monotonic
        i, n = 0, len(due)
        while i < n:
            now = clock()
            if due[i] > now:
                await asyncio.sleep(due[i] - now)
                continue
            while i < n and due[i] <= now:
                if self.in_flight >= max_in_flight:
                    self._record(i, OUTCOME_OVERFLOW, 0, math.nan, math.nan)
                else:
                    self.in_flight += 1
                    self.sent += 1
                    task = loop.create_task(self._one(i))
                    self.tasks.add(task)
                    task.add_done_callback(self.tasks.discard)
                i += 1

    async def _one(self, i: int) -> None:
        clock = time.monotonic
        started = clock()
        spec = self.plan.specs[i]
        status = 0
        assert self.session is not None
        try:
            async with self.session.request(
                spec.method,
                (
                    self.target_urls[spec.target][spec.path]
                    if spec.target
                    else self.urls[i % len(self.urls)][spec.path]
                ),
                headers=spec.headers,
                data=spec.body,
                timeout=self.timeout,
            ) as response:
                body = await response.read()
                status = response.status
                try:
                    outcome = self.load.classify(spec, Reply(status, response.headers, body))
                except Exception as exc:
                    if not self.errors:
                        self.errors.append(f"classify raised {type(exc).__name__}: {exc}")
                    outcome = OUTCOME_CLASSIFY_ERROR
        except TimeoutError:
            outcome = OUTCOME_TIMEOUT
        except (aiohttp.ClientError, OSError):
            outcome = OUTCOME_CONN_ERROR
        finally:
            self.in_flight -= 1
        self._record(i, outcome, status, started, clock())

    def _record(self, i: int, outcome: str, status: int, started: float, finished: float) -> None:
        code = self.outcome_codes.get(outcome)
        if code is None:
            code = self.outcome_codes[outcome] = len(self.outcome_names)
            self.outcome_names.append(outcome)
        self.outcome[i] = code
        self.status[i] = status
        self.started[i] = started - self.t0
        self.finished[i] = finished - self.t0
        self.counts[outcome] = self.counts.get(outcome, 0) + 1
        self.completed += 1

    def _progress(self) -> LoadProgress:
        return LoadProgress(
            elapsed=time.monotonic() - self.t0,
            planned=self.load.duration,
            sent=self.sent,
            completed=self.completed,
            outcomes=dict(self.counts),
        )

    async def _report(self, on_progress: Callable[[LoadProgress], None]) -> None:
        while True:
            await asyncio.sleep(_PROGRESS_INTERVAL)
            on_progress(self._progress())

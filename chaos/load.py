"""Open-loop load: requests start on a schedule fixed in advance, never waiting for earlier ones.

A slow service cannot slow the load down, so it cannot hide its own failures (no coordinated
omission). Every request records when it was *scheduled*, when it actually started, when it
finished, its HTTP status and its outcome class; latency is measured from the scheduled time,
service time from the actual start. Starting a request late is the generator's own fault: that
scheduling lag is recorded per request, and a run whose lag p99 exceeds :data:`MAX_TRUSTED_LAG`
is not trustworthy.

In-flight requests are bounded by :attr:`Load.max_in_flight`; a request due while the bound is
reached is recorded with the outcome ``overflow``, never dropped silently.

Two ways to run the same :class:`Load`:

- :func:`run_load` in the current event loop (tests, small rates);
- :class:`LoadProcess` in a child process with its own event loop, so the generator and the
  service under test do not share one interpreter lock (what the engine uses).

Both build the whole request sequence before the first request from one seeded
:class:`random.Random`: the same seed gives the same schedule and the same requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import pickle
import random
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

import aiohttp
import numpy as np
import numpy.typing as npt
from yarl import URL

from chaos import _load_child

__all__ = [
    "DEFAULT_MAX_IN_FLIGHT",
    "DEFAULT_TIMEOUT",
    "MAX_TRUSTED_LAG",
    "OUTCOME_CONN_ERROR",
    "OUTCOME_OVERFLOW",
    "OUTCOME_TIMEOUT",
    "Load",
    "LoadError",
    "LoadProcess",
    "LoadProgress",
    "LoadResult",
    "Reply",
    "RequestSpec",
    "default_classify",
    "root_request",
    "run_load",
    "schedule",
]

MAX_TRUSTED_LAG = 0.005
"""A run whose scheduling lag p99 exceeds this (seconds) is flagged as not trustworthy."""

DEFAULT_TIMEOUT = 10.0
"""Seconds a request may take, from its actual start, before it is recorded as ``timeout``."""

DEFAULT_MAX_IN_FLIGHT = 4096
"""Requests in flight at once; a request due beyond it is recorded as ``overflow``."""

OUTCOME_TIMEOUT = "timeout"
"""The request did not finish within :attr:`Load.timeout`."""

OUTCOME_CONN_ERROR = "conn_error"
"""The connection failed (refused, reset, closed mid-response)."""

OUTCOME_OVERFLOW = "overflow"
"""The request was due while :attr:`Load.max_in_flight` requests were in flight; never sent."""

OUTCOME_CLASSIFY_ERROR = "classify_error"
"""The scenario's classifier raised; the first error is kept in :attr:`LoadResult.errors`."""

_PROGRESS_INTERVAL = 0.25


class LoadError(Exception):
    """The load could not be generated (bad declaration, the child process failed)."""


@dataclass(frozen=True, slots=True)
class RequestSpec:
    """One request of the load: what to send (method, path, headers, body), and its group.

    ``tag`` names a group of requests that SLOs can filter on (e.g. ``"abusive"`` for the key
    that exceeds its limit); it is recorded per request.
    """

    method: str = "GET"
    path: str = "/"
    headers: Mapping[str, str] | None = None
    tag: str = ""
    body: bytes | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    """What the classifier sees of a response."""

    status: int
    headers: Mapping[str, str]
    body: bytes


RequestFactory = Callable[[int, random.Random], RequestSpec]
"""Builds request ``i`` of the run from the run's seeded generator (called before the start)."""

Classifier = Callable[[RequestSpec, Reply], str]
"""Names the outcome class of one answered request (``ok``, ``error``, ``false_429``, ...)."""


def root_request(index: int, rng: random.Random) -> RequestSpec:
    """The default request: ``GET /``."""
    return _ROOT


_ROOT = RequestSpec()


def default_classify(spec: RequestSpec, reply: Reply) -> str:
    """``ok`` for 2xx and 3xx, ``limited`` for 429, ``error`` for anything else."""
    if reply.status < 400:
        return "ok"
    if reply.status == 429:
        return "limited"
    return "error"


@dataclass(frozen=True)
class Load:
    """An open-loop load: arrival rate, duration, arrival process, and what each request is.

    ``rate`` is reached after ``ramp`` seconds of a linear ramp from ``ramp_from``; arrivals are
    evenly spaced (``constant``) or a Poisson process of the same rate (``poisson``). ``request``
    and ``classify`` must be module-level functions (they are sent to the load process by
    reference).
    """

    rate: float
    duration: float
    ramp: float = 0.0
    ramp_from: float = 0.0
    arrivals: Literal["constant", "poisson"] = "constant"
    request: RequestFactory = root_request
    classify: Classifier = default_classify
    timeout: float = DEFAULT_TIMEOUT
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT

    def __post_init__(self) -> None:
        if not (math.isfinite(self.rate) and self.rate > 0):
            raise ValueError(f"Load.rate must be a positive number of requests/s, got {self.rate}")
        if not (math.isfinite(self.duration) and self.duration > 0):
            raise ValueError(f"Load.duration must be positive seconds, got {self.duration}")
        if not (0 <= self.ramp <= self.duration):
            raise ValueError(f"Load.ramp must be within [0, duration], got {self.ramp}")
        if self.ramp > 0 and not (0 <= self.ramp_from <= self.rate):
            raise ValueError(f"Load.ramp_from must be within [0, rate], got {self.ramp_from}")
        if self.arrivals not in ("constant", "poisson"):
            raise ValueError(
                f"Load.arrivals must be 'constant' or 'poisson', got {self.arrivals!r}"
            )
        if not self.timeout > 0:
            raise ValueError(f"Load.timeout must be positive seconds, got {self.timeout}")
        if self.max_in_flight < 1:
            raise ValueError(f"Load.max_in_flight must be >= 1, got {self.max_in_flight}")

    def scaled(self, factor: float) -> Load:
        """The same load over ``factor`` times the duration (and ramp); rates unchanged."""
        return replace(self, duration=self.duration * factor, ramp=self.ramp * factor)

    @property
    def planned_requests(self) -> float:
        """The expected number of requests (exact for constant arrivals)."""
        return _cumulative(self, self.duration)


def schedule(load: Load, seed: int) -> npt.NDArray[np.float64]:
    """Start offsets (seconds from load start, ascending) of every request of ``load``.

    Arrivals are the points of a unit-rate process (evenly spaced, or Poisson from ``seed``)
    mapped through the inverse of the cumulative rate, so a ramp keeps the arrival process.
    """
    total = _cumulative(load, load.duration)
    if load.arrivals == "constant":
        units = np.arange(0.0, total, 1.0, dtype=np.float64)
    else:
        rng = np.random.default_rng(seed)
        gaps = rng.exponential(1.0, size=int(total + 10 * math.sqrt(total) + 10))
        units = np.cumsum(gaps) - gaps[0]
        while units[-1] < total:  # pragma: no cover - 10 sigma margin
            more = np.cumsum(rng.exponential(1.0, size=len(units))) + units[-1]
            units = np.concatenate([units, more])
        units = units[units < total]
    return _inverse_cumulative(load, units)


def _cumulative(load: Load, t: float) -> float:
    """Expected arrivals in [0, t]."""
    if load.ramp <= 0 or t <= 0:
        return load.rate * max(t, 0.0)
    slope = (load.rate - load.ramp_from) / load.ramp
    if t <= load.ramp:
        return load.ramp_from * t + slope * t * t / 2
    in_ramp = load.ramp_from * load.ramp + slope * load.ramp * load.ramp / 2
    return in_ramp + load.rate * (t - load.ramp)


def _inverse_cumulative(load: Load, units: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    if load.ramp <= 0:
        return units / load.rate
    r0, r1, tr = load.ramp_from, load.rate, load.ramp
    slope = (r1 - r0) / tr
    in_ramp = r0 * tr + slope * tr * tr / 2
    out = np.empty_like(units)
    ramping = units <= in_ramp
    u = units[ramping]
    if slope > 0:
        out[ramping] = (-r0 + np.sqrt(r0 * r0 + 2 * slope * u)) / slope
    else:
        out[ramping] = u / r0
    out[~ramping] = tr + (units[~ramping] - in_ramp) / r1
    return out


@dataclass(frozen=True)
class LoadProgress:
    """A live snapshot of a running load."""

    elapsed: float
    planned: float
    sent: int
    completed: int
    outcomes: Mapping[str, int]


@dataclass
class LoadResult:
    """Every request of one run, as parallel arrays indexed by request.

    Times are seconds from load start (``t0``); ``started`` and ``finished`` are NaN for
    ``overflow`` requests, which were never sent. ``outcome`` and ``tag`` index
    ``outcome_names`` and ``tag_names``; ``status`` is 0 when there was no HTTP answer.
    """

    t0: float
    duration: float
    scheduled: npt.NDArray[np.float64]
    started: npt.NDArray[np.float64]
    finished: npt.NDArray[np.float64]
    status: npt.NDArray[np.int16]
    outcome: npt.NDArray[np.int16]
    tag: npt.NDArray[np.int16]
    outcome_names: list[str]
    tag_names: list[str]
    errors: list[str] = field(default_factory=list)
    event_loop: str = "asyncio"

    @property
    def latency(self) -> npt.NDArray[np.float64]:
        """Seconds from the scheduled start to the end of the request (NaN if never sent)."""
        return self.finished - self.scheduled

    @property
    def service_time(self) -> npt.NDArray[np.float64]:
        """Seconds from the actual start to the end of the request (NaN if never sent)."""
        return self.finished - self.started

    @property
    def lag(self) -> npt.NDArray[np.float64]:
        """Scheduling lag of every sent request: actual start minus scheduled start."""
        lag = self.started - self.scheduled
        return lag[~np.isnan(lag)]

    def lag_p99(self) -> float:
        """The 99th percentile of the scheduling lag, seconds (0 for an empty run)."""
        lag = self.lag
        return float(np.percentile(lag, 99)) if len(lag) else 0.0

    @property
    def trustworthy(self) -> bool:
        """Whether the generator kept its schedule: lag p99 <= :data:`MAX_TRUSTED_LAG`."""
        return self.lag_p99() <= MAX_TRUSTED_LAG

    def outcome_mask(self, *names: str) -> npt.NDArray[np.bool_]:
        """Requests whose outcome is one of ``names``."""
        codes = [self.outcome_names.index(n) for n in names if n in self.outcome_names]
        return np.isin(self.outcome, codes)

    def tag_mask(self, name: str) -> npt.NDArray[np.bool_]:
        """Requests of the group ``name``."""
        if name not in self.tag_names:
            return np.zeros(len(self.tag), dtype=np.bool_)
        return np.asarray(self.tag == self.tag_names.index(name))

    def counts(self, mask: npt.NDArray[np.bool_] | None = None) -> dict[str, int]:
        """Requests per outcome class (optionally among ``mask``), zero counts left out."""
        outcome = self.outcome if mask is None else self.outcome[mask]
        found = np.bincount(outcome, minlength=len(self.outcome_names))
        return {name: int(n) for name, n in zip(self.outcome_names, found, strict=True) if n}


async def run_load(
    load: Load,
    base_url: str,
    *,
    seed: int,
    start_at: float | None = None,
    on_progress: Callable[[LoadProgress], None] | None = None,
) -> LoadResult:
    """Run ``load`` against ``base_url`` in the current event loop and record every request.

    The first request is due at ``start_at`` (a ``time.monotonic()`` value; default: now).
    Returns once every request has finished or timed out.
    """
    plan = _Plan.build(load, seed)
    return await plan.run(base_url, start_at=start_at, on_progress=on_progress)


class LoadProcess:
    """Runs a :class:`Load` in a child process with its own event loop (uvloop when installed).

    The child is a fresh ``python -m chaos._load_child`` (the caller's ``sys.path`` passed on),
    so nothing of the parent, its threads or its ``__main__``, is copied or re-run.
    ``await start()`` returns once the child has built its schedule and is ready; ``begin(t0)``
    tells it when the first request is due (a ``time.monotonic()`` value, system-wide on Linux,
    so both processes agree on it); :attr:`progress` is the latest live snapshot;
    ``await result()`` waits for the end. ``await close()`` ends the child if still running.
    """

    def __init__(self, load: Load, base_url: str, *, seed: int) -> None:
        _check_picklable(load)
        self._load = load
        self._base_url = base_url
        self._seed = seed
        self._process: asyncio.subprocess.Process | None = None
        self._stderr: asyncio.Task[bytes] | None = None
        self.progress = LoadProgress(0.0, load.duration, 0, 0, {})

    async def start(self, timeout: float = 60.0) -> None:
        """Spawn the child and wait until it is ready to start on a signal."""
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "chaos._load_child",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        assert self._process.stderr is not None
        self._stderr = asyncio.create_task(self._process.stderr.read())
        self._send(("plan", self._load, self._base_url, self._seed))
        message = await self._receive(timeout)
        if message != ("ready",):
            raise LoadError(f"load process did not get ready: {message!r}")

    def begin(self, t0: float) -> None:
        """Let the child start: its first request is due at monotonic time ``t0``."""
        self._send(("begin", t0))

    async def result(self) -> LoadResult:
        """Wait for the end of the run; live progress updates :attr:`progress` meanwhile."""
        silence = self._load.timeout + 30.0
        while True:
            message = await self._receive(silence)
            match message:
                case ("progress", LoadProgress() as progress):
                    self.progress = progress
                case ("result", LoadResult() as result):
                    return result
                case ("error", str(text)):
                    raise LoadError(f"load process failed: {text}")
                case _:
                    raise LoadError(f"unexpected message from the load process: {message!r}")

    def _send(self, message: object) -> None:
        assert self._process is not None
        assert self._process.stdin is not None
        self._process.stdin.write(_load_child.frame(message))

    async def _receive(self, timeout: float) -> object:
        assert self._process is not None
        assert self._process.stdout is not None
        try:
            async with asyncio.timeout(timeout):
                return await _load_child.read_frame(self._process.stdout)
        except TimeoutError:
            raise LoadError(f"load process silent for {timeout:.0f} s") from None
        except asyncio.IncompleteReadError:
            raise LoadError(f"load process exited: {await self._stderr_tail()}") from None

    async def _stderr_tail(self) -> str:
        assert self._process is not None
        assert self._stderr is not None
        code = await self._process.wait()
        text = (await self._stderr).decode(errors="replace").strip()
        last = text.splitlines()[-1] if text else "no message"
        return f"exit code {code}: {last}"

    async def close(self) -> None:
        """End the child (if still running) and reap it."""
        process = self._process
        if process is None:
            return
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        await process.wait()
        if self._stderr is not None:
            with contextlib.suppress(Exception):
                await self._stderr


def _check_picklable(load: Load) -> None:
    for name in ("request", "classify"):
        function = getattr(load, name)
        try:
            pickle.dumps(function)
        except Exception:
            raise LoadError(
                f"Load.{name} ({function!r}) must be a module-level function: it is sent to "
                "the load process by reference"
            ) from None


@dataclass
class _Plan:
    """A load turned into arrays: due times and request specs, built before the start."""

    load: Load
    offsets: npt.NDArray[np.float64]
    specs: list[RequestSpec]

    @classmethod
    def build(cls, load: Load, seed: int) -> _Plan:
        offsets = schedule(load, seed)
        rng = random.Random(seed)
        specs = [load.request(i, rng) for i in range(len(offsets))]
        return cls(load, offsets, specs)

    async def run(
        self,
        base_url: str,
        *,
        start_at: float | None,
        on_progress: Callable[[LoadProgress], None] | None,
    ) -> LoadResult:
        recorder = _Recorder(self, base_url)
        return await recorder.run(start_at, on_progress)


class _Recorder:
    """Fires the requests of one plan on time and records them."""

    def __init__(self, plan: _Plan, base_url: str) -> None:
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
        base = URL(base_url)
        self.urls = {spec.path: base.join(URL(spec.path)) for spec in plan.specs}
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
                self.urls[spec.path],
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

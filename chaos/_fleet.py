"""A fleet arm's replicas: N processes, each serving the service under test on its own event
loop (:mod:`chaos._replica`), sharing the topology over loopback.

:func:`run_fleet` starts them (all at once), waits until each is ready or fails, and stops
every one when its ``async with`` block exits, also when it is cancelled at any instant (a
replica that does not stop within a few seconds is killed). What a replica registered comes
back to the engine as one :class:`Fleet`:

- its base URLs, for the load to spread over (request ``i`` to replica ``i % N``);
- each gauge as one reading summed over the replicas (a missing reading, NaN, of any replica
  makes the sum NaN: a sum that silently dropped a replica would lie);
- each step, run in every replica at its offset (the step ends when every replica's has);
- the replicas' notes, each prefixed with its replica's index.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import math
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp

from chaos._replica_plan import GAUGES_PATH, STEPS_PATH, ReplicaPlan
from chaos.load import _framing
from chaos.scenario import Arm, Scenario

__all__ = ["Fleet", "FleetError", "check_fleet_builder", "run_fleet"]

_STOP_TIMEOUT = 5.0
"""Seconds a replica gets to stop before it is killed."""


class FleetError(Exception):
    """A replica did not start, did not answer, or failed: the harness's failure."""


def check_fleet_builder(arm: Arm) -> tuple[str, str]:
    """``(module, qualname)`` of a fleet arm's builder, which each replica imports; raises
    :class:`FleetError` when it cannot be imported by reference."""
    build = arm.build
    module = getattr(build, "__module__", None)
    qualname = getattr(build, "__qualname__", "")
    found: object = None
    if module and "<" not in qualname and "." not in qualname:
        with contextlib.suppress(ImportError, AttributeError):
            found = getattr(importlib.import_module(module), qualname)
    if found is not build:
        raise FleetError(
            f"arm {arm.name!r} runs {arm.replicas} replicas: its build ({build!r}) must be a "
            "module-level function, as each replica process imports it by reference"
        )
    return module, qualname  # type: ignore[return-value]


@dataclass
class _Replica:
    index: int
    process: asyncio.subprocess.Process
    stderr: asyncio.Task[bytes]
    base_url: str = ""
    notes: list[str] = field(default_factory=list)


class Fleet:
    """The running replicas of one arm (see the module doc)."""

    def __init__(
        self, replicas: list[_Replica], gauges: list[str], steps: list[tuple[float, str]]
    ) -> None:
        self._replicas = replicas
        self.base_urls = [replica.base_url for replica in replicas]
        self.gauge_names = gauges
        self.steps = steps
        """``(offset, what)`` of each step, as replica 0 registered it (every replica runs the
        same builder, so registers the same steps)."""
        self._session: aiohttp.ClientSession | None = None
        self._readings: dict[str, float] = {}
        self._read_at = -math.inf

    def gauge(self, name: str, interval: float) -> Callable[[], Awaitable[float]]:
        """A read of gauge ``name`` summed over the replicas; one fetch per replica serves
        every gauge of one sampling tick."""

        async def read() -> float:
            now = time.monotonic()
            if now - self._read_at >= interval / 2:
                self._read_at = now
                self._readings = await self._fetch_gauges()
            return self._readings.get(name, math.nan)

        return read

    def step(self, index: int) -> Callable[[], Awaitable[None]]:
        """Run step ``index`` in every replica, at once; returns when each has run it."""

        async def run() -> None:
            session = self._open_session()
            path = STEPS_PATH.format(n=index)

            async def one(base: str) -> None:
                async with session.post(base.rstrip("/") + path) as response:
                    if response.status != 200:
                        text = (await response.text())[:200]
                        raise FleetError(
                            f"replica at {base}: step {index}: {response.status} {text}"
                        )

            await asyncio.gather(*(one(base) for base in self.base_urls))

        return run

    def notes(self) -> list[str]:
        return [f"replica {r.index}: {note}" for r in self._replicas for note in r.notes]

    async def _fetch_gauges(self) -> dict[str, float]:
        session = self._open_session()

        async def one(base: str) -> dict[str, float]:
            async with session.get(base.rstrip("/") + GAUGES_PATH) as response:
                values: dict[str, float] = await response.json()
                return values

        per_replica = await asyncio.gather(*(one(base) for base in self.base_urls))
        return {
            name: math.fsum(values.get(name, math.nan) for values in per_replica)
            for name in self.gauge_names
        }

    def _open_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            timeout = aiohttp.ClientTimeout(total=10)
            self._session = aiohttp.ClientSession(timeout=timeout)
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


async def _start(plan: ReplicaPlan) -> _Replica:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "chaos._replica",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )  # fmt: skip
    assert process.stdin is not None
    assert process.stderr is not None
    replica = _Replica(plan.index, process, asyncio.create_task(process.stderr.read()))
    process.stdin.write(_framing.frame(plan))
    return replica


async def _receive(replica: _Replica, timeout: float) -> object:
    stdout = replica.process.stdout
    assert stdout is not None
    try:
        async with asyncio.timeout(timeout):
            return await _framing.read_frame(stdout)
    except TimeoutError:
        raise FleetError(f"replica {replica.index} silent for {timeout:.0f} s") from None
    except asyncio.IncompleteReadError:
        code = await replica.process.wait()
        text = (await replica.stderr).decode(errors="replace").strip()
        last = text.splitlines()[-1] if text else "no message"
        raise FleetError(f"replica {replica.index} exited (code {code}): {last}") from None


async def _stop(replica: _Replica) -> None:
    process = replica.process
    if process.returncode is None and process.stdin is not None:
        with contextlib.suppress(OSError, RuntimeError):
            process.stdin.write(_framing.frame(("stop",)))
            process.stdin.close()
        with contextlib.suppress(FleetError, TimeoutError):
            message = await _receive(replica, _STOP_TIMEOUT)
            if isinstance(message, tuple) and message[0] == "stopped":
                replica.notes = list(message[1])
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
    await process.wait()
    with contextlib.suppress(Exception):
        await replica.stderr


@contextlib.asynccontextmanager
async def run_fleet(
    arm: Arm,
    scenario: Scenario,
    *,
    seed: int,
    servers: dict[str, tuple[str, int]],
    proxies: dict[str, tuple[str, int]],
    proxy_names: dict[str, str],
    control_url: str,
    timeout: float,
) -> AsyncIterator[Fleet]:
    """Start ``arm.replicas`` replicas of ``arm``, each ready within ``timeout``; stop them all
    on exit (see the module doc)."""
    module, qualname = check_fleet_builder(arm)
    replicas: list[_Replica] = []
    fleet: Fleet | None = None
    try:
        for index in range(arm.replicas):
            plan = ReplicaPlan(
                module, qualname, scenario, seed, index, arm.replicas,
                dict(servers), dict(proxies), dict(proxy_names), control_url,
            )  # fmt: skip
            replicas.append(await _start(plan))
        ready = await asyncio.gather(*(_receive(replica, timeout) for replica in replicas))
        gauges: list[str] = []
        steps: list[tuple[float, str]] = []
        for replica, message in zip(replicas, ready, strict=True):
            match message:
                case ("ready", str(base_url), list(names), list(registered)):
                    replica.base_url = base_url
                    if replica.index == 0:
                        gauges, steps = names, registered
                    elif (names, registered) != (gauges, steps):
                        raise FleetError(
                            f"replica {replica.index} registered other gauges or steps than "
                            "replica 0: every replica must build the same service"
                        )
                case ("error", str(text)):
                    raise FleetError(f"replica {replica.index} failed to build: {text}")
                case _:
                    raise FleetError(f"replica {replica.index} answered {message!r:.200}")
        fleet = Fleet(replicas, gauges, steps)
        yield fleet
    finally:
        if fleet is not None:
            await fleet.aclose()
        await asyncio.gather(*(_stop(replica) for replica in replicas), return_exceptions=True)

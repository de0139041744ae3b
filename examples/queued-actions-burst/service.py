"""An inference front over a fleet of engines whose capacity changes are released safely.

A front routes every request round-robin over the engines in service. A capacity manager
keeps each engine on the generation a placement plan asks for: a *move* takes an engine out
of service, reassigns it (reloads it, some seconds) and brings it back. The moves go through
a scheduler that a circuit breaker pauses while the placement service does not answer; the
manager keeps computing moves meanwhile, from the last state the scheduler saw.

This is the guarded scheduler: a :class:`~resilient.release.ReleaseQueue` that follows the
breaker, so nothing starts while it is open, and when it closes:

- every queued move is revalidated against the state read at its start: one computed from an
  older state version is replanned from the current plan, or dropped with the reason when the
  current plan no longer asks for it;
- at most a quarter of the engines are out of service at once (``budget_share=0.25`` of the
  capacity read at commit time: 2 of 8), however many moves waited;
- the release starts slowly (one move, then more as moves succeed).

Run it (8 engines and a placement stub on free loopback ports, the front on port 8080)::

    python examples/queued-actions-burst/service.py
    curl http://127.0.0.1:8080/             # "engine-3 generation 1"
    curl http://127.0.0.1:8080/fleet        # engines in service, the plan, the queue

``POST /plan?engines=engine-0,engine-1&generation=2`` publishes a new plan for those engines;
``POST /placement/down`` and ``/placement/up`` make the placement stub fail and recover, so
the breaker pauses the scheduler and releases it. The ``queued-actions-burst`` chaos scenario
builds its guarded arm with :func:`build_app` from this file.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
from aiohttp import web

from resilient.breaker import BreakerOptions, CircuitBreaker, CircuitOpenError
from resilient.clock import SYSTEM_CLOCK, Clock
from resilient.events import DEFAULT_EVENTS, EventBus
from resilient.release import (
    Drop,
    Proceed,
    ReleaseOptions,
    ReleaseQueue,
    ReleaseState,
    Replan,
    Superseded,
    Ticket,
    Verdict,
)

ENGINES = 8
"""Engines in the fleet (the example's ``main``; the scenario starts as many)."""

ENGINE_SLOTS = 3
"""Requests an engine serves at once (its batch slots)."""

SERVICE_TIME = 0.050
"""Seconds an engine spends on one request: an engine serves ``ENGINE_SLOTS / SERVICE_TIME``
= 60 requests/s."""

SLOT_WAIT = 0.5
"""Seconds a request waits for a free slot before the engine answers 503 (overloaded)."""

ENGINE_TIMEOUT = 3.0
"""Seconds the front waits for an engine's answer."""

REASSIGN_TIME = 2.5
"""Seconds a move keeps its engine out of service (drained, reloaded, back)."""

DRAIN_WAIT = 1.0
"""Seconds a move waits for the requests in flight on its engine before it takes it away."""

HEARTBEAT = 0.1
"""Seconds between two heartbeats of the scheduler to the placement service, and between two
ticks of the capacity manager."""

BREAKER_OPTIONS = BreakerOptions(failure_threshold=3, reset_timeout=0.5)
"""The scheduler's breaker: open after 3 failed heartbeats in a row, probe every 0.5 s."""

RELEASE_OPTIONS = ReleaseOptions(budget_share=0.25, interval=0.5)
"""At most a quarter of the engines out at once (2 of 8), slow start from one move per half
second, doubling as moves succeed; every other option is the library's default."""

ENGINE_HEADER = "X-Engine"
"""Response header of the front: the engine that answered."""

Hook = Callable[[str], Awaitable[None]]
"""What a move calls to take an engine's network path away (``leave``) and back (``rejoin``)."""


async def _nothing(engine: str) -> None:
    return None


# -- an inference engine -------------------------------------------------------------------


def engine_app(name: str = "engine") -> web.Application:
    """One inference engine: ``ENGINE_SLOTS`` requests at a time, ``SERVICE_TIME`` each; a
    request that finds no free slot within ``SLOT_WAIT`` gets 503."""
    slots = asyncio.Semaphore(ENGINE_SLOTS)

    async def infer(request: web.Request) -> web.Response:
        try:
            async with asyncio.timeout(SLOT_WAIT):
                await slots.acquire()
        except TimeoutError:
            return web.Response(status=503, text=f"{name} overloaded\n")
        try:
            await asyncio.sleep(SERVICE_TIME)
        finally:
            slots.release()
        return web.Response(text="ok\n")

    app = web.Application()
    app.router.add_get("/", infer)
    return app


# -- the fleet as the front sees it ----------------------------------------------------------


@dataclass(frozen=True)
class View:
    """The fleet as of one state ``version``."""

    version: int
    generation: Mapping[str, int]
    in_service: frozenset[str]


class Fleet:
    """The engines, which are in service, what each runs (its generation), the plan, and the
    state version, which goes up on every change of any of them."""

    def __init__(self, engines: Mapping[str, str]) -> None:
        if not engines:
            raise ValueError("a fleet needs at least one engine")
        self.urls = dict(engines)
        """Base URL of each engine (through its proxy, in the scenario)."""
        self.version = 1
        self.generation = dict.fromkeys(engines, 1)
        self.plan = dict.fromkeys(engines, 1)
        """The generation the placement plan asks each engine to run."""
        self.in_service = list(engines)
        self.moving: set[str] = set()
        """Engines a move holds (out of service or about to be)."""
        self.in_flight = dict.fromkeys(engines, 0)
        """Requests the front has on each engine."""
        self._idle = {engine: asyncio.Event() for engine in engines}
        self.unneeded_moves = 0
        """Moves started that the plan did not ask for at their start (acting on a stale
        state): the guard's revalidation keeps this at 0."""
        self._next = 0

    @property
    def capacity(self) -> int:
        return len(self.urls)

    def view(self) -> View:
        return View(self.version, dict(self.generation), frozenset(self.in_service))

    def set_plan(self, plan: Mapping[str, int]) -> None:
        """Publish a plan for some engines (the others keep theirs)."""
        for engine in plan:
            if engine not in self.urls:
                raise KeyError(f"no engine {engine!r}")
        self.plan.update(plan)
        self.version += 1

    def needs_move(self, engine: str) -> bool:
        return self.generation[engine] != self.plan[engine]

    def pick(self) -> str | None:
        """The next engine in service, round-robin (None: none is)."""
        if not self.in_service:
            return None
        self._next = (self._next + 1) % len(self.in_service)
        return self.in_service[self._next]

    def take_out(self, engine: str) -> None:
        if engine in self.in_service:
            self.in_service.remove(engine)
            self.version += 1

    def bring_back(self, engine: str) -> None:
        if engine not in self.in_service:
            self.in_service.append(engine)
            self.version += 1

    def release_state(self) -> ReleaseState:
        """The state a release queue reads at commit time: out of service counts the engines
        out for any reason but a move the queue runs (it counts those itself)."""
        out = set(self.urls) - set(self.in_service) - self.moving
        return ReleaseState(self.version, capacity=self.capacity, out_of_service=len(out))

    def request_started(self, engine: str) -> None:
        self.in_flight[engine] += 1
        self._idle[engine].clear()

    def request_ended(self, engine: str) -> None:
        self.in_flight[engine] -= 1
        if not self.in_flight[engine]:
            self._idle[engine].set()

    async def drained(self, engine: str, wait: float) -> None:
        """Return once no request is in flight on ``engine``, or after ``wait`` seconds."""
        if not self.in_flight[engine]:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await self._idle[engine].wait()


async def move(
    fleet: Fleet,
    engine: str,
    generation: int,
    *,
    reassign_time: float = REASSIGN_TIME,
    leave: Hook = _nothing,
    rejoin: Hook = _nothing,
    clock: Clock = SYSTEM_CLOCK,
) -> str:
    """Move ``engine`` to ``generation``: out of service, drained, away (``leave``), reloaded
    for ``reassign_time`` seconds, back (``rejoin``), in service again."""
    if fleet.generation[engine] == fleet.plan[engine] or fleet.plan[engine] != generation:
        fleet.unneeded_moves += 1
    fleet.moving.add(engine)
    try:
        fleet.take_out(engine)
        await fleet.drained(engine, DRAIN_WAIT)
        await leave(engine)
        await clock.sleep(reassign_time)
        fleet.generation[engine] = generation
        fleet.version += 1
        await rejoin(engine)
    finally:
        fleet.bring_back(engine)
        fleet.moving.discard(engine)
    return f"{engine} on generation {generation}"


# -- the scheduler and the capacity manager ------------------------------------------------


class Scheduler(Protocol):
    """Runs the moves the capacity manager asks for; a breaker pauses it."""

    breaker: CircuitBreaker
    view: View
    """The state as of the last heartbeat the placement service answered (frozen while the
    breaker is open: that is the state the manager computes from)."""

    def submit(self, engine: str, generation: int, *, based_on: int) -> None: ...

    def wants(self, engine: str) -> bool:
        """A move of ``engine`` is queued or running."""
        ...

    async def heartbeat(self) -> None: ...

    async def aclose(self) -> None: ...


class Heartbeat:
    """What every scheduler shares: a heartbeat to the placement service through the breaker,
    and the view of the fleet it refreshes when placement answers."""

    def __init__(
        self,
        fleet: Fleet,
        placement_url: str,
        session: aiohttp.ClientSession,
        breaker: CircuitBreaker,
    ) -> None:
        self.fleet = fleet
        self.placement_url = placement_url
        self.session = session
        self.breaker = breaker
        self.view = fleet.view()

    async def heartbeat(self) -> None:
        """Ask placement whether scheduling may go on; on an answer, see the fleet again."""
        with contextlib.suppress(CircuitOpenError, aiohttp.ClientError, TimeoutError):
            await self.breaker.call(self.ping)
            self.view = self.fleet.view()

    async def ping(self) -> None:
        timeout = aiohttp.ClientTimeout(total=HEARTBEAT)
        async with self.session.get(self.placement_url, timeout=timeout) as response:
            await response.read()
            response.raise_for_status()


class GuardedScheduler(Heartbeat):
    """The moves go through a :class:`ReleaseQueue` that follows the breaker."""

    def __init__(
        self,
        fleet: Fleet,
        placement_url: str,
        session: aiohttp.ClientSession,
        breaker: CircuitBreaker,
        *,
        options: ReleaseOptions = RELEASE_OPTIONS,
        run: Callable[[str, int], Awaitable[str]],
        clock: Clock = SYSTEM_CLOCK,
        events: EventBus = DEFAULT_EVENTS,
    ) -> None:
        super().__init__(fleet, placement_url, session, breaker)
        self.run = run
        self.queue = ReleaseQueue(
            fleet.release_state, options, revalidate=self.revalidate, clock=clock, events=events
        )
        self.queue.follow(breaker)
        self.tickets: dict[str, Ticket[str]] = {}

    def submit(self, engine: str, generation: int, *, based_on: int) -> None:
        action = functools.partial(self.run, engine, generation)
        self.tickets[engine] = self.queue.submit(engine, action, based_on=based_on, takes_out=1)

    def wants(self, engine: str) -> bool:
        ticket: Ticket[Any] | None = self.tickets.get(engine)
        while ticket is not None:  # a replanned or superseded move lives on in its successor
            outcome = ticket.outcome
            if outcome is None:
                return True
            ticket = outcome.by if isinstance(outcome, Superseded) else None
        return False

    def revalidate(self, ticket: Ticket[Any], state: ReleaseState) -> Verdict:
        """At commit time: a move the current plan no longer asks for is dropped; one computed
        from an older state is replanned from the current plan."""
        engine = ticket.key
        if not self.fleet.needs_move(engine):
            return Drop(
                f"stale: computed from state version {ticket.based_on}, state is "
                f"{state.version}, whose plan keeps {engine} on generation "
                f"{self.fleet.plan[engine]}, which it runs already"
            )
        if ticket.based_on < state.version:
            action = functools.partial(self.run, engine, self.fleet.plan[engine])
            return Replan(action, takes_out=1)
        return Proceed()

    async def aclose(self) -> None:
        await self.queue.close(cancel=True)


class CapacityManager:
    """Computes moves from the scheduler's view of the fleet and the current plan: a move for
    every engine whose generation the plan changed, unless one is already asked for. It only
    adds moves, never takes one back (the scheduler's revalidation is there for that)."""

    def __init__(self, fleet: Fleet, scheduler: Scheduler) -> None:
        self.fleet = fleet
        self.scheduler = scheduler

    def tick(self) -> None:
        view = self.scheduler.view
        for engine, generation in self.fleet.plan.items():
            if view.generation[engine] != generation and not self.scheduler.wants(engine):
                self.scheduler.submit(engine, generation, based_on=view.version)


# -- the service -----------------------------------------------------------------------------

FLEET: web.AppKey[Fleet] = web.AppKey("fleet", Fleet)
"""Where :func:`service_app` keeps the fleet (for gauges and the ``/fleet`` page)."""

SCHEDULER: web.AppKey[Scheduler] = web.AppKey("scheduler")
"""Where :func:`service_app` keeps the scheduler (set when the app starts)."""


def build_app(
    engines: Mapping[str, str],
    placement_url: str,
    *,
    reassign_time: float = REASSIGN_TIME,
    leave: Hook = _nothing,
    rejoin: Hook = _nothing,
    clock: Clock = SYSTEM_CLOCK,
    events: EventBus = DEFAULT_EVENTS,
) -> web.Application:
    """The guarded service: :func:`service_app` with its moves released by a
    :class:`GuardedScheduler` (``engines``: name to base URL)."""

    def scheduler(fleet: Fleet, session: aiohttp.ClientSession) -> Scheduler:
        breaker = CircuitBreaker("scheduler", BREAKER_OPTIONS, clock=clock, events=events)
        run = functools.partial(
            _run_move, fleet, reassign_time=reassign_time, leave=leave, rejoin=rejoin, clock=clock
        )
        return GuardedScheduler(
            fleet, placement_url, session, breaker, run=run, clock=clock, events=events
        )

    return service_app(engines, scheduler)


async def _run_move(fleet: Fleet, engine: str, generation: int, **how: Any) -> str:
    return await move(fleet, engine, generation, **how)


def service_app(
    engines: Mapping[str, str],
    scheduler: Callable[[Fleet, aiohttp.ClientSession], Scheduler],
) -> web.Application:
    """The front over ``engines`` (name to base URL), its capacity manager, and the scheduler
    ``scheduler(fleet, session)`` builds; the heartbeat and the manager tick every
    ``HEARTBEAT`` seconds while the app runs."""
    fleet = Fleet(engines)
    app = web.Application()
    app[FLEET] = fleet

    async def running(app: web.Application) -> AsyncIterator[None]:
        session = aiohttp.ClientSession()
        app[_SESSION] = session
        app[SCHEDULER] = chosen = scheduler(fleet, session)
        manager = CapacityManager(fleet, chosen)
        ticking = asyncio.create_task(_tick(chosen, manager))
        try:
            yield
        finally:
            ticking.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticking
            await chosen.aclose()
            await session.close()

    app.cleanup_ctx.append(running)
    app.router.add_get("/", _infer)
    app.router.add_get("/fleet", _fleet_page)
    app.router.add_post("/plan", _publish_plan)
    return app


_SESSION: web.AppKey[aiohttp.ClientSession] = web.AppKey("session", aiohttp.ClientSession)


async def _tick(scheduler: Scheduler, manager: CapacityManager) -> None:
    while True:
        await scheduler.heartbeat()
        manager.tick()
        await asyncio.sleep(HEARTBEAT)


async def _infer(request: web.Request) -> web.Response:
    """Serve one request on the next engine in service; a connection that fails (an engine
    that just left) is tried once more on the next one."""
    fleet, session = request.app[FLEET], request.app[_SESSION]
    timeout = aiohttp.ClientTimeout(total=ENGINE_TIMEOUT)
    for _ in range(2):
        engine = fleet.pick()
        if engine is None:
            return web.Response(status=503, text="no engine in service\n")
        fleet.request_started(engine)
        try:
            async with session.get(fleet.urls[engine], timeout=timeout) as response:
                body = await response.read()
                return web.Response(
                    status=response.status, body=body, headers={ENGINE_HEADER: engine}
                )
        except aiohttp.ClientConnectionError:
            continue
        except TimeoutError:
            return web.Response(status=504, text=f"{engine} did not answer\n")
        finally:
            fleet.request_ended(engine)
    return web.Response(status=502, text="no engine answered\n")


async def _fleet_page(request: web.Request) -> web.Response:
    fleet = request.app[FLEET]
    scheduler = request.app[SCHEDULER]
    page: dict[str, Any] = {
        "version": fleet.version,
        "in_service": sorted(fleet.in_service),
        "generation": fleet.generation,
        "plan": fleet.plan,
        "moving": sorted(fleet.moving),
        "breaker": scheduler.breaker.state.value,
    }
    if isinstance(scheduler, GuardedScheduler):
        page["queue"] = repr(scheduler.queue)
    return web.json_response(page)


async def _publish_plan(request: web.Request) -> web.Response:
    fleet = request.app[FLEET]
    engines = [e for e in request.query.get("engines", "").split(",") if e]
    try:
        generation = int(request.query.get("generation", ""))
        fleet.set_plan(dict.fromkeys(engines, generation))
    except (KeyError, ValueError) as error:
        return web.Response(status=400, text=f"{error}\n")
    return web.json_response({"version": fleet.version, "plan": fleet.plan})


# -- running it by hand ----------------------------------------------------------------------


def placement_app() -> web.Application:
    """A placement service stub: 200 while up; ``POST /down`` and ``/up`` switch it."""
    up = [True]

    async def health(request: web.Request) -> web.Response:
        return web.Response(status=200 if up[0] else 503, text="placement\n")

    async def switch(request: web.Request) -> web.Response:
        up[0] = request.match_info["to"] == "up"
        return web.Response(text=f"placement {'up' if up[0] else 'down'}\n")

    app = web.Application()
    app.router.add_get("/", health)
    app.router.add_post("/{to:up|down}", switch)
    return app


async def _serve(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][:2]
    return runner, f"http://{bound[0]}:{bound[1]}/"


async def _main(host: str, port: int, engines: int) -> None:
    runners = []
    try:
        urls = {}
        for i in range(engines):
            runner, urls[f"engine-{i}"] = await _serve(engine_app(f"engine-{i}"), "127.0.0.1", 0)
            runners.append(runner)
        runner, placement = await _serve(placement_app(), "127.0.0.1", 0)
        runners.append(runner)
        front = build_app(urls, placement)
        front.router.add_post("/placement/{to:up|down}", functools.partial(_switch, placement))
        runner, base = await _serve(front, host, port)
        runners.append(runner)
        logging.getLogger("queued-actions-burst").info("serving on %s", base)
        await asyncio.Event().wait()
    finally:
        for runner in reversed(runners):
            await runner.cleanup()


async def _switch(placement: str, request: web.Request) -> web.Response:
    session = request.app[_SESSION]
    async with session.post(placement + request.match_info["to"]) as response:
        return web.Response(text=await response.text())


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the front, its engines and a placement stub: ``[--host H] [--port P]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--engines", type=int, default=ENGINES)
    args = parser.parse_args(argv)
    if args.engines < 1:
        parser.error(f"--engines must be >= 1, got {args.engines}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(args.host, args.port, args.engines))


if __name__ == "__main__":
    main()

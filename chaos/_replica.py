"""One replica of a fleet arm: ``python -m chaos._replica``, driven by :class:`chaos._fleet.Fleet`.

It reads what to build (the arm's builder by reference, the scaled scenario, the topology's
addresses), builds the service with a :class:`ReplicaContext` on its own asyncio event loop
(the loop an in-process arm's service runs on too), serves it on a free loopback port and says
so; then it serves until told to stop, and sends back its notes. The messages are pickles
framed as the load process's (:mod:`chaos.load._framing`); the replica's file descriptor 1 is
pointed at stderr, so a stray print cannot corrupt them.

Besides the service's own routes, the app gets two under ``/__chaos/`` for the engine:
``GET /__chaos/gauges`` reads every gauge the replica registered (JSON, NaN for a read that
did not finish within ``timeout``), and ``POST /__chaos/steps/{n}`` runs the replica's step
``n`` (:meth:`ReplicaContext.at`) and answers once it has run.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import json
import math
import os
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from chaos._replica_plan import GAUGES_PATH, STEPS_PATH, ReplicaPlan
from chaos._serving import serve_app
from chaos.load._framing import frame, read_blocking
from chaos.scenario import Scenario
from chaos.toxiproxy.control import ToxiproxyControl

__all__ = ["ReplicaContext", "main"]


class ReplicaContext:
    """The :class:`chaos.scenario.ArmContext` of one replica (``index`` of ``replicas``)."""

    def __init__(self, plan: ReplicaPlan, control: ToxiproxyControl) -> None:
        self._plan = plan
        self._control = control
        self.gauges: dict[str, Callable[[], float | Awaitable[float]]] = {}
        self.steps: list[tuple[float, Callable[[], Awaitable[None] | None], str]] = []
        self.notes: list[str] = []

    @property
    def seed(self) -> int:
        return self._plan.seed

    @property
    def scenario(self) -> Scenario:
        return self._plan.scenario

    @property
    def replica(self) -> tuple[int, int]:
        """``(index, replicas)``: which replica this is, of how many."""
        return self._plan.index, self._plan.replicas

    def address(self, name: str) -> tuple[str, int]:
        plan = self._plan
        if name in plan.proxies:
            return plan.proxies[name]
        if name in plan.servers:
            return plan.servers[name]
        raise KeyError(f"no proxy or server named {name!r} in scenario {plan.scenario.name!r}")

    def direct_address(self, server: str) -> tuple[str, int]:
        if server not in self._plan.servers:
            raise KeyError(f"no server named {server!r} in scenario {self._plan.scenario.name!r}")
        return self._plan.servers[server]

    def url(self, name: str, scheme: str = "http", path: str = "") -> str:
        host, port = self.address(name)
        return f"{scheme}://{host}:{port}/{path.lstrip('/')}"

    def gauge(self, name: str, read: Callable[[], float | Awaitable[float]]) -> None:
        if name in self.gauges:
            raise ValueError(f"gauge {name!r} is registered twice")
        self.gauges[name] = read

    def at(self, offset: float, step: Callable[[], Awaitable[None] | None], what: str) -> None:
        duration = self._plan.scenario.duration
        if not (math.isfinite(offset) and 0 <= offset <= duration):
            raise ValueError(f"step {what!r} at {offset} s is outside the load (0..{duration})")
        self.steps.append((offset, step, what))

    async def disable_proxy(self, name: str) -> None:
        await self._control.disable(self._proxy_name(name))

    async def enable_proxy(self, name: str) -> None:
        await self._control.enable(self._proxy_name(name))

    def _proxy_name(self, name: str) -> str:
        if name not in self._plan.proxy_names:
            raise KeyError(f"no proxy named {name!r} in scenario {self._plan.scenario.name!r}")
        return self._plan.proxy_names[name]

    def note(self, text: str) -> None:
        self.notes.append(str(text))


def _routes(app: web.Application, context: ReplicaContext, interval: float) -> None:
    async def gauges(request: web.Request) -> web.Response:
        values: dict[str, float] = {}
        for name, read in context.gauges.items():
            value = read()
            if inspect.isawaitable(value):
                try:
                    async with asyncio.timeout(interval):
                        value = await value
                except TimeoutError:
                    value = math.nan
            values[name] = float(value)
        return web.Response(text=json.dumps(values), content_type="application/json")

    async def step(request: web.Request) -> web.Response:
        index = int(request.match_info["n"])
        done = context.steps[index][1]()
        if inspect.isawaitable(done):
            await done
        return web.Response(text="done")

    app.router.add_get(GAUGES_PATH, gauges)
    app.router.add_post(STEPS_PATH, step)


async def _serve(plan: ReplicaPlan, send: Callable[[object], None], stop: asyncio.Event) -> None:
    module = importlib.import_module(plan.module)
    build: Callable[[Any], Awaitable[web.Application]] = getattr(module, plan.qualname)
    async with ToxiproxyControl(plan.control_url) as control:
        context = ReplicaContext(plan, control)
        app = await build(context)
        _routes(app, context, plan.scenario.gauge_interval)
        async with serve_app(app) as base_url:
            steps = [(offset, what) for offset, _, what in context.steps]
            send(("ready", base_url, sorted(context.gauges), steps))
            await stop.wait()
        send(("stopped", context.notes))


def main() -> None:
    """Build, serve and stop one replica for the engine on stdin/stdout (see the module doc)."""
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    stdin = sys.stdin.buffer
    lock = threading.Lock()

    def send(message: object) -> None:
        with lock:
            out.write(frame(message))
            out.flush()

    try:
        plan = read_blocking(stdin)
        if not isinstance(plan, ReplicaPlan):
            raise ValueError(f"expected a ReplicaPlan, got {plan!r:.200}")

        async def run() -> None:
            loop = asyncio.get_running_loop()
            stop = asyncio.Event()

            def wait_for_stop() -> None:
                with contextlib.suppress(EOFError, OSError):
                    read_blocking(stdin)  # ("stop",), or the engine gone (EOF): stop either way
                loop.call_soon_threadsafe(stop.set)

            threading.Thread(target=wait_for_stop, daemon=True, name="replica-stop").start()
            await _serve(plan, send, stop)

        asyncio.run(run())
    except (EOFError, BrokenPipeError):
        print("chaos replica: the engine closed the pipe", file=sys.stderr)
    except KeyboardInterrupt:
        return
    except BaseException as exc:
        with contextlib.suppress(OSError):
            send(("error", f"{type(exc).__name__}: {exc}"))


if __name__ == "__main__":
    main()

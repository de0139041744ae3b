"""One replica of a fleet arm: ``python -m chaos._replica``, driven by :class:`chaos._fleet.Fleet`.

It reads what to build (the arm's builder by reference, the scaled scenario, the topology's
addresses), builds the service with a :class:`BuildContext` on its own asyncio event loop
(the loop an in-process arm's service runs on too), serves it on a free loopback port and says
so; then it serves until told to stop, and sends back its notes. The messages are pickles
framed as the load process's (:mod:`chaos.load._framing`); the replica's file descriptor 1 is
pointed at stderr, so a stray print cannot corrupt them.

Besides the service's own routes, the app gets two under ``/__chaos/`` for the engine:
``GET /__chaos/gauges`` reads every gauge the replica registered (JSON, NaN for a read that
did not finish within ``timeout``), and ``POST /__chaos/steps/{n}`` runs the replica's step
``n`` (:meth:`BuildContext.at`) and answers once it has run.
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

from chaos._context import BuildContext
from chaos._replica_plan import GAUGES_PATH, STEPS_PATH, ReplicaPlan
from chaos._serving import serve_app
from chaos.load._framing import frame, read_blocking
from chaos.toxiproxy.control import ToxiproxyControl

__all__ = ["main"]


def _routes(app: web.Application, context: BuildContext, interval: float) -> None:
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
        done = context.steps[index].run()
        if inspect.isawaitable(done):
            await done
        return web.Response(text="done")

    app.router.add_get(GAUGES_PATH, gauges)
    app.router.add_post(STEPS_PATH, step)


async def _serve(plan: ReplicaPlan, send: Callable[[object], None], stop: asyncio.Event) -> None:
    module = importlib.import_module(plan.module)
    build: Callable[[Any], Awaitable[web.Application]] = getattr(module, plan.qualname)
    async with ToxiproxyControl(plan.control_url) as control:
        context = BuildContext(plan.scenario, plan.seed, control, (plan.index, plan.replicas))
        context.servers.update(plan.servers)
        context.proxies.update(plan.proxies)
        context.proxy_names.update(plan.proxy_names)
        app = await build(context)
        _routes(app, context, plan.scenario.gauge_interval)
        async with serve_app(app) as base_url:
            steps = [(step.at, step.what) for step in context.steps]
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

"""A client of AI model providers that keeps answering when its provider goes down.

Every request asks a model provider over HTTP. On 2026-04-20 one provider's API was down for
about an hour; customers whose only provider it was had nothing, and when it came back, clients
that retried at once, without a budget or jitter, hit it with several times their load. Here
each request goes through a :class:`~resilient.failover.Failover` over two providers:

- each provider has its own breaker (5 failures in a row open it; a probe every second) and the
  secondary its own rate limit (80 requests a second per process: a failover never floods it);
- a request that fails on the primary moves to the secondary; a primary slower than its own
  recent p95 gets one hedge to the secondary; every such extra attempt is paid from a shared
  :class:`~resilient.retry.RetryBudget` (10% of requests, plus 3, over 10 s): an outage costs
  the providers at most 1.1 attempts a request, never a retry storm;
- when the primary comes back, its share grows over 10 s (slow start), not at once;
- when no provider can answer within the 1 s deadline, a canned answer is given, marked
  degraded (``X-Degraded: 1``).

Run it (two stub providers on free loopback ports, the client service on port 8080)::

    python examples/provider-outage/service.py
    curl 'http://127.0.0.1:8080/ask?prompt=hello'   # "answer from primary", X-Provider
    curl http://127.0.0.1:8080/stats                # attempts, failures, hedges by provider

The ``provider-outage`` chaos scenario runs this file's :func:`build_app` in each replica of its
guarded arm.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import signal
from collections.abc import Mapping
from typing import Any

import aiohttp
from aiohttp import web

from resilient.breaker import BreakerOptions, CircuitBreaker
from resilient.errors import ProvidersUnavailableError
from resilient.events import DEFAULT_EVENTS, EventBus
from resilient.failover import Failover, FailoverOptions, Provider
from resilient.ratelimit import Rate
from resilient.retry import RetryBudget, RetryBudgetOptions

PROVIDERS = ("primary", "secondary")
"""The providers, in order of preference."""

DEADLINE = 1.0
"""Seconds a request may take, every attempt and hedge included."""

FAILOVER_OPTIONS = FailoverOptions(
    timeout=DEADLINE, slow_start_window=10.0, failures=(OSError, aiohttp.ClientError)
)
"""One hedge after the provider's p95; a provider that comes back ramps up over 10 s."""

BREAKER_OPTIONS = BreakerOptions(failure_threshold=5, reset_timeout=1.0)
"""Each provider's breaker: 5 failures in a row open it, a probe every second."""

SECONDARY_RATE = Rate(80, 1.0, burst=10)
"""What the secondary takes from one process at most (its own limit: never exceeded)."""

BUDGET_OPTIONS = RetryBudgetOptions(ratio=0.1, min_retries=3, window=10.0)
"""Failovers and hedges: at most 10% of the requests of the last 10 s, plus 3 (Envoy's
minimum): an outage costs the providers at most 1.1 attempts a request, plus 3 per 10 s."""

FAILOVER = web.AppKey("failover", Failover)


class ProviderDown(ConnectionError):
    """A provider answered, but not with an answer (a 5xx, a 429)."""


def ask(session: dict[str, aiohttp.ClientSession], url: str) -> Any:
    """The call of one provider: ``GET {url}/complete?prompt=...``, its text or
    :class:`ProviderDown`."""

    async def call(prompt: str) -> str:
        async with session["client"].get(f"{url}/complete", params={"prompt": prompt}) as reply:
            text = await reply.text()
            if reply.status != 200:
                raise ProviderDown(f"HTTP {reply.status}")
            return text

    return call


async def canned(prompt: str, error: ProvidersUnavailableError) -> str:
    """The degraded answer when no provider can give one."""
    return "the assistant is busy, please try again in a minute"


def build_app(urls: Mapping[str, str], *, events: EventBus = DEFAULT_EVENTS) -> web.Application:
    """The client service: ``GET /ask?prompt=P`` answers from the providers at ``urls`` (by
    name), with ``X-Provider`` (``fallback`` for the canned answer) and ``X-Attempts``."""
    session: dict[str, aiohttp.ClientSession] = {}
    budget = RetryBudget(BUDGET_OPTIONS, events=events)
    providers = [
        Provider(
            name,
            ask(session, urls[name].rstrip("/")),
            breaker=CircuitBreaker(name, BREAKER_OPTIONS, events=events),
            rate=SECONDARY_RATE if name != PROVIDERS[0] else None,
        )
        for name in PROVIDERS
    ]
    failover: Failover[str, str] = Failover(
        providers, FAILOVER_OPTIONS, budget=budget, fallback=canned, name="models", events=events
    )

    async def answer(request: web.Request) -> web.Response:
        result = await failover.call(request.query.get("prompt", ""))
        headers = {
            "X-Provider": result.provider or "fallback",
            "X-Attempts": str(result.attempts),
            "X-Degraded": "1" if result.degraded else "0",
        }
        return web.Response(text=result.value, headers=headers)

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(
            {name: dataclasses.asdict(each) for name, each in failover.stats().items()}
            | {"budget": dataclasses.asdict(budget.stats)}
        )

    async def open_session(app: web.Application) -> None:
        session["client"] = aiohttp.ClientSession()

    async def close_session(app: web.Application) -> None:
        await session["client"].close()

    app = web.Application()
    app[FAILOVER] = failover
    app.router.add_get("/ask", answer)
    app.router.add_get("/stats", stats)
    app.on_startup.append(open_session)
    app.on_cleanup.append(close_session)
    return app


def stub_provider(name: str, latency: float = 0.02) -> web.Application:
    """A model provider: ``GET /complete`` answers after ``latency`` seconds."""

    async def complete(request: web.Request) -> web.Response:
        await asyncio.sleep(latency)
        return web.Response(text=f"answer from {name}")

    app = web.Application()
    app.router.add_get("/complete", complete)
    return app


async def main(port: int) -> None:  # pragma: no cover - run by hand
    """Stub providers and the service, until SIGINT or SIGTERM; all stopped."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    runners: list[web.AppRunner] = []
    urls: dict[str, str] = {}
    try:
        for name in PROVIDERS:
            runner = web.AppRunner(stub_provider(name))
            runners.append(runner)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            urls[name] = f"http://127.0.0.1:{runner.addresses[0][1]}"
        service = web.AppRunner(build_app(urls))
        runners.append(service)
        await service.setup()
        await web.TCPSite(service, "127.0.0.1", port).start()
        print(f"service on http://127.0.0.1:{port}; providers {json.dumps(urls)}", flush=True)
        await stop.wait()
    finally:
        for runner in reversed(runners):
            await runner.cleanup()


def _parse(argv: list[str] | None = None) -> Mapping[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8080)
    return vars(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover - run by hand
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(**_parse()))

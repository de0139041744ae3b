"""Rollout benchmark: what :meth:`~resilient.rollout.ConfigRollout.config_for` costs on every
request's path, what recording one sample costs, and how fast a new version reaches every
instance of a fleet through the Redis store.

Run: ``.venv/bin/python bench/bench_rollout.py`` (``--quick`` for a short run).

On one event loop, N calls in a row, rounds interleaved (each round runs each contender once,
in a rotating order; the figure of each is the median of its rounds, the spread beside it):

- ``direct``: reading the current configuration from an attribute, what a service does with
  no rollout (the floor);
- ``config_for(key)``: during a 10% canary by key (the hash of the key included);
- ``config_for(key, cohort)``: during a canary by named cohort;
- ``record(served, ok, latency)``: one sample counted.

Target: ``config_for(key)`` under 1 us (it is on every request's path).

Propagation: a fleet of 10 instances on one ``redis-server``, each with its own client. A new
version made current (``activate``) is seen by every instance through
:meth:`~resilient.rollout.RedisConfigStore.changes` (the announcement, or the poll when one
was missed); a new stage of a rollout by every follower through
:meth:`~resilient.rollout.ConfigRollout.follow` (every ``sync_interval``, 0.25 s by default).
Target: every instance within 1 s.

The exit status is 1 when a target fails.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import pydantic
import redis.asyncio as aredis
from _figures import Figure

from chaos.servers import RedisServer
from resilient.events import EventBus
from resilient.rollout import (
    ConfigRollout,
    MemoryConfigStore,
    PydanticSchema,
    RedisConfigStore,
    RolloutOptions,
    SuccessRatioGate,
    by_cohorts,
    canary,
    latency_gate,
)

TARGET_CONFIG_FOR_US = 1.0
TARGET_PROPAGATION_S = 1.0
FLEET = 10


class Config(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True)
    target: str


def data(target: str) -> bytes:
    return Config(target=target).model_dump_json().encode()


def quiet() -> EventBus:
    return EventBus(log_when_unobserved=False)


async def rollout_in(options: RolloutOptions, store: Any = None) -> ConfigRollout[Config]:
    rollout: ConfigRollout[Config] = ConfigRollout(
        store or MemoryConfigStore(), options, schema=PydanticSchema(Config), events=quiet()
    )
    await rollout.bootstrap(data("old"))
    await rollout.start(data("new"), "bench")
    return rollout


def timed(count: int, body: Callable[[int], object]) -> float:
    """Microseconds per call of ``body(i)``, ``count`` calls in a row."""
    gc.collect()
    gc.disable()
    try:
        started = time.perf_counter()
        for i in range(count):
            body(i)
        return (time.perf_counter() - started) / count * 1e6
    finally:
        gc.enable()


async def measure_paths(count: int, rounds: int) -> dict[str, Figure]:
    by_key = await rollout_in(
        RolloutOptions(stages=canary(10.0), gates=(SuccessRatioGate(), latency_gate()))
    )
    by_region = await rollout_in(
        RolloutOptions(stages=by_cohorts(("eu",)), gates=(SuccessRatioGate(),))
    )
    keys = [f"user-{i}" for i in range(1024)]
    regions = ["eu", "us", "asia", "ap"]
    served = by_key.config_for("user-1")

    class Holder:
        config = Config(target="old")

    holder = Holder()
    contenders: dict[str, Callable[[int], object]] = {
        "direct (attribute read)": lambda i: holder.config,
        "config_for(key)": lambda i: by_key.config_for(keys[i & 1023]),
        "config_for(key, cohort)": lambda i: by_region.config_for(keys[i & 1023], regions[i & 3]),
        "record(served, ok, latency)": lambda i: by_key.record(served, ok=True, latency=0.01),
    }
    figures = {name: Figure(name, []) for name in contenders}
    names = list(contenders)
    for round_ in range(rounds):
        order = names[round_ % len(names) :] + names[: round_ % len(names)]
        for name in order:
            figures[name].rounds.append(timed(count, contenders[name]))
    return figures


async def propagation(server: RedisServer, rounds: int) -> tuple[Figure, Figure]:
    """Seconds until every one of FLEET instances sees a new current version (changes()),
    and a new rollout stage (follow())."""
    clients = [aredis.Redis.from_url(server.url) for _ in range(FLEET + 1)]
    versions = Figure("new version, every instance (s)", [])
    stages = Figure("new stage, every follower (s)", [])
    try:
        for _ in range(rounds):
            name = f"bench-{uuid.uuid4().hex}"
            writer = RedisConfigStore(clients[0], name)
            await writer.store(data("v1"), "bench")
            await writer.activate(1, expected=None, reason="bench")
            await writer.store(data("v2"), "bench")
            seen: list[float] = []

            async def watch(
                client: aredis.Redis, name: str = name, seen: list[float] = seen
            ) -> None:
                async for _ in RedisConfigStore(client, name).changes():
                    seen.append(time.perf_counter())
                    return

            watchers = [asyncio.create_task(watch(c)) for c in clients[1:]]
            await asyncio.sleep(0.3)
            started = time.perf_counter()
            await writer.activate(2, expected=1, reason="bench")
            await asyncio.wait_for(asyncio.gather(*watchers), 10)
            versions.rounds.append(max(seen) - started)

            options = RolloutOptions(stages=canary(10.0), gates=(SuccessRatioGate(),))
            members = [
                ConfigRollout(
                    RedisConfigStore(c, name + "-r"),
                    options,
                    schema=PydanticSchema(Config),
                    events=quiet(),
                )
                for c in clients
            ]
            await members[0].bootstrap(data("old"))
            for member in members[1:]:
                await member.open()
            followers = [asyncio.create_task(m.follow()) for m in members[1:]]
            await asyncio.sleep(0.3)
            started = time.perf_counter()
            await members[0].start(data("new"), "bench")
            # a follower signals nothing when it takes a stage: its state is polled (5 ms)
            while any(m.status.candidate is None for m in members[1:]):  # noqa: ASYNC110
                await asyncio.sleep(0.005)
            stages.rounds.append(time.perf_counter() - started)
            for task in followers:
                task.cancel()
            await asyncio.gather(*followers, return_exceptions=True)
    finally:
        for client in clients:
            await client.aclose()
    return versions, stages


def report(paths: dict[str, Figure], spread: tuple[Figure, Figure], count: int, rounds: int) -> int:
    print(f"rollout benchmark: {count:,} calls per round, {rounds} rounds")
    direct = paths["direct (attribute read)"]
    print(f"{'path':32} {'us/call':>8} {'spread':>11}   {'x direct (per round)':>22}")
    for figure in paths.values():
        ratios = [a / b for a, b in zip(figure.rounds, direct.rounds, strict=True)]
        print(
            f"{figure.name:32} {figure.median:8.3f} {figure.spread:>11}   "
            f"{statistics.median(ratios):8.1f}x ({min(ratios):.1f}-{max(ratios):.1f})"
        )
    cost = paths["config_for(key)"].median
    path_ok = cost < TARGET_CONFIG_FOR_US
    verdict = "PASS" if path_ok else "FAIL"
    print(f"config_for(key) {cost:.3f} us   < {TARGET_CONFIG_FOR_US:g} us {verdict}")
    versions, stages = spread
    worst = max(max(versions.rounds), max(stages.rounds))
    spread_ok = worst < TARGET_PROPAGATION_S
    for figure in (versions, stages):
        print(f"{figure.name:32} {figure.median:8.3f} {figure.spread:>11}   ({FLEET} instances)")
    print(
        f"slowest propagation {worst:.3f} s   < {TARGET_PROPAGATION_S:g} s "
        f"{'PASS' if spread_ok else 'FAIL'}"
    )
    return 0 if path_ok and spread_ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20,000 calls, 3 rounds")
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    count, rounds = (20_000, 3) if args.quick else (args.calls, args.rounds)

    async def run() -> int:
        paths = await measure_paths(count, rounds)
        with RedisServer() as server:
            spread = await propagation(server, rounds)
        return report(paths, spread, count, rounds)

    return asyncio.run(run())


if __name__ == "__main__":
    sys.exit(main())

"""Release queue benchmark: what a :class:`~resilient.release.ReleaseQueue` costs an action,
against ``asyncio.Queue`` in the same run.

Run: ``.venv/bin/python bench/bench_release.py`` (``--quick`` for a short run).

Every contender moves N actions (trivial ``async def`` functions that return at once) from the
producer to their start, on one event loop, with the default event loop policy:

- ``asyncio.Queue``: ``put_nowait`` of each action, and one consumer task that ``get``\\ s
  and awaits it: the floor of a handoff between tasks;
- ``ReleaseQueue``, no throttling: ``submit`` of each (one key each), then ``drain``; options
  that let everything through (batch, ramp and in-flight bound far above N, the whole capacity
  as budget, no brake, no expiry) and ``routine_events`` off: each action still goes through
  every check of a start (the state read, revalidation by policy, the window, the budget) and
  every step of its end (ledger, stats);
- the same with ``routine_events`` on (a ``done`` event per action, to a bus nobody listens
  to): shown, not judged;
- ``ReleaseQueue`` coalescing: N submits over 10,000 keys, so 9 in 10 supersede a waiting
  action of their key, then ``drain``.

The contenders run in interleaved rounds (each round runs each once, in a rotating order), as
the machine is shared: the figure of each is the median of its rounds, with the spread
(lowest to highest round) beside it. A ratio to ``asyncio.Queue`` is taken round by round
(the two measured moments apart, under the same load) and the median of those per-round
ratios is judged, with their spread beside it; the ratio of the medians is shown too.

Memory per queued action: ``tracemalloc`` around N submits to a paused queue (keys and the
``run`` callable made beforehand: they are the caller's), divided by N.

Targets: per action at most 5x ``asyncio.Queue``, with and without coalescing; memory per
queued action under 1 KiB. The exit status is 1 when a target fails.
"""

from __future__ import annotations

import asyncio
import gc
import math
import statistics
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable

from _figures import Figure, run_size

from resilient.events import EventBus
from resilient.release import ReleaseOptions, ReleaseQueue, ReleaseState

KEYS = 10_000
"""Distinct keys of the coalescing contender."""

TARGET_RATIO = 5.0
TARGET_BYTES = 1024


def unthrottled(routine_events: bool) -> ReleaseOptions:
    """Options that let every action through at once."""
    return ReleaseOptions(
        batch=10**9,
        ramp_start=10**9,
        max_in_flight=10**9,
        budget_share=1.0,
        slow_above=1.0,
        halt_above=1.0,
        max_age=math.inf,
        routine_events=routine_events,
    )


STATE = ReleaseState(version=1, capacity=100)


def state() -> ReleaseState:
    return STATE


async def action() -> None:
    return None


Contender = Callable[[list[str]], Awaitable[float]]


async def asyncio_queue(keys: list[str]) -> float:
    """Seconds to put N actions and get and start each."""
    queue: asyncio.Queue[Callable[[], Awaitable[None]]] = asyncio.Queue()
    count = len(keys)

    async def consume() -> None:
        for _ in range(count):
            run = await queue.get()
            await run()

    started = time.perf_counter()
    consumer = asyncio.get_running_loop().create_task(consume())
    for _ in keys:
        queue.put_nowait(action)
    await consumer
    return time.perf_counter() - started


def release_queue(routine_events: bool) -> Contender:
    options = unthrottled(routine_events)

    async def contender(keys: list[str]) -> float:
        """Seconds to submit N actions and drain the queue (every one started and ended)."""
        queue = ReleaseQueue(state, options, events=EventBus(log_when_unobserved=False))
        started = time.perf_counter()
        for key in keys:
            queue.submit(key, action, based_on=1)
        await queue.drain()
        elapsed = time.perf_counter() - started
        await queue.close()
        return elapsed

    return contender


async def measure(count: int, rounds: int) -> dict[str, Figure]:
    unique = [f"engine-{i}" for i in range(count)]
    coalesced = [f"engine-{i % KEYS}" for i in range(count)]
    contenders: list[tuple[str, Contender, list[str]]] = [
        ("asyncio.Queue put+get", asyncio_queue, unique),
        ("ReleaseQueue", release_queue(routine_events=False), unique),
        ("ReleaseQueue, routine events on", release_queue(routine_events=True), unique),
        (f"ReleaseQueue coalescing over {KEYS:,} keys", release_queue(False), coalesced),
    ]
    figures = {name: Figure(name, []) for name, _, _ in contenders}
    await contenders[1][1](unique[:1000])  # warm up
    for round_ in range(rounds):
        shift = round_ % len(contenders)
        for name, contender, keys in contenders[shift:] + contenders[:shift]:
            gc.collect()
            seconds = await contender(keys)
            figures[name].rounds.append(seconds / count * 1e6)
    return figures


async def bytes_per_queued_action(count: int) -> float:
    """Traced bytes a paused queue holds per queued action (keys and run made beforehand)."""
    queue = ReleaseQueue(state, unthrottled(False), events=EventBus(log_when_unobserved=False))
    queue.pause("measuring memory")
    keys = [f"engine-{i}" for i in range(count)]
    queue.submit("warm-up", action, based_on=1)  # the scheduler task, made once
    await asyncio.sleep(0)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for key in keys:
        queue.submit(key, action, based_on=1)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    await queue.close()
    return (after - before) / count


def report(figures: dict[str, Figure], memory: float, count: int, rounds: int) -> int:
    base = figures["asyncio.Queue put+get"]
    print(f"release queue benchmark: {count:,} actions per round, {rounds} rounds")
    print(
        f"{'contender':42} {'us/action':>9} {'spread':>11}   "
        f"{'x asyncio.Queue (per round)':>28} {'x (medians)':>11}  target"
    )
    failed = False
    for name, figure in figures.items():
        line = f"{name:42} {figure.median:9.2f} {figure.spread:>11}"
        if name == base.name:
            print(line)
            continue
        ratios = [ours / theirs for ours, theirs in zip(figure.rounds, base.rounds, strict=True)]
        ratio = statistics.median(ratios)
        per_round = f"{ratio:.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"
        line += f"   {per_round:>28} {figure.median / base.median:10.2f}x"
        if "routine events on" in name:
            print(f"{line}  (shown)")
            continue
        passed = ratio <= TARGET_RATIO
        failed |= not passed
        print(f"{line}  <= {TARGET_RATIO:g}x {'PASS' if passed else 'FAIL'}")
    passed = memory < TARGET_BYTES
    failed |= not passed
    print(
        f"{'memory per queued action (tracemalloc)':42} {memory:7.0f} B"
        f"{'':>57}  < {TARGET_BYTES} B {'PASS' if passed else 'FAIL'}"
    )
    return 1 if failed else 0


def main() -> int:
    count, rounds = run_size(__doc__, "actions", 100_000, 7, quick=10_000)

    async def run() -> int:
        figures = await measure(count, rounds)
        memory = await bytes_per_queued_action(count)
        return report(figures, memory, count, rounds)

    return asyncio.run(run())


if __name__ == "__main__":
    sys.exit(main())

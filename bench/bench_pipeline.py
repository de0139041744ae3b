"""Pipeline benchmark: what a whole guarded call costs when the dependency answers, against
stamina's retry alone, in the same run.

Run: ``.venv/bin/python bench/bench_pipeline.py`` (``--quick`` for a short run).

Every contender awaits N calls in a row, on one event loop, of one ``async def`` that returns
at once (a dependency that answers):

- a bare ``await fn()``: the floor every other figure is taken from;
- the pipeline, as the README composes it: a :class:`~resilient.retry.RetryPolicy` with a
  shared :class:`~resilient.retry.RetryBudget` (3 attempts, 10 s cap) whose every attempt
  gets its :class:`~resilient.retry.Deadline` and runs through a
  :class:`~resilient.breaker.CircuitBreaker` (``calling()``), then a
  :class:`~resilient.bulkhead.Bulkhead` (``acquire()``), then ``asyncio.timeout`` at the
  attempt's remaining time;
- the same pipeline without the per-attempt ``asyncio.timeout`` (shown, not judged: what the
  timeout itself costs is asyncio's);
- stamina alone: a function decorated with ``@stamina.retry(on=ConnectionError,
  attempts=3)`` (no budget, no breaker, no bulkhead, no timeout on an attempt).

The contenders run in interleaved rounds (each round runs each once, in a rotating order), as
the machine is shared: the figure of each is its overhead over the bare await of the same
round, in microseconds a call, the median of its rounds with the spread (lowest to highest
round) beside it. The ratio of the pipeline's overhead to stamina's is taken round by round,
and the median of those ratios is judged, with their spread beside it.

Target (issue 12): the whole pipeline cheaper than stamina alone (ratio below 1). The exit
status is 1 when it fails.
"""

from __future__ import annotations

import asyncio
import statistics
import sys

import stamina
from _figures import Figure, Run, interleaved, over, run_size, timed_calls

from resilient.breaker import CircuitBreaker
from resilient.bulkhead import Bulkhead
from resilient.events import EventBus
from resilient.retry import Deadline, RetryBudget, RetryOptions, RetryPolicy

TARGET_RATIO = 1.0
ATTEMPTS = 3


async def answer() -> int:
    return 1


def contenders() -> dict[str, Run]:
    quiet = EventBus(log_when_unobserved=False)
    options = RetryOptions(attempts=ATTEMPTS, timeout=10.0, retry_on=(ConnectionError,))
    retry = RetryPolicy("llm", options, budget=RetryBudget(events=quiet), events=quiet)
    breaker = CircuitBreaker("llm", events=quiet)
    bulkhead = Bulkhead("llm", events=quiet)

    async def attempt(deadline: Deadline) -> int:
        async with breaker.calling(), bulkhead.acquire():
            async with asyncio.timeout(deadline.remaining()):
                return await answer()

    async def attempt_untimed(deadline: Deadline) -> int:
        async with breaker.calling(), bulkhead.acquire():
            return await answer()

    @stamina.retry(on=ConnectionError, attempts=ATTEMPTS)
    async def with_stamina() -> int:
        return await answer()

    return {
        "bare await": timed_calls(answer),
        "pipeline (retry+budget, breaker, bulkhead, timeout)": timed_calls(
            lambda: retry.call_with_deadline(attempt)
        ),
        "pipeline without asyncio.timeout": timed_calls(
            lambda: retry.call_with_deadline(attempt_untimed)
        ),
        "stamina @retry alone": timed_calls(with_stamina),
    }


async def measure(count: int, rounds: int) -> dict[str, Figure]:
    figures = await interleaved(contenders(), count, rounds)
    return over(figures, "bare await") | {"bare await": figures["bare await"]}


def report(figures: dict[str, Figure], count: int, rounds: int) -> int:
    print(f"pipeline benchmark: {count:,} successful calls per round, {rounds} rounds")
    print(f"{'contender':52} {'us/call over bare':>17} {'spread':>13}")
    bare = figures.pop("bare await")
    for figure in figures.values():
        print(f"{figure.name:52} {figure.median:17.2f} {figure.spread:>13}")
    print(f"{'(bare await itself)':52} {bare.median:17.2f} {bare.spread:>13}")
    ours = figures["pipeline (retry+budget, breaker, bulkhead, timeout)"].rounds
    theirs = figures["stamina @retry alone"].rounds
    ratios = [mine / stamina_ for mine, stamina_ in zip(ours, theirs, strict=True)]
    ratio = statistics.median(ratios)
    passed = ratio < TARGET_RATIO
    print(
        f"{'pipeline / stamina alone':52} {ratio:16.3f}x ({min(ratios):.3f}-{max(ratios):.3f})"
        f"   < {TARGET_RATIO}x {'PASS' if passed else 'FAIL'}"
    )
    return 0 if passed else 1


def main() -> int:
    count, rounds = run_size(__doc__, "calls", 50_000, 7, quick=5_000)
    return report(asyncio.run(measure(count, rounds)), count, rounds)


if __name__ == "__main__":
    sys.exit(main())

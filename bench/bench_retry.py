"""Retry benchmark: what :class:`~resilient.retry.RetryPolicy` costs a call that succeeds at
once, against tenacity and stamina, in the same run.

Run: ``.venv/bin/python bench/bench_retry.py`` (``--quick`` for a short run).

Every contender awaits N calls in a row, on one event loop, of one ``async def`` that returns
at once (a dependency that answers), each retrying on ``ConnectionError``, 3 attempts:

- a bare ``await fn()``: the floor every other figure is taken from;
- ``RetryPolicy.call(fn)``, no budget, as tenacity and stamina have none;
- ``RetryPolicy.call(fn)`` with a :class:`~resilient.retry.RetryBudget` (each call records a
  request in it), and ``RetryPolicy.call_with_deadline(fn)``: shown, not judged;
- tenacity: a function decorated with ``@tenacity.retry(stop=stop_after_attempt(3),
  wait=wait_random_exponential(...), retry=retry_if_exception_type(ConnectionError))``;
- stamina: a function decorated with ``@stamina.retry(on=ConnectionError, attempts=3)``.

The contenders run in interleaved rounds (each round runs each once, in a rotating order), as
the machine is shared: the figure of each is its overhead over the bare await of the same
round, in microseconds a call; the median of its rounds, with the spread (lowest to highest
round) beside it. The ratio of RetryPolicy's overhead to stamina's is taken round by round
and the median of those ratios is judged, with their spread beside it.

Target (issue 12): RetryPolicy's success-path overhead at most a quarter of stamina's. The
exit status is 1 when it fails.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys

import stamina
import tenacity
from _figures import Figure, Run, interleaved, over, timed_calls

from resilient.events import EventBus
from resilient.retry import Deadline, RetryBudget, RetryOptions, RetryPolicy

TARGET_RATIO = 0.25
ATTEMPTS = 3


async def answer() -> int:
    return 1


async def answer_by(deadline: Deadline) -> int:
    return 1


def contenders() -> dict[str, Run]:
    quiet = EventBus(log_when_unobserved=False)
    options = RetryOptions(attempts=ATTEMPTS, retry_on=(ConnectionError,))
    policy = RetryPolicy("bench", options, events=quiet)
    budgeted = RetryPolicy("bench", options, budget=RetryBudget(events=quiet), events=quiet)

    @tenacity.retry(
        stop=tenacity.stop_after_attempt(ATTEMPTS),
        wait=tenacity.wait_random_exponential(multiplier=0.5, max=8.0),
        retry=tenacity.retry_if_exception_type(ConnectionError),
        reraise=True,
    )
    async def with_tenacity() -> int:
        return 1

    @stamina.retry(on=ConnectionError, attempts=ATTEMPTS)
    async def with_stamina() -> int:
        return 1

    return {
        "bare await": timed_calls(answer),
        "RetryPolicy.call": timed_calls(lambda: policy.call(answer)),
        "RetryPolicy.call, budget": timed_calls(lambda: budgeted.call(answer)),
        "RetryPolicy.call_with_deadline": timed_calls(lambda: policy.call_with_deadline(answer_by)),
        "tenacity @retry": timed_calls(with_tenacity),
        "stamina @retry": timed_calls(with_stamina),
    }


async def measure(count: int, rounds: int) -> dict[str, Figure]:
    figures = await interleaved(contenders(), count, rounds)
    return over(figures, "bare await") | {"bare await": figures["bare await"]}


def report(figures: dict[str, Figure], count: int, rounds: int) -> int:
    print(f"retry benchmark: {count:,} successful calls per round, {rounds} rounds")
    print(f"{'contender':34} {'us/call over bare':>17} {'spread':>13}")
    bare = figures.pop("bare await")
    for figure in figures.values():
        print(f"{figure.name:34} {figure.median:17.2f} {figure.spread:>13}")
    print(f"{'(bare await itself)':34} {bare.median:17.2f} {bare.spread:>13}")
    ours, theirs = figures["RetryPolicy.call"].rounds, figures["stamina @retry"].rounds
    ratios = [mine / stamina_ for mine, stamina_ in zip(ours, theirs, strict=True)]
    ratio = statistics.median(ratios)
    passed = ratio <= TARGET_RATIO
    print(
        f"{'RetryPolicy.call / stamina':34} {ratio:16.3f}x ({min(ratios):.3f}-{max(ratios):.3f})"
        f"   <= {TARGET_RATIO}x {'PASS' if passed else 'FAIL'}"
    )
    return 0 if passed else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5,000 calls, 3 rounds")
    parser.add_argument("--calls", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    count, rounds = (5_000, 3) if args.quick else (args.calls, args.rounds)
    return report(asyncio.run(measure(count, rounds)), count, rounds)


if __name__ == "__main__":
    sys.exit(main())

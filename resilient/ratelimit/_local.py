"""Rate limits kept in this process: GCRA with one integer per key, in bounded memory.

:class:`LocalLimiter` decides with the same integer formula as every other limiter
(:func:`resilient.ratelimit._gcra.gcra`), on time read from the injected clock as
``int(clock.monotonic() * 1_000_000)`` microseconds. It serves alone (one process) and as the
fallback of a :class:`~resilient.ratelimit.FailOpenGuard`, holding this instance's share of a
global limit.

Memory is bounded in bytes: at most ``options.max_memory`` for the table, whatever keys
clients send. A key of up to 32 characters is kept as it is (at most 204 bytes as a str); a
longer one is kept as its 16-byte BLAKE2b digest, so a client that sends 8 KB keys costs what
one with short keys costs (two such keys share an allowance only if their 128-bit digests
collide). With an entry measured at :data:`ENTRY_BYTES` at the worst (a 32-character key of
4-byte code points, its integer, its slot in the table, and the table's copy during a sweep),
the table holds at most ``max_memory // ENTRY_BYTES`` keys (:attr:`LocalLimiter.max_keys`).

A key whose theoretical arrival time (TAT) is not after now is back to its full allowance, and
forgetting it changes no decision: such keys are swept out, in one pass, whenever the table
doubles (amortised O(1) per new key). When the table is full of live keys (every one of them
still owes time), a new key is not given an entry of its own: all such keys share one
*overflow* entry, limited together as if they were one key. That never lets any key exceed its
own rate (sharing an allowance is stricter than having one), it never touches a key that has
an entry (a flood of new keys cannot deny the keys already being served), and once room frees
up a new key starts from the overflow entry's debt, so passing through the overflow never
resets anyone's allowance. New keys may be denied while the overflow lasts: that is the price
of the bound, paid only when more than ``max_keys`` keys are live at once. The overflow is
reported by an ``overflow`` event (:class:`~resilient.ratelimit.LocalLimiterOverflow`) and
counted in :attr:`LocalLimiter.stats`.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from resilient._validate import Instance, Integer, check
from resilient.clock import SYSTEM_CLOCK, Clock, SystemClock
from resilient.errors import ArgumentTypeError
from resilient.events import DEFAULT_EVENTS, Emitter, EventBus
from resilient.ratelimit._events import LOCAL_EVENT_SOURCE, LocalLimiterOverflow
from resilient.ratelimit._gcra import NEVER, gcra, largest_cost
from resilient.ratelimit._options import (
    DEFAULT_LOCAL_LIMITER_OPTIONS,
    ENTRY_BYTES,
    LocalLimiterOptions,
)
from resilient.ratelimit._types import (
    Decision,
    DecisionSource,
    Rate,
    RateLookup,
    never_decision,
    new_decision,
    rate_for_key,
)

__all__ = ["INLINE_KEY_CHARS", "LocalLimiter", "LocalLimiterStats"]

INLINE_KEY_CHARS = 32
"""Keys up to this many characters are kept as they are; longer ones as a 16-byte digest."""

_FIRST_SWEEP_AT = 1024
"""Below this many keys the table is never swept (sweeping a small table buys nothing)."""

_MAX_CACHED_RATES = 1024
"""Integer parameters are cached per distinct per-key rate, up to this many (then reset)."""

_PRIMARY = DecisionSource.PRIMARY
_new_tuple = tuple.__new__
_monotonic_ns = time.monotonic_ns


@dataclass(slots=True)
class LocalLimiterStats:
    """Counters of one :class:`LocalLimiter` since it was made (for reports and tests)."""

    sweeps: int = 0
    """Passes over the table that removed the keys back at full allowance."""
    evicted: int = 0
    """Keys removed by sweeps (each was at full allowance: no decision changed)."""
    overflowed: int = 0
    """Decisions taken on the shared overflow entry because the table was full of live keys."""


class LocalLimiter:
    """GCRA rate limits per key, in this process, in at most ``options.max_memory`` bytes.

    ``rate`` is the default rate; ``rates`` gives per-key rates (a mapping, or a function that
    returns a key's rate or None for the default); ``decide(rate=...)`` overrides both for one
    call. Guarantees, per key: in any window of ``period`` seconds at most ``limit + burst``
    units are allowed, always (the overflow included: see the module docstring); and requests
    of cost 1 spaced at least ``rate.emission_us`` microseconds apart are never denied while
    the key has an entry of its own, that is unless more than ``max_keys`` keys are live at
    once. A request whose cost exceeds the rate's ``largest_cost`` (``burst + 1``) is denied
    with an infinite ``retry_after`` and a reason, as by every limiter sharing the formula.

    :meth:`decide_now` is the synchronous hot path; :meth:`decide` implements the
    :class:`~resilient.ratelimit.Limiter` protocol. Use one instance from one thread.
    """

    never_waits: ClassVar[bool] = True
    """:meth:`decide` never waits, so a guard awaits it without a time budget."""

    def __init__(
        self,
        rate: Rate,
        options: LocalLimiterOptions = DEFAULT_LOCAL_LIMITER_OPTIONS,
        *,
        rates: RateLookup | None = None,
        clock: Clock = SYSTEM_CLOCK,
        events: EventBus = DEFAULT_EVENTS,
    ) -> None:
        self.rate = check("LocalLimiter.rate", rate, Instance(Rate, "a Rate"))
        self.options = check(
            "LocalLimiter.options", options, Instance(LocalLimiterOptions, "a LocalLimiterOptions")
        )
        if rates is not None and not (isinstance(rates, Mapping) or callable(rates)):
            raise ArgumentTypeError(
                f"LocalLimiter.rates must be a mapping or a callable, got {rates!r}"
            )
        max_keys = options.max_memory // ENTRY_BYTES
        self.max_keys = max_keys
        """Keys the table holds at most: ``options.max_memory // ENTRY_BYTES``."""
        self.stats = LocalLimiterStats()
        self._rates = rates
        self._clock = clock
        self._emit = Emitter(LOCAL_EVENT_SOURCE, events, clock)
        # The system clock is read as integer nanoseconds (exact, and faster than a float).
        self._system_clock = type(clock) is SystemClock
        self._emission_us = rate.emission_us
        self._tolerance_us = rate.tolerance_us
        self._params: dict[int, tuple[Rate, int, int]] = {}
        self._tats: dict[str | bytes, int] = {}
        self._sweep_at = min(max_keys, _FIRST_SWEEP_AT)
        self._sweep_every = max(1, max_keys // 8)
        self._new_since_sweep = 0
        self._full_until = 0
        self._overflowing = False
        self._overflow_tat = 0

    def __len__(self) -> int:
        """Keys tracked now (each holds one integer)."""
        return len(self._tats)

    def rate_for(self, key: str) -> Rate:
        """The rate ``key`` is limited to when ``decide`` is not given one."""
        return rate_for_key(self._rates, self.rate, key)

    async def decide(self, key: str, *, cost: int = 1, rate: Rate | None = None) -> Decision:
        """Decide one request of ``cost`` units for ``key`` (source PRIMARY); never waits.

        ``cost`` 0 reads the key's state without consuming anything. Raises
        :class:`~resilient.errors.ArgumentValueError` for a cost that is not an int >= 0, and
        never on a fault (there is none to have).
        """
        return self._decide(key, cost, rate)

    def decide_now(self, key: str, *, cost: int = 1, rate: Rate | None = None) -> Decision:
        """:meth:`decide`, synchronously: for callers outside a coroutine."""
        return self._decide(key, cost, rate)

    def _decide(self, key: str, cost: int, rate: Rate | None) -> Decision:
        # Positional: a call with keywords costs a tenth of a decision more.
        if rate is None and self._rates is None:
            emission, tolerance = self._emission_us, self._tolerance_us
        else:
            emission, tolerance = self._params_for(key, rate)
        if cost != 1 or type(cost) is not int:
            _check_cost(cost)
        if self._system_clock:
            now = _monotonic_ns() // 1000
        else:
            now = int(self._clock.monotonic() * 1_000_000)
        tats = self._tats
        try:
            tat = tats.get(key)
        except TypeError:  # an unhashable key: refused just below
            tat = None
        if tat is None:
            if type(key) is not str or len(key) > INLINE_KEY_CHARS:
                key = _stored_key(key)  # type: ignore[assignment]  # a long key's digest
                tat = tats.get(key)
            if tat is None:
                tat = self._admit(now)
                if tat is None:
                    return self._decide_overflow(now, emission, tolerance, cost)
                tats = self._tats  # a sweep may have made a new table
        # gcra(), inlined (tests check both give the same decisions); a new key starts at now,
        # or from the overflow's debt.
        if tat < now:
            tat = now
        new_tat = tat + emission * cost
        allow_at = new_tat - tolerance - emission
        if allow_at <= now:
            if cost:  # cost 0 only reads: it never makes an entry
                tats[key] = new_tat
            # new_decision(True, ...) without the call (a tenth of a decision).
            return _new_tuple(
                Decision,
                (True, (now - allow_at) // emission, 0.0, (new_tat - now) / 1e6, _PRIMARY, ""),
            )
        remaining = max(0, (now - (tat - tolerance - emission)) // emission)
        if emission * cost - emission > tolerance:
            return never_decision(
                remaining, (tat - now) / 1e6, cost, largest_cost(emission, tolerance)
            )
        return new_decision(
            False, remaining, (allow_at - now) / 1e6, (tat - now) / 1e6, _PRIMARY, ""
        )

    def _admit(self, now: int) -> int | None:
        """Room for a new key: where its TAT starts (the overflow's debt, or anything not after
        now), or None when the table is full of live keys (the key then overflows)."""
        self._new_since_sweep += 1
        if len(self._tats) >= self._sweep_at:
            self._make_room(now)
        if len(self._tats) >= self.max_keys:
            return None
        return self._overflow_tat

    def _decide_overflow(self, now: int, emission: int, tolerance: int, cost: int) -> Decision:
        """Decide for a new key while the table is full: on the one shared overflow entry."""
        self.stats.overflowed += 1
        result = gcra(self._overflow_tat, now, emission, tolerance, cost)
        if result.allowed:
            self._overflow_tat = result.new_tat_us
        if result.retry_after_us == NEVER:
            return never_decision(
                result.remaining,
                result.reset_after_us / 1e6,
                cost,
                largest_cost(emission, tolerance),
            )
        return new_decision(
            result.allowed,
            result.remaining,
            result.retry_after_us / 1e6,
            result.reset_after_us / 1e6,
            _PRIMARY,
            "",
        )

    def _make_room(self, now: int) -> None:
        """Sweep out keys back at full allowance; when the table stays full, overflow.

        A sweep costs one pass over the table. Below ``max_keys`` it runs each time the table
        doubles; a full table is swept again only after ``max_keys // 8`` more new keys and once
        some key has expired by then. Either way: amortised O(1) per new key, even in a flood.
        """
        tats = self._tats
        if len(tats) >= self.max_keys and (
            self._new_since_sweep < self._sweep_every or now < self._full_until
        ):
            return
        live = {key: tat for key, tat in tats.items() if tat > now}
        self._new_since_sweep = 0
        self.stats.sweeps += 1
        self.stats.evicted += len(tats) - len(live)
        self._tats = live
        self._sweep_at = min(self.max_keys, max(_FIRST_SWEEP_AT, 2 * len(live)))
        full = len(live) >= self.max_keys
        if full:
            self._full_until = min(live.values())
            if not self._overflowing:
                self._emit(LocalLimiterOverflow(self.max_keys, len(live)))
        self._overflowing = full

    def _params_for(self, key: str, rate: Rate | None) -> tuple[int, int]:
        """Emission and tolerance (microseconds) of the rate in effect for ``key``."""
        if rate is None:
            rate = self.rate_for(key)
        cached = self._params.get(id(rate))
        if cached is not None and cached[0] is rate:
            return cached[1], cached[2]
        if not isinstance(rate, Rate):
            raise ArgumentTypeError(f"rate for key {key!r} must be a Rate, got {rate!r}")
        if len(self._params) >= _MAX_CACHED_RATES:
            self._params.clear()
        # The cached entry keeps ``rate`` alive, so its id cannot be reused while cached.
        self._params[id(rate)] = (rate, rate.emission_us, rate.tolerance_us)
        return rate.emission_us, rate.tolerance_us

    def __repr__(self) -> str:
        return f"LocalLimiter(rate={self.rate}, keys={len(self._tats)}, max_keys={self.max_keys})"


_COST = Integer(min=0)


def _check_cost(cost: int) -> None:
    check("LocalLimiter.decide(cost)", cost, _COST)


def _stored_key(key: object) -> str | bytes:
    """What the table keeps for ``key``: the key itself if short, else its 16-byte digest.

    Any str is a key, lone surrogates included (``surrogatepass`` encodes every str, and
    distinct strs to distinct bytes); anything else is refused.
    """
    if type(key) is not str:
        raise ArgumentTypeError(f"LocalLimiter.decide(key) must be a str, got {key!r:.100}")
    if len(key) <= INLINE_KEY_CHARS:
        return key
    return hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=16).digest()

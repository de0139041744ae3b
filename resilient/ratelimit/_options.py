"""Every option of the rate limiters and the fail-open guard, with its default."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal

from resilient._validate import (
    Choice,
    Integer,
    Number,
    Text,
    TupleOf,
    check_fields,
    option,
)
from resilient.breaker import BreakerOptions
from resilient.errors import LimiterUnavailable

__all__ = [
    "DEFAULT_GUARD_OPTIONS",
    "DEFAULT_LOCAL_LIMITER_OPTIONS",
    "DEFAULT_MAX_MEMORY",
    "DEFAULT_PREFIX",
    "DEFAULT_REDIS_LIMITER_OPTIONS",
    "ENTRY_BYTES",
    "GUARD_BREAKER_OPTIONS",
    "MAX_KEY_TTL_MARGIN",
    "GuardMode",
    "GuardOptions",
    "LocalLimiterOptions",
    "RedisLimiterOptions",
    "TimeSource",
]

ENTRY_BYTES = 400
"""Bytes one key of a :class:`~resilient.ratelimit.LocalLimiter` costs at the worst, measured
with ``tracemalloc`` (``tests/resilient/test_ratelimit_local.py`` checks it): a 32-character
key of 4-byte code points (204 bytes), its integer state (36), its slot in the table (about
50, more just after the table grows), and its slot in the new table while a sweep copies."""

DEFAULT_MAX_MEMORY = 32 * 2**20
"""Bytes a :class:`~resilient.ratelimit.LocalLimiter` table holds at most: 32 MiB, that is
83,886 keys at :data:`ENTRY_BYTES` each."""

MAX_KEY_TTL_MARGIN = 10 * 365 * 24 * 3600.0
"""The longest ``key_ttl_margin``, ten years: the script's expiry in milliseconds then stays an
integer Redis accepts (below 10^14, where Lua writes numbers without an exponent)."""

DEFAULT_PREFIX = "rl:"
"""The key prefix of a :class:`~resilient.ratelimit.RedisLimiter`."""

TimeSource = Literal["server", "clock"]
"""Where a :class:`~resilient.ratelimit.RedisLimiter` reads the time: the Redis server, or its
injected clock."""


@dataclass(frozen=True, slots=True)
class LocalLimiterOptions:
    """How a :class:`~resilient.ratelimit.LocalLimiter` bounds its memory."""

    max_memory: int = option(DEFAULT_MAX_MEMORY, Integer(min=ENTRY_BYTES, max=2**40))
    """Bytes the limiter's table holds at most, whatever keys clients send; past it, new keys
    share one overflow allowance (see the limiter's docstring)."""

    def __post_init__(self) -> None:
        check_fields(self)


DEFAULT_LOCAL_LIMITER_OPTIONS = LocalLimiterOptions()
"""A table of at most :data:`DEFAULT_MAX_MEMORY` bytes."""


@dataclass(frozen=True, slots=True)
class RedisLimiterOptions:
    """How a :class:`~resilient.ratelimit.RedisLimiter` stores keys and talks to Redis."""

    prefix: str = option(DEFAULT_PREFIX, Text())
    """Keys are stored as ``prefix + key``."""
    time_source: TimeSource = option("server", Choice(values=("server", "clock")))
    """``"server"``: the Redis server's ``TIME`` (instances whose clocks disagree still share one
    limit). ``"clock"``: the injected clock, as ``int(clock.monotonic() * 1_000_000)``
    microseconds exactly as a :class:`~resilient.ratelimit.LocalLimiter` reads it (virtual time
    in tests; every instance sharing the keys must then share that clock)."""
    round_trip_timeout: float = option(1.0, Number(min=0, min_open=True, unit="seconds"))
    """Seconds of real time one pipelined round trip may take, including a reconnect and a
    script reload; past it every decision of the batch raises
    :class:`~resilient.errors.RedisLimiterUnavailable` and the connection is dropped (a
    black-holed Redis cannot hold callers forever). A guard's own, shorter budget applies to
    each caller on top."""
    max_batch: int = option(512, Integer(min=1))
    """At most this many decisions go in one pipeline; more wait for the next."""
    key_ttl_margin: float = option(0.0, Number(min=0, max=MAX_KEY_TTL_MARGIN, unit="seconds"))
    """Seconds a key outlives its reset time. Redis expires keys in real time, so with
    ``time_source="clock"`` and a clock slower than real time (a virtual clock in tests) raise
    it above the real duration of the run, or a key may vanish while it still matters."""

    def __post_init__(self) -> None:
        check_fields(self)


DEFAULT_REDIS_LIMITER_OPTIONS = RedisLimiterOptions()
"""Prefix ``rl:``, server time, round trips time out after 1 s, batches of up to 512
decisions, keys expire at reset."""


class GuardMode(enum.Enum):
    """What a :class:`~resilient.ratelimit.FailOpenGuard` answers when its primary cannot."""

    FALLBACK = "fallback"
    """Decide with the fallback limiter (this instance's share of the limit)."""
    PASS_THROUGH = "pass_through"
    """Allow every request."""
    FAIL_CLOSED = "fail_closed"
    """Opt-in: raise :class:`~resilient.errors.LimiterUnavailable` (an HTTP front answers 503,
    never 429)."""


def _is_exception_type(value: object) -> bool:
    return isinstance(value, type) and issubclass(value, BaseException)


@dataclass(frozen=True, slots=True)
class GuardOptions:
    """How a :class:`~resilient.ratelimit.FailOpenGuard` degrades."""

    timeout: float = option(0.020, Number(min=0, min_open=True, unit="seconds"))
    """Seconds (on the guard's clock) the primary may take before the guard answers without
    it."""
    mode: GuardMode = option(GuardMode.FALLBACK, Choice(GuardMode))
    """What answers when the primary cannot."""
    instances: int = option(1, Integer(min=1))
    """How many instances share the global limit; a rate passed to ``decide`` is divided by it
    for the fallback. The fallback's own rates are given when it is made."""
    unavailable: tuple[type[BaseException], ...] = option(
        (OSError, LimiterUnavailable), TupleOf(_is_exception_type, "a tuple of exception types")
    )
    """Errors reported as "primary unavailable" (the rest as "primary error"; both degrade the
    same way). ``OSError`` covers ``ConnectionError`` and ``TimeoutError``; add a client's own
    connection errors (e.g. redis-py's, which are no ``OSError``) to have them named so."""
    fault_keys: int = option(100, Integer(min=1))
    """A ``suspected_limiter_fault`` event is emitted when the primary denies at least this
    many distinct keys within ``fault_window`` seconds (a broken limiter looks like that)."""
    fault_window: float = option(1.0, Number(min=0, min_open=True, unit="seconds"))
    """See ``fault_keys``."""

    def __post_init__(self) -> None:
        check_fields(self)


DEFAULT_GUARD_OPTIONS = GuardOptions()
"""20 ms budget, fall back to the local share, one instance, fault report at 100 keys / 1 s."""

GUARD_BREAKER_OPTIONS = BreakerOptions(failure_threshold=5, reset_timeout=5.0)
"""The default breaker of a guard: open after 5 faults in a row, probe the primary every 5 s."""

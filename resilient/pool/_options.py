"""Every option of a :class:`~resilient.pool.ConnectGate` and a
:class:`~resilient.pool.BoundedPool`, with its default and where the default comes from.

The anchors (issue 10): MongoDB drivers' ``maxConnecting`` (2 connections being established at
once per pool, the one explicit connect gate in wide use); gRPC's connection backoff (1 s
initial, x1.6, +-20% jitter, 120 s at most, 20 s minimum connect timeout); HikariCP's pool
defaults (10 connections, 30 s to get one, 10 minutes idle, 30 minutes lifetime).
"""

from __future__ import annotations

from dataclasses import dataclass

from resilient._validate import Instance, Integer, Number, TupleOf, check, check_fields, option
from resilient.breaker import BreakerOptions
from resilient.clock import Clock
from resilient.errors import ArgumentValueError
from resilient.events import EventBus
from resilient.ratelimit import Rate

__all__ = [
    "DEFAULT_BACKOFF_INITIAL",
    "DEFAULT_BACKOFF_JITTER",
    "DEFAULT_BACKOFF_MAX",
    "DEFAULT_BACKOFF_MULTIPLIER",
    "DEFAULT_CONNECT_RATE",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_GATE_OPTIONS",
    "DEFAULT_MAX_CONNECTING",
    "DEFAULT_POOL_OPTIONS",
    "GATE_BREAKER_OPTIONS",
    "GateOptions",
    "PoolOptions",
]

DEFAULT_MAX_CONNECTING = 2
"""Connections being established at once per destination: MongoDB drivers' ``maxConnecting``."""

DEFAULT_CONNECT_RATE = Rate(10, 1.0, burst=2)
"""Connect attempts per destination and process: 10 a second, 3 at once. No pool names a rate
(issue 10: almost none caps how fast connections are made); 10/s fills a pool of HikariCP's
default size in a second, and a fleet of 100 replicas restarting together then opens at most
1,300 connections in its first second, where an unbounded refill opens them all at once."""

DEFAULT_BACKOFF_INITIAL = 1.0
"""Seconds before the first reconnect after a failure: gRPC's ``INITIAL_BACKOFF``."""

DEFAULT_BACKOFF_MULTIPLIER = 1.6
"""Each further failure waits this much longer: gRPC's ``MULTIPLIER``."""

DEFAULT_BACKOFF_JITTER = 0.2
"""Each backoff is drawn uniformly within +-20% of its nominal value: gRPC's ``JITTER``, so
that "backoffs started at the same time disperse"."""

DEFAULT_BACKOFF_MAX = 120.0
"""The longest backoff: gRPC's ``MAX_BACKOFF``."""

DEFAULT_CONNECT_TIMEOUT = 20.0
"""Seconds a connect attempt may take at least: gRPC's ``MIN_CONNECT_TIMEOUT`` (an attempt may
take the current backoff if that is longer, as gRPC's does)."""

GATE_BREAKER_OPTIONS = BreakerOptions(failure_threshold=5, reset_timeout=DEFAULT_BACKOFF_MAX / 4)
"""The breaker a gate makes when none is given: 5 failed connects (or churned connections) in a
row stop connecting for 30 s, then one probe. The backoff spaces attempts while a destination
fails; the breaker stops them while it keeps failing, and its events say so."""


def _is_exception_type(kind: object) -> bool:
    return isinstance(kind, type) and issubclass(kind, BaseException)


@dataclass(frozen=True, slots=True)
class GateOptions:
    """How fast, how many at once, and how politely a :class:`~resilient.pool.ConnectGate`
    lets new connections to one destination be made."""

    connect_rate: Rate = option(DEFAULT_CONNECT_RATE, Instance(Rate, "a Rate"))
    """Connect attempts allowed (GCRA, as the rate limiters: in any ``period`` at most
    ``limit + burst``). See :data:`DEFAULT_CONNECT_RATE`."""
    max_connecting: int = option(DEFAULT_MAX_CONNECTING, Integer(min=1))
    """Connect attempts in progress at once. See :data:`DEFAULT_MAX_CONNECTING`."""
    connect_timeout: float = option(
        DEFAULT_CONNECT_TIMEOUT, Number(min=0, min_open=True, unit="seconds")
    )
    """Seconds one attempt may take (or the current backoff, if longer); past it the attempt
    is cancelled and counts as a failure. See :data:`DEFAULT_CONNECT_TIMEOUT`."""
    backoff_initial: float = option(DEFAULT_BACKOFF_INITIAL, Number(min=0, unit="seconds"))
    """Seconds no attempt starts after a failure. See :data:`DEFAULT_BACKOFF_INITIAL`."""
    backoff_multiplier: float = option(DEFAULT_BACKOFF_MULTIPLIER, Number(min=1, unit="times"))
    """Growth of the backoff with each failure in a row. See :data:`DEFAULT_BACKOFF_MULTIPLIER`."""
    backoff_jitter: float = option(DEFAULT_BACKOFF_JITTER, Number(min=0, max=1, unit="share"))
    """Each backoff is ``nominal * (1 + backoff_jitter * U)``, ``U`` uniform in [-1, 1). See
    :data:`DEFAULT_BACKOFF_JITTER`; 0 makes the schedule exact (tests)."""
    backoff_max: float = option(DEFAULT_BACKOFF_MAX, Number(min=0, unit="seconds"))
    """The longest nominal backoff. See :data:`DEFAULT_BACKOFF_MAX`."""
    failures: tuple[type[BaseException], ...] = option(
        (OSError,), TupleOf(_is_exception_type, "a tuple of exception types")
    )
    """Exceptions of a connect attempt (or of a connection in use, for a pool) that are
    faults of the destination. ``OSError`` covers refused, reset and timed-out connections
    (asyncio, aiohttp's ``ClientOSError``); name your client's own (redis-py's
    ``ConnectionError`` is no ``OSError``). Anything else is the caller's, and counts as
    nothing; so does an error resilient raised (a pool's timeout, a gate's refusal), though it
    is an ``OSError``: it says the process queued, not that the destination failed."""
    churn_window: float = option(5.0, Number(min=0, unit="seconds"))
    """A connection lost (:meth:`~resilient.pool.ConnectGate.lost`) within this many seconds
    of being opened counts as a failure of the destination: a reconnect loop trips the gate as
    failed connects do. 0 turns churn detection off."""

    def __post_init__(self) -> None:
        check_fields(self)
        if self.backoff_initial > self.backoff_max:
            raise ArgumentValueError(
                f"GateOptions.backoff_initial must be <= backoff_max ({self.backoff_max:g}), "
                f"got {self.backoff_initial!r}"
            )


DEFAULT_GATE_OPTIONS = GateOptions()
"""10 connects a second (3 at once), 2 in progress, gRPC's backoff (1 s, x1.6, +-20%, at most
120 s), 20 s per attempt, churn within 5 s counted as a failure."""


@dataclass(frozen=True, slots=True)
class PoolOptions:
    """The bounds of a :class:`~resilient.pool.BoundedPool`."""

    max_size: int = option(10, Integer(min=1))
    """Connections open at once, including those being opened: a hard bound (HikariCP's
    ``maximumPoolSize``, 10)."""
    min_size: int = option(0, Integer(min=0))
    """Connections kept open once the pool is first used, opened lazily (after the first
    acquire, each after a random delay within ``warm_jitter``) and through the gate."""
    warm_jitter: float = option(1.0, Number(min=0, unit="seconds"))
    """The warm-up connections of ``min_size`` start at random within this many seconds of the
    first acquire: a fleet restarted at once does not open them at one instant."""
    acquire_timeout: float = option(30.0, Number(min=0, min_open=True, unit="seconds"))
    """Seconds :meth:`~resilient.pool.BoundedPool.acquire` may wait, for a free connection or
    for the gate (HikariCP's ``connectionTimeout``, 30 s)."""
    max_waiting: int = option(100, Integer(min=0))
    """Callers that may wait for a connection at once; one more is refused at once with
    :class:`~resilient.errors.PoolExhaustedError` (a queue that only grows is an outage that
    has not been noticed yet). Callers opening a connection (at most ``max_size``, some
    waiting at the gate) are not among them."""
    idle_timeout: float = option(600.0, Number(min=0, min_open=True, finite=False, unit="seconds"))
    """Seconds a connection may stay idle before it is closed, down to ``min_size``
    (HikariCP's ``idleTimeout``, 10 minutes)."""
    max_lifetime: float = option(1800.0, Number(min=0, min_open=True, finite=False, unit="seconds"))
    """Seconds a connection lives at most, less its jitter (HikariCP's ``maxLifetime``, 30
    minutes); it is closed when next idle, never while in use."""
    lifetime_jitter: float = option(0.1, Number(min=0, max=1, unit="share"))
    """Each connection's lifetime is ``max_lifetime * (1 - lifetime_jitter * U)``, ``U`` uniform
    in [0, 1): connections opened together do not expire together (a 30-minute lifetime with no
    jitter caused a TLS handshake storm, PostHog PR #49745)."""
    check_after_idle: float = option(0.5, Number(min=0, finite=False, unit="seconds"))
    """A connection idle this long is checked (the pool's ``check`` callable) before it is
    handed out (HikariCP skips the check within 500 ms of last use)."""
    housekeeping: float = option(30.0, Number(min=0, min_open=True, unit="seconds"))
    """Seconds between passes that close idle and expired connections and warm up to
    ``min_size`` (HikariCP's housekeeper runs every 30 s)."""
    rebuild_step: int = option(1, Integer(min=1))
    """Old connections retired per housekeeping pass after
    :meth:`~resilient.pool.BoundedPool.rebuild`; each is replaced through the gate when
    needed, so a configuration change never closes everything at once."""

    def __post_init__(self) -> None:
        check_fields(self)
        if self.min_size > self.max_size:
            raise ArgumentValueError(
                f"PoolOptions.min_size must be <= max_size ({self.max_size}), got {self.min_size!r}"
            )


DEFAULT_POOL_OPTIONS = PoolOptions()
"""10 connections at most, none kept open, 30 s to acquire, 100 callers waiting at most, idle
connections closed after 10 minutes, lifetimes of 27 to 30 minutes."""


def check_gate_arguments(owner: str, gate_options: object, clock: object, events: object) -> None:
    """Refuse an adapter's bad gate arguments when it is made, not at its first connect (deep
    inside a request, where aiohttp or redis-py may wrap the error)."""
    check(f"{owner}.gate_options", gate_options, Instance(GateOptions, "a GateOptions"))
    check(f"{owner}.clock", clock, Instance(Clock, "a Clock"))
    check(f"{owner}.events", events, Instance(EventBus, "an EventBus"))

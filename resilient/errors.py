"""Every error the library raises on purpose, in one tree.

::

    Exception
     └── ResilientError                  anything this library raises on purpose
          ├── ArgumentError              a value given to the library is wrong; nothing changed
          │    ├── ArgumentTypeError     ... it has the wrong type     (also a TypeError)
          │    └── ArgumentValueError    ... its value is out of range (also a ValueError)
          ├── ConfigurationError         the environment cannot serve the configuration
          │                              (an unsupported dependency version; also a RuntimeError)
          ├── LimiterUnavailable         a rate limiter could not decide (also a ConnectionError)
          │    └── RedisLimiterUnavailable     Redis could not answer a decision
          ├── CircuitOpenError           a circuit breaker refused a call
          ├── QueueClosedError           a closed release queue refused an action
          │                              (also a RuntimeError)
          ├── ConnectRefusedError        a connect gate will not let a connection be made in
          │                              time (also a ConnectionError)
          ├── PoolError                  a bounded pool could not hand out a connection
          │    ├── PoolTimeoutError      ... within the acquire timeout (also a TimeoutError)
          │    ├── PoolExhaustedError    ... as too many callers already wait
          │    └── PoolClosedError       ... as it is closed (also a RuntimeError)
          ├── LoadShedError              a call was shed: refused before it was made, to
          │    │                         spare an overloaded dependency
          │    ├── BulkheadFullError     ... at once: a bulkhead's waiting line is full
          │    ├── BulkheadDeadlineError ... at its deadline: no permit within max_wait
          │    │                         (no TimeoutError: the dependency never saw it)
          │    └── ThrottledError        ... at once: client-side throttling rejected it
          ├── ConfigRejectedError        a configuration failed validation; nothing changed
          │                              (also a ValueError)
          ├── ProvidersUnavailableError  no provider of a failover answered in time, and there
          │                              was no fallback
          └── RolloutError               a config rollout or store refused a request
               ├── RolloutStateError     ... not allowed in the rollout's state
               │                         (also a RuntimeError)
               └── ConfigConflictError   ... another writer changed the store first

A retry policy (:mod:`resilient.retry`) has no error of its own: when it gives up (attempts,
time or its budget ran out) it raises the dependency's last error, as it was, so the caller's
``except`` clauses stay those it wrote for the dependency; its ``gave_up`` event says why.

Catch :class:`ResilientError` for everything, or the leaf you handle. Each error also derives
from the builtin exception it has always been, so an ``except ValueError``, ``except TypeError``
or ``except ConnectionError`` written against an earlier version still catches it.

What each means for a caller:

- :class:`ArgumentError`: the caller's mistake, raised before anything was built or changed
  (no breaker, budget or shared state saw the value). The message names ``Class.field`` and
  the value given.
- :class:`ConfigurationError`: a deployment fault to fix (e.g. a redis-py whose internals the
  Redis limiter cannot use), reported with an ERROR event; never taken for an outage.
- :class:`LimiterUnavailable`: "the limiter does not know". Never "over the limit": an HTTP
  front answers 503, not 429. A :class:`~resilient.ratelimit.FailOpenGuard` degrades on it.
- :class:`CircuitOpenError`: the call was not made. ``retry_after`` says when probes go through.
- :class:`QueueClosedError`: the action was not queued; the queue will not start anything again.
- :class:`ConnectRefusedError`: no connection was attempted: the destination is failing (its
  breaker is open, or it is in backoff) or the gate is busy, beyond the caller's deadline.
  ``retry_after`` says when an attempt could start, when the gate knows.
- :class:`PoolError`: no connection was handed out, and nothing leaked; which leaf says why.
- :class:`LoadShedError`: the call was not made and held nothing: a bulkhead had no permit
  for it in time (:class:`BulkheadFullError` at once, :class:`BulkheadDeadlineError` after
  ``max_wait``), or an :class:`~resilient.bulkhead.AdaptiveThrottle` rejected it locally
  (:class:`ThrottledError`). ``name`` is the bulkhead's or throttle's, ``reason`` says why.
  Answer it as an overload (HTTP 503), and do not retry it at once.
- :class:`ConfigRejectedError`: the configuration was not stored or rolled out; ``problems``
  names each field and rule it broke.
- :class:`ProvidersUnavailableError`: every provider was tried or passed over within the
  deadline; ``errors`` holds each attempt's error by provider.
- :class:`RolloutError`: the request changed nothing: the rollout is not in a state that allows
  it (:class:`RolloutStateError`), or another writer won (:class:`ConfigConflictError`).

This module imports nothing but the standard library, so catching an error never costs an
import of a pattern's dependencies.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from resilient.breaker import BreakerState

__all__ = [
    "ArgumentError",
    "ArgumentTypeError",
    "ArgumentValueError",
    "BulkheadDeadlineError",
    "BulkheadFullError",
    "CircuitOpenError",
    "ConfigConflictError",
    "ConfigRejectedError",
    "ConfigurationError",
    "ConnectRefusedError",
    "LimiterUnavailable",
    "LoadShedError",
    "PoolClosedError",
    "PoolError",
    "PoolExhaustedError",
    "PoolTimeoutError",
    "ProvidersUnavailableError",
    "QueueClosedError",
    "RedisLimiterUnavailable",
    "ResilientError",
    "RolloutError",
    "RolloutStateError",
    "ThrottledError",
]


class ResilientError(Exception):
    """The base of every error this library raises on purpose."""


class ArgumentError(ResilientError):
    """A value given to the library is wrong; nothing was built or changed.

    The message names ``Class.field`` (or ``Class.method(argument)``) and the value given.
    """


class ArgumentTypeError(ArgumentError, TypeError):
    """A value has the wrong type (a bool where a number belongs, a str for a Rate, ...)."""


class ArgumentValueError(ArgumentError, ValueError):
    """A value has the right type but is out of range (negative, NaN, infinite, empty, ...)."""


class ConfigurationError(ResilientError, RuntimeError):
    """The environment cannot serve the configuration: e.g. an installed dependency whose
    version the library does not support. Fix the deployment; retrying will not help."""


class LimiterUnavailable(ResilientError, ConnectionError):
    """A limiter could not decide: its store is down, slow, or answered garbage.

    Raised by a limiter on a fault (a guard degrades on it), and by a
    :class:`~resilient.ratelimit.FailOpenGuard` in its opt-in fail-closed mode. It never means
    "over the limit". ``__cause__`` holds the underlying error when there is one.
    """


class RedisLimiterUnavailable(LimiterUnavailable):
    """Redis could not answer a decision: connection error, timeout, error reply, bad reply."""


class CircuitOpenError(ResilientError):
    """The circuit did not let this call through: it is open, isolated (until ``reset()``), or
    half-open with every probe slot taken. ``retry_after`` is the seconds until it lets probes
    through (0 if it already does, but all probe slots are taken; infinite while isolated).

    Made as ``CircuitOpenError(name, state, retry_after)``. It has no ``__init__`` of its own
    and makes its message only when shown: a refusal is a breaker's hot path. Measured: an
    ``__init__`` that set three attributes and formatted the message cost 0.4-0.6 us more per
    refusal than this one (a micro-benchmark of the two, interleaved in one run); with the
    refusal raised from ``call()`` itself, a rejection went from 2.1 us to 0.95 us over a bare
    await (bench/bench_breaker.py, 50,000 calls x 5 rounds, before and after). The fields are
    read from ``args``, which also makes it pickle whole.
    """

    if TYPE_CHECKING:

        def __init__(self, name: str, state: BreakerState, retry_after: float) -> None: ...

    @property
    def name(self) -> str:
        """The breaker's name."""
        name: str = self.args[0]
        return name

    @property
    def state(self) -> BreakerState:
        """Where the circuit was."""
        state: BreakerState = self.args[1]
        return state

    @property
    def retry_after(self) -> float:
        """Seconds until it lets probes through."""
        retry_after: float = self.args[2]
        return retry_after

    def __str__(self) -> str:
        state = self.state.value
        if state == "open":
            detail = f"open; probes in {self.retry_after:.3f}s"
        elif state == "isolated":
            detail = "isolated; calls resume after reset()"
        else:
            detail = "half-open; every probe slot is taken"
        return f"circuit {self.name!r} is {detail}"


class QueueClosedError(ResilientError, RuntimeError):
    """A :class:`~resilient.release.ReleaseQueue` was closed: ``submit`` queues nothing."""


class ConnectRefusedError(ResilientError, ConnectionError):
    """A :class:`~resilient.pool.ConnectGate` did not let a connection to ``destination`` be
    attempted: ``reason`` says why (circuit open, backoff, rate, attempts in progress), and
    ``retry_after`` the seconds until an attempt could start (None when it waits on other
    attempts to end)."""

    def __init__(self, destination: str, reason: str, retry_after: float | None) -> None:
        self.destination = destination
        self.reason = reason
        self.retry_after = retry_after
        when = "" if retry_after is None else f"; an attempt could start in {retry_after:.3f}s"
        super().__init__(f"no connection to {destination!r} attempted: {reason}{when}")

    def __reduce__(
        self,
    ) -> tuple[type[ConnectRefusedError], tuple[str, str, float | None]]:
        """Pickled with every field, so it crosses a process boundary whole."""
        return type(self), (self.destination, self.reason, self.retry_after)


class PoolError(ResilientError):
    """A :class:`~resilient.pool.BoundedPool` handed out no connection (nothing leaked)."""


class PoolTimeoutError(PoolError, TimeoutError):
    """No connection within the pool's ``acquire_timeout``; the message says what it waited on."""


class PoolExhaustedError(PoolError):
    """Refused at once: ``max_waiting`` callers already wait for a connection."""


class PoolClosedError(PoolError, RuntimeError):
    """The pool is closed: it hands out nothing, and closes what is given back."""


class LoadShedError(ResilientError):
    """A call was shed: refused before it was made (it holds no permit, the dependency never
    saw it). ``name`` is the bulkhead or throttle that shed it, ``reason`` why in one word
    (``"full"``, ``"deadline"``, ``"throttled"``), ``detail`` in a sentence."""

    def __init__(self, name: str, reason: str, detail: str = "") -> None:
        self.name = name
        self.reason = reason
        self.detail = detail
        super().__init__(f"{name!r} shed the call ({reason})" + (f": {detail}" if detail else ""))

    def __reduce__(self) -> tuple[type[LoadShedError], tuple[str, str, str]]:
        """Pickled with every field, so it crosses a process boundary whole."""
        return type(self), (self.name, self.reason, self.detail)


class BulkheadFullError(LoadShedError):
    """Refused at once: a :class:`~resilient.bulkhead.Bulkhead` had no free permit and
    ``max_waiting`` callers already waited."""


class BulkheadDeadlineError(LoadShedError):
    """Refused at the caller's deadline: no permit of a :class:`~resilient.bulkhead.Bulkhead`
    came free within ``max_wait``. Not a ``TimeoutError``: the dependency was never called,
    so nothing may count it as the dependency's timeout."""


class ThrottledError(LoadShedError):
    """Rejected locally by client-side throttling (an
    :class:`~resilient.bulkhead.AdaptiveThrottle`): the dependency has refused so many recent
    requests that this one was not sent."""


class ConfigRejectedError(ResilientError, ValueError):
    """A configuration failed validation and changed nothing. ``problems`` holds one
    ``(field, rule, message)`` triple per fault: ``field`` is a dotted path into the
    configuration (``regions.eu.targets``), or ``""`` for the whole of it."""

    def __init__(self, problems: tuple[tuple[str, str, str], ...]) -> None:
        self.problems = problems
        shown = "; ".join(
            f"{field or '<config>'}: {message} [{rule}]" for field, rule, message in problems
        )
        super().__init__(f"configuration rejected: {shown}")

    def __reduce__(
        self,
    ) -> tuple[type[ConfigRejectedError], tuple[tuple[tuple[str, str, str], ...]]]:
        """Pickled with every problem, so it crosses a process boundary whole."""
        return type(self), (self.problems,)


class RolloutError(ResilientError):
    """A :class:`~resilient.rollout.ConfigRollout` or a config store refused a request, and
    nothing changed."""


class RolloutStateError(RolloutError, RuntimeError):
    """The request is not allowed in the rollout's current state (the message names both)."""


class ConfigConflictError(RolloutError):
    """Another writer changed the store's current version first (compare-and-set lost)."""


class ProvidersUnavailableError(ResilientError):
    """A :class:`~resilient.failover.Failover` got no answer: ``reason`` says why (every
    provider failed or was unavailable, the deadline passed, the budget refused a retry), and
    ``errors`` lists ``(provider, error)`` for each attempt made."""

    def __init__(self, failover: str, reason: str, errors: tuple[tuple[str, str], ...]) -> None:
        self.failover = failover
        self.reason = reason
        self.errors = errors
        tried = "; ".join(f"{name}: {error}" for name, error in errors) or "no attempt made"
        super().__init__(f"failover {failover!r}: no answer ({reason}); {tried}")

    def __reduce__(
        self,
    ) -> tuple[type[ProvidersUnavailableError], tuple[str, str, tuple[tuple[str, str], ...]]]:
        """Pickled with every field, so it crosses a process boundary whole."""
        return type(self), (self.failover, self.reason, self.errors)

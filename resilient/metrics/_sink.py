"""What every metrics backend reads: :class:`MetricsSink`, the events and stats of the patterns
as the samples of :data:`~resilient.metrics.SCHEME`, whatever the backend.

A sink does two things, both cheap on the guards' hot paths:

- it listens on an :class:`~resilient.events.EventBus` for the few figures only events carry
  (a breaker's transitions, why a release queue dropped an action, a rollout's gate verdicts
  and rollbacks, a failover's fallbacks): one dictionary look-up per event, and a count;
- it reads the stats of the pattern instances it was told to :meth:`~MetricsSink.watch` when a
  backend collects (a scrape): every gauge (pool connections, queue depth, bulkhead limit) and
  every per-call count (limiter decisions, breaker calls) is a figure the pattern keeps
  anyway, so a decision or a call pays nothing for its metrics.

Labels are bounded: closed values are checked against the scheme, names (of instances,
providers, rollout gates) are made printable UTF-8 of at most :data:`MAX_NAME_CHARS`
characters, and after ``max_names`` distinct names every new one is reported as
:data:`OTHER_NAME`. No key, error text or free-text reason ever becomes a label.
"""

from __future__ import annotations

import logging
import sys
import weakref
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from resilient._validate import Integer, Text, check
from resilient.errors import ArgumentTypeError
from resilient.events import DEFAULT_EVENTS, Event, EventBus, logging_listener
from resilient.metrics._scheme import BREAKER_STATES, ROLLOUT_STATES

__all__ = ["DEFAULT_MAX_NAMES", "MAX_NAME_CHARS", "OTHER_NAME", "MetricsSink", "Samples"]

DEFAULT_MAX_NAMES = 1000
"""Distinct names a sink puts in labels before it reports every new one as
:data:`OTHER_NAME`."""
MAX_NAME_CHARS = 100
"""Characters of a name kept in a label."""
OTHER_NAME = "_other"
"""The label of every name beyond ``max_names``."""

Samples = dict[str, dict[tuple[str, ...], float]]
"""Metric (Prometheus name) -> label values -> value."""

T = TypeVar("T")
_Add = Callable[[str, tuple[str, ...], float], None]
_Reader = Callable[[Any, str, "_Names", _Add], None]

_log = logging.getLogger("resilient.metrics")


class MetricsSink:
    """The backend-neutral part of a metrics sink (see the module doc).

    Made, it listens on ``events`` (the bus the patterns emit to: the process-wide one by
    default); :meth:`watch` adds a pattern instance whose stats it reads; :meth:`samples`
    reads everything now; :meth:`close` stops listening. A bus that logged its events (it
    had no listener) keeps logging them: the sink subscribes
    :func:`~resilient.events.logging_listener` before itself. Use a sink from the event
    loop's thread; a backend may read :meth:`samples` from another (a scrape).
    """

    def __init__(
        self, *, events: EventBus = DEFAULT_EVENTS, max_names: int = DEFAULT_MAX_NAMES
    ) -> None:
        check("MetricsSink.max_names", max_names, Integer(min=1))
        if not isinstance(events, EventBus):
            raise ArgumentTypeError(f"MetricsSink.events must be an EventBus, got {events!r}")
        self._names = _Names(max_names)
        self._counts: dict[tuple[str, tuple[str, ...]], float] = {}
        self._states: dict[str, str] = {}
        self._watched: list[tuple[Callable[[], Any], str, _Reader]] = []
        self._handlers: dict[tuple[str, str], Callable[[Mapping[str, Any]], None]] = {
            ("breaker", "opened"): self._transition("open"),
            ("breaker", "half_opened"): self._transition("half_open"),
            ("breaker", "closed"): self._transition("closed"),
            ("breaker", "isolated"): self._transition("isolated"),
            ("release", "dropped"): self._dropped,
            ("rollout", "evaluated"): self._evaluated,
            ("rollout", "rolled_back"): self._rolled_back,
            ("failover", "fallback"): self._fallback,
        }
        self._unsubscribe: list[Callable[[], None]] = []
        if events.logs_unobserved:
            self._unsubscribe.append(events.subscribe(logging_listener))
        self._unsubscribe.append(events.subscribe(self.on_event))

    # -- events --------------------------------------------------------------------------------

    def on_event(self, event: Event) -> None:
        """Count what ``event`` tells, if it is one of the events the scheme counts."""
        handler = self._handlers.get((event.source, event.name))
        if handler is not None:
            handler(event.attributes)

    def _count(self, metric: str, labels: tuple[str, ...]) -> None:
        key = (metric, labels)
        self._counts[key] = self._counts.get(key, 0) + 1

    def _transition(self, to: str) -> Callable[[Mapping[str, Any]], None]:
        def count(attributes: Mapping[str, Any]) -> None:
            previous = attributes.get("previous")
            was = _STATE_OF.get(previous) if type(previous) is str else None
            name = self._names(attributes.get("breaker"))
            if was is None or name is None:
                return
            self._count("resilient_breaker_transitions_total", (name, was, to))
            self._states[name] = to

        return count

    def _dropped(self, attributes: Mapping[str, Any]) -> None:
        self._count(
            "resilient_release_dropped_actions_total", (drop_reason(attributes.get("reason")),)
        )

    def _evaluated(self, attributes: Mapping[str, Any]) -> None:
        rollout = self._names(attributes.get("rollout"))
        verdicts = attributes.get("verdicts")
        if rollout is None or not isinstance(verdicts, tuple):
            return
        for verdict in verdicts:
            if not isinstance(verdict, tuple) or len(verdict) != 3:
                continue
            gate, said = self._names(verdict[0]), verdict[1]
            if gate is not None and type(said) is str and said in _VERDICTS:
                self._count("resilient_rollout_gate_verdicts_total", (rollout, gate, said))

    def _rolled_back(self, attributes: Mapping[str, Any]) -> None:
        rollout = self._names(attributes.get("rollout"))
        if rollout is not None:
            self._count("resilient_rollout_rollbacks_total", (rollout,))

    def _fallback(self, attributes: Mapping[str, Any]) -> None:
        failover = self._names(attributes.get("failover"))
        if failover is not None:
            self._count("resilient_failover_fallbacks_total", (failover,))

    # -- watched instances ---------------------------------------------------------------------

    def watch(self, target: T, name: str | None = None) -> T:
        """Read ``target``'s stats at every collection, under ``name`` (default: its own name:
        a breaker's, bulkhead's, rollout's, retry policy's or failover's ``name``, a connect
        gate's destination). A guard, pool, release queue or retry budget has no name of its
        own: give one. Instances watched under one name are added up. The sink keeps a weak
        reference where the instance allows one: a watched instance that is gone is
        forgotten. Returns ``target``."""
        reader = _reader_for(target)
        if reader is None:
            raise ArgumentTypeError(
                "MetricsSink.watch(target) must be a FailOpenGuard, CircuitBreaker, "
                "BoundedPool, ConnectGate, ReleaseQueue, ConfigRollout, RetryPolicy, "
                f"RetryBudget, Failover or Bulkhead, got {type(target).__name__}"
            )
        if name is None:
            name = getattr(target, "destination", getattr(target, "name", None))
            if not isinstance(name, str):
                raise ArgumentTypeError(
                    f"MetricsSink.watch(name) is required for a {type(target).__name__} "
                    "(it has no name of its own)"
                )
        check("MetricsSink.watch(name)", name, Text(non_empty=True))
        label = self._names(name)
        assert label is not None  # a str always has a label
        try:
            ref: Callable[[], Any] = weakref.ref(target)
        except TypeError:  # a class with __slots__ and no __weakref__: held strongly

            def ref() -> Any:
                return target

        # Forgetting the instances that are gone happens here, on the loop's thread, never in a
        # scrape's: a scrape only skips them.
        watched = [entry for entry in self._watched if entry[0]() is not None]
        watched.append((ref, label, reader))
        self._watched = watched
        if reader is _read_breaker:
            self._states.setdefault(label, _STATE_OF[target.state.value])  # type: ignore[attr-defined]
        return target

    # -- reading -------------------------------------------------------------------------------

    def samples(self) -> Samples:
        """Every sample now: the counts of events, the breaker states, the watched stats."""
        out: Samples = {}

        def add(metric: str, labels: tuple[str, ...], value: float) -> None:
            series = out.setdefault(metric, {})
            series[labels] = series.get(labels, 0) + value

        for (metric, labels), value in list(self._counts.items()):
            add(metric, labels, value)
        for name, state in list(self._states.items()):
            for each in BREAKER_STATES:
                add("resilient_breaker_state", (name, each), 1 if each == state else 0)
        for ref, label, reader in self._watched:
            target = ref()
            if target is None:
                continue
            try:
                reader(target, label, self._names, add)
            except Exception:
                _log.exception("metrics: reading %s %r failed", type(target).__name__, label)
        return out

    def close(self) -> None:
        """Stop listening (what was counted stays readable)."""
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()


# -- label values ------------------------------------------------------------------------------


class _Names:
    """Names made label-safe, at most ``limit`` distinct ones (then :data:`OTHER_NAME`)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._seen: dict[str, str] = {}

    def __call__(self, raw: object) -> str | None:
        """The label of ``raw`` (None when it is not a str)."""
        if type(raw) is not str:
            return None
        label = self._seen.get(raw)
        if label is None:
            if len(self._seen) >= self._limit:
                return OTHER_NAME
            label = self._seen[raw] = safe_text(raw, MAX_NAME_CHARS)
        return label


def safe_text(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, as valid UTF-8 (a lone surrogate escaped)."""
    cut = text[:limit]
    return cut.encode("utf-8", "backslashreplace").decode("utf-8")


_STATE_OF: dict[str, str] = {
    "closed": "closed",
    "open": "open",
    "half-open": "half_open",
    "isolated": "isolated",
}
"""A breaker event's ``previous`` (a BreakerState value) -> the state label."""
_VERDICTS = frozenset({"pass", "violation", "missing", "error"})
_DROP_PREFIXES = (
    ("stale:", "stale"),
    ("expired:", "expired"),
    ("over budget:", "over_budget"),
    ("closed", "closed"),
)


def drop_reason(reason: object) -> str:
    """The closed label of a release queue's drop ``reason`` (its policy's reasons start with
    their word; anything else is the ``revalidate`` callback's own reason, or its failure)."""
    if isinstance(reason, str):
        for prefix, label in _DROP_PREFIXES:
            if reason.startswith(prefix):
                return label
    return "revalidate"


# -- readers of the stats, one per pattern -----------------------------------------------------


def _read_guard(guard: Any, name: str, names: _Names, add: _Add) -> None:
    s = guard.stats
    decisions = "resilient_ratelimit_decisions_total"
    add(decisions, (name, "primary"), s.primary)
    add(decisions, (name, "fallback"), s.fallback)
    add(decisions, (name, "pass_through"), s.pass_through)
    add(decisions, (name, "fail_closed"), s.fail_closed)
    degraded = "resilient_ratelimit_degraded_decisions_total"
    add(degraded, (name, "breaker_open"), s.breaker_open)
    add(degraded, (name, "timeout"), s.timeouts)
    add(degraded, (name, "local_timeout"), s.local_timeouts)
    add(degraded, (name, "unavailable"), s.unavailable)
    add(degraded, (name, "error"), s.errors)
    add(degraded, (name, "malformed"), s.malformed)
    add("resilient_ratelimit_fallback_failures_total", (name,), s.fallback_failures)
    add("resilient_ratelimit_degraded", (name,), 1 if guard.degraded else 0)
    add("resilient_ratelimit_suspected_faults_total", (name,), s.suspected_faults)


def _read_breaker(breaker: Any, name: str, names: _Names, add: _Add) -> None:
    s = breaker.stats
    calls = "resilient_breaker_calls_total"
    add(calls, (name, "success"), s.successes)
    add(calls, (name, "failure"), s.failures)
    add(calls, (name, "rejected"), s.rejected)
    add(calls, (name, "cancelled"), s.cancelled)
    add(calls, (name, "ignored"), s.ignored)


def _read_pool(pool: Any, name: str, names: _Names, add: _Add) -> None:
    s = pool.stats
    connections = "resilient_pool_connections"
    add(connections, (name, "idle"), s.idle)
    add(connections, (name, "in_use"), s.in_use)
    add(connections, (name, "connecting"), s.connecting)
    add("resilient_pool_waiting_callers", (name,), s.waiting)
    add("resilient_pool_connects_total", (name,), s.connects)
    add("resilient_pool_connect_failures_total", (name,), s.connect_failures)
    add("resilient_pool_churned_total", (name,), s.churned)
    closed = "resilient_pool_closed_connections_total"
    add(closed, (name, "discarded"), s.discarded)
    add(closed, (name, "expired"), s.expired)
    add(closed, (name, "idle"), s.idle_closed)
    refused = "resilient_pool_refused_acquires_total"
    add(refused, (name, "timeout"), s.timeouts)
    add(refused, (name, "exhausted"), s.exhausted)


def _read_gate(gate: Any, name: str, names: _Names, add: _Add) -> None:
    s = gate.stats
    add("resilient_pool_gate_admitted_total", (name,), s.attempts)
    add("resilient_pool_gate_waited_total", (name,), s.gated)
    add("resilient_pool_gate_refused_total", (name,), s.refused)
    connects = "resilient_pool_gate_connects_total"
    add(connects, (name, "success"), s.connects)
    add(connects, (name, "failure"), s.failures)
    add(connects, (name, "churned"), s.churned)


def _read_queue(queue: Any, name: str, names: _Names, add: _Add) -> None:
    add("resilient_release_queued_actions", (name,), queue.queued)
    add("resilient_release_running_actions", (name,), queue.in_flight)
    add("resilient_release_paused", (name,), 1 if queue.paused else 0)
    s = queue.stats
    actions = "resilient_release_actions_total"
    add(actions, (name, "done"), s.done)
    add(actions, (name, "failed"), s.failed)
    add(actions, (name, "superseded"), s.superseded)
    add(actions, (name, "dropped"), s.dropped)


def _read_rollout(rollout: Any, name: str, names: _Names, add: _Add) -> None:
    status = rollout.status
    add("resilient_rollout_stage", (name,), status.stage)
    for state in ROLLOUT_STATES:
        add("resilient_rollout_state", (name, state), 1 if status.state.value == state else 0)


def _read_policy(policy: Any, name: str, names: _Names, add: _Add) -> None:
    s = policy.stats
    add("resilient_retry_calls_total", (name,), s.calls)
    add("resilient_retry_retries_total", (name,), s.retries)
    gave_up = "resilient_retry_gave_up_total"
    add(gave_up, (name, "attempts"), s.gave_up_attempts)
    add(gave_up, (name, "time"), s.gave_up_time)
    add(gave_up, (name, "budget"), s.gave_up_budget)


def _read_budget(budget: Any, name: str, names: _Names, add: _Add) -> None:
    s = budget.stats
    add("resilient_retry_budget_requests_total", (name,), s.requests)
    add("resilient_retry_budget_spent_total", (name,), s.spent)
    add("resilient_retry_budget_refused_total", (name,), s.refused)


def _read_failover(failover: Any, name: str, names: _Names, add: _Add) -> None:
    for provider, s in failover.stats().items():
        labels = (name, names(provider) or OTHER_NAME)
        add("resilient_failover_attempts_total", labels, s.attempts)
        add("resilient_failover_failures_total", labels, s.failures)
        add("resilient_failover_hedges_total", labels, s.hedges)
        add("resilient_failover_hedges_won_total", labels, s.hedges_won)


def _read_bulkhead(bulkhead: Any, name: str, names: _Names, add: _Add) -> None:
    s = bulkhead.stats
    add("resilient_bulkhead_limit", (name,), s.limit)
    add("resilient_bulkhead_in_flight_calls", (name,), s.in_flight)
    add("resilient_bulkhead_waiting_callers", (name,), s.waiting)
    add("resilient_bulkhead_admitted_total", (name,), s.admitted)
    shed = "resilient_bulkhead_shed_total"
    add(shed, (name, "full"), s.shed_full)
    add(shed, (name, "deadline"), s.shed_deadline)
    add(shed, (name, "throttled"), s.shed_throttled)


_READERS: tuple[tuple[str, str, _Reader], ...] = (
    ("resilient.ratelimit._guard", "FailOpenGuard", _read_guard),
    ("resilient.breaker._breaker", "CircuitBreaker", _read_breaker),
    ("resilient.pool._pool", "BoundedPool", _read_pool),
    ("resilient.pool._gate", "ConnectGate", _read_gate),
    ("resilient.release._queue", "ReleaseQueue", _read_queue),
    ("resilient.rollout._rollout", "ConfigRollout", _read_rollout),
    ("resilient.retry._policy", "RetryPolicy", _read_policy),
    ("resilient.retry._budget", "RetryBudget", _read_budget),
    ("resilient.failover._failover", "Failover", _read_failover),
    ("resilient.bulkhead._bulkhead", "Bulkhead", _read_bulkhead),
)
"""(module, class, reader): a class is looked up only in a module already imported (an
instance of it exists only then), so the sink imports no pattern, nor what a pattern needs."""


def _reader_for(target: object) -> _Reader | None:
    for module_name, class_name, reader in _READERS:
        module = sys.modules.get(module_name)
        if module is not None and isinstance(target, getattr(module, class_name)):
            return reader
    return None

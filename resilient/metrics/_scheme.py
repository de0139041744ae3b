"""The one naming scheme of every metric, whatever the backend: :data:`SCHEME`.

A :class:`Metric` names one family: its ``pattern`` (the event source it belongs to, e.g.
``"pool.gate"``), what it counts or measures, its kind, its OpenTelemetry unit and its labels.
Each backend derives its own name from these mechanically: Prometheus'
``resilient_<pattern>_<what>`` (dots as underscores, ``_total`` on a counter), OpenTelemetry's
``resilient.<pattern>.<what>``. A :class:`Label` either has a closed set of ``values`` (a
reason, an outcome, a state: every value listed here) or is a ``name`` label: the name of a
pattern instance, a provider or a gate, given in the user's configuration, and made safe and
bounded by the sink (see :class:`~resilient.metrics.MetricsSink`). No label ever carries a key,
an error message or any other value a caller or a dependency controls.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

__all__ = ["SCHEME", "Label", "Metric", "metric_named", "scheme_table"]


class Label(NamedTuple):
    """One label of a metric: a closed set of ``values``, or (``values`` None) a name."""

    name: str
    values: tuple[str, ...] | None = None


class Metric(NamedTuple):
    """One metric family of the scheme."""

    pattern: str
    """The event source it belongs to (``"breaker"``, ``"pool.gate"``)."""
    what: str
    kind: Literal["counter", "gauge"]
    unit: str
    """Its unit in OpenTelemetry's (UCUM) notation: ``"1"``, ``"{call}"``."""
    labels: tuple[Label, ...]
    help: str

    @property
    def prometheus_name(self) -> str:
        """``resilient_<pattern>_<what>``, with ``_total`` for a counter."""
        base = f"resilient_{self.pattern.replace('.', '_')}_{self.what}"
        return f"{base}_total" if self.kind == "counter" else base

    @property
    def otel_name(self) -> str:
        """``resilient.<pattern>.<what>``."""
        return f"resilient.{self.pattern}.{self.what}"

    @property
    def label_names(self) -> tuple[str, ...]:
        return tuple(label.name for label in self.labels)


# The names of pattern instances (and of what they hold: providers, rollout gates).
LIMITER = Label("limiter")
BREAKER = Label("breaker")
POOL = Label("pool")
GATE = Label("gate")
QUEUE = Label("queue")
ROLLOUT = Label("rollout")
POLICY = Label("policy")
BUDGET = Label("budget")
FAILOVER = Label("failover")
PROVIDER = Label("provider")
BULKHEAD = Label("bulkhead")

BREAKER_STATES = ("closed", "open", "half_open", "isolated")
ROLLOUT_STATES = ("idle", "running", "paused", "completed", "rolled_back")
DROP_REASONS = ("stale", "expired", "over_budget", "closed", "revalidate")
"""Why a release queue dropped an action: its policy (``stale``, ``expired``,
``over_budget``), the queue closing, or the ``revalidate`` callback (its own reason, or its
failure)."""


def _m(
    pattern: str,
    what: str,
    kind: Literal["counter", "gauge"],
    unit: str,
    labels: tuple[Label, ...],
    help: str,
) -> Metric:
    return Metric(pattern, what, kind, unit, labels, help)


SCHEME: tuple[Metric, ...] = (
    # -- rate limiting: a FailOpenGuard's stats ---------------------------------------------
    _m("ratelimit", "decisions", "counter", "{decision}",
       (LIMITER, Label("source", ("primary", "fallback", "pass_through", "fail_closed"))),
       "Decisions, by who answered (fail_closed: refused with LimiterUnavailable)."),
    _m("ratelimit", "degraded_decisions", "counter", "{decision}",
       (LIMITER, Label("reason", ("breaker_open", "timeout", "local_timeout", "unavailable",
                                  "error", "malformed"))),
       "Decisions taken without the primary, by why."),
    _m("ratelimit", "fallback_failures", "counter", "{decision}", (LIMITER,),
       "Fallback decisions that failed: the guard allowed (source pass_through)."),
    _m("ratelimit", "degraded", "gauge", "1", (LIMITER,),
       "1 while the guard answers without its primary, else 0."),
    _m("ratelimit", "suspected_faults", "counter", "{event}", (LIMITER,),
       "Times the primary denied many distinct keys at once (a broken limiter looks so)."),
    # -- circuit breaker: transitions from its events, calls from its stats -----------------
    _m("breaker", "state", "gauge", "1", (BREAKER, Label("state", BREAKER_STATES)),
       "1 for the state the breaker is in (as of its last transition), 0 for the others."),
    _m("breaker", "transitions", "counter", "{transition}",
       (BREAKER, Label("from_state", BREAKER_STATES), Label("to_state", BREAKER_STATES)),
       "State transitions."),
    _m("breaker", "calls", "counter", "{call}",
       (BREAKER, Label("outcome", ("success", "failure", "rejected", "cancelled", "ignored"))),
       "Calls through the breaker, by outcome."),
    # -- bounded pool: its stats ------------------------------------------------------------
    _m("pool", "connections", "gauge", "{connection}",
       (POOL, Label("state", ("idle", "in_use", "connecting"))),
       "Connections by state; open connections are idle + in_use."),
    _m("pool", "waiting_callers", "gauge", "{caller}", (POOL,),
       "Callers waiting for a connection."),
    _m("pool", "connects", "counter", "{connection}", (POOL,), "Connections opened."),
    _m("pool", "connect_failures", "counter", "{attempt}", (POOL,),
       "Connect attempts that raised (the gate's refusals included)."),
    _m("pool", "churned", "counter", "{connection}", (POOL,),
       "Connections lost soon after their opening."),
    _m("pool", "closed_connections", "counter", "{connection}",
       (POOL, Label("reason", ("discarded", "expired", "idle"))),
       "Connections closed: discarded (raised or failed its check), expired, idle too long."),
    _m("pool", "refused_acquires", "counter", "{acquire}",
       (POOL, Label("reason", ("timeout", "exhausted"))),
       "Acquires that ended without a connection."),
    # -- connect gate: its stats ------------------------------------------------------------
    _m("pool.gate", "admitted", "counter", "{attempt}", (GATE,), "Connect attempts started."),
    _m("pool.gate", "waited", "counter", "{caller}", (GATE,),
       "Callers that waited before their attempt could start."),
    _m("pool.gate", "refused", "counter", "{caller}", (GATE,),
       "Callers refused with ConnectRefusedError (no attempt made)."),
    _m("pool.gate", "connects", "counter", "{attempt}",
       (GATE, Label("outcome", ("success", "failure", "churned"))),
       "Connect attempts by outcome (churned: lost soon after its opening)."),
    # -- release queue: depth and outcomes from its stats, drops by reason from its events --
    _m("release", "queued_actions", "gauge", "{action}", (QUEUE,), "Actions not started."),
    _m("release", "running_actions", "gauge", "{action}", (QUEUE,),
       "Actions committed and not ended."),
    _m("release", "paused", "gauge", "1", (QUEUE,), "1 while the queue is paused, else 0."),
    _m("release", "actions", "counter", "{action}",
       (QUEUE, Label("outcome", ("done", "failed", "superseded", "dropped"))),
       "Actions ended, by outcome."),
    _m("release", "dropped_actions", "counter", "{action}", (Label("reason", DROP_REASONS),),
       "Actions dropped, by reason (every queue of the bus: its events name no queue)."),
    # -- rollout: its status, and verdicts and rollbacks from its events --------------------
    _m("rollout", "stage", "gauge", "1", (ROLLOUT,),
       "The stage the rollout is in (0-based; -1 before its first)."),
    _m("rollout", "state", "gauge", "1", (ROLLOUT, Label("state", ROLLOUT_STATES)),
       "1 for the state the rollout is in, 0 for the others."),
    _m("rollout", "gate_verdicts", "counter", "{verdict}",
       (ROLLOUT, Label("gate"), Label("verdict", ("pass", "violation", "missing", "error"))),
       "Health gate verdicts, by gate."),
    _m("rollout", "rollbacks", "counter", "{rollback}", (ROLLOUT,), "Rollouts rolled back."),
    # -- retry: a policy's and a budget's stats ---------------------------------------------
    _m("retry", "calls", "counter", "{call}", (POLICY,), "Calls whose first attempt started."),
    _m("retry", "retries", "counter", "{attempt}", (POLICY,),
       "Attempts after the first that started."),
    _m("retry", "gave_up", "counter", "{call}",
       (POLICY, Label("reason", ("attempts", "time", "budget"))),
       "Calls a retryable error ended, by what ran out."),
    _m("retry.budget", "requests", "counter", "{request}", (BUDGET,),
       "Original requests recorded."),
    _m("retry.budget", "spent", "counter", "{retry}", (BUDGET,), "Retries the budget allowed."),
    _m("retry.budget", "refused", "counter", "{retry}", (BUDGET,),
       "Retries the budget refused (it was exhausted)."),
    # -- failover: each provider's stats, fallbacks from its events -------------------------
    _m("failover", "attempts", "counter", "{attempt}", (FAILOVER, PROVIDER),
       "Attempts sent (first attempts, failovers and hedges)."),
    _m("failover", "failures", "counter", "{attempt}", (FAILOVER, PROVIDER),
       "Attempts that ended with a fault of the provider."),
    _m("failover", "hedges", "counter", "{attempt}", (FAILOVER, PROVIDER), "Hedges sent."),
    _m("failover", "hedges_won", "counter", "{attempt}", (FAILOVER, PROVIDER),
       "Hedges that answered first."),
    _m("failover", "fallbacks", "counter", "{request}", (FAILOVER,),
       "Requests no provider answered: the fallback's degraded answer was given."),
    # -- bulkhead: its stats ----------------------------------------------------------------
    _m("bulkhead", "limit", "gauge", "{call}", (BULKHEAD,), "Calls allowed in flight now."),
    _m("bulkhead", "in_flight_calls", "gauge", "{call}", (BULKHEAD,),
       "Calls admitted and not ended."),
    _m("bulkhead", "waiting_callers", "gauge", "{caller}", (BULKHEAD,),
       "Callers in line for a permit."),
    _m("bulkhead", "admitted", "counter", "{call}", (BULKHEAD,), "Calls admitted."),
    _m("bulkhead", "shed", "counter", "{call}",
       (BULKHEAD, Label("reason", ("full", "deadline", "throttled"))),
       "Callers shed (LoadShedError), by reason."),
)  # fmt: skip
"""Every metric the sinks report, in the order they report them."""

_BY_NAME = {metric.prometheus_name: metric for metric in SCHEME}


def metric_named(name: str) -> Metric:
    """The metric whose Prometheus name is ``name`` (KeyError if none)."""
    return _BY_NAME[name]


def scheme_table(*, values: bool = True) -> str:
    """:data:`SCHEME` as the Markdown table the docs show (one row per metric): with
    ``values``, each closed label with its values, and what the metric counts or measures."""
    rows = (
        ["| Prometheus name | type | labels | what |", "|---|---|---|---|"]
        if values
        else ["| Prometheus name | type | labels |", "|---|---|---|"]
    )
    for metric in SCHEME:
        labels = ", ".join(
            label.name
            if label.values is None or not values
            else f"{label.name} ({'/'.join(label.values)})"
            for label in metric.labels
        )
        row = f"| `{metric.prometheus_name}` | {metric.kind} | {labels} |"
        rows.append(f"{row} {metric.help} |" if values else row)
    return "\n".join(rows)

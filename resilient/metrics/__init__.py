"""Metrics of every pattern, one naming scheme for every backend.

Two sinks, each an optional extra, read the patterns' typed events and stats:

- :class:`resilient.metrics.prometheus.PrometheusSink` (``pip install
  resilient-chaos[prometheus]``): a collector on a prometheus-client registry;
- :class:`resilient.metrics.otel.OtelSink` (``pip install resilient-chaos[otel]``):
  observable instruments on an OpenTelemetry meter, and a span event on the current span for
  a degraded limiter, a failover's fallback and a rollout's rollback.

Both are a :class:`MetricsSink`: made, one listens on the bus the patterns emit to;
``sink.watch(instance, name)`` adds a pattern instance whose stats it reads at collection
time. Nothing is paid per decision or per call: a guard's counts are its stats, read when
scraped. Installed and not made, a sink costs nothing; not installed, nothing of the library
imports prometheus-client or OpenTelemetry (``import resilient.metrics`` neither).

The scheme (:data:`SCHEME`). Prometheus names are ``resilient_<pattern>_<what>`` (counters end
in ``_total``); OpenTelemetry names are ``resilient.<pattern>.<what>`` (``resilient_pool_gate_
refused_total`` is ``resilient.pool.gate.refused``), with the same labels as attributes. A
label is either a closed set (listed in :data:`SCHEME`; the README's table shows them) or a
name from the user's configuration (an instance's name, a provider's, a rollout gate's), made
safe and bounded by the sink; never a key or a free-text reason.

| Prometheus name | type | labels |
|---|---|---|
| `resilient_ratelimit_decisions_total` | counter | limiter, source |
| `resilient_ratelimit_degraded_decisions_total` | counter | limiter, reason |
| `resilient_ratelimit_fallback_failures_total` | counter | limiter |
| `resilient_ratelimit_degraded` | gauge | limiter |
| `resilient_ratelimit_suspected_faults_total` | counter | limiter |
| `resilient_breaker_state` | gauge | breaker, state |
| `resilient_breaker_transitions_total` | counter | breaker, from_state, to_state |
| `resilient_breaker_calls_total` | counter | breaker, outcome |
| `resilient_pool_connections` | gauge | pool, state |
| `resilient_pool_waiting_callers` | gauge | pool |
| `resilient_pool_connects_total` | counter | pool |
| `resilient_pool_connect_failures_total` | counter | pool |
| `resilient_pool_churned_total` | counter | pool |
| `resilient_pool_closed_connections_total` | counter | pool, reason |
| `resilient_pool_refused_acquires_total` | counter | pool, reason |
| `resilient_pool_gate_admitted_total` | counter | gate |
| `resilient_pool_gate_waited_total` | counter | gate |
| `resilient_pool_gate_refused_total` | counter | gate |
| `resilient_pool_gate_connects_total` | counter | gate, outcome |
| `resilient_release_queued_actions` | gauge | queue |
| `resilient_release_running_actions` | gauge | queue |
| `resilient_release_paused` | gauge | queue |
| `resilient_release_actions_total` | counter | queue, outcome |
| `resilient_release_dropped_actions_total` | counter | reason |
| `resilient_rollout_stage` | gauge | rollout |
| `resilient_rollout_state` | gauge | rollout, state |
| `resilient_rollout_gate_verdicts_total` | counter | rollout, gate, verdict |
| `resilient_rollout_rollbacks_total` | counter | rollout |
| `resilient_retry_calls_total` | counter | policy |
| `resilient_retry_retries_total` | counter | policy |
| `resilient_retry_gave_up_total` | counter | policy, reason |
| `resilient_retry_budget_requests_total` | counter | budget |
| `resilient_retry_budget_spent_total` | counter | budget |
| `resilient_retry_budget_refused_total` | counter | budget |
| `resilient_failover_attempts_total` | counter | failover, provider |
| `resilient_failover_failures_total` | counter | failover, provider |
| `resilient_failover_hedges_total` | counter | failover, provider |
| `resilient_failover_hedges_won_total` | counter | failover, provider |
| `resilient_failover_fallbacks_total` | counter | failover |
| `resilient_bulkhead_limit` | gauge | bulkhead |
| `resilient_bulkhead_in_flight_calls` | gauge | bulkhead |
| `resilient_bulkhead_waiting_callers` | gauge | bulkhead |
| `resilient_bulkhead_admitted_total` | counter | bulkhead |
| `resilient_bulkhead_shed_total` | counter | bulkhead, reason |
"""

from resilient.metrics._scheme import SCHEME, Label, Metric, metric_named, scheme_table
from resilient.metrics._sink import (
    DEFAULT_MAX_NAMES,
    MAX_NAME_CHARS,
    OTHER_NAME,
    MetricsSink,
    Samples,
    drop_reason,
)

__all__ = [
    "DEFAULT_MAX_NAMES",
    "MAX_NAME_CHARS",
    "OTHER_NAME",
    "SCHEME",
    "Label",
    "Metric",
    "MetricsSink",
    "Samples",
    "drop_reason",
    "metric_named",
    "scheme_table",
]

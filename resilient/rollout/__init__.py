"""Safe config rollout (the February 2026 routing-config outage, the 2026-06-02 storm).

A configuration is the user's own typed model, kept as versioned bytes in a
:class:`ConfigStore` (:class:`FileConfigStore` on one host, :class:`RedisConfigStore` for a
fleet, :class:`MemoryConfigStore` in tests). :class:`ConfigRollout` validates a candidate before
anything changes, moves it through canary stages (a percentage of keys, or named cohorts such
as regions), compares the canary with the control at every evaluation with a statistical test,
and rolls back by itself when the canary does worse. :class:`ShadowEvaluation` shows what a
candidate would decide differently before any stage starts.

- the rollout: ``_rollout.py``; which keys are in a canary: ``_cohort.py``;
- its options, stages and presets: ``_options.py``; its gates and their tests: ``_gates.py``,
  ``_stats.py``;
- validation: ``_schema.py``; the stores: ``_store.py``, ``_file_store.py``, ``_redis_store.py``;
- shadow evaluation: ``_shadow.py``; every event: ``_events.py``; its errors:
  :class:`~resilient.errors.ConfigRejectedError` and :class:`~resilient.errors.RolloutError`'s
  leaves.

pydantic (for :class:`PydanticSchema`) is the ``rollout`` extra, imported only by that class;
redis-py only by :class:`RedisConfigStore`.
"""

from typing import TYPE_CHECKING

from resilient._lazy import lazy_exports
from resilient.errors import (
    ConfigConflictError,
    ConfigRejectedError,
    RolloutError,
    RolloutStateError,
)
from resilient.rollout._cohort import BUCKETS
from resilient.rollout._events import (
    ROLLOUT_COMPLETED,
    ROLLOUT_EVALUATED,
    ROLLOUT_EVENT_SOURCE,
    ROLLOUT_KILLED,
    ROLLOUT_PAUSED,
    ROLLOUT_REJECTED,
    ROLLOUT_RESUMED,
    ROLLOUT_ROLLED_BACK,
    ROLLOUT_STAGE_STARTED,
    ROLLOUT_STARTED,
    ConfigRejected,
    GatesEvaluated,
    KillSwitchSet,
    RolledBack,
    RolloutCompleted,
    RolloutPaused,
    RolloutResumed,
    RolloutStarted,
    StageStarted,
)
from resilient.rollout._gates import (
    DEFAULT_ALPHA,
    DEFAULT_MIN_SAMPLES,
    LATENCY,
    CohortSamples,
    GateResult,
    HealthGate,
    MetricGate,
    SuccessRatioGate,
    Verdict,
    latency_gate,
)
from resilient.rollout._options import (
    DEFAULT_BAKE,
    DEFAULT_EVALUATION_INTERVAL,
    DEFAULT_GATES,
    DEFAULT_ROLLOUT_OPTIONS,
    RolloutOptions,
    Stage,
    all_at_once,
    by_cohorts,
    canary,
    linear,
)
from resilient.rollout._schema import (
    ConfigSchema,
    Problem,
    PydanticSchema,
    Validator,
    fleet_connection_budget,
    rule,
)
from resilient.rollout._shadow import MAX_SHADOW_COHORTS, ShadowEvaluation, ShadowReport
from resilient.rollout._store import (
    MAX_CONFIG_BYTES,
    ConfigStore,
    ConfigVersion,
    LogEntry,
    MemoryConfigStore,
    SharedRolloutStore,
)

if TYPE_CHECKING:
    from resilient.rollout._file_store import FileConfigStore
    from resilient.rollout._redis_store import RedisConfigStore
    from resilient.rollout._rollout import ConfigRollout
    from resilient.rollout._status import RolloutState, RolloutStatus, Served

__getattr__, __dir__ = lazy_exports(
    __name__,
    globals(),
    {
        "resilient.rollout._file_store": ["FileConfigStore"],
        "resilient.rollout._redis_store": ["RedisConfigStore"],
        "resilient.rollout._rollout": ["ConfigRollout"],
        "resilient.rollout._status": ["RolloutState", "RolloutStatus", "Served"],
    },
)

__all__ = [
    "BUCKETS",
    "DEFAULT_ALPHA",
    "DEFAULT_BAKE",
    "DEFAULT_EVALUATION_INTERVAL",
    "DEFAULT_GATES",
    "DEFAULT_MIN_SAMPLES",
    "DEFAULT_ROLLOUT_OPTIONS",
    "LATENCY",
    "MAX_CONFIG_BYTES",
    "MAX_SHADOW_COHORTS",
    "ROLLOUT_COMPLETED",
    "ROLLOUT_EVALUATED",
    "ROLLOUT_EVENT_SOURCE",
    "ROLLOUT_KILLED",
    "ROLLOUT_PAUSED",
    "ROLLOUT_REJECTED",
    "ROLLOUT_RESUMED",
    "ROLLOUT_ROLLED_BACK",
    "ROLLOUT_STAGE_STARTED",
    "ROLLOUT_STARTED",
    "CohortSamples",
    "ConfigConflictError",
    "ConfigRejected",
    "ConfigRejectedError",
    "ConfigRollout",
    "ConfigSchema",
    "ConfigStore",
    "ConfigVersion",
    "FileConfigStore",
    "GateResult",
    "GatesEvaluated",
    "HealthGate",
    "KillSwitchSet",
    "LogEntry",
    "MemoryConfigStore",
    "MetricGate",
    "Problem",
    "PydanticSchema",
    "RedisConfigStore",
    "RolledBack",
    "RolloutCompleted",
    "RolloutError",
    "RolloutOptions",
    "RolloutPaused",
    "RolloutResumed",
    "RolloutStarted",
    "RolloutState",
    "RolloutStateError",
    "RolloutStatus",
    "Served",
    "ShadowEvaluation",
    "ShadowReport",
    "SharedRolloutStore",
    "Stage",
    "StageStarted",
    "SuccessRatioGate",
    "Validator",
    "Verdict",
    "all_at_once",
    "by_cohorts",
    "canary",
    "fleet_connection_budget",
    "latency_gate",
    "linear",
    "rule",
]

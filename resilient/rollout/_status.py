"""What a rollout serves and where it stands: its state, a request's :class:`Served`, its
:class:`RolloutStatus`; and the checks a sample and a gate's answer pass."""

from __future__ import annotations

import enum
import itertools
import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, TypeVar

from resilient.errors import ArgumentTypeError, ArgumentValueError
from resilient.rollout._gates import LATENCY, CohortSamples, GateResult, Verdict

if TYPE_CHECKING:
    from collections.abc import Sequence

    from resilient.rollout._options import RolloutOptions

__all__ = [
    "ACTIVE",
    "RolloutState",
    "RolloutStatus",
    "Served",
    "checked_sample",
    "judge",
    "new_epoch",
    "over_budget",
    "sample",
]

C = TypeVar("C")


class RolloutState(enum.Enum):
    IDLE = "idle"
    """No rollout has run since the rollout was opened."""
    RUNNING = "running"
    PAUSED = "paused"
    """Holding its stage: promotes nothing, but its gates still roll back."""
    COMPLETED = "completed"
    ROLLED_BACK = "rolled_back"


ACTIVE = (RolloutState.RUNNING, RolloutState.PAUSED)

_EPOCHS = itertools.count(1)
"""Every stage of every rollout of the process gets its own number: a ``Served`` of another
stage, or of another rollout, is never counted."""


@dataclass(frozen=True, slots=True)
class Served(Generic[C]):
    """What one request sees: ``config`` (of stored version ``version``), whether it is the
    canary's, and the stage it was served in (pass it back to ``record``)."""

    version: int
    config: C
    canary: bool
    epoch: int
    """Which stage of which rollout served it: a sample of another stage is not counted."""


@dataclass(slots=True)
class RolloutStatus:
    """Where the rollout stands, and what its gates last said."""

    state: RolloutState = RolloutState.IDLE
    baseline: int | None = None
    candidate: int | None = None
    stage: int = -1
    stage_started: float = 0.0
    evaluations: int = 0
    violations: int = 0
    missing: int = 0
    errors: int = 0
    canary_requests: int = 0
    control_requests: int = 0
    last_results: tuple[GateResult, ...] = ()
    killed: bool = False
    history: deque[tuple[float, str, str]] = field(default_factory=lambda: deque(maxlen=1000))
    """``(time, transition, reason)`` of the latest transitions (also in the store's log)."""
    store_errors: int = 0
    """Log entries the store could not take (the transition happened; see ``history``)."""


def new_epoch() -> int:
    return next(_EPOCHS)


def sample(where: str, value: object) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ArgumentTypeError(f"{where} must be a number, got {type(value).__name__}")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise ArgumentValueError(f"{where} must be finite, got {value!r}")
    return number


def judge(gate: object, canary: CohortSamples, control: CohortSamples) -> GateResult:
    name = str(getattr(gate, "name", type(gate).__name__))
    try:
        result = gate.judge(canary, control)  # type: ignore[attr-defined]
    except Exception as error:  # a broken gate is an error verdict, never a pass
        return GateResult(name, Verdict.ERROR, f"{type(error).__name__}: {error}")
    if not isinstance(result, GateResult):
        return GateResult(
            name, Verdict.ERROR, f"judge() returned {type(result).__name__}, not a GateResult"
        )
    return result


def over_budget(
    results: Sequence[GateResult], status: RolloutStatus, options: RolloutOptions, *, baked: bool
) -> str | None:
    """Count one evaluation's bad verdicts in ``status`` (a violation, an error, missing data
    once the stage is baked: each kind at most once) and say why the rollout must roll back,
    the first budget exceeded in that order; None while every budget holds."""
    kinds = (
        (Verdict.VIOLATION, "violations", options.failure_limit, "gate failed", True),
        (Verdict.ERROR, "errors", options.error_limit, "gate error", True),
        (Verdict.MISSING, "missing", options.missing_limit, "missing data", baked),
    )
    for verdict, counter, limit, label, counted in kinds:
        bad = [result for result in results if result.verdict is verdict]
        if not bad or not counted:
            continue
        setattr(status, counter, getattr(status, counter) + 1)
        if getattr(status, counter) > limit:
            return f"{label}: " + "; ".join(f"{r.gate}: {r.detail}" for r in bad)
    return None


def checked_sample(
    served: object,
    ok: object,
    latency: object,
    metrics: Mapping[str, object] | None,
    known: set[str],
) -> list[tuple[str, float]]:
    """The values of one ``ConfigRollout.record`` call, each checked: an
    :class:`~resilient.errors.ArgumentError` naming the argument before anything is counted."""
    if not isinstance(served, Served):
        raise ArgumentTypeError(
            f"ConfigRollout.record(served) must be a Served, got {type(served).__name__}"
        )
    if type(ok) is not bool:
        raise ArgumentTypeError(f"ConfigRollout.record(ok) must be a bool, got {type(ok).__name__}")
    values: list[tuple[str, float]] = []
    if latency is not None:
        values.append((LATENCY, sample("ConfigRollout.record(latency)", latency)))
    for metric, value in (metrics or {}).items():
        if metric not in known:
            raise ArgumentValueError(
                f"ConfigRollout.record(metrics) names {metric!r}, which no gate reads "
                f"(read: {sorted(known)})"
            )
        values.append((metric, sample(f"ConfigRollout.record(metrics[{metric!r}])", value)))
    return values

"""Every event a :class:`~resilient.rollout.ConfigRollout` emits (source ``"rollout"``).

One per transition, each with its reason: ``rejected`` (a candidate failed validation),
``started``, ``stage_started``, ``evaluated`` (DEBUG: every gate's verdict), ``paused``,
``resumed``, ``rolled_back`` (WARNING: a gate or a budget failed, or an operator aborted),
``completed`` (the candidate is current for everyone), ``killed`` (the kill switch, on or off).
Each is also written to the store's log.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from resilient.events import EventAttributes, Severity

__all__ = [
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
    "ConfigRejected",
    "GatesEvaluated",
    "KillSwitchSet",
    "RolledBack",
    "RolloutCompleted",
    "RolloutPaused",
    "RolloutResumed",
    "RolloutStarted",
    "StageStarted",
]

ROLLOUT_EVENT_SOURCE = "rollout"
"""The ``source`` of every rollout event."""

ROLLOUT_REJECTED = "rejected"
ROLLOUT_STARTED = "started"
ROLLOUT_STAGE_STARTED = "stage_started"
ROLLOUT_EVALUATED = "evaluated"
ROLLOUT_PAUSED = "paused"
ROLLOUT_RESUMED = "resumed"
ROLLOUT_ROLLED_BACK = "rolled_back"
ROLLOUT_COMPLETED = "completed"
ROLLOUT_KILLED = "killed"


@dataclass(frozen=True, slots=True, eq=False)
class ConfigRejected(EventAttributes):
    """A candidate failed validation: nothing was stored as current, nobody sees it."""

    NAME: ClassVar[str] = ROLLOUT_REJECTED
    SEVERITY: ClassVar[Severity] = Severity.WARNING

    rollout: str
    problems: tuple[tuple[str, str, str], ...]
    """``(field, rule, message)`` for each fault."""


@dataclass(frozen=True, slots=True, eq=False)
class RolloutStarted(EventAttributes):
    """A rollout of version ``candidate`` began, with ``baseline`` serving the control."""

    NAME: ClassVar[str] = ROLLOUT_STARTED
    SEVERITY: ClassVar[Severity] = Severity.INFO

    rollout: str
    candidate: int
    baseline: int | None
    stages: int


@dataclass(frozen=True, slots=True, eq=False)
class StageStarted(EventAttributes):
    """Stage ``stage`` (0-based) began: its canary is ``percent`` of keys or ``cohorts``."""

    NAME: ClassVar[str] = ROLLOUT_STAGE_STARTED
    SEVERITY: ClassVar[Severity] = Severity.INFO

    rollout: str
    stage: int
    percent: float | None
    cohorts: tuple[str, ...]
    reason: str


@dataclass(frozen=True, slots=True, eq=False)
class GatesEvaluated(EventAttributes):
    """One evaluation of a stage: each gate's ``(name, verdict, detail)``."""

    NAME: ClassVar[str] = ROLLOUT_EVALUATED
    SEVERITY: ClassVar[Severity] = Severity.DEBUG

    rollout: str
    stage: int
    verdicts: tuple[tuple[str, str, str], ...]


@dataclass(frozen=True, slots=True, eq=False)
class RolloutPaused(EventAttributes):
    """The rollout holds its stage: it promotes nothing (gates still roll back)."""

    NAME: ClassVar[str] = ROLLOUT_PAUSED
    SEVERITY: ClassVar[Severity] = Severity.INFO

    rollout: str
    stage: int
    reason: str


@dataclass(frozen=True, slots=True, eq=False)
class RolloutResumed(EventAttributes):
    NAME: ClassVar[str] = ROLLOUT_RESUMED
    SEVERITY: ClassVar[Severity] = Severity.INFO

    rollout: str
    stage: int
    reason: str


@dataclass(frozen=True, slots=True, eq=False)
class RolledBack(EventAttributes):
    """Everyone is back on ``restored`` (the last known good version): a gate or a budget
    failed in stage ``stage`` after ``seconds_in_stage``, or an operator aborted."""

    NAME: ClassVar[str] = ROLLOUT_ROLLED_BACK
    SEVERITY: ClassVar[Severity] = Severity.WARNING

    rollout: str
    candidate: int
    restored: int | None
    stage: int
    seconds_in_stage: float
    reason: str


@dataclass(frozen=True, slots=True, eq=False)
class RolloutCompleted(EventAttributes):
    """Version ``candidate`` is current for everyone, and the last known good."""

    NAME: ClassVar[str] = ROLLOUT_COMPLETED
    SEVERITY: ClassVar[Severity] = Severity.INFO

    rollout: str
    candidate: int
    reason: str


@dataclass(frozen=True, slots=True, eq=False)
class KillSwitchSet(EventAttributes):
    """The kill switch was turned ``on`` (everyone on the last known good, no rollout may
    start) or off."""

    NAME: ClassVar[str] = ROLLOUT_KILLED
    SEVERITY: ClassVar[Severity] = Severity.WARNING

    rollout: str
    on: bool
    reason: str

"""Every event a :class:`~resilient.release.ReleaseQueue` emits (source ``"release"``).

How an action ended (one event each): ``dropped`` and ``failed`` (always), ``superseded`` and
``done`` (DEBUG) unless ``ReleaseOptions.routine_events`` is off. On the way:
``retrying`` after a failed attempt, ``replanned`` when the ``revalidate`` callback answered
with a fresh action. The queue as a whole: ``paused`` / ``resumed``, the brake's ``slowed`` /
``halted`` / ``released``, ``state_unavailable`` / ``state_recovered``, and ``closed``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from resilient.events import EventAttributes, Severity

__all__ = [
    "RELEASE_CLOSED",
    "RELEASE_DONE",
    "RELEASE_DROPPED",
    "RELEASE_EVENT_SOURCE",
    "RELEASE_FAILED",
    "RELEASE_HALTED",
    "RELEASE_PAUSED",
    "RELEASE_RELEASED",
    "RELEASE_REPLANNED",
    "RELEASE_RESUMED",
    "RELEASE_RETRYING",
    "RELEASE_SLOWED",
    "RELEASE_STATE_RECOVERED",
    "RELEASE_STATE_UNAVAILABLE",
    "RELEASE_SUPERSEDED",
    "ActionDone",
    "ActionDropped",
    "ActionFailed",
    "ActionReplanned",
    "ActionRetrying",
    "ActionSuperseded",
    "QueueClosed",
    "QueueHalted",
    "QueuePaused",
    "QueueReleased",
    "QueueResumed",
    "QueueSlowed",
    "StateRecovered",
    "StateUnavailable",
]

RELEASE_EVENT_SOURCE = "release"
"""The ``source`` of every release queue event."""

RELEASE_DONE = "done"
RELEASE_FAILED = "failed"
RELEASE_SUPERSEDED = "superseded"
RELEASE_DROPPED = "dropped"
RELEASE_RETRYING = "retrying"
RELEASE_REPLANNED = "replanned"
RELEASE_PAUSED = "paused"
RELEASE_RESUMED = "resumed"
RELEASE_SLOWED = "slowed"
RELEASE_HALTED = "halted"
RELEASE_RELEASED = "released"
RELEASE_STATE_UNAVAILABLE = "state_unavailable"
RELEASE_STATE_RECOVERED = "state_recovered"
RELEASE_CLOSED = "closed"


@dataclass(frozen=True, slots=True, eq=False)
class ActionDone(EventAttributes):
    """An action ran and succeeded (DEBUG; when ``ReleaseOptions.routine_events``)."""

    NAME: ClassVar[str] = RELEASE_DONE
    SEVERITY: ClassVar[Severity] = Severity.DEBUG

    key: str
    attempts: int
    """Runs it took (1 when the first succeeded)."""


@dataclass(frozen=True, slots=True, eq=False)
class ActionFailed(EventAttributes):
    """An action failed its last attempt and will not run again (ERROR)."""

    NAME: ClassVar[str] = RELEASE_FAILED
    SEVERITY: ClassVar[Severity] = Severity.ERROR

    key: str
    error: str
    """The last error, as ``Type: message``."""
    attempts: int
    reason: str
    """Why no retry: ``attempts exhausted (16 of 16)``, ``closed``, ``cancelled``."""


@dataclass(frozen=True, slots=True, eq=False)
class ActionSuperseded(EventAttributes):
    """A newer action for the same key took the place of one not yet started (INFO; when
    ``ReleaseOptions.routine_events``)."""

    NAME: ClassVar[str] = RELEASE_SUPERSEDED

    key: str
    based_on: int
    """The state version the superseded action was computed from."""
    by_based_on: int
    """The state version the newer one was computed from."""


@dataclass(frozen=True, slots=True, eq=False)
class ActionDropped(EventAttributes):
    """An action will never run, for ``reason`` (WARNING)."""

    NAME: ClassVar[str] = RELEASE_DROPPED
    SEVERITY: ClassVar[Severity] = Severity.WARNING

    key: str
    reason: str
    """E.g. ``stale: based on version 3, state is 5``, ``expired: 340 s old, max_age 300 s``,
    ``over budget: ...``, ``closed``, or the ``revalidate`` callback's own reason."""


@dataclass(frozen=True, slots=True, eq=False)
class ActionRetrying(EventAttributes):
    """An attempt failed; the action runs again after ``delay`` seconds (WARNING)."""

    NAME: ClassVar[str] = RELEASE_RETRYING
    SEVERITY: ClassVar[Severity] = Severity.WARNING

    key: str
    attempt: int
    """The attempt that failed (1 for the first run)."""
    error: str
    delay: float


@dataclass(frozen=True, slots=True, eq=False)
class ActionReplanned(EventAttributes):
    """The ``revalidate`` callback answered ``Replan``: a fresh action, computed from the
    current state, took the place of the old one (INFO)."""

    NAME: ClassVar[str] = RELEASE_REPLANNED

    key: str
    based_on: int
    """The version the old action was computed from."""
    version: int
    """The version the fresh one is based on (the state's at commit time)."""


@dataclass(frozen=True, slots=True, eq=False)
class QueuePaused(EventAttributes):
    """Nothing starts until the queue resumes (WARNING)."""

    NAME: ClassVar[str] = RELEASE_PAUSED
    SEVERITY: ClassVar[Severity] = Severity.WARNING

    reason: str
    """``pause(reason)``'s reason, or ``breaker 'name' is open`` for a followed breaker."""
    queued: int


@dataclass(frozen=True, slots=True, eq=False)
class QueueResumed(EventAttributes):
    """The queue starts actions again, from ``ramp_start`` per interval (INFO)."""

    NAME: ClassVar[str] = RELEASE_RESUMED

    paused_for: float
    """Seconds it was paused."""
    queued: int
    """Actions waiting when it resumed (each is revalidated before it starts)."""


@dataclass(frozen=True, slots=True, eq=False)
class QueueSlowed(EventAttributes):
    """The unhealthy share passed ``slow_above``: removals start ``factor`` times slower
    (WARNING)."""

    NAME: ClassVar[str] = RELEASE_SLOWED
    SEVERITY: ClassVar[Severity] = Severity.WARNING

    unhealthy: float
    threshold: float
    factor: float


@dataclass(frozen=True, slots=True, eq=False)
class QueueHalted(EventAttributes):
    """The unhealthy share passed ``halt_above``: no action that takes capacity out starts
    until it falls back; restores still go (ERROR)."""

    NAME: ClassVar[str] = RELEASE_HALTED
    SEVERITY: ClassVar[Severity] = Severity.ERROR

    unhealthy: float
    threshold: float


@dataclass(frozen=True, slots=True, eq=False)
class QueueReleased(EventAttributes):
    """Health is back under ``slow_above``: the brake is off (INFO)."""

    NAME: ClassVar[str] = RELEASE_RELEASED

    unhealthy: float
    braked_for: float
    """Seconds the brake was on (slowed or halted)."""


@dataclass(frozen=True, slots=True, eq=False)
class StateUnavailable(EventAttributes):
    """``state()`` raised, timed out or answered something that is not a ``ReleaseState``:
    nothing starts until it answers (WARNING; once per outage)."""

    NAME: ClassVar[str] = RELEASE_STATE_UNAVAILABLE
    SEVERITY: ClassVar[Severity] = Severity.WARNING

    reason: str


@dataclass(frozen=True, slots=True, eq=False)
class StateRecovered(EventAttributes):
    """``state()`` answered again (INFO)."""

    NAME: ClassVar[str] = RELEASE_STATE_RECOVERED

    unavailable_for: float


@dataclass(frozen=True, slots=True, eq=False)
class QueueClosed(EventAttributes):
    """The queue was closed (INFO): ``left`` actions were dropped with reason ``closed``."""

    NAME: ClassVar[str] = RELEASE_CLOSED

    left: int
    cancelled: int
    """Running actions cancelled (``close(cancel=True)``)."""

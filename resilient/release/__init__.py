"""Batch-throttled release of queued actions that change capacity (the 2026-03-04 incident).

A :class:`ReleaseQueue` takes actions computed from a snapshot of the world (``submit(key,
run, based_on=version, takes_out=units)``), coalesces them by key, and starts them only
after reading the state again at commit time: stale or expired actions are dropped (or
replanned by a ``revalidate`` callback), at most ``batch`` start per ``interval`` with a slow
start after every pause, at most ``max_in_flight`` run at once, the units out of service stay
within a disruption budget, and a health brake slows, then halts, the release as the fleet
gets sicker. Every action ends exactly once, as :class:`Done`, :class:`Failed`,
:class:`Superseded` or :class:`Dropped`, with an event and a count in ``queue.stats``.

- the queue: ``_queue.py``; its scheduler: ``_scheduler.py``; its tickets: ``_ticket.py``;
  where waiting actions stand: ``_line.py``; what is checked at commit time (state, brake,
  revalidation): ``_commit.py``; the workers: ``_pool.py``; the pace, budget and backoff
  arithmetic: ``_pacing.py``;
- every option and its default (with where the default comes from): ``_options.py``;
- the values it reads and answers with (state, verdicts, outcomes): ``_types.py``;
- every event: ``_events.py``; its error: :class:`~resilient.errors.QueueClosedError`.

Nothing here imports pybreaker: :meth:`ReleaseQueue.follow` imports the breaker module when
it is given a breaker (whose owner has imported it already).
"""

from resilient.errors import QueueClosedError
from resilient.release._commit import RevalidateCallback, StateSource
from resilient.release._events import (
    RELEASE_CLOSED,
    RELEASE_DONE,
    RELEASE_DROPPED,
    RELEASE_EVENT_SOURCE,
    RELEASE_FAILED,
    RELEASE_HALTED,
    RELEASE_PAUSED,
    RELEASE_RELEASED,
    RELEASE_REPLANNED,
    RELEASE_RESUMED,
    RELEASE_RETRYING,
    RELEASE_SLOWED,
    RELEASE_STATE_RECOVERED,
    RELEASE_STATE_UNAVAILABLE,
    RELEASE_SUPERSEDED,
    ActionDone,
    ActionDropped,
    ActionFailed,
    ActionReplanned,
    ActionRetrying,
    ActionSuperseded,
    QueueClosed,
    QueueHalted,
    QueuePaused,
    QueueReleased,
    QueueResumed,
    QueueSlowed,
    StateRecovered,
    StateUnavailable,
)
from resilient.release._options import DEFAULT_RELEASE_OPTIONS, ReleaseOptions
from resilient.release._queue import ReleaseQueue
from resilient.release._ticket import Ticket
from resilient.release._types import (
    Attempt,
    Brake,
    Done,
    Drop,
    Dropped,
    Failed,
    Outcome,
    Proceed,
    ReleaseState,
    ReleaseStats,
    Replan,
    Superseded,
    Verdict,
)

__all__ = [
    "DEFAULT_RELEASE_OPTIONS",
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
    "Attempt",
    "Brake",
    "Done",
    "Drop",
    "Dropped",
    "Failed",
    "Outcome",
    "Proceed",
    "QueueClosed",
    "QueueClosedError",
    "QueueHalted",
    "QueuePaused",
    "QueueReleased",
    "QueueResumed",
    "QueueSlowed",
    "ReleaseOptions",
    "ReleaseQueue",
    "ReleaseState",
    "ReleaseStats",
    "Replan",
    "RevalidateCallback",
    "StateRecovered",
    "StateSource",
    "StateUnavailable",
    "Superseded",
    "Ticket",
    "Verdict",
]

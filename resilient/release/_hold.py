"""What holds a :class:`~resilient.release.ReleaseQueue`: ``pause(reason)``, and the circuit
breakers it follows.

A followed breaker holds the queue while it is not closed (open or half-open). Its state is
read before every start and once an interval while it holds the queue, rather than followed
through its events: a breaker turns half-open only when its state is read, and its events go
to whichever bus it was given, so reading it is the one way that always sees it. The cost is
a resume up to one interval late, which the ramp that follows a resume dwarfs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from resilient._validate import Instance, Text, check
from resilient.clock import Clock
from resilient.events import Emitter
from resilient.release._events import QueuePaused, QueueResumed
from resilient.release._pacing import Pacer
from resilient.release._types import ReleaseStats

if TYPE_CHECKING:
    from resilient.breaker import CircuitBreaker

__all__ = ["Holds"]

_REASON = Text(non_empty=True)


class Holds:
    """The pause and the followed breakers of one queue; ``reason`` is what holds it now
    (None: nothing), as of the last :meth:`update`."""

    __slots__ = (
        "_clock",
        "_closed_state",
        "_emit",
        "_pacer",
        "_since",
        "_stats",
        "_wake",
        "followed",
        "manual",
        "reason",
    )

    def __init__(
        self,
        clock: Clock,
        emit: Emitter,
        pacer: Pacer,
        stats: ReleaseStats,
        wake: Callable[[], None],
    ) -> None:
        self._clock = clock
        self._emit = emit
        self._pacer = pacer
        self._stats = stats
        self._wake = wake
        self._closed_state: object = None
        self._since = 0.0
        self.manual: str | None = None
        """The reason of :meth:`pause`, until :meth:`resume`."""
        self.followed: list[CircuitBreaker] = []
        self.reason: str | None = None

    def pause(self, reason: str, queued: int) -> None:
        self.manual = check("ReleaseQueue.pause(reason)", reason, _REASON)
        self.update(queued)

    def resume(self, queued: int) -> None:
        self.manual = None
        self.update(queued)

    def follow(self, breaker: CircuitBreaker, queued: Callable[[], int]) -> Callable[[], None]:
        from resilient.breaker import BreakerState, CircuitBreaker

        check("ReleaseQueue.follow(breaker)", breaker, Instance(CircuitBreaker, "a CircuitBreaker"))
        self._closed_state = BreakerState.CLOSED
        if breaker not in self.followed:
            self.followed.append(breaker)
        self.update(queued())

        def unfollow() -> None:
            if breaker in self.followed:
                self.followed.remove(breaker)
                self.update(queued())

        return unfollow

    def current(self) -> str | None:
        """What holds the queue now (reads the followed breakers)."""
        if self.manual is not None:
            return self.manual
        for breaker in self.followed:
            state = breaker.state
            if state is not self._closed_state:
                return f"breaker {breaker.name!r} is {state.value}"
        return None

    def update(self, queued: int) -> str | None:
        """Look again; emit ``paused`` / ``resumed`` when it changed (a resume restarts the
        ramp and wakes the scheduler). Returns what holds the queue now."""
        reason = self.current()
        old = self.reason
        if reason == old:
            return reason
        now = self._clock.monotonic()
        self.reason = reason
        if reason is None:
            self._pacer.restart()
            self._emit(QueueResumed(now - self._since, queued))
            self._wake()
            return None
        if old is None:
            self._since = now
            self._stats.pauses += 1
        self._emit(QueuePaused(reason, queued))
        return reason

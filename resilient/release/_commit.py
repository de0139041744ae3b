"""What a :class:`~resilient.release.ReleaseQueue` checks against the world at commit time,
right before an action starts: the state (read fresh), the health brake, and whether the
action still makes sense (revalidation).

Every answer a user's code gives is bounded and judged here: ``state()`` and ``revalidate``
may be sync or async; an async one is given ``state_timeout`` / ``revalidate_timeout`` on the
queue's clock. One that raises, hangs or answers garbage never stops the queue: the state
then counts as unavailable (nothing starts; it is read again an interval later), and the
action is dropped with the reason (nothing is applied on a verdict that never came).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias

from resilient._deadline import Deadlines, DeadlineScope
from resilient._validate import shown
from resilient.events import Emitter
from resilient.release._events import (
    QueueHalted,
    QueueReleased,
    QueueSlowed,
    StateRecovered,
    StateUnavailable,
)
from resilient.release._options import ReleaseOptions
from resilient.release._pacing import Pacer
from resilient.release._ticket import Ticket
from resilient.release._types import (
    Brake,
    Drop,
    Proceed,
    ReleaseState,
    ReleaseStats,
    Replan,
    Verdict,
)

__all__ = ["CommitChecks", "Raised", "RevalidateCallback", "StateSource", "described"]

StateSource: TypeAlias = Callable[[], ReleaseState | Awaitable[ReleaseState]]
"""What ``ReleaseQueue(state)`` takes: returns, or awaits, the state now."""

RevalidateCallback: TypeAlias = Callable[[Ticket[Any], ReleaseState], Verdict | Awaitable[Verdict]]
"""``revalidate(action, state)``: answers :class:`Proceed`, :class:`Replan` or :class:`Drop`."""

_OFF, _SLOWED, _HALTED = Brake.OFF, Brake.SLOWED, Brake.HALTED


class CommitChecks:
    """The state, the brake and revalidation of one queue (see the module doc)."""

    __slots__ = (
        "_braked_since",
        "_deadlines",
        "_emit",
        "_options",
        "_pacer",
        "_stats",
        "_unavailable_since",
        "brake",
        "revalidate",
        "source",
    )

    def __init__(
        self,
        state: StateSource,
        revalidate: RevalidateCallback | None,
        options: ReleaseOptions,
        pacer: Pacer,
        deadlines: Deadlines,
        emit: Emitter,
        stats: ReleaseStats,
    ) -> None:
        self.source = state
        """``state``, as given: the scheduler calls it (see :meth:`settle`)."""
        self.revalidate = revalidate
        self._options = options
        self._pacer = pacer
        self._deadlines = deadlines
        self._emit = emit
        self._stats = stats
        self._unavailable_since: float | None = None
        self._braked_since = 0.0
        self.brake = _OFF
        """Where the brake stands, as of the last state read."""

    @property
    def unavailable(self) -> bool:
        """True from a failed read of the state until the next good one."""
        return self._unavailable_since is not None

    async def settle(self, answer: object, now: float) -> ReleaseState | None:
        """The state from what ``source()`` answered (a :class:`Raised` when it raised):
        awaited within ``state_timeout`` when awaitable, checked; None when there is no
        state (with a ``state_unavailable`` event, once per outage)."""
        timeout = self._options.state_timeout
        scope: DeadlineScope | None = None
        try:
            if isinstance(answer, Raised):
                raise answer.error
            if not isinstance(answer, ReleaseState) and inspect.isawaitable(answer):
                async with self._deadlines.within(timeout) as scope:
                    answer = await answer
            if not isinstance(answer, ReleaseState):
                raise _NotAState(f"state() answered {shown(answer)}, not a ReleaseState")
        except asyncio.CancelledError as error:
            if _cancelled():
                raise
            reason = f"state() raised {described(error)}"
        except _NotAState as error:
            reason = str(error)
        except Exception as error:
            if scope is not None and scope.expired:
                reason = f"state() gave no answer within {timeout:g} s"
            else:
                reason = f"state() raised {described(error)}"
        else:
            if self._unavailable_since is not None:
                self._emit(StateRecovered(now - self._unavailable_since))
                self._unavailable_since = None
            return answer
        if self._unavailable_since is None:
            self._unavailable_since = now
            self._emit(StateUnavailable(reason))
        return None

    def update_brake(self, state: ReleaseState, now: float) -> Brake:
        """Set the brake from ``state.unhealthy`` (with an event when it moves); out of a
        halt the ramp starts again from ``ramp_start``."""
        options = self._options
        unhealthy = state.unhealthy
        if unhealthy > options.halt_above:
            brake = _HALTED
        elif unhealthy > options.slow_above:
            brake = _SLOWED
        else:
            brake = _OFF
        old = self.brake
        if brake is old:
            return brake
        self.brake = brake
        if old is _HALTED:
            self._pacer.restart()
        if old is _OFF:
            self._braked_since = now
        if brake is _OFF:
            self._emit(QueueReleased(unhealthy, now - self._braked_since))
        elif brake is _SLOWED:
            self._emit(QueueSlowed(unhealthy, options.slow_above, options.slow_factor))
        else:
            self._stats.halts += 1
            self._emit(QueueHalted(unhealthy, options.halt_above))
        return brake

    async def judge(
        self, ticket: Ticket[Any], state: ReleaseState, now: float
    ) -> str | Replan | None:
        """Revalidate ``ticket`` against ``state``: None to start it, a reason to drop it, or
        the :class:`Replan` to start instead.

        By policy an action older than ``max_age``, or computed from a version older than the
        state's, never starts as it is: without a callback it is dropped; the callback may
        replan it (a ``Proceed`` answer drops it with the policy's reason). A fresh action
        starts unless the callback answers otherwise.
        """
        problem = self.problem(ticket, state, now)
        callback = self.revalidate
        if callback is None:
            return problem
        timeout = self._options.revalidate_timeout
        scope: DeadlineScope | None = None
        try:
            verdict: Any = callback(ticket, state)
            if not isinstance(verdict, (Proceed, Replan, Drop)) and inspect.isawaitable(verdict):
                async with self._deadlines.within(timeout) as scope:
                    verdict = await verdict
        except asyncio.CancelledError:
            if _cancelled():
                raise
            return "revalidate raised CancelledError"
        except Exception as error:
            if scope is not None and scope.expired:
                return f"revalidate gave no answer within {timeout:g} s"
            return f"revalidate raised {described(error)}"
        if isinstance(verdict, Proceed):
            return problem
        if isinstance(verdict, Replan):
            restores = ticket._restores if verdict.restores is None else verdict.restores
            if restores and verdict.takes_out:
                return (
                    f"revalidate answered a Replan that restores and takes out "
                    f"{verdict.takes_out} units"
                )
            return verdict
        if isinstance(verdict, Drop):
            return verdict.reason
        return f"revalidate answered {shown(verdict)}, not Proceed, Replan or Drop"

    def problem(self, ticket: Ticket[Any], state: ReleaseState, now: float) -> str | None:
        """Why policy forbids starting ``ticket`` as it is (None: nothing)."""
        max_age = self._options.max_age
        age = now - ticket._submitted_at
        if age > max_age:
            return f"expired: {_seconds(age)} s old, max_age {_seconds(max_age)} s"
        if ticket._based_on < state.version:
            return f"stale: based on version {ticket._based_on}, state is {state.version}"
        return None


class Raised:
    """What a sync ``state()`` answered by raising: the scheduler calls ``state()`` itself
    (the fast path) and hands this to :meth:`CommitChecks.settle`."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


class _NotAState(Exception):
    """``state()`` answered something that is not a :class:`ReleaseState`."""


def _cancelled() -> bool:
    """True when the current task is being cancelled (the queue closes), not merely handed a
    ``CancelledError`` by a callback that raised one of its own."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _seconds(value: float) -> str:
    """``340`` for 340.2 seconds, ``2.5`` for 2.5, ``0.005`` for 0.005."""
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"


def described(error: BaseException) -> str:
    """``Type: message`` (the message shown in at most about 100 characters)."""
    try:
        text = str(error)
    except Exception:
        text = "<a message that cannot be shown>"
    name = type(error).__name__
    return f"{name}: {shown(text)[1:-1]}" if text else name

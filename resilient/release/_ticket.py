"""A :class:`Ticket`: one submitted action, awaitable for how it ended."""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable, Generator
from typing import Any, Final, Generic, Literal, TypeVar

from resilient.release._types import Attempt, Outcome

__all__ = ["Ticket"]

T = TypeVar("T")

# Where a ticket stands (Ticket._state); the queue moves it, in this order at most.
QUEUED = 0
"""In a lane, waiting for its turn."""
PARKED = 1
"""Waiting for the running action of its key to end."""
DELAYED = 2
"""Waiting for its backoff to pass before the next run."""
READY = 3
"""Committed (counted in flight and in the budget); its run starts at once."""
RUNNING = 4
ENDED = 5


class _Here(enum.Enum):
    HERE = "here"


HERE: Final = _Here.HERE
"""``Ticket._entry`` of a ticket that holds its own place in a lane (see ``_line.py``)."""

_STATUS = ("queued", "parked", "backoff", "starting", "running", "ended")


class Ticket(Generic[T]):
    """One action submitted to a :class:`~resilient.release.ReleaseQueue`.

    Read-only: ``key``, ``based_on`` (the state version it was computed from),
    ``submitted_at`` (on the queue's clock), ``takes_out``, ``restores``; ``status`` where it
    stands; ``outcome`` how it ended (None until then) and ``attempts`` its failed runs.
    ``await ticket`` returns the :data:`~resilient.release.Outcome` once it has ended (a
    cancelled waiter changes nothing for the action or other waiters).
    """

    __slots__ = (
        "_attempts",
        "_based_on",
        "_current",
        "_entry",
        "_future",
        "_key",
        "_lazy",
        "_restores",
        "_run",
        "_started",
        "_state",
        "_submitted_at",
        "_takes_out",
        "_tries",
        "_value",
    )

    # Set before they are first read (not in __init__: a submit is the hot path).
    _started: float
    """When its last run was committed, on the queue's clock (set at each commit)."""
    _lazy: Callable[[Any], Outcome[T]] | None
    _value: Any
    """Once ended (both set then): the outcome, or what ``_lazy`` builds it from."""

    def __init__(
        self,
        key: str,
        run: Callable[[], Awaitable[T]],
        based_on: int,
        takes_out: int,
        restores: bool,
        submitted_at: float,
    ) -> None:
        self._key = key
        self._run = run
        self._based_on = based_on
        self._takes_out = takes_out
        self._restores = restores
        self._submitted_at = submitted_at
        self._state = QUEUED
        self._entry: Ticket[Any] | Literal[_Here.HERE] | None = None
        """Where it stands in a lane: HERE (its own place), the ticket whose place it holds,
        or None (in no lane)."""
        self._current: Ticket[Any] | None = None
        """For a ticket whose place another holds now: that one (None: nobody)."""
        self._tries = 0
        self._attempts: list[Attempt] | None = None
        self._future: asyncio.Future[None] | None = None

    @property
    def key(self) -> str:
        return self._key

    @property
    def based_on(self) -> int:
        """The state version the action was computed from."""
        return self._based_on

    @property
    def takes_out(self) -> int:
        """Units the action takes out of service while it runs."""
        return self._takes_out

    @property
    def restores(self) -> bool:
        """True for an action that adds capacity back: it goes first, past the budget and the
        brake."""
        return self._restores

    @property
    def submitted_at(self) -> float:
        """When it was submitted (computed), on the queue's clock."""
        return self._submitted_at

    @property
    def status(self) -> str:
        """``queued``, ``parked`` (behind the running action of its key), ``backoff``
        (waiting to run again), ``starting``, ``running`` or ``ended``."""
        return _STATUS[self._state]

    @property
    def runs(self) -> int:
        """Times it has started running."""
        return self._tries

    @property
    def attempts(self) -> tuple[Attempt, ...]:
        """Every failed run so far, in order."""
        return tuple(self._attempts) if self._attempts else ()

    @property
    def outcome(self) -> Outcome[T] | None:
        """How it ended, or None while it has not."""
        if self._state != ENDED:
            return None
        lazy = self._lazy
        if lazy is not None:
            self._value = lazy(self._value)
            self._lazy = None
        outcome: Outcome[T] = self._value
        return outcome

    @property
    def done(self) -> bool:
        """True once it has ended (one outcome, for good)."""
        return self._state == ENDED

    def __await__(self) -> Generator[Any, None, Outcome[T]]:
        return self._wait().__await__()

    async def _wait(self) -> Outcome[T]:
        if self._state != ENDED:
            future = self._future
            if future is None:
                future = self._future = asyncio.get_running_loop().create_future()
            # Shielded: a waiter that is cancelled must not cancel the future others wait on.
            await asyncio.shield(future)
        outcome = self.outcome
        assert outcome is not None
        return outcome

    def _resolve(self, outcome: Outcome[T]) -> None:
        """End the ticket with ``outcome`` (the queue ends a ticket exactly once)."""
        self._resolve_lazily(None, outcome)

    def _resolve_lazily(self, kind: Callable[[Any], Outcome[T]] | None, value: object) -> None:
        """End the ticket with ``kind(value)``, built when first read: a success or a
        supersession (the routine endings) costs no object until someone looks. Building a
        ``Done`` each time cost 0.3 us of the 4.8 us an unthrottled action took
        (``bench/bench_release.py``)."""
        self._lazy = kind
        self._value = value
        self._state = ENDED
        future = self._future
        if future is not None and not future.done():
            future.set_result(None)

    def __repr__(self) -> str:
        return (
            f"Ticket(key={self._key[:40]!r}, based_on={self._based_on}, "
            f"takes_out={self._takes_out}, status={self.status})"
        )

"""Where every action that has not started stands: the line of a
:class:`~resilient.release.ReleaseQueue`.

At most one action waits per key (a newer one supersedes it), in one of three places: a
*lane* (restores first, then the rest, each first in first out), *parked* behind the running
action of its key, or in *backoff* before its next run (a heap by due time).

A newer action for a key takes the place in line of the one it supersedes (client-go keeps a
re-added key where it was), so a key updated often is not pushed back each time. The lanes
hold tickets themselves: a ticket's ``_entry`` is :data:`HERE` when it holds its own place,
or the superseded ticket whose place it holds (whose ``_current`` points back to it), or
None when it is in no lane. There is no place object per action: a second object per queued
action made a submit cost twice as much under the garbage collector (1.2 to 2.0-3.7 us per
insert of 100,000, measured on the machine of ``bench/bench_release.py``), and no ticket ever
refers to itself (no cycle for the collector to find).
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Container
from typing import Any

from resilient.release._ticket import DELAYED, HERE, PARKED, QUEUED, Ticket

__all__ = ["Line"]


class Line:
    """The waiting actions of one queue, one per key."""

    __slots__ = ("_delayed", "_order", "pending", "removals", "restores")

    def __init__(self) -> None:
        self.pending: dict[str, Ticket[Any]] = {}
        """The waiting action of each key (in a lane, parked, or in backoff)."""
        self.restores: deque[Ticket[Any]] = deque()
        self.removals: deque[Ticket[Any]] = deque()
        self._delayed: list[tuple[float, int, Ticket[Any]]] = []
        self._order = itertools.count()

    def place(self, ticket: Ticket[Any], running: Container[str]) -> Ticket[Any] | None:
        """Put a new ticket where its key's waiting one was, parked behind its key's running
        one, or at the end of its lane; returns the ticket it supersedes (None if none)."""
        key = ticket._key
        pending = self.pending
        old = pending.get(key)
        pending[key] = ticket
        if old is None:
            if key in running:
                ticket._state = PARKED
            else:
                self.enqueue(ticket)
            return None
        if old._state == PARKED:
            ticket._state = PARKED
        elif old._entry is not None and old._restores == ticket._restores:
            self._hand_over(old, ticket)
        else:
            self._leave(old)
            self.enqueue(ticket)
        return old

    def replace(self, old: Ticket[Any], fresh: Ticket[Any]) -> None:
        """``fresh`` (a replanned action) takes the place of ``old``, which is in a lane:
        the same place, or the end of the other lane."""
        self.pending[old._key] = fresh
        if fresh._restores == old._restores:
            self._hand_over(old, fresh)
        else:
            self._leave(old)
            self.enqueue(fresh)

    def enqueue(self, ticket: Ticket[Any]) -> None:
        """At the end of its lane."""
        ticket._entry = HERE
        ticket._state = QUEUED
        (self.restores if ticket._restores else self.removals).append(ticket)

    def head(self) -> Ticket[Any] | None:
        """The action holding the first place, restores first (places nobody holds any more
        are cleared on the way)."""
        for lane in (self.restores, self.removals):
            while lane:
                entry = lane[0]
                if entry._entry is HERE:
                    return entry
                current = entry._current
                if current is not None:
                    return current
                lane.popleft()
        return None

    def take(self, ticket: Ticket[Any]) -> None:
        """Take the head ``ticket`` out of line."""
        (self.restores if ticket._restores else self.removals).popleft()
        entry = ticket._entry
        if entry is not HERE and entry is not None:
            entry._current = None
        ticket._entry = None
        del self.pending[ticket._key]

    def unpark(self, key: str) -> bool:
        """The running action of ``key`` ended: its parked one (if any) goes to the end of
        its lane. True when there was one."""
        parked = self.pending.get(key)
        if parked is None or parked._state != PARKED:
            return False
        self.enqueue(parked)
        return True

    def back_off(self, ticket: Ticket[Any], due: float) -> None:
        """``ticket`` failed a run: it waits until ``due`` before it gets in line again."""
        ticket._state = DELAYED
        self.pending[ticket._key] = ticket
        heapq.heappush(self._delayed, (due, next(self._order), ticket))

    def next_due(self) -> float | None:
        """When the first backoff ends (None: none is under way)."""
        return self._delayed[0][0] if self._delayed else None

    def admit_due(self, now: float) -> None:
        """Put the actions whose backoff has ended back in line (at the end). An entry whose
        action was superseded meanwhile is skipped."""
        delayed = self._delayed
        while delayed and delayed[0][0] <= now:
            _, _, ticket = heapq.heappop(delayed)
            if ticket._state == DELAYED and self.pending.get(ticket._key) is ticket:
                self.enqueue(ticket)

    def clear(self) -> list[Ticket[Any]]:
        """Empty the line; returns every waiting action, lanes first, in line order."""
        left = []
        for lane in (self.restores, self.removals):
            for entry in lane:
                current = entry if entry._entry is HERE else entry._current
                if current is not None:
                    left.append(current)
                    current._entry = None
                entry._current = None
        left += [ticket for ticket in self.pending.values() if ticket._state != QUEUED]
        self.restores.clear()
        self.removals.clear()
        self.pending.clear()
        self._delayed.clear()
        return left

    def __len__(self) -> int:
        return len(self.pending)

    @staticmethod
    def _hand_over(old: Ticket[Any], new: Ticket[Any]) -> None:
        """``new`` holds the place ``old`` held."""
        entry = old._entry
        if entry is HERE:
            entry = old
        assert entry is not None
        entry._current = new
        new._entry = entry
        new._state = QUEUED
        old._entry = None  # when old is the entry, it stays in the lane, held by ``new``

    @staticmethod
    def _leave(old: Ticket[Any]) -> None:
        """``old`` gives up its place (nobody holds it any more)."""
        entry = old._entry
        if entry is not None and entry is not HERE:
            entry._current = None
        old._entry = None

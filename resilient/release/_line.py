"""Where every action that has not started stands: the line of a
:class:`~resilient.release.ReleaseQueue`.

At most one action waits per key (a newer one supersedes it), in one of three places: a
*lane* (restores first, then the rest, each first in first out), *parked* behind the running
action of its key, or in *backoff* before its next run (a heap by due time).
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Container
from typing import Any

from resilient.release._ticket import DELAYED, PARKED, QUEUED, Ticket

__all__ = ["Line", "Slot"]


class Slot:
    """A place in a lane. A newer action for the same key takes the place of the one it
    supersedes (client-go keeps a re-added key where it was), so a key updated often is not
    pushed back each time."""

    __slots__ = ("ticket",)

    def __init__(self, ticket: Ticket[Any]) -> None:
        self.ticket: Ticket[Any] | None = ticket


class Line:
    """The waiting actions of one queue, one per key."""

    __slots__ = ("_delayed", "_order", "pending", "removals", "restores")

    def __init__(self) -> None:
        self.pending: dict[str, Ticket[Any]] = {}
        """The waiting action of each key (in a lane, parked, or in backoff)."""
        self.restores: deque[Slot] = deque()
        self.removals: deque[Slot] = deque()
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
        slot = old._slot
        if old._state == PARKED:
            ticket._state = PARKED
        elif slot is not None and old._restores == ticket._restores:
            slot.ticket = ticket
            ticket._slot = slot
        else:
            if slot is not None:
                slot.ticket = None
            self.enqueue(ticket)
        old._slot = None
        return old

    def replace(self, slot: Slot, old: Ticket[Any], fresh: Ticket[Any]) -> None:
        """``fresh`` (a replanned action) takes the place of ``old``, at the head of a lane:
        the same slot, or the end of the other lane."""
        self.pending[old._key] = fresh
        old._slot = None
        if fresh._restores == old._restores:
            slot.ticket = fresh
            fresh._slot = slot
        else:
            slot.ticket = None
            self.enqueue(fresh)

    def enqueue(self, ticket: Ticket[Any]) -> None:
        """At the end of its lane."""
        slot = Slot(ticket)
        ticket._slot = slot
        ticket._state = QUEUED
        (self.restores if ticket._restores else self.removals).append(slot)

    def head(self) -> Slot | None:
        """The first place held, restores first (empty places are cleared on the way)."""
        for lane in (self.restores, self.removals):
            while lane:
                slot = lane[0]
                if slot.ticket is not None:
                    return slot
                lane.popleft()
        return None

    def take(self, slot: Slot, ticket: Ticket[Any]) -> None:
        """Take the head ``slot`` (holding ``ticket``) out of line."""
        (self.restores if ticket._restores else self.removals).popleft()
        slot.ticket = None
        ticket._slot = None
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
        left = [
            slot.ticket for lane in (self.restores, self.removals) for slot in lane if slot.ticket
        ]
        left += [ticket for ticket in self.pending.values() if ticket._state != QUEUED]
        self.restores.clear()
        self.removals.clear()
        self.pending.clear()
        self._delayed.clear()
        return left

    def __len__(self) -> int:
        return len(self.pending)

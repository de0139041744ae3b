"""The line of a release queue: places kept across supersessions, parking, backoff, and no
reference left between tickets once they leave it."""

from __future__ import annotations

from typing import Any

from resilient.release._line import Line
from resilient.release._ticket import DELAYED, HERE, PARKED, QUEUED, Ticket


async def noop() -> None:
    return None


def ticket(key: str, *, restores: bool = False, based_on: int = 1) -> Ticket[Any]:
    return Ticket(key, noop, based_on, 0, restores, 0.0)


def order(line: Line) -> list[tuple[str, int]]:
    """Keys (and versions) in line order, by taking the head until none is left."""
    taken = []
    while (head := line.head()) is not None:
        taken.append((head.key, head.based_on))
        line.take(head)
    return taken


def test_a_newer_ticket_holds_the_place_of_the_one_it_supersedes() -> None:
    line = Line()
    a1, b, a2, a3 = ticket("a"), ticket("b"), ticket("a", based_on=2), ticket("a", based_on=3)
    assert line.place(a1, ()) is None
    line.place(b, ())
    assert line.place(a2, ()) is a1
    assert line.place(a3, ()) is a2
    assert (a1._entry, a2._entry, a3._entry) == (None, None, a1)
    assert a1._current is a3
    assert a3._state == QUEUED
    assert len(line) == 2
    assert order(line) == [("a", 3), ("b", 1)]
    assert a1._current is None  # taken: the place is released, no reference is left
    assert a3._entry is None
    assert len(line) == 0


def test_restores_come_first_and_a_lane_change_goes_to_the_end() -> None:
    line = Line()
    removal, restore = ticket("x"), ticket("r", restores=True)
    line.place(removal, ())
    line.place(ticket("y"), ())
    line.place(restore, ())
    flipped = ticket("x", restores=True, based_on=2)
    assert line.place(flipped, ()) is removal
    assert removal._entry is None
    assert order(line) == [("r", 1), ("x", 2), ("y", 1)]


def test_a_key_that_runs_parks_its_newer_ticket_until_unparked() -> None:
    line = Line()
    parked = ticket("k")
    assert line.place(parked, {"k"}) is None
    assert parked._state == PARKED
    assert parked._entry is None
    newer = ticket("k", based_on=2)
    assert line.place(newer, {"k"}) is parked
    assert newer._state == PARKED
    assert line.head() is None
    assert line.unpark("absent") is False
    assert line.unpark("k") is True
    assert newer._state == QUEUED
    assert newer._entry is HERE
    assert line.unpark("k") is False  # queued now, not parked
    assert order(line) == [("k", 2)]


def test_backoff_keeps_a_ticket_out_of_line_until_due() -> None:
    line = Line()
    failed, other = ticket("f"), ticket("o")
    line.back_off(failed, 5.0)
    line.back_off(other, 3.0)
    assert (failed._state, len(line), line.next_due()) == (DELAYED, 2, 3.0)
    line.admit_due(2.9)
    assert line.head() is None
    line.admit_due(3.0)
    assert line.head() is other
    assert other._state == QUEUED
    newer = ticket("f", based_on=2)
    assert line.place(newer, ()) is failed  # a newer one supersedes a ticket in backoff
    line.admit_due(10.0)  # the superseded one's due entry is skipped
    assert order(line) == [("o", 1), ("f", 2)]
    assert line.next_due() is None


def test_replace_puts_a_replanned_ticket_where_the_old_one_stood() -> None:
    line = Line()
    old = ticket("k")
    line.place(old, ())
    line.place(ticket("z"), ())
    fresh = ticket("k", based_on=2)
    line.replace(old, fresh)
    assert line.pending["k"] is fresh
    assert old._entry is None
    assert line.head() is fresh
    flipped = ticket("k", restores=True, based_on=3)
    line.replace(fresh, flipped)
    assert line.pending["k"] is flipped
    assert fresh._entry is None
    assert old._current is None  # the old place is nobody's now
    assert order(line) == [("k", 3), ("z", 1)]


def test_clear_returns_every_waiting_ticket_once_and_unlinks_them() -> None:
    line = Line()
    first, second = ticket("a"), ticket("b", restores=True)
    line.place(first, ())
    line.place(second, ())
    newer = ticket("a", based_on=2)
    line.place(newer, ())
    parked = ticket("p")
    line.place(parked, {"p"})
    delayed = ticket("d")
    line.back_off(delayed, 9.0)
    unparked = ticket("u")
    line.place(unparked, {"u"})
    line.unpark("u")
    left = line.clear()
    assert left == [second, newer, unparked, parked, delayed]
    assert all(t._entry is None and t._current is None for t in [first, newer, second, unparked])
    assert len(line) == 0
    assert line.head() is None
    assert line.next_due() is None

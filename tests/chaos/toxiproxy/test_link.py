"""One direction of a proxied connection (``chaos.toxiproxy._link``), without sockets.

:class:`WorkBudget` is driven with a loop that only records ``call_soon``, so each round of the
shared toxic work is ended by hand: the share of each busy link, its floor, and when a round
ends. ``test_fairness.py`` measures what the budget is for (a responsive API under a flood).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import cast

import pytest

from chaos.toxiproxy._link import WorkBudget, resolve_future


class _Loop:
    """The one method of a loop that a budget calls: ``call_soon``, recorded."""

    def __init__(self) -> None:
        self.soon: list[Callable[[], None]] = []

    def call_soon(self, callback: Callable[[], None]) -> object:
        self.soon.append(callback)
        return object()

    def come_round(self) -> None:
        callbacks, self.soon = self.soon, []
        for callback in callbacks:
            callback()


def _round(budget: WorkBudget, loop: _Loop, links: int) -> None:
    for _ in range(links):
        budget.yielding(cast(asyncio.AbstractEventLoop, loop))
    loop.come_round()


def test_one_busy_link_has_the_whole_slice_of_a_millisecond() -> None:
    assert WorkBudget().share() == pytest.approx(0.001)


def test_the_links_that_yielded_in_a_round_share_the_next_one_equally() -> None:
    budget, loop = WorkBudget(), _Loop()
    _round(budget, loop, 4)
    assert budget.share() == pytest.approx(0.00025)
    _round(budget, loop, 2)
    assert budget.share() == pytest.approx(0.0005)


def test_a_share_is_never_below_50_microseconds() -> None:
    budget, loop = WorkBudget(), _Loop()
    _round(budget, loop, 19)
    assert budget.share() == pytest.approx(0.001 / 19)
    _round(budget, loop, 20)
    assert budget.share() == pytest.approx(0.00005)
    _round(budget, loop, 1000)
    assert budget.share() == pytest.approx(0.00005)


def test_a_round_ends_when_the_loop_comes_round_once_however_many_yield() -> None:
    budget, loop = WorkBudget(), _Loop()
    for _ in range(3):
        budget.yielding(cast(asyncio.AbstractEventLoop, loop))
    assert len(loop.soon) == 1  # one end of round for the three
    assert budget.share() == pytest.approx(0.001)  # the round is not over yet
    loop.come_round()
    assert budget.share() == pytest.approx(0.001 / 3)
    budget.yielding(cast(asyncio.AbstractEventLoop, loop))
    assert len(loop.soon) == 1  # the next round has its own end
    loop.come_round()
    assert budget.share() == pytest.approx(0.001)


def test_a_round_nobody_yielded_in_gives_the_next_link_the_whole_slice() -> None:
    budget, loop = WorkBudget(), _Loop()
    _round(budget, loop, 5)
    budget._next_round()  # a round with no yield (the loop came round, nobody was busy)
    assert budget.share() == pytest.approx(0.001)


async def test_resolve_future_sets_a_pending_future_and_leaves_a_done_one_alone() -> None:
    loop = asyncio.get_running_loop()
    pending: asyncio.Future[int] = loop.create_future()
    resolve_future(pending, 1)
    assert pending.result() == 1
    resolve_future(pending, 2)  # already done: no InvalidStateError
    assert pending.result() == 1
    cancelled: asyncio.Future[int] = loop.create_future()
    cancelled.cancel()
    resolve_future(cancelled, 3)
    assert cancelled.cancelled()

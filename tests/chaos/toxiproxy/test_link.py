"""One direction of a proxied connection (``chaos.toxiproxy._link``), without sockets.

:class:`WorkBudget` is driven with a loop that only records ``call_soon``, so each round of the
shared toxic work is ended by hand: the share of each busy link, its floor, and when a round
ends. ``test_fairness.py`` measures what the budget is for (a responsive API under a flood). A
:class:`Link` runs over fake sides and a fake connection: when it stops reading, and what a
toxic that fails does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from types import SimpleNamespace
from typing import cast

import pytest

from chaos.toxiproxy import _link as _link_module
from chaos.toxiproxy._link import Link, WorkBudget, resolve_future
from chaos.toxiproxy._proxy import Connection
from chaos.toxiproxy._proxy import Side as ProxySide
from chaos.toxiproxy._toxics import Chunk, Emit, Stage, Toxic


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


# -- a Link over fake sides and a fake connection --------------------------------------------


class _Side:
    """A socket of the connection as a link sees it: flow control, recorded."""

    def __init__(self) -> None:
        self.write_paused = False
        self.reading: list[bool] = []

    def set_reading(self, *, paused: bool) -> None:
        self.reading.append(paused)


class _Transport:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    def is_closing(self) -> bool:
        return False

    def write(self, data: bytes) -> None:
        self.written.append(data)


class _Connection:
    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.proxy = SimpleNamespace(name="p", budget=WorkBudget())
        self.dialed: asyncio.Future[None] = self.loop.create_future()
        self.dialed.set_result(None)
        self.closing = False
        self.closed = 0

    def close(self) -> None:
        self.closing = True
        self.closed += 1


def _link() -> tuple[Link, _Connection, _Side, _Transport]:
    connection, source, sink, transport = _Connection(), _Side(), _Side(), _Transport()
    link = Link(
        cast(Connection, connection),
        True,
        cast(ProxySide, source),
        cast(ProxySide, sink),
        random.Random(0),
    )
    link.sink_transport = cast(asyncio.Transport, transport)
    return link, connection, source, transport


def _toxic() -> Toxic:
    return Toxic("t", "noop", "upstream", True, 1.0, {})


async def test_a_link_with_toxics_stops_reading_once_a_mebibyte_waits() -> None:
    link, _connection, source, _transport = _link()
    link.direct = False  # as before the upstream is dialled: what arrives waits in the queue
    link.feed(b"x" * (1024 * 1024 - 1))
    assert source.reading == []
    link.feed(b"x")
    assert source.reading == [True]


async def test_a_toxic_that_fails_closes_its_connection_with_one_logged_error(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    class Failing(Stage):
        async def process(self, chunk: Chunk, emit: Emit) -> None:
            raise RuntimeError("broken toxic")

    monkeypatch.setattr(_link_module, "make_stage", Failing)
    link, connection, _source, transport = _link()
    link.add_stage(_toxic())
    task = link.task
    assert task is not None
    link.feed(b"data")
    await task
    assert connection.closed == 1
    assert transport.written == []
    (record,) = [r for r in caplog.records if r.name == "chaos.toxiproxy"]
    assert record.levelno == logging.ERROR
    assert record.getMessage() == "proxy p: toxic chain failed; closing the connection"
    assert record.exc_info is not None
    assert link.task is None


async def test_what_waited_for_the_dial_is_relayed_in_order_and_no_longer_counts() -> None:
    link, _connection, source, transport = _link()
    link.direct = False  # before the dial
    link.feed(b"first ")
    link.feed(b"second")
    link.dialed()
    assert transport.written == [b"first ", b"second"]
    assert link.direct is True  # no toxic: direct from now on
    assert source.reading == [False]  # the sink is not paused: reading goes on
    link.direct = False
    link.feed(b"x" * (1024 * 1024 - 1))  # the relayed bytes no longer count as waiting
    assert source.reading == [False]


class _Counting(Stage):
    """A stage that passes every chunk on and counts its (re)starts."""

    def start(self) -> None:
        self.starts = getattr(self, "starts", 0) + 1
        super().start()


async def _stopped(link: Link) -> None:
    await asyncio.sleep(0)  # the task starts (and waits for data)
    task = link.task
    link.stop()
    if task is not None:
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_toxic_added_restarts_the_one_it_follows_and_shares_the_one_task(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_link_module, "make_stage", _Counting)
    link, _connection, _source, transport = _link()
    link.add_stage(_toxic())
    first = cast(_Counting, link.stages[0])
    task = link.task
    assert (first.starts, link.direct, task is not None) == (1, False, True)
    link.add_stage(_toxic())
    second = cast(_Counting, link.stages[1])
    assert (first.starts, second.starts) == (2, 1)  # as Toxiproxy: the one before restarts
    assert link.task is task  # one task runs every stage
    link.feed(b"through both")
    for _ in range(100):  # the task's turn
        if transport.written:
            break
        await asyncio.sleep(0)
    assert transport.written == [b"through both"]
    await _stopped(link)


async def test_a_toxic_added_while_closing_restarts_nothing_and_runs_no_task(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_link_module, "make_stage", _Counting)
    link, connection, _source, _transport = _link()
    link.direct = False
    link.add_stage(_toxic())
    first = cast(_Counting, link.stages[0])
    await _stopped(link)
    connection.closing = True
    link.add_stage(_toxic())
    assert first.starts == 1
    assert link.task is None


async def test_a_toxic_removed_restarts_only_the_one_before_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_link_module, "make_stage", _Counting)
    link, _connection, _source, _transport = _link()
    toxics = [_toxic(), _toxic(), _toxic()]
    for toxic in toxics:
        link.add_stage(toxic)
    first, middle, last = (cast(_Counting, stage) for stage in link.stages)
    starts = (first.starts, last.starts)
    link.remove_stage(toxics[1])
    assert link.stages == [first, last]
    assert middle.removed
    assert (first.starts, last.starts) == (starts[0] + 1, starts[1])
    await _stopped(link)


async def test_stopping_a_link_is_not_removing_its_toxics() -> None:
    link, connection, _source, _transport = _link()
    timeout = Toxic("t", "timeout", "upstream", True, 1.0, {"timeout": 0})
    link.add_stage(timeout)  # a removed timeout toxic would close the connection
    await _stopped(link)
    assert connection.closed == 0
    assert not link.stages[0].removed


async def test_reading_resumes_once_the_stages_have_taken_the_queue_below_a_mebibyte(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_link_module, "make_stage", _Counting)
    link, _connection, source, transport = _link()
    link.add_stage(_toxic())
    source.reading.clear()
    link.feed(b"x" * (1024 * 1024))
    assert source.reading == [True]
    for _ in range(100):  # the task's turn
        if transport.written:
            break
        await asyncio.sleep(0)
    assert source.reading == [True, False]
    await _stopped(link)

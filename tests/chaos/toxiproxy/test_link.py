"""One direction of a proxied connection (``chaos.toxiproxy._link``), without sockets.

:class:`WorkBudget` is driven with a loop that only records ``call_soon``, so each round of the
shared toxic work is ended by hand: the share of each busy link, its floor, and when a round
ends. ``test_fairness.py`` measures what the budget is for (a responsive API under a flood). A
:class:`Link` runs over fake sides and a fake connection (and, where it matters, a loop whose
clock is stopped and whose timers are recorded): when it stops reading, how its stages sleep,
how it waits for a paused sink, which stages a change restarts, what a toxic that fails does,
and when its task yields to the loop (counted in loop turns, not timed).
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


def _link(
    loop: object = None, budget: object = None
) -> tuple[Link, _Connection, _Side, _Transport]:
    connection, source, sink, transport = _Connection(), _Side(), _Side(), _Transport()
    if loop is not None:
        connection.loop = cast(asyncio.AbstractEventLoop, loop)
    if budget is not None:
        connection.proxy.budget = budget
    link = Link(
        cast(Connection, connection),
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


class _RecordingLoop:
    """The running loop, with its timers recorded and, when ``frozen`` is set, its clock stopped."""

    def __init__(self, frozen: float | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        self.frozen = frozen
        self.timers: list[asyncio.TimerHandle] = []

    def time(self) -> float:
        return self.loop.time() if self.frozen is None else self.frozen

    def call_later(self, delay: float, callback: Callable[..., object], *args: object) -> object:
        timer = self.loop.call_later(delay, callback, *args)
        self.timers.append(timer)
        return timer

    def __getattr__(self, name: str) -> object:
        return getattr(self.loop, name)


class _FixedBudget:
    """A work budget with a fixed share, counting the yields of the links that use it."""

    def __init__(self, share: float) -> None:
        self._share = share
        self.yields = 0

    def share(self) -> float:
        return self._share

    def yielding(self, loop: asyncio.AbstractEventLoop) -> None:
        self.yields += 1


async def _turns(count: int = 20) -> None:
    """Let the loop come round ``count`` times (a link's task takes a few turns per chunk)."""
    for _ in range(count):
        await asyncio.sleep(0)


async def test_a_stage_sleep_runs_out_unless_a_toxic_change_cuts_it_short() -> None:
    loop = _RecordingLoop()
    link, _connection, _source, _transport = _link(loop)
    assert await asyncio.wait_for(link.sleep(0), 5) is False  # ran its time out
    waiting = asyncio.ensure_future(link.sleep(3600))
    await _turns(2)
    link.restart_stage(_toxic())  # a toxic changed on the link
    assert await asyncio.wait_for(waiting, 5) is True
    (_ran_out, cut_short) = loop.timers
    assert cut_short.cancelled()  # an hour-long timer does not outlive its wait


async def test_a_stage_sleep_for_ever_sets_no_timer_and_ends_at_a_toxic_change() -> None:
    loop = _RecordingLoop()
    link, _connection, _source, _transport = _link(loop)
    waiting = asyncio.ensure_future(link.sleep(None))
    await _turns(2)
    assert not waiting.done()
    link.remove_stage(_toxic())  # a toxic changed on the link (not one of its stages)
    assert await asyncio.wait_for(waiting, 5) is True
    assert loop.timers == []


async def test_a_link_with_toxics_relays_nothing_before_the_upstream_is_dialled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_link_module, "make_stage", _Counting)
    link, connection, _source, transport = _link()
    connection.dialed = connection.loop.create_future()  # not dialled yet
    link.add_stage(_toxic())
    link.feed(b"early")
    await _turns()
    assert transport.written == []
    connection.dialed.set_result(None)
    await _turns()
    assert transport.written == [b"early"]
    await _stopped(link)


async def test_a_link_with_toxics_waits_while_its_sink_is_paused_then_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_link_module, "make_stage", _Counting)
    link, _connection, _source, transport = _link()
    sink = cast(_Side, link.sink)
    sink.write_paused = True  # the peer does not read: the sink's buffer is above high water
    link.add_stage(_toxic())
    link.feed(b"one")
    link.feed(b"two")
    await _turns()
    assert transport.written == [b"one"]  # written, then the link waits for the sink
    link.sink_changed()  # a change that is not a resume leaves it waiting
    await _turns()
    assert transport.written == [b"one"]
    sink.write_paused = False
    link.sink_changed()
    await _turns()
    assert transport.written == [b"one", b"two"]
    link.sink_changed()  # nothing waits for the sink any more: nothing to do
    await _stopped(link)


async def test_stopping_a_link_ends_its_wait_for_a_paused_sink(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_link_module, "make_stage", _Counting)
    link, _connection, _source, transport = _link()
    cast(_Side, link.sink).write_paused = True
    link.add_stage(_toxic())
    link.feed(b"one")
    await _turns()
    task = link.task
    assert task is not None
    assert transport.written == [b"one"]
    link.stop()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
    assert link.task is None


async def test_removing_the_first_toxic_restarts_no_other(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_link_module, "make_stage", _Counting)
    link, _connection, _source, _transport = _link()
    toxics = [_toxic(), _toxic()]
    for toxic in toxics:
        link.add_stage(toxic)
    first, second = (cast(_Counting, stage) for stage in link.stages)
    starts = second.starts
    link.remove_stage(toxics[0])
    assert link.stages == [second]
    assert first.removed
    assert second.starts == starts
    await _stopped(link)


async def test_a_toxic_removed_while_closing_restarts_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_link_module, "make_stage", _Counting)
    link, connection, _source, _transport = _link()
    toxics = [_toxic(), _toxic()]
    for toxic in toxics:
        link.add_stage(toxic)
    first = cast(_Counting, link.stages[0])
    starts = first.starts
    await _stopped(link)
    connection.closing = True
    link.remove_stage(toxics[1])
    assert first.starts == starts


class _Holding(Stage):
    """Holds each chunk until a toxic changes on the link, then passes it on."""

    async def process(self, chunk: Chunk, emit: Emit) -> None:
        self.seen = getattr(self, "seen", 0) + 1
        await self.host.sleep(None)
        await emit(chunk)


class _Seeing(Stage):
    """Records each chunk it passes on."""

    async def process(self, chunk: Chunk, emit: Emit) -> None:
        self.seen = getattr(self, "seen", 0) + 1
        await emit(chunk)


async def test_a_chunk_in_flight_skips_a_stage_removed_meanwhile_and_goes_through_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kinds: dict[str, type[Stage]] = {"hold": _Holding, "skip": _Seeing, "rest": _Seeing}
    monkeypatch.setattr(
        _link_module, "make_stage", lambda toxic, host: kinds[toxic.name](toxic, host)
    )
    link, _connection, _source, transport = _link()
    toxics = {name: Toxic(name, "noop", "upstream", True, 1.0, {}) for name in kinds}
    for toxic in toxics.values():
        link.add_stage(toxic)
    hold, skip, rest = link.stages
    link.feed(b"x")
    await _turns()
    assert transport.written == []  # held by the first stage
    link.remove_stage(toxics["skip"])  # the change also releases the held chunk
    await _turns()
    assert transport.written == [b"x"]
    counts = [getattr(stage, "seen", 0) for stage in (hold, skip, rest)]
    assert counts == [1, 0, 1]
    await _stopped(link)


async def test_a_chunk_goes_through_every_stage_of_the_chain_once_in_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    order: list[str] = []

    class Named(Stage):
        async def process(self, chunk: Chunk, emit: Emit) -> None:
            order.append(self.toxic.name)
            await emit(chunk)

    monkeypatch.setattr(_link_module, "make_stage", Named)
    link, _connection, _source, transport = _link()
    for name in ("first", "second", "third"):
        link.add_stage(Toxic(name, "noop", "upstream", True, 1.0, {}))
    link.feed(b"x")
    await _turns()
    assert order == ["first", "second", "third"]
    assert transport.written == [b"x"]
    await _stopped(link)


async def test_a_chunk_that_reaches_the_end_while_the_connection_closes_is_not_written(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_link_module, "make_stage", _Holding)
    link, connection, _source, transport = _link()
    toxic = _toxic()
    link.add_stage(toxic)
    link.feed(b"x")
    await _turns()
    connection.closing = True  # its sockets are closing, the chunk still held
    link.restart_stage(toxic)  # released
    await _turns()
    assert transport.written == []
    await _stopped(link)


async def test_a_link_that_used_its_share_yields_to_the_loop_before_each_step(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_link_module, "make_stage", _Counting)
    budget = _FixedBudget(share=0.0)
    link, _connection, _source, transport = _link(_RecordingLoop(frozen=0.0), budget)
    link.add_stage(_toxic())
    link.feed(b"x")  # before the task ever waited: its share starts used up
    await _turns(10)  # a yield is one turn of the loop, not a timed wait
    assert transport.written == [b"x"]
    assert budget.yields == 2  # before the stage, and before the write
    await _stopped(link)


async def test_a_link_that_has_just_waited_works_its_share_before_it_yields(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_link_module, "make_stage", _Counting)
    budget = _FixedBudget(share=1.0)
    link, _connection, _source, transport = _link(_RecordingLoop(frozen=0.0), budget)
    link.add_stage(_toxic())
    await _turns()  # the task waits for data
    link.feed(b"x")
    await _turns()
    assert transport.written == [b"x"]
    assert budget.yields == 0
    await _stopped(link)

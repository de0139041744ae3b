"""RetryBudget: at most ``min_retries + ratio * requests`` retries in any window, in virtual
time; its events, its counters, and its memory (bounded in bytes whatever the rate)."""

from __future__ import annotations

import dataclasses
import gc
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resilient.clock import VirtualClock
from resilient.errors import ArgumentTypeError
from resilient.retry import (
    BUDGET_EVENT_SOURCE,
    DEFAULT_RETRY_BUDGET_OPTIONS,
    RetryBudget,
    RetryBudgetStats,
)
from tests.resilient.retry_world import budget, recorded


def spend_all(budget_: RetryBudget) -> int:
    spent = 0
    while budget_.try_spend():
        spent += 1
        assert spent < 10_000
    return spent


def test_the_floor_alone_allows_min_retries_in_a_window() -> None:
    clock = VirtualClock()
    made = budget(clock, ratio=0, min_retries=3)
    assert made.available == 3
    assert [made.try_spend() for _ in range(4)] == [True, True, True, False]
    assert made.available == 0
    assert made.stats == RetryBudgetStats(requests=0, spent=3, refused=1)


def test_each_request_adds_ratio_retries_on_top_of_the_floor() -> None:
    clock = VirtualClock()
    made = budget(clock, ratio=0.5, min_retries=1)
    for _ in range(4):
        made.record_request()
    assert made.available == 3.0
    assert spend_all(made) == 3
    made.record_request()
    assert made.available == 0.5  # half a retry: none yet
    assert not made.try_spend()
    made.record_request()
    assert made.try_spend()
    assert made.stats == RetryBudgetStats(requests=6, spent=4, refused=2)


def test_the_default_allows_a_fifth_of_the_requests_plus_three() -> None:
    clock = VirtualClock()
    made = RetryBudget(clock=clock, events=recorded()[0])
    assert made.options is DEFAULT_RETRY_BUDGET_OPTIONS
    for _ in range(100):
        made.record_request()
    assert spend_all(made) == 23


def test_requests_and_retries_leave_the_window_slice_by_slice() -> None:
    """Ten slices of 1 s: what was counted at t=0.5 counts until t=10 (slice 0 leaves)."""
    clock = VirtualClock()
    made = budget(clock, ratio=1.0, min_retries=0, window=10.0, buckets=10)
    clock.advance(0.5)
    for _ in range(4):
        made.record_request()
    clock.advance(5.0)  # t=5.5, slice 5
    for _ in range(2):
        made.record_request()
    assert made.try_spend()
    assert made.available == 5
    clock.advance(4.49)  # t=9.99: still slice 9, all counted
    assert made.available == 5
    clock.advance(0.01)  # t=10.0: slice 0 leaves (4 requests), the rest stays
    assert made.available == 1  # 2 requests - 1 spent
    clock.advance(5.0)  # t=15.0: slice 5 leaves (2 requests and the retry)
    assert made.available == 0
    made.record_request()
    assert made.available == 1


def test_a_gap_longer_than_the_window_forgets_everything() -> None:
    clock = VirtualClock(start=1e9)
    made = budget(clock, ratio=1.0, min_retries=2, window=10.0, buckets=10)
    for _ in range(50):
        made.record_request()
    assert spend_all(made) == 52
    clock.advance(10.0)
    assert made.available == 2
    clock.advance(1e6)
    assert spend_all(made) == 2
    assert made.stats == RetryBudgetStats(requests=50, spent=54, refused=2)


def test_a_gap_shorter_than_the_window_forgets_only_the_slices_it_passed() -> None:
    clock = VirtualClock()
    made = budget(clock, ratio=1.0, min_retries=0, window=4.0, buckets=4)
    for second in range(4):  # one request in each slice: 1, 2, 3, 4 requests
        for _ in range(second + 1):
            made.record_request()
        clock.advance(1.0)
    # t=4: slice 0 left; slices 1-3 hold 2+3+4
    assert made.available == 9
    clock.advance(2.0)  # t=6: slices 1 and 2 left
    assert made.available == 4
    clock.advance(1.0)
    assert made.available == 0


def test_exhausted_is_emitted_once_per_stretch_and_replenished_says_how_many() -> None:
    clock = VirtualClock()
    bus, recorder = recorded()
    made = budget(clock, bus, ratio=0.5, min_retries=0, window=10.0)
    made.record_request()
    made.record_request()
    assert made.try_spend()
    for _ in range(5):
        assert not made.try_spend()
    (exhausted,) = recorder.named("exhausted", BUDGET_EVENT_SOURCE)
    assert dict(exhausted.attributes) == {"requests": 2, "spent": 1, "allowed": 1.0}
    assert exhausted.severity.name == "WARNING"
    made.record_request()
    made.record_request()
    assert made.try_spend()
    (replenished,) = recorder.named("replenished", BUDGET_EVENT_SOURCE)
    assert dict(replenished.attributes) == {"refused": 5}
    assert replenished.severity.name == "INFO"
    assert made.try_spend() is False
    assert len(recorder.named("exhausted")) == 2
    assert [event.time for event in recorder.events] == [0.0, 0.0, 0.0]


def test_a_spend_allowed_while_not_exhausted_emits_nothing() -> None:
    clock = VirtualClock()
    bus, recorder = recorded()
    made = budget(clock, bus, min_retries=2)
    assert made.try_spend()
    assert made.try_spend()
    assert recorder.events == []


def test_stats_are_a_frozen_slotted_snapshot() -> None:
    made = budget(VirtualClock())
    made.record_request()
    stats = made.stats
    made.record_request()
    assert stats.requests == 1
    assert made.stats.requests == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        stats.requests = 3  # type: ignore[misc]
    assert not hasattr(stats, "__dict__")


def test_its_repr_says_what_it_allows() -> None:
    made = budget(VirtualClock(), ratio=0.25, min_retries=4, window=20.0)
    assert repr(made) == "RetryBudget(ratio=0.25, min_retries=4, window=20s, available=4)"


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(["request", "spend", "wait"]),
            st.floats(min_value=0, max_value=4, allow_nan=False),
        ),
        max_size=200,
    ),
    ratio=st.sampled_from([0.0, 0.1, 0.2, 0.5, 2.0]),
    floor=st.integers(min_value=0, max_value=5),
)
def test_no_window_ever_holds_more_retries_than_it_allows(
    steps: list[tuple[str, float]], ratio: float, floor: int
) -> None:
    """After every spend, the retries of the window (the last ten 1-second slices) are at most
    ``floor + ratio * requests`` of the same slices; and a refusal only comes when one more
    would break that."""
    clock = VirtualClock()
    made = budget(clock, ratio=ratio, min_retries=floor, window=10.0, buckets=10)
    requests: list[int] = []
    spends: list[int] = []

    def in_window(times: list[int], slot: int) -> int:
        return sum(1 for t in times if slot - 10 < t <= slot)

    for action, seconds in steps:
        slot = int(clock.monotonic() // 1.0)
        if action == "request":
            made.record_request()
            requests.append(slot)
        elif action == "spend":
            allowed = floor + ratio * in_window(requests, slot)
            if made.try_spend():
                spends.append(slot)
                assert in_window(spends, slot) <= allowed
            else:
                assert in_window(spends, slot) + 1 > allowed
        else:
            clock.advance(seconds)
    assert made.stats.requests == len(requests)
    assert made.stats.spent == len(spends)


@pytest.mark.parametrize("operation", ["record_request", "try_spend", "available"])
def test_a_slice_begins_exactly_at_its_boundary(operation: str) -> None:
    """At t=1.0 exactly the budget is in slice 1, whichever operation reads the clock first:
    what it counts then leaves the window at t=11, not at t=10."""
    clock = VirtualClock()
    made = budget(clock, ratio=1.0, min_retries=1, window=10.0, buckets=10)
    made.record_request()  # slice 0
    clock.advance(1.0)
    if operation == "record_request":
        made.record_request()
    elif operation == "try_spend":
        assert made.try_spend()
    else:
        assert made.available == 2
    made.record_request()  # slice 1, whatever came first
    clock.advance(9.0)  # t=10: slice 0 leaves
    requests_left = 2 if operation == "record_request" else 1
    spent_left = 1 if operation == "try_spend" else 0
    assert made.available == 1 + requests_left - spent_left
    clock.advance(1.0)  # t=11: slice 1 leaves
    assert made.available == 1


def test_slices_narrower_than_a_second_keep_their_own_counts() -> None:
    """Window 5 s in 10 slices of 0.5 s: a request at 0.7 s is in slice 1 and still counts
    at 5.0 s, when slice 0 (a request at 0 s) has left."""
    clock = VirtualClock()
    made = budget(clock, ratio=1.0, min_retries=0, window=5.0, buckets=10)
    made.record_request()
    clock.advance(0.7)
    made.record_request()
    clock.advance(4.3)
    assert made.available == 1
    clock.advance(0.5)
    assert made.available == 0


def test_a_clock_before_zero_counts_its_slices_the_same() -> None:
    clock = VirtualClock(start=-0.5)  # slice -1
    made = budget(clock, ratio=1.0, min_retries=0, window=10.0, buckets=10)
    made.record_request()
    clock.advance(0.7)  # t=0.2: slice 0
    made.record_request()
    clock.advance(8.8)  # t=9.0: slice -1 leaves, slice 0 stays
    assert made.available == 1
    clock.advance(1.0)
    assert made.available == 0


def test_every_retry_of_a_slice_leaves_with_it() -> None:
    clock = VirtualClock()
    made = budget(clock, ratio=0.0, min_retries=3, window=10.0, buckets=10)
    assert spend_all(made) == 3  # three in slice 0
    clock.advance(9.0)
    assert made.available == 0
    clock.advance(1.0)
    assert made.available == 3


def test_each_stretch_of_refusals_is_counted_from_nothing() -> None:
    clock = VirtualClock()
    bus, recorder = recorded()
    made = budget(clock, bus, ratio=0.0, min_retries=1, window=1.0, buckets=1)
    for refusals in (2, 1):
        assert made.try_spend()
        for _ in range(refusals):
            assert not made.try_spend()
        clock.advance(1.0)
    assert made.try_spend()
    assert [dict(event.attributes) for event in recorder.named("replenished")] == [
        {"refused": 2},
        {"refused": 1},
    ]
    assert len(recorder.named("exhausted")) == 2


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"options": {}}, "RetryBudget.options must be a RetryBudgetOptions, got {}"),
        ({"clock": None}, "RetryBudget.clock must be a Clock, got None"),
        ({"events": "bus"}, "RetryBudget.events must be an EventBus, got 'bus'"),
    ],
)
def test_its_arguments_are_refused_in_exact_words(
    arguments: dict[str, object], message: str
) -> None:
    with pytest.raises(ArgumentTypeError) as raised:
        RetryBudget(**arguments)  # type: ignore[arg-type]
    assert str(raised.value) == message


def test_a_window_forgotten_whole_starts_every_slice_from_nothing() -> None:
    clock = VirtualClock()
    made = budget(clock, ratio=0.5, min_retries=0, window=10.0, buckets=10)
    for _ in range(10):
        made.record_request()
        made.record_request()
        assert made.try_spend()
        clock.advance(1.0)
    clock.advance(100.0)  # t=110: everything forgotten at once
    made.record_request()
    made.record_request()
    for _ in range(9):  # each slice that leaves now held nothing
        clock.advance(1.0)
        assert made.available == 1
    clock.advance(1.0)
    assert made.available == 0


def test_slices_before_zero_leave_in_their_turn() -> None:
    clock = VirtualClock(start=-5.5)  # slice -6
    made = budget(clock, ratio=1.0, min_retries=0, window=10.0, buckets=10)
    made.record_request()
    clock.advance(1.0)  # t=-4.5: slice -5
    made.record_request()
    clock.advance(9.0)  # t=4.5: slice -6 left
    assert made.available == 1
    clock.advance(1.0)  # t=5.5: slice -5 left
    assert made.available == 0


def test_memory_is_bounded_in_bytes_whatever_the_rate() -> None:
    """200,000 requests and retries over two minutes of virtual time allocate nothing that
    stays: the slices are two arrays of 8-byte counts, made once."""
    clock = VirtualClock()
    made = budget(clock, ratio=0.2, buckets=1000)
    assert made._requests.itemsize == made._spent.itemsize == 8
    assert len(made._requests) == len(made._spent) == 1000
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for step in range(200_000):
            made.record_request()
            made.try_spend()
            if step % 1000 == 0:
                clock.advance(0.6)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 1024
    assert len(made._requests) == len(made._spent) == 1000

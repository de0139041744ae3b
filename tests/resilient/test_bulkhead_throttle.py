"""AdaptiveThrottle: the SRE book's formula exactly, a window that slides bucket by bucket in
virtual time, state bounded in bytes, a seeded random source, and only the dependency's own
refusals counted."""

from __future__ import annotations

import asyncio
import math
import random
import sys

import pytest

from resilient.bulkhead import DEFAULT_THROTTLE_OPTIONS, AdaptiveThrottle, ThrottleOptions
from resilient.clock import VirtualClock
from resilient.errors import ArgumentTypeError, ArgumentValueError, PoolTimeoutError, ThrottledError
from resilient.events import EventBus, EventRecorder
from tests.resilient.bulkhead_world import quiet


class Counting(random.Random):
    """A seeded random source that counts its draws."""

    def __init__(self, seed: int = 1) -> None:
        super().__init__(seed)
        self.draws = 0

    def random(self) -> float:
        self.draws += 1
        return super().random()


def throttle_for(
    clock: VirtualClock,
    options: ThrottleOptions = DEFAULT_THROTTLE_OPTIONS,
    rng: random.Random | None = None,
    events: EventBus | None = None,
) -> AdaptiveThrottle:
    return AdaptiveThrottle(
        "api", options, random=rng or Counting(), clock=clock, events=events or quiet()
    )


def test_the_defaults_are_the_sre_books() -> None:
    options = DEFAULT_THROTTLE_OPTIONS
    assert (options.k, options.window, options.buckets, options.failures) == (
        2.0,
        120.0,
        60,
        (OSError,),
    )
    assert options == ThrottleOptions()


def test_the_probability_is_the_sre_books_formula(virtual_clock: VirtualClock) -> None:
    throttle = throttle_for(virtual_clock)
    assert throttle.reject_probability == 0.0
    for _ in range(10):
        throttle.record(True)
    for _ in range(20):
        throttle.record(False)
    assert throttle.reject_probability == pytest.approx(10 / 31)  # (30 - 2 x 10) / (30 + 1)
    stats = throttle.stats
    assert (stats.requests, stats.accepts, stats.throttled) == (30, 10, 0)
    assert stats.reject_probability == pytest.approx(10 / 31)
    for _ in range(9):
        throttle.record(True)
    assert throttle.reject_probability == pytest.approx(1 / 40)  # (39 - 38) / 40
    throttle.record(True)
    assert throttle.reject_probability == 0.0  # (40 - 40) / 41
    throttle.record(True)
    assert throttle.reject_probability == 0.0  # max(0, (41 - 42) / 42)
    loose = throttle_for(virtual_clock, ThrottleOptions(k=1.5))
    loose.record(False)
    loose.record(True)
    assert loose.reject_probability == pytest.approx((2 - 1.5) / 3)


def test_a_healthy_dependency_is_never_throttled_and_no_random_is_drawn(
    virtual_clock: VirtualClock,
) -> None:
    rng = Counting()
    throttle = throttle_for(virtual_clock, rng=rng)
    for _ in range(1000):
        assert throttle.allow()
        throttle.record(True)
    assert rng.draws == 0
    assert throttle.stats.throttled == 0


def test_a_refusing_dependency_sees_a_trickle_and_rejections_count_as_requests(
    virtual_clock: VirtualClock,
) -> None:
    throttle = throttle_for(virtual_clock, rng=Counting(7))
    sent = 0
    for _ in range(1000):
        if throttle.allow():
            sent += 1
            throttle.record(False)
    stats = throttle.stats
    assert stats.requests == 1000  # every request counted, rejected or sent
    assert (stats.accepts, stats.throttled) == (0, 1000 - sent)
    assert sent < 20  # about the sum of 1 / (n + 1): ln(1000) + 0.58 = 7.5
    assert stats.reject_probability == pytest.approx(1000 / 1001)


def test_an_overloaded_dependency_sees_about_k_requests_per_accept(
    virtual_clock: VirtualClock,
) -> None:
    """100 requests a second against a dependency that accepts 25 a second and refuses the
    rest: once the window is full the throttle sends about K = 2 per accepted one."""
    throttle = throttle_for(virtual_clock, ThrottleOptions(window=10.0), rng=Counting(11))
    sent = accepted = 0
    for second in range(60):
        accepted_this_second = 0
        for _ in range(100):
            if throttle.allow():
                ok = accepted_this_second < 25
                accepted_this_second += ok
                if second >= 20:
                    sent += 1
                    accepted += ok
                throttle.record(ok)
            virtual_clock.advance(0.01)
    assert accepted == 40 * 25  # the dependency stays busy
    assert 1.8 < sent / accepted < 2.2


def test_the_same_seed_gives_the_same_decisions(virtual_clock: VirtualClock) -> None:
    def run() -> list[bool]:
        throttle = throttle_for(virtual_clock, rng=random.Random(42))
        decisions = []
        for _ in range(200):
            allowed = throttle.allow()
            decisions.append(allowed)
            if allowed:
                throttle.record(False)
        return decisions

    first = run()
    assert first == run()
    assert True in first
    assert False in first


async def test_the_window_slides_bucket_by_bucket(virtual_clock: VirtualClock) -> None:
    throttle = throttle_for(virtual_clock, ThrottleOptions(window=10.0, buckets=10))
    for _ in range(5):
        throttle.record(False)  # bucket [0, 1)
    await virtual_clock.sleep(5.5)
    throttle.record(True)  # bucket [5, 6)
    assert (throttle.stats.requests, throttle.stats.accepts) == (6, 1)
    await virtual_clock.sleep(4.4)  # 9.9: everything still within the last 10 s
    assert (throttle.stats.requests, throttle.stats.accepts) == (6, 1)
    await virtual_clock.sleep(0.1)  # 10.0: bucket [0, 1) leaves the window
    assert (throttle.stats.requests, throttle.stats.accepts) == (1, 1)
    await virtual_clock.sleep(4.9)  # 14.9: bucket [5, 6) is still within
    assert (throttle.stats.requests, throttle.stats.accepts) == (1, 1)
    await virtual_clock.sleep(0.1)  # 15.0: it leaves (the window is ten whole buckets)
    assert (throttle.stats.requests, throttle.stats.accepts) == (0, 0)
    throttle.record(False)
    await virtual_clock.sleep(1000.0)  # far past the window: every bucket empty
    assert (throttle.stats.requests, throttle.stats.accepts) == (0, 0)
    await virtual_clock.sleep(3.0)  # and emptied buckets leaving the window take nothing away
    assert (throttle.stats.requests, throttle.stats.accepts) == (0, 0)
    throttle.record(True)
    assert (throttle.stats.requests, throttle.stats.accepts) == (1, 1)


async def test_the_window_after_a_long_pause_keeps_only_what_is_within_it(
    virtual_clock: VirtualClock,
) -> None:
    throttle = throttle_for(virtual_clock, ThrottleOptions(window=10.0, buckets=10))
    throttle.record(False)  # tick 0
    await virtual_clock.sleep(3.0)
    throttle.record(False)  # tick 3
    await virtual_clock.sleep(9.0)  # tick 12: 12 ticks since the first, 9 since the last
    assert throttle.stats.requests == 1
    await virtual_clock.sleep(1.0)  # tick 13: the last left too
    assert throttle.stats.requests == 0


def test_the_state_is_bounded_in_bytes_whatever_the_traffic(virtual_clock: VirtualClock) -> None:
    throttle = throttle_for(virtual_clock)
    assert throttle.state_bytes == 16 * 60 == 960
    sizes = (sys.getsizeof(throttle._requests), sys.getsizeof(throttle._accepts))
    for _ in range(100_000):
        throttle.record(False)
        throttle.allow()
    assert (sys.getsizeof(throttle._requests), sys.getsizeof(throttle._accepts)) == sizes
    assert throttle.state_bytes == 960
    assert throttle_for(virtual_clock, ThrottleOptions(buckets=1)).state_bytes == 16


async def test_it_says_when_it_starts_and_stops_throttling(
    virtual_clock: VirtualClock, event_recorder: EventRecorder, recording_bus: EventBus
) -> None:
    options = ThrottleOptions(window=10.0, buckets=10)
    throttle = throttle_for(virtual_clock, options, events=recording_bus)
    throttle.record(True)
    throttle.record(False)
    assert event_recorder.events == []  # 2 requests per accept: not yet
    throttle.record(False)
    (started,) = event_recorder.named("throttling", "bulkhead.throttle")
    assert dict(started.attributes) == {
        "throttle": "api",
        "probability": pytest.approx(1 / 4),
        "requests": 3,
        "accepts": 1,
    }
    throttle.record(False)
    assert len(event_recorder.events) == 1  # once, not per request
    await virtual_clock.sleep(10.0)
    assert throttle.reject_probability == 0.0  # the window moved on
    (stopped,) = event_recorder.named("unthrottled", "bulkhead.throttle")
    assert dict(stopped.attributes) == {"throttle": "api", "requests": 0, "accepts": 0}
    assert stopped.time == 10.0
    for _ in range(3):
        throttle.record(False)
    throttle.record(True)
    throttle.record(True)  # 5 requests, 2 accepted: still throttling
    throttle.record(True)  # 6 requests, 3 accepted: no more
    assert [e.name for e in event_recorder.events] == ["throttling", "unthrottled"] * 2


async def test_call_rejects_locally_and_counts_only_the_dependencys_refusals(
    virtual_clock: VirtualClock,
) -> None:
    throttle = throttle_for(virtual_clock, rng=Counting(3))
    calls = 0

    async def dependency(error: BaseException | None = None, *, answer: str = "ok") -> str:
        nonlocal calls
        calls += 1
        await virtual_clock.sleep(0.01)
        if error is not None:
            raise error
        return answer

    assert await throttle.call(dependency, answer="yes") == "yes"
    for error in (ValueError("the caller's"), PoolTimeoutError("resilient's own")):
        with pytest.raises(type(error)):
            await throttle.call(dependency, error)
    assert (throttle.stats.requests, throttle.stats.accepts) == (3, 3)  # all answered
    task = asyncio.create_task(throttle.call(dependency))
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert throttle.stats.requests == 3  # a cancelled call: nothing
    outcomes = []
    messages = set()
    for _ in range(30):
        try:
            await throttle.call(dependency, ConnectionRefusedError("overloaded"))
        except ConnectionRefusedError:
            outcomes.append("refused")
        except ThrottledError as error:
            outcomes.append("throttled")
            messages.add(str(error).split(" with probability")[0])
    assert messages == {"'api' shed the call (throttled): rejected locally"}
    assert calls == 4 + outcomes.count("refused")
    stats = throttle.stats
    assert (stats.requests, stats.accepts, stats.throttled) == (33, 3, outcomes.count("throttled"))


def test_throttle_stats_are_a_frozen_snapshot(virtual_clock: VirtualClock) -> None:
    import dataclasses

    stats = throttle_for(virtual_clock).stats
    with pytest.raises(dataclasses.FrozenInstanceError):
        stats.requests = 3  # type: ignore[misc]
    assert not hasattr(stats, "__dict__")


def test_the_rejection_says_how_likely_and_over_what(virtual_clock: VirtualClock) -> None:
    throttle = throttle_for(virtual_clock)
    throttle.record(False)
    assert str(throttle.rejection()) == (
        "'api' shed the call (throttled): rejected locally with probability 0.500 "
        "(1 requests, 0 accepted in the last 120s)"
    )
    assert repr(throttle) == "AdaptiveThrottle('api', reject_probability=0.500)"


# -- hostile input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "error", "message"),
    [
        (lambda c: AdaptiveThrottle("", clock=c), ArgumentValueError, "AdaptiveThrottle.name"),
        (lambda c: AdaptiveThrottle(b"api", clock=c), ArgumentTypeError, "AdaptiveThrottle.name"),
        (
            lambda c: AdaptiveThrottle("api", {"k": 2}, clock=c),
            ArgumentTypeError,
            "AdaptiveThrottle.options must be a ThrottleOptions",
        ),
        (
            lambda c: AdaptiveThrottle("api", random=7, clock=c),
            ArgumentTypeError,
            "AdaptiveThrottle.random must be a random.Random or None, got 7",
        ),
        (
            lambda c: AdaptiveThrottle("api", random=random.random, clock=c),
            ArgumentTypeError,
            "AdaptiveThrottle.random",
        ),
        (
            lambda c: AdaptiveThrottle("api", clock=object()),
            ArgumentTypeError,
            "AdaptiveThrottle.clock must be a Clock, got <object",
        ),
        (
            lambda c: AdaptiveThrottle("api", clock=c, events=print),
            ArgumentTypeError,
            "AdaptiveThrottle.events must be an EventBus",
        ),
        (lambda c: ThrottleOptions(k=math.nan), ArgumentValueError, "ThrottleOptions.k"),
        (lambda c: ThrottleOptions(k=0.5), ArgumentValueError, "ThrottleOptions.k"),
        (lambda c: ThrottleOptions(k=True), ArgumentTypeError, "ThrottleOptions.k"),
        (lambda c: ThrottleOptions(window=0), ArgumentValueError, "ThrottleOptions.window"),
        (lambda c: ThrottleOptions(window=math.inf), ArgumentValueError, "ThrottleOptions.window"),
        (lambda c: ThrottleOptions(buckets=0), ArgumentValueError, "ThrottleOptions.buckets"),
        (lambda c: ThrottleOptions(buckets=10**12), ArgumentValueError, "ThrottleOptions.buckets"),
        (lambda c: ThrottleOptions(buckets=2.0), ArgumentTypeError, "ThrottleOptions.buckets"),
        (
            lambda c: ThrottleOptions(failures=OSError),
            ArgumentTypeError,
            "ThrottleOptions.failures",
        ),
    ],
)
def test_hostile_input_is_refused_by_name(
    virtual_clock: VirtualClock, build: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=rf"^{message}"):
        build(virtual_clock)  # type: ignore[operator]


async def test_hostile_arguments_to_a_throttle_change_nothing(virtual_clock: VirtualClock) -> None:
    throttle = throttle_for(virtual_clock)
    throttle.record(True)
    for value in (1, 0, None, "yes", math.nan):
        with pytest.raises(
            ArgumentTypeError, match=r"^AdaptiveThrottle\.record\(accepted\) must be a bool"
        ):
            throttle.record(value)  # type: ignore[arg-type]
    with pytest.raises(
        ArgumentTypeError, match=r"^AdaptiveThrottle\.call\(fn\) must be a callable"
    ):
        await throttle.call("not callable")  # type: ignore[arg-type]
    stats = throttle.stats
    assert (stats.requests, stats.accepts, stats.throttled) == (1, 1, 0)


class Fixed(random.Random):
    """A random source that always draws ``value``."""

    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


def test_a_request_is_rejected_when_the_draw_falls_below_the_probability(
    virtual_clock: VirtualClock,
) -> None:
    for draw, allowed in [(0.5, True), (0.49, False), (0.99, True), (0.0, False)]:
        throttle = throttle_for(virtual_clock, rng=Fixed(draw))
        throttle.record(False)  # probability (1 - 0) / (1 + 1) = 0.5
        assert throttle.allow() is allowed


async def test_buckets_are_window_over_buckets_seconds_wide(virtual_clock: VirtualClock) -> None:
    throttle = throttle_for(virtual_clock, ThrottleOptions(window=10.0, buckets=5))  # 2 s each
    throttle.record(False)
    await virtual_clock.sleep(9.9)
    assert throttle.stats.requests == 1
    await virtual_clock.sleep(0.1)
    assert throttle.stats.requests == 0

"""Failover at its edges: the hedge delay and its censored samples, health, a hedge the budget
refuses, a single provider, and the counters a user reads."""

from __future__ import annotations

import contextlib
import random
from typing import Any

import pytest

from resilient.clock import VirtualClock
from resilient.errors import ProvidersUnavailableError
from resilient.failover import Failover, FailoverOptions, Provider
from tests.resilient.failover_world import Scripted, recorded

DOWN = ConnectionRefusedError("refused")


def build(clock: VirtualClock, *scripts: Scripted, **kwargs: Any) -> Failover[str, str]:
    options = kwargs.pop("options", FailoverOptions(timeout=2.0))
    return Failover([Provider(s.name, s) for s in scripts], options, clock=clock, **kwargs)


async def test_before_eight_latencies_the_hedge_waits_a_quarter_of_the_deadline() -> None:
    clock = VirtualClock(autojump=True)
    one = Scripted("one", clock, lambda n: 10.0)
    two = Scripted("two", clock, lambda n: 0.01)
    failover = build(clock, one, two, options=FailoverOptions(timeout=2.0))
    result = await failover.call("r")
    assert (result.provider, result.hedged) == ("two", True)
    assert two.times == [0.5]  # timeout / 4


async def test_the_hedge_delay_never_goes_under_its_floor() -> None:
    clock = VirtualClock(autojump=True)
    one = Scripted("one", clock, lambda n: 0.001 if n <= 20 else 1.0)
    two = Scripted("two", clock, lambda n: 0.001)
    failover = build(clock, one, two, options=FailoverOptions(timeout=2.0, hedge_min_delay=0.05))
    for _ in range(20):
        await failover.call("r")
    started = clock.monotonic()
    await failover.call("slow")
    assert two.times == [pytest.approx(started + 0.05)]


async def test_an_attempt_outrun_by_its_hedge_counts_as_its_hedge_delay() -> None:
    clock = VirtualClock(autojump=True)
    one = Scripted("one", clock, lambda n: 0.010 if n <= 10 else 5.0)
    two = Scripted("two", clock, lambda n: 0.002)
    failover = build(clock, one, two)
    for _ in range(10):
        await failover.call("r")
    await failover.call("slow")
    lane = failover.lanes[0]
    assert list(lane.latencies)[-1] == pytest.approx(0.010)  # the delay, not the 5 s
    assert len(lane.latencies) == 11
    assert lane.stats.successes == 10  # a censored sample is no success


async def test_one_provider_is_never_hedged() -> None:
    clock = VirtualClock(autojump=True)
    one = Scripted("one", clock, lambda n: 1.0)
    failover = build(clock, one)
    result = await failover.call("r")
    assert (result.hedged, result.attempts) == (False, 1)


async def test_hedging_off_sends_no_hedge() -> None:
    clock = VirtualClock(autojump=True)
    one = Scripted("one", clock, lambda n: 1.0)
    two = Scripted("two", clock)
    failover = build(clock, one, two, options=FailoverOptions(timeout=2.0, hedge=False))
    assert (await failover.call("r")).hedged is False
    assert two.calls == 0


class Refusing:
    def __init__(self) -> None:
        self.requests = 0

    def record_request(self) -> None:
        self.requests += 1

    def try_spend(self) -> bool:
        return False


async def test_a_hedge_the_budget_refuses_is_not_sent_and_gives_its_permit_back() -> None:
    clock = VirtualClock(autojump=True)
    one = Scripted("one", clock, lambda n: 1.0)
    two = Scripted("two", clock)
    failover = build(clock, one, two, budget=Refusing())
    result = await failover.call("r")
    assert (result.provider, result.hedged, result.attempts) == ("one", False, 1)
    assert two.calls == 0
    assert failover.lanes[1].breaker.allows_call()
    assert failover.stats()["two"].hedges == 0


async def test_a_provider_in_bad_health_is_passed_over_while_another_is_healthy() -> None:
    clock = VirtualClock(autojump=True)
    answers = iter([DOWN, DOWN, DOWN, DOWN] + [0.01] * 100)
    one = Scripted("one", clock, lambda n: next(answers))
    two = Scripted("two", clock, lambda n: 0.01)
    options = FailoverOptions(timeout=2.0, hedge=False, health_weight=0.2, min_health=0.5)
    failover = build(clock, one, two, options=options)
    for _ in range(4):  # 1.0 -> 0.8 -> 0.64 -> 0.51 -> 0.41: under half after 4 failures
        await failover.call("r")
    assert failover.lanes[0].health == pytest.approx(0.8**4)
    before = one.calls
    result = await failover.call("r")
    assert result.provider == "two"
    assert one.calls == before  # passed over, not asked
    assert failover.stats()["one"].passed_over == 1


async def test_a_provider_in_bad_health_is_still_asked_when_nobody_else_can_be() -> None:
    clock = VirtualClock(autojump=True)
    answers = iter([DOWN, DOWN, DOWN, DOWN, 0.01])
    one = Scripted("one", clock, lambda n: next(answers))
    two = Scripted("two", clock, lambda n: DOWN)
    options = FailoverOptions(timeout=2.0, hedge=False, health_weight=0.2)
    failover = build(clock, one, two, options=options)
    for _ in range(4):
        with pytest.raises(ProvidersUnavailableError):
            await failover.call("r")
    assert failover.lanes[0].health < 0.5
    assert failover.lanes[1].health < 0.5
    result = await failover.call("r")  # both in bad health: asked all the same
    assert result.provider == "one"
    assert (one.calls, two.calls) == (5, 4)


async def test_the_counters_a_user_reads() -> None:
    clock = VirtualClock(autojump=True)
    one = Scripted("one", clock, lambda n: DOWN if n == 1 else 0.01)
    two = Scripted("two", clock, lambda n: 0.01)
    bus, recorder = recorded()
    failover = build(clock, one, two, events=bus, random=random.Random(1))
    await failover.call("a")  # one fails, two answers
    await failover.call("b")  # one answers
    stats = failover.stats()
    assert (stats["one"].attempts, stats["one"].successes, stats["one"].failures) == (2, 1, 1)
    assert (stats["two"].attempts, stats["two"].successes, stats["two"].failures) == (1, 1, 0)
    assert [e.name for e in recorder.events] == ["failed_over"]
    assert recorder.events[0].source == "failover"


async def test_a_provider_down_long_enough_to_lose_its_health_comes_back() -> None:
    from resilient.breaker import BreakerOptions, BreakerState, CircuitBreaker

    clock = VirtualClock(autojump=True)
    state = {"down": True}
    one = Scripted("one", clock, lambda n: DOWN if state["down"] else 0.3)  # back, but slow
    two = Scripted("two", clock, lambda n: 0.02)
    breaker = CircuitBreaker(
        "one", BreakerOptions(failure_threshold=5, reset_timeout=1.0), clock=clock
    )
    bus, recorder = recorded()
    failover: Failover[str, str] = Failover(
        [Provider("one", one, breaker=breaker), Provider("two", two)],
        FailoverOptions(timeout=1.0, slow_start_window=5.0),
        clock=clock,
        events=bus,
        random=random.Random(3),
    )
    for _ in range(100):  # 10 s of outage, probes failing every second
        await failover.call("r")
        await clock.sleep(0.1)
    assert failover.lanes[0].health < 0.5
    state["down"] = False
    for _ in range(30):  # the next probe is not hedged, succeeds in 300 ms, and closes it
        await failover.call("r")
        await clock.sleep(0.1)
    assert breaker.state is BreakerState.CLOSED
    assert failover.lanes[0].health == 1.0  # its failures are behind it: health starts afresh
    assert [e.name for e in recorder.events].count("recovering") == 1
    before = one.calls
    for _ in range(100):  # 10 s later the slow start is over: one is asked first again
        await failover.call("r")
        await clock.sleep(0.1)
    assert one.calls - before > 50


class Always(random.Random):
    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


async def test_a_provider_in_slow_start_is_asked_when_needed_but_never_hedged_to() -> None:
    clock = VirtualClock(autojump=True)
    broken = {"two": False}
    one = Scripted("one", clock, lambda n: 0.001)
    two = Scripted("two", clock, lambda n: DOWN if broken["two"] else 1.5)
    failover = build(clock, one, two, random=Always(0.99))
    failover.lanes[0].ramp_start = clock.monotonic()  # its slow start has just begun
    result = await failover.call("r")
    assert (result.provider, result.hedged) == ("two", False)  # a hedge would take its share
    assert one.calls == 0
    assert failover.stats()["one"].passed_over >= 1
    broken["two"] = True  # now nobody else can answer: it is asked all the same
    assert (await failover.call("r")).provider == "one"


async def hedge_sent_after(latencies: list[float], quantile: float) -> float:
    """Seconds after a slow request started that its hedge was sent, once the primary answered
    with ``latencies`` before it."""
    clock = VirtualClock(autojump=True)
    one = Scripted("one", clock, lambda n: latencies[n - 1] if n <= len(latencies) else 10.0)
    two = Scripted("two", clock, lambda n: 0.001)
    options = FailoverOptions(timeout=2.0, hedge_quantile=quantile, hedge_min_delay=0.0)
    failover = build(clock, one, two, options=options)
    for _ in latencies:
        assert (await failover.call("r")).provider == "one"
    started = clock.monotonic()
    assert (await failover.call("slow")).hedged
    return two.times[0] - started


async def test_the_hedge_follows_the_measured_quantile_from_the_eighth_latency_on() -> None:
    ms = [n / 1000 for n in (8, 3, 1, 6, 2, 7, 5, 4)]  # 1..8 ms, not in order
    assert await hedge_sent_after(ms[:7], 0.5) == pytest.approx(0.5)  # timeout / 4: unmeasured
    assert await hedge_sent_after(ms, 0.5) == pytest.approx(0.004)  # the 4th of 8
    assert await hedge_sent_after(ms, 0.95) == pytest.approx(0.008)  # the 8th of 8
    assert await hedge_sent_after(ms, 0.1) == pytest.approx(0.001)  # the 1st of 8
    assert await hedge_sent_after(ms, 1.0) == pytest.approx(0.008)


@pytest.mark.parametrize(
    ("window", "elapsed", "draw", "asked"),
    [
        (30.0, 0.0, 0.0999, True),  # at its start a provider takes slow_start_min_share (10%)
        (30.0, 0.0, 0.1, False),
        (30.0, 15.0, 0.54, True),  # half way: 10% + 90% * 1/2 = 55%
        (30.0, 15.0, 0.56, False),
        (1.0, 0.5, 0.54, True),  # a one-second window ramps as well
        (1.0, 0.5, 0.56, False),
        (30.0, 30.0, 0.9999, True),  # the window over: its whole share
    ],
)
async def test_a_provider_in_slow_start_is_asked_with_the_chance_its_share_says(
    window: float, elapsed: float, draw: float, asked: bool
) -> None:
    clock = VirtualClock(autojump=True)
    one = Scripted("one", clock, lambda n: 0.001)
    two = Scripted("two", clock, lambda n: 0.001)
    options = FailoverOptions(timeout=2.0, hedge=False, slow_start_window=window)
    failover = build(clock, one, two, options=options, random=Always(draw))
    failover.lanes[0].ramp_start = clock.monotonic() - elapsed
    result = await failover.call("r")
    assert result.provider == ("one" if asked else "two")
    assert failover.stats()["one"].passed_over == (0 if asked else 1)


async def test_a_health_exactly_at_min_health_is_healthy() -> None:
    clock = VirtualClock(autojump=True)
    one = Scripted("one", clock, lambda n: 0.001)
    two = Scripted("two", clock, lambda n: 0.001)
    options = FailoverOptions(timeout=2.0, hedge=False, min_health=0.5)
    failover = build(clock, one, two, options=options)
    failover.lanes[0].health = 0.5  # at the bar: not passed over
    assert (await failover.call("r")).provider == "one"
    failover.lanes[0].health = 0.25
    failover.lanes[1].health = 0.5  # at the bar: healthy, so the unhealthy one is passed over
    assert (await failover.call("r")).provider == "two"
    assert (await failover.call("r")).provider == "two"
    assert failover.stats()["one"].passed_over == 2  # once a request


async def test_a_healthy_provider_its_breaker_refuses_does_not_count_as_available() -> None:
    clock = VirtualClock(autojump=True)
    one = Scripted("one", clock, lambda n: 0.001)
    two = Scripted("two", clock, lambda n: 0.001)
    failover = build(clock, one, two, options=FailoverOptions(timeout=2.0, hedge=False))
    failover.lanes[0].breaker.isolate()  # in full health, but it takes no call
    failover.lanes[1].health = 0.1
    assert (await failover.call("r")).provider == "two"
    assert failover.stats()["two"].passed_over == 0  # nobody better could be asked


async def test_a_request_its_rate_limit_refuses_is_counted_once() -> None:
    from resilient.ratelimit import Rate

    clock = VirtualClock()
    one = Scripted("one", clock, lambda n: 0.0)
    failover = Failover(
        [Provider("one", one, rate=Rate(1, 1.0, burst=1))],
        FailoverOptions(timeout=1.0, hedge=False),
        clock=clock,
    )
    assert [(await failover.call("r")).provider for _ in range(2)] == ["one", "one"]  # burst
    for _ in range(3):
        with pytest.raises(ProvidersUnavailableError, match="no attempt made"):
            await failover.call("r")
    stats = failover.stats()["one"]
    assert (stats.attempts, stats.rate_limited, stats.passed_over) == (2, 3, 0)


async def test_health_is_a_weighted_share_of_successes_and_latencies_are_bounded() -> None:
    clock = VirtualClock(autojump=True)
    answers = iter([DOWN, 0.001, DOWN] + [0.001] * 20)
    one = Scripted("one", clock, lambda n: next(answers))
    options = FailoverOptions(timeout=2.0, health_weight=0.1, latency_samples=8)
    failover = build(clock, one, options=options)
    lane = failover.lanes[0]
    healths = []
    for _ in range(3):
        with contextlib.suppress(ProvidersUnavailableError):
            await failover.call("r")
        healths.append(lane.health)
    # 1.0, then a failure takes 10% of it, a success adds 10% of what is missing, ...
    assert healths == pytest.approx([0.9, 0.91, 0.819])
    for _ in range(20):
        await failover.call("r")
    assert len(lane.latencies) == 8  # latency_samples: the oldest leave
    assert (lane.stats.successes, lane.stats.failures) == (21, 2)


async def test_an_outrun_sample_also_keeps_the_latencies_bounded() -> None:
    clock = VirtualClock(autojump=True)
    one = Scripted("one", clock, lambda n: 0.010 if n <= 8 else 5.0)
    two = Scripted("two", clock, lambda n: 0.002)
    failover = build(clock, one, two, options=FailoverOptions(timeout=2.0, latency_samples=8))
    for _ in range(8):
        await failover.call("r")
    await failover.call("slow")  # outrun by its hedge after 10 ms
    assert list(failover.lanes[0].latencies) == pytest.approx([0.010] * 8)
    assert len(failover.lanes[0].latencies) == 8


async def test_a_failed_primary_leaves_its_hedge_running_to_answer() -> None:
    clock = VirtualClock(autojump=True)
    one = Scripted("one", clock, lambda n: DOWN, fail_after=0.6)  # fails after the hedge left
    two = Scripted("two", clock, lambda n: 1.0)
    failover = build(clock, one, two, options=FailoverOptions(timeout=2.0))
    result = await failover.call("r")  # the hedge goes at 0.5 s (timeout / 4)
    assert (result.value, result.provider, result.hedged, result.attempts) == (
        "two:r",
        "two",
        True,
        2,
    )
    assert clock.monotonic() == pytest.approx(1.5)
    assert two.cancelled == 0


async def test_every_hedge_and_every_hedge_won_is_counted() -> None:
    clock = VirtualClock(autojump=True)
    one = Scripted("one", clock, lambda n: 10.0)
    two = Scripted("two", clock, lambda n: 0.001)
    failover = build(clock, one, two, options=FailoverOptions(timeout=2.0))
    for _ in range(3):
        assert (await failover.call("r")).provider == "two"
    stats = failover.stats()
    assert (stats["two"].hedges, stats["two"].hedges_won, stats["one"].cancelled) == (3, 3, 3)


async def test_a_request_past_its_deadline_says_so() -> None:
    clock = VirtualClock(autojump=True)
    one = Scripted("one", clock, lambda n: 10.0)
    failover = build(clock, one)
    with pytest.raises(ProvidersUnavailableError) as caught:
        await failover.call("r", timeout=0.5)
    assert (caught.value.reason, caught.value.errors) == ("the deadline passed", ())
    assert (
        str(caught.value) == "failover 'failover': no answer (the deadline passed); no attempt made"
    )


async def test_the_hedge_delay_follows_a_change_in_the_providers_latency() -> None:
    clock = VirtualClock(autojump=True)
    latency = {"now": 0.010}
    one = Scripted("one", clock, lambda n: latency["now"])
    two = Scripted("two", clock, lambda n: 0.001)
    options = FailoverOptions(
        timeout=2.0, latency_samples=64, hedge_quantile=0.5, hedge_min_delay=0.0
    )
    failover = build(clock, one, two, options=options)
    failover.lanes[1].breaker.isolate()  # no hedge goes out while one's latencies are measured
    for _ in range(64):
        await failover.call("r")
    latency["now"] = 0.020  # a whole window of slower answers
    for _ in range(64):
        await failover.call("r")
    failover.lanes[1].breaker.reset()
    latency["now"] = 10.0
    started = clock.monotonic()
    assert (await failover.call("slow")).hedged
    assert two.times[0] - started == pytest.approx(0.020)


async def test_the_hedge_delay_follows_the_latency_while_hedges_outrun_some_attempts() -> None:
    clock = VirtualClock(autojump=True)
    latency = {"now": 0.010}
    one = Scripted("one", clock, lambda n: latency["now"])
    two = Scripted("two", clock, lambda n: 0.001)
    options = FailoverOptions(
        timeout=2.0, latency_samples=64, hedge_quantile=0.9, hedge_min_delay=0.0
    )
    failover = build(clock, one, two, options=options)
    hedges = failover.lanes[1].breaker
    hedges.isolate()
    for _ in range(64):
        await failover.call("r")
    for _ in range(64):  # every other attempt is outrun by its hedge
        latency["now"] = 0.020
        await failover.call("r")  # answered in 20 ms, no hedge to outrun it
        hedges.reset()
        latency["now"] = 10.0
        assert (await failover.call("slow")).provider == "two"  # outrun
        hedges.isolate()
    hedges.reset()
    started = clock.monotonic()
    assert (await failover.call("slow")).hedged
    assert two.times[-1] - started == pytest.approx(0.020)  # the p90 of the last 64 samples


@pytest.mark.parametrize("samples", [8, 64, 72])
async def test_the_hedge_delay_is_never_more_than_a_sixteenth_of_the_window_behind(
    samples: int,
) -> None:
    """The latencies are re-sorted every 1/16 of the window (at least every sample): after
    that many new answers, the next hedge delay (here the slowest of them, ``q = 1``) has
    them, whatever else was recorded between."""
    clock = VirtualClock(autojump=True)
    latency = {"now": 0.010}
    one = Scripted("one", clock, lambda n: latency["now"])
    two = Scripted("two", clock, lambda n: 0.001)
    options = FailoverOptions(
        timeout=2.0, latency_samples=samples, hedge_quantile=1.0, hedge_min_delay=0.0
    )
    failover = build(clock, one, two, options=options)
    hedges = failover.lanes[1].breaker
    hedges.isolate()
    for _ in range(samples):
        await failover.call("r")
    behind = max(1, samples // 16)
    for round_ in range(1, 13):
        latency["now"] = 0.010 + round_ * 0.001  # slower each round
        for _ in range(behind + round_ % 4):
            await failover.call("r")  # answered, no hedge to outrun it
        hedges.reset()
        latency["now"] = 10.0
        started = clock.monotonic()
        assert (await failover.call("slow")).provider == "two"
        assert two.times[-1] - started == pytest.approx(0.010 + round_ * 0.001)
        hedges.isolate()

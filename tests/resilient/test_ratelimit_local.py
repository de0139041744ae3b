"""LocalLimiter: the GCRA guarantees for any arrivals, per-key rates, cost, bounded memory."""

from __future__ import annotations

import gc
import math
import tracemalloc
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resilient.clock import VirtualClock
from resilient.events import EventBus, EventRecorder
from resilient.ratelimit import (
    DEFAULT_MAX_MEMORY,
    ENTRY_BYTES,
    Decision,
    DecisionSource,
    LocalLimiter,
    LocalLimiterOptions,
    Rate,
)
from resilient.ratelimit._gcra import NEVER, GcraResult, gcra
from resilient.ratelimit._local import INLINE_KEY_CHARS
from resilient.ratelimit._types import never_decision, new_decision

rates = st.builds(
    Rate,
    limit=st.integers(1, 20),
    period=st.integers(1, 5000).map(lambda ms: ms / 1000),
    burst=st.integers(0, 5),
)


def reference_decision(result: GcraResult, cost: int, rate: Rate) -> Decision:
    """The decision a limiter gives for a reference ``gcra()`` result."""
    if result.retry_after_us == NEVER:
        return never_decision(result.remaining, result.reset_after_us / 1e6, cost, rate.burst + 1)
    return Decision(
        result.allowed, result.remaining, result.retry_after_us / 1e6, result.reset_after_us / 1e6
    )


def _now_us(clock: VirtualClock) -> int:
    """The limiter's own notion of now (same formula, same float)."""
    return int(clock.monotonic() * 1_000_000)


@settings(max_examples=200, deadline=None)
@given(
    rate=rates,
    arrivals=st.lists(st.tuples(st.integers(0, 400_000), st.integers(1, 3)), max_size=120),
)
def test_allowed_units_in_any_window_of_period_never_exceed_limit_plus_burst(
    rate: Rate, arrivals: list[tuple[int, int]]
) -> None:
    clock = VirtualClock()
    limiter = LocalLimiter(rate, clock=clock)
    allowed: list[tuple[int, int]] = []
    for delta_us, cost in arrivals:
        clock.advance(delta_us / 1e6)
        if limiter.decide_now("k", cost=cost).allowed:
            allowed.append((_now_us(clock), cost))
    period_us = round(rate.period * 1_000_000)
    for start, _ in allowed:
        in_window = sum(cost for at, cost in allowed if start <= at < start + period_us)
        assert in_window <= rate.limit + rate.burst


@settings(max_examples=200, deadline=None)
@given(
    rate=rates,
    first=st.integers(0, 10_000_000),
    extra_gaps=st.lists(st.integers(0, 200_000), min_size=1, max_size=60),
)
def test_requests_spaced_at_the_emission_interval_are_never_denied(
    rate: Rate, first: int, extra_gaps: list[int]
) -> None:
    clock = VirtualClock()
    limiter = LocalLimiter(rate, clock=clock)
    clock.advance(first / 1e6)
    assert limiter.decide_now("k").allowed
    for extra in extra_gaps:
        # Spacing in the limiter's integer time, at or above the rate's emission interval.
        target = _now_us(clock) + rate.emission_us + extra
        while _now_us(clock) < target:
            clock.advance((target - _now_us(clock)) / 1e6)
        assert limiter.decide_now("k").allowed


@settings(max_examples=150, deadline=None)
@given(
    default=rates,
    special=rates,
    steps=st.lists(
        st.tuples(
            st.integers(0, 300_000),
            st.sampled_from(["a", "b", "c", "vip"]),
            st.integers(0, 3),
            st.booleans(),
        ),
        max_size=80,
    ),
)
async def test_decisions_equal_the_reference_gcra_on_both_paths(
    default: Rate, special: Rate, steps: list[tuple[int, str, int, bool]]
) -> None:
    clock = VirtualClock()
    per_key = {"vip": special}
    sync_limiter = LocalLimiter(default, rates=per_key, clock=clock)
    async_limiter = LocalLimiter(default, rates=per_key, clock=clock)
    model: dict[str, int] = {}
    for delta_us, key, cost, use_async in steps:
        clock.advance(delta_us / 1e6)
        rate = per_key.get(key, default)
        result = gcra(model.get(key), _now_us(clock), rate.emission_us, rate.tolerance_us, cost)
        if result.allowed and cost:
            model[key] = result.new_tat_us
        expected = reference_decision(result, cost, rate)
        limiter = async_limiter if use_async else sync_limiter
        got = (
            await limiter.decide(key, cost=cost)
            if use_async
            else limiter.decide_now(key, cost=cost)
        )
        assert got == expected
        # Keep the other limiter in step, so both see every arrival.
        other = sync_limiter if use_async else async_limiter
        assert other.decide_now(key, cost=cost) == expected


def test_a_rate_given_per_call_overrides_the_keys_rate() -> None:
    clock = VirtualClock()
    limiter = LocalLimiter(Rate(1, 1.0), clock=clock)
    assert [limiter.decide_now("k").allowed for _ in range(2)] == [True, False]
    generous = Rate(1, 1.0, burst=9)
    assert [limiter.decide_now("k2", rate=generous).allowed for _ in range(11)] == [True] * 10 + [
        False
    ]


def test_per_key_rates_from_a_mapping_or_a_function() -> None:
    clock = VirtualClock()
    vip = Rate(1, 1.0, burst=2)
    by_mapping = LocalLimiter(Rate(1, 1.0), rates={"vip": vip}, clock=clock)
    by_function = LocalLimiter(
        Rate(1, 1.0), rates=lambda key: vip if key == "vip" else None, clock=clock
    )
    for limiter in (by_mapping, by_function):
        assert [limiter.decide_now("vip").allowed for _ in range(4)] == [True, True, True, False]
        assert [limiter.decide_now("user").allowed for _ in range(2)] == [True, False]
        assert limiter.rate_for("vip") == vip
        assert limiter.rate_for("user") == Rate(1, 1.0)


def test_cost_consumes_that_many_units_and_zero_only_reads() -> None:
    clock = VirtualClock()
    limiter = LocalLimiter(Rate(10, 1.0, burst=9), clock=clock)
    first = limiter.decide_now("k", cost=4)
    assert first.allowed
    assert first.remaining == 6
    peek = limiter.decide_now("k", cost=0)
    assert peek.allowed
    assert peek.remaining == 6
    assert limiter.decide_now("k", cost=6).allowed
    denied = limiter.decide_now("k", cost=1)
    assert not denied.allowed
    assert denied.remaining == 0
    assert denied.retry_after == pytest.approx(0.1)
    assert denied.reset_after == pytest.approx(1.0)


def test_a_peek_at_a_new_key_does_not_store_it() -> None:
    limiter = LocalLimiter(Rate(1, 1.0), clock=VirtualClock())
    assert limiter.decide_now("k", cost=0).allowed
    assert len(limiter) == 0


@pytest.mark.parametrize("cost", [3, 5, 12, 100, 2**60])
def test_a_cost_above_burst_plus_one_is_denied_for_ever_and_says_so(cost: int) -> None:
    clock = VirtualClock()
    limiter = LocalLimiter(Rate(3, 1.0, burst=1), clock=clock)  # largest request: 2 units
    for _ in range(3):
        decision = limiter.decide_now("k", cost=cost)
        assert not decision.allowed
        assert decision.retry_after == math.inf
        assert decision.reason == (
            f"cost {cost} exceeds the largest request this rate ever allows (2)"
        )
        clock.advance(1000.0)  # no wait helps
    assert limiter.decide_now("k", cost=2).allowed  # nothing was consumed meanwhile


@pytest.mark.parametrize(("limit", "period", "burst"), [(100, 60.0, 10), (3, 1.0, 0), (1, 1.0, 5)])
def test_every_cost_up_to_burst_plus_one_is_allowed_at_full_allowance_and_no_more(
    limit: int, period: float, burst: int
) -> None:
    rate = Rate(limit, period, burst)
    assert rate.largest_cost == burst + 1
    for cost in range(1, burst + 3):
        limiter = LocalLimiter(rate, clock=VirtualClock())
        decision = limiter.decide_now("fresh", cost=cost)
        assert decision.allowed is (cost <= burst + 1), cost
        if not decision.allowed:
            assert decision.retry_after == math.inf


@pytest.mark.parametrize(
    ("cost", "error"), [(-1, ValueError), (1.5, TypeError), ("2", TypeError), (None, TypeError)]
)
def test_a_bad_cost_is_refused_with_a_clear_error(cost: object, error: type[Exception]) -> None:
    limiter = LocalLimiter(Rate(1, 1.0), clock=VirtualClock())
    with pytest.raises(error, match=r"LocalLimiter.decide\(cost\) must be an int >= 0"):
        limiter.decide_now("k", cost=cost)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: LocalLimiterOptions(max_memory=ENTRY_BYTES - 1), "LocalLimiterOptions.max_memory"),
        (lambda: LocalLimiterOptions(max_memory=True), "LocalLimiterOptions.max_memory"),
        (lambda: LocalLimiter(Rate(1, 1.0), rates=3), "LocalLimiter.rates"),
        (lambda: LocalLimiter(Rate(1, 1.0), {"max_keys": 3}), "LocalLimiter.options"),
    ],
)
def test_bad_construction_names_the_field(build: Callable[[], object], field: str) -> None:
    with pytest.raises((ValueError, TypeError), match=field):
        build()


def test_expired_keys_are_evicted_as_new_keys_arrive() -> None:
    clock = VirtualClock()
    limiter = LocalLimiter(
        Rate(10, 1.0), LocalLimiterOptions(max_memory=10_000 * ENTRY_BYTES), clock=clock
    )
    for i in range(3000):
        limiter.decide_now(f"old-{i}")
    assert len(limiter) == 3000
    clock.advance(1.0)  # every old key is back at full allowance
    for i in range(3000):
        limiter.decide_now(f"new-{i}")
    assert limiter.stats.evicted >= 3000
    assert len(limiter) <= 3000


def test_a_flood_of_distinct_keys_never_grows_the_table_past_max_keys() -> None:
    clock = VirtualClock()
    limiter = LocalLimiter(
        Rate(5, 1.0), LocalLimiterOptions(max_memory=500 * ENTRY_BYTES), clock=clock
    )
    for i in range(20_000):
        limiter.decide_now(f"flood-{i}")
        assert len(limiter) <= 500
        if i % 100 == 0:
            clock.advance(0.01)


def test_when_the_table_is_full_of_live_keys_new_keys_share_one_allowance() -> None:
    clock = VirtualClock()
    recorder = EventRecorder()
    bus = EventBus()
    bus.subscribe(recorder)
    limiter = LocalLimiter(
        Rate(2, 1.0, burst=1),
        LocalLimiterOptions(max_memory=64 * ENTRY_BYTES),
        clock=clock,
        events=bus,
    )
    for i in range(64):
        assert limiter.decide_now(f"tracked-{i}").allowed
    # Full of live keys: the next new keys are limited together, as one key of the rate.
    newcomers = [limiter.decide_now(f"new-{i}").allowed for i in range(10)]
    assert newcomers == [True, True] + [False] * 8
    assert limiter.stats.overflowed == 10
    assert [e.name for e in recorder.events] == ["overflow"]
    assert len(limiter) == 64
    # Keys already tracked keep their own allowance: the flood denies none of them.
    assert limiter.decide_now("tracked-0").allowed
    assert not limiter.decide_now("tracked-0").allowed


def test_an_abusive_key_is_held_to_its_rate_through_overflow_and_back() -> None:
    clock = VirtualClock()
    rate = Rate(4, 1.0)
    limiter = LocalLimiter(rate, LocalLimiterOptions(max_memory=16 * ENTRY_BYTES), clock=clock)
    allowed_at: list[float] = []
    for step in range(400):
        clock.advance(0.01)
        # A flood of distinct keys keeps the table full most of the time...
        for j in range(4):
            limiter.decide_now(f"flood-{step}-{j}")
        # ...while one key hammers far above its rate.
        if limiter.decide_now("abuser").allowed:
            allowed_at.append(clock.monotonic())
    assert limiter.stats.overflowed > 0
    for start in allowed_at:
        assert sum(1 for t in allowed_at if start <= t < start + rate.period) <= rate.limit


def test_new_decision_builds_a_genuine_frozen_decision() -> None:
    built = new_decision(False, 2, 0.5, 1.5, DecisionSource.FALLBACK, "primary timeout")
    plain = Decision(False, 2, 0.5, 1.5, DecisionSource.FALLBACK, "primary timeout")
    assert type(built) is Decision
    assert built == plain
    assert hash(built) == hash(plain)
    assert repr(built) == repr(plain)
    with pytest.raises(AttributeError):
        built.allowed = True  # type: ignore[misc]


# -- memory bounded in bytes, for any keys a client sends (issue 8, point 5) ---------------------


@pytest.mark.parametrize(
    "key_of",
    [
        lambda i: f"{i:08d}" + "k" * 8_184,  # 8 KB keys: kept as 16-byte digests
        lambda i: chr(0x10000 + i % 5000) + f"{i:031d}",  # 32 chars of 4-byte code points
        lambda i: f"user-{i}",
    ],
    ids=["8kb-keys", "widest-inline-keys", "short-keys"],
)
def test_the_table_stays_within_max_memory_whatever_the_keys(key_of: Callable[[int], str]) -> None:
    """Three times more live keys than fit, each sent once (the worst for a table): the
    memory the limiter holds afterwards, and at its peak, stays within ``max_memory``."""
    max_memory = 2 * 2**20
    clock = VirtualClock()
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        limiter = LocalLimiter(
            Rate(1, 3600.0), LocalLimiterOptions(max_memory=max_memory), clock=clock
        )
        for i in range(3 * limiter.max_keys):
            assert limiter.decide_now(key_of(i)).allowed or limiter.stats.overflowed
            if i % 1000 == 0:
                clock.advance(0.001)
        gc.collect()
        held, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(limiter) <= limiter.max_keys
    assert held - before <= max_memory, (held - before) / limiter.max_keys
    assert peak - before <= max_memory + 64 * 1024  # plus the key being decided


@pytest.mark.parametrize("tat", [None, 0, 5_000_000])
def test_the_formula_denies_a_cost_above_burst_plus_one_for_ever_and_keeps_the_state(
    tat: int | None,
) -> None:
    emission, tolerance = 1_000_000, 2_000_000  # Rate(1, 1.0, burst=2): at most 3 at once
    result = gcra(tat, 1_000_000, emission, tolerance, 4)
    assert result.allowed is False
    assert result.retry_after_us == NEVER
    assert result.new_tat_us == max(tat or 0, 1_000_000)  # nothing consumed
    assert gcra(tat, 1_000_000, emission, tolerance, 3).retry_after_us != NEVER


# -- what the mutation pass found loose ------------------------------------------------------


async def test_decide_without_a_cost_takes_exactly_one_unit() -> None:
    clock = VirtualClock()
    limiter = LocalLimiter(Rate(10, 1.0, burst=4), clock=clock)
    remaining = [(await limiter.decide("k")).remaining for _ in range(5)]
    assert remaining == [4, 3, 2, 1, 0]
    assert not (await limiter.decide("k")).allowed


def test_on_the_system_clock_time_is_whole_microseconds() -> None:
    limiter = LocalLimiter(Rate(1, 3600.0))  # the real clock
    first, second = limiter.decide_now("k"), limiter.decide_now("k")
    assert first.allowed
    assert not second.allowed
    assert type(first.remaining) is int
    assert type(second.remaining) is int
    assert 3599.0 < second.retry_after <= 3600.0
    assert second.retry_after * 1e6 == pytest.approx(round(second.retry_after * 1e6), abs=1e-3)


def test_a_fresh_limiter_has_counted_nothing_and_never_waits() -> None:
    limiter = LocalLimiter(Rate(1, 1.0))
    assert (limiter.stats.sweeps, limiter.stats.evicted, limiter.stats.overflowed) == (0, 0, 0)
    assert LocalLimiter.never_waits is True
    assert len(limiter) == 0
    assert limiter.max_keys == DEFAULT_MAX_MEMORY // ENTRY_BYTES
    assert repr(limiter) == f"LocalLimiter(rate=1/1s, keys=0, max_keys={limiter.max_keys})"


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: LocalLimiter("10/s"), "LocalLimiter.rate must be a Rate, got '10/s'"),
        (
            lambda: LocalLimiter(Rate(1, 1.0), 5),
            "LocalLimiter.options must be a LocalLimiterOptions, got 5",
        ),
        (
            lambda: LocalLimiter(Rate(1, 1.0), rates=7),
            "LocalLimiter.rates must be a mapping or a callable, got 7",
        ),
        (
            lambda: LocalLimiter(Rate(1, 1.0)).decide_now(["k"]),
            "LocalLimiter.decide(key) must be a str, got ['k']",
        ),
        (
            lambda: LocalLimiter(Rate(1, 1.0)).decide_now("k", cost=-2),
            "LocalLimiter.decide(cost) must be an int >= 0, got -2",
        ),
        (
            lambda: LocalLimiter(Rate(1, 1.0)).decide_now("k", rate="5/s"),
            "rate for key 'k' must be a Rate, got '5/s'",
        ),
    ],
)
def test_every_refusal_says_exactly_what_was_wrong(
    build: Callable[[], object], message: str
) -> None:
    with pytest.raises((TypeError, ValueError)) as raised:
        build()
    assert str(raised.value) == message


def test_keys_of_up_to_32_characters_are_kept_as_they_are_and_longer_by_digest() -> None:
    limiter = LocalLimiter(Rate(1, 60.0), clock=VirtualClock())
    short, long_ = "s" * INLINE_KEY_CHARS, "l" * (INLINE_KEY_CHARS + 1)
    for key in (short, long_):
        assert limiter.decide_now(key).allowed
        assert not limiter.decide_now(key).allowed  # each is limited as itself
    assert short in limiter._tats
    assert long_ not in limiter._tats
    assert len(limiter) == 2

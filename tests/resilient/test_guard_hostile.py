"""FailOpenGuard: nothing a caller passes changes the guard's state for other callers (issue 8)."""

from __future__ import annotations

import contextlib
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resilient.breaker import BreakerOptions, BreakerState, CircuitBreaker
from resilient.clock import VirtualClock
from resilient.errors import ArgumentError, ArgumentValueError
from resilient.events import EventBus
from resilient.ratelimit import (
    Decision,
    DecisionSource,
    FailOpenGuard,
    LocalLimiter,
    Rate,
)
from tests.resilient.guard_world import (
    GLOBAL,
    SHARE,
    FakePrimary,
    make_guard,
    state_of,
)

# -- issue 8: nothing a caller passes changes the guard's state for other callers -------------


async def test_a_request_no_wait_can_allow_is_the_primarys_answer_not_a_fault(
    virtual_clock: VirtualClock,
) -> None:
    guard = FailOpenGuard(
        LocalLimiter(GLOBAL, clock=virtual_clock),
        fallback=LocalLimiter(SHARE, clock=virtual_clock),
        clock=virtual_clock,
        events=EventBus(log_when_unobserved=False),
    )
    decision = await guard.decide("k", cost=2**60)
    assert (decision.allowed, decision.retry_after, decision.source) == (
        False,
        math.inf,
        DecisionSource.PRIMARY,
    )
    assert (
        decision.reason
        == "cost 1152921504606846976 exceeds the largest request this rate ever allows (4)"
    )
    assert guard.breaker.failure_count == 0
    assert guard.stats.malformed == guard.stats.errors == 0


class SyncRaising:
    """A primary whose decide is a plain function that raises before returning an awaitable."""

    never_waits = False

    def __init__(self) -> None:
        self.calls = 0

    def decide(self, key: str, *, cost: int = 1, rate: Rate | None = None) -> Decision:
        self.calls += 1
        raise ConnectionError("raised synchronously")


async def test_a_primary_raising_synchronously_frees_the_half_open_probe_slot(
    virtual_clock: VirtualClock,
) -> None:
    primary = SyncRaising()
    breaker = CircuitBreaker(
        "g",
        BreakerOptions(failure_threshold=1, reset_timeout=1.0),
        clock=virtual_clock,
        events=EventBus(log_when_unobserved=False),
    )
    guard = FailOpenGuard(
        primary,  # type: ignore[arg-type]
        fallback=LocalLimiter(SHARE, clock=virtual_clock),
        breaker=breaker,
        clock=virtual_clock,
        events=EventBus(log_when_unobserved=False),
    )
    assert (await guard.decide("k")).source is DecisionSource.FALLBACK
    assert state_of(guard) is BreakerState.OPEN
    for _ in range(3):
        virtual_clock.advance(1.0)  # half-open: the next decision is the probe
        decision = await guard.decide("k")
        assert decision.reason == "primary unavailable: ConnectionError"
        assert state_of(guard) is BreakerState.OPEN  # the probe failed and gave its slot back
    assert primary.calls == 4  # the primary was asked at every probe, not locked out


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, SystemExit])
async def test_an_interrupt_inside_the_primary_frees_the_probe_slot(
    virtual_clock: VirtualClock, interrupt: type[BaseException]
) -> None:
    primary = FakePrimary(virtual_clock)
    breaker = CircuitBreaker(
        "g",
        BreakerOptions(failure_threshold=1, reset_timeout=1.0),
        clock=virtual_clock,
        events=EventBus(log_when_unobserved=False),
    )
    guard = FailOpenGuard(
        primary,
        fallback=LocalLimiter(SHARE, clock=virtual_clock),
        breaker=breaker,
        clock=virtual_clock,
        events=EventBus(log_when_unobserved=False),
    )
    primary.error = OSError("down")
    await guard.decide("k")
    virtual_clock.advance(1.0)
    primary.error = interrupt()
    with pytest.raises(interrupt):
        await guard.decide("k")
    primary.error = None
    assert (await guard.decide("k")).source is DecisionSource.PRIMARY  # the slot was free
    assert state_of(guard) is BreakerState.CLOSED


class ArgumentRefusing(FakePrimary):
    """A primary that refuses some argument a caller passed (the caller's mistake)."""

    async def decide(self, key: str, *, cost: int = 1, rate: Rate | None = None) -> Decision:
        if key == "bad":
            raise ArgumentValueError("ArgumentRefusing.decide(key) must not be 'bad', got 'bad'")
        return await super().decide(key, cost=cost, rate=rate)


async def test_a_callers_argument_error_from_the_primary_is_raised_not_counted(
    virtual_clock: VirtualClock,
) -> None:
    guard = make_guard(virtual_clock, ArgumentRefusing(virtual_clock))
    for _ in range(20):
        with pytest.raises(ArgumentValueError):
            await guard.decide("bad")
    assert state_of(guard) is BreakerState.CLOSED
    assert guard.breaker.failure_count == 0
    assert (await guard.decide("good")).source is DecisionSource.PRIMARY


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"key": 5}, TypeError),
        ({"key": b"bytes"}, TypeError),
        ({"key": None}, TypeError),
        ({"key": "k", "cost": -1}, ValueError),
        ({"key": "k", "cost": 1.5}, TypeError),
        ({"key": "k", "cost": True}, TypeError),
        ({"key": "k", "rate": "10/s"}, TypeError),
    ],
)
async def test_bad_input_is_refused_before_the_breaker_sees_it(
    virtual_clock: VirtualClock, kwargs: dict[str, Any], error: type[Exception]
) -> None:
    primary = FakePrimary(virtual_clock)
    guard = make_guard(virtual_clock, primary)
    for _ in range(10):
        with pytest.raises(error, match=r"^FailOpenGuard\.decide\("):
            await guard.decide(**kwargs)
    assert primary.calls == 0
    assert guard.breaker.failure_count == 0
    assert guard.breaker.stats == type(guard.breaker.stats)()


@settings(max_examples=150, deadline=None)
@given(
    calls=st.lists(
        st.tuples(
            st.one_of(
                st.text(max_size=40),
                st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)),
                st.integers(),
                st.none(),
                st.binary(max_size=4),
            ),
            st.one_of(
                st.integers(min_value=-(2**70), max_value=2**70),
                st.booleans(),
                st.floats(allow_nan=True),
                st.text(max_size=3),
            ),
            st.one_of(
                st.none(),
                st.builds(
                    Rate,
                    st.integers(1, 10**6),
                    st.floats(0.001, 10**6),
                    st.integers(0, 1000),
                ),
                st.text(max_size=4),
                st.integers(),
            ),
        ),
        max_size=25,
    )
)
async def test_no_input_changes_the_guard_for_other_callers(
    calls: list[tuple[Any, Any, Any]],
) -> None:
    """Whatever a hostile caller passes, the breaker stays closed and untouched, and another
    key's decisions are exactly what they would have been without that caller."""
    clock = VirtualClock()
    primary = FakePrimary(clock)
    guard = make_guard(clock, primary)
    witness = LocalLimiter(GLOBAL, clock=clock)
    for key, cost, rate in calls:
        with contextlib.suppress(ArgumentError):
            decision = await guard.decide(key, cost=cost, rate=rate)
            assert decision.source is DecisionSource.PRIMARY
        clock.advance(0.001)
        assert await guard.decide("bystander") == witness.decide_now("bystander")
    assert state_of(guard) is BreakerState.CLOSED
    assert guard.breaker.failure_count == 0
    assert guard.breaker.stats.failures == 0
    assert guard.stats.errors == guard.stats.malformed == guard.stats.timeouts == 0

"""RetryPolicy in virtual time: the success path, the caps on attempts and on time, the
backoff, Retry-After, the deadline of every attempt, the budget, cancellation, and events."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from resilient.clock import VirtualClock
from resilient.errors import ArgumentValueError, CircuitOpenError
from resilient.retry import (
    RETRY_EVENT_SOURCE,
    Deadline,
    RetryOptions,
    RetryPolicy,
    RetryStats,
)
from resilient.retry import _policy as policy_module
from tests.resilient.retry_world import Dependency, budget, policy, recorded


class Throttled(Exception):
    def __init__(self, retry_after: object) -> None:
        super().__init__("slow down")
        self.retry_after = retry_after


async def test_the_success_path_calls_once_and_builds_no_retry_machinery(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_tenacity(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("tenacity was used on the success path")

    monkeypatch.setattr(policy_module, "AsyncRetrying", no_tenacity)
    clock = VirtualClock()
    shared = budget(clock)
    made = policy(clock, budget=shared)
    dependency = Dependency(clock)
    assert await made.call(dependency, 1, key="x") == "ok"
    assert dependency.attempts == 1
    assert made.stats == RetryStats(1, 0, 0, 0, 0)
    assert shared.stats.requests == 1
    assert shared.stats.spent == 0


async def test_arguments_reach_every_attempt() -> None:
    clock = VirtualClock(autojump=True)
    seen: list[tuple[Any, ...]] = []

    async def fn(*args: Any, **kwargs: Any) -> str:
        seen.append((args, kwargs))
        if len(seen) < 3:
            raise ConnectionError("down")
        return "ok"

    assert await policy(clock).call(fn, 1, 2, key="k") == "ok"
    assert seen == [((1, 2), {"key": "k"})] * 3


async def test_it_retries_until_the_dependency_answers() -> None:
    clock = VirtualClock(autojump=True)
    bus, recorder = recorded()
    dependency = Dependency(clock, ConnectionError("down"))
    dependency.succeed_after = 1
    made = policy(clock, events=bus)
    assert await made.call(dependency) == "ok"
    assert dependency.starts == [0.0, 1.0]
    assert made.stats == RetryStats(1, 1, 0, 0, 0)
    (retrying,) = recorder.events
    assert (
        (retrying.source, retrying.name)
        == ("retry", "retrying")
        == (RETRY_EVENT_SOURCE, "retrying")
    )
    assert retrying.severity.name == "INFO"
    assert dict(retrying.attributes) == {
        "policy": "provider",
        "attempt": 1,
        "error": "ConnectionError: down",
        "delay": 1.0,
        "retry_after": None,
    }


async def test_it_gives_up_after_the_last_attempt_with_the_last_error() -> None:
    clock = VirtualClock(start=100.0, autojump=True)
    bus, recorder = recorded()
    last = ConnectionError("third")
    dependency = Dependency(clock, ConnectionError("first"), TimeoutError("second"), last)
    made = policy(clock, events=bus)
    with pytest.raises(ConnectionError) as raised:
        await made.call(dependency)
    assert raised.value is last
    assert dependency.starts == [100.0, 101.0, 102.0]
    assert made.stats == RetryStats(1, 2, 1, 0, 0)
    assert [event.name for event in recorder.events] == ["retrying", "retrying", "gave_up"]
    assert [event.attributes["error"] for event in recorder.events] == [
        "ConnectionError: first",
        "TimeoutError: second",
        "ConnectionError: third",
    ]
    gave_up = recorder.events[-1]
    assert gave_up.severity.name == "WARNING"
    assert dict(gave_up.attributes) == {
        "policy": "provider",
        "reason": "attempts",
        "attempts": 3,
        "error": "ConnectionError: third",
        "elapsed": 2.0,
    }


async def test_one_attempt_never_retries() -> None:
    clock = VirtualClock(autojump=True)
    bus, recorder = recorded()
    dependency = Dependency(clock, ConnectionError("down"))
    made = policy(clock, RetryOptions(attempts=1), events=bus)
    with pytest.raises(ConnectionError):
        await made.call(dependency)
    assert dependency.attempts == 1
    assert [event.attributes["reason"] for event in recorder.events] == ["attempts"]


async def test_the_backoff_grows_exponentially_up_to_its_cap() -> None:
    clock = VirtualClock(autojump=True)
    options = RetryOptions(
        attempts=6, backoff_initial=0.5, backoff_multiplier=2.0, backoff_max=3.0, jitter=0.0
    )
    dependency = Dependency(clock, ConnectionError("down"))
    with pytest.raises(ConnectionError):
        await policy(clock, options).call(dependency)
    waits = [b - a for a, b in zip(dependency.starts, dependency.starts[1:], strict=False)]
    assert waits == [0.5, 1.0, 2.0, 3.0, 3.0]


async def test_a_huge_multiplier_caps_at_the_longest_wait_without_overflowing() -> None:
    clock = VirtualClock(autojump=True)
    options = RetryOptions(
        attempts=5, backoff_initial=1.0, backoff_multiplier=1e300, backoff_max=7.0, jitter=0.0
    )
    dependency = Dependency(clock, ConnectionError("down"))
    with pytest.raises(ConnectionError):
        await policy(clock, options).call(dependency)
    assert dependency.starts == [0.0, 1.0, 8.0, 15.0, 22.0]


async def test_full_jitter_draws_each_wait_between_zero_and_its_nominal_value() -> None:
    clock = VirtualClock(autojump=True)
    options = RetryOptions(attempts=4, backoff_initial=1.0, backoff_max=4.0)
    dependency = Dependency(clock, ConnectionError("down"))
    with pytest.raises(ConnectionError):
        await policy(clock, options, seed=7).call(dependency)
    waits = [b - a for a, b in zip(dependency.starts, dependency.starts[1:], strict=False)]
    draws = random.Random(7)
    assert waits == pytest.approx([n * (1 - draws.random()) for n in (1.0, 2.0, 4.0)])


async def test_backoffs_of_many_clients_failing_together_spread() -> None:
    """200 clients fail at t=0: with full jitter their retries spread over the first nominal
    wait (each tenth of it holds between half and twice its share, 20); without jitter they
    all come at once."""

    async def second_attempts(jitter: float) -> list[float]:
        clock = VirtualClock(autojump=True)
        options = RetryOptions(attempts=2, backoff_initial=1.0, jitter=jitter)
        source = random.Random(2026)
        made = RetryPolicy("p", options, random=source, clock=clock, events=recorded()[0])
        dependency = Dependency(clock, ConnectionError("down"))

        async def client() -> None:
            with pytest.raises(ConnectionError):
                await made.call(dependency)

        await asyncio.gather(*(client() for _ in range(200)))
        assert dependency.attempts == 400
        return sorted(dependency.starts[200:])

    spread = await second_attempts(1.0)
    assert spread == await second_attempts(1.0)  # the seeded source repeats itself
    assert len(set(spread)) == 200
    assert spread[0] < 0.05
    assert spread[-1] > 0.95
    tenths = [sum(1 for t in spread if n / 10 <= t < (n + 1) / 10) for n in range(10)]
    assert min(tenths) >= 10, tenths
    assert max(tenths) <= 40, tenths
    assert set(await second_attempts(0.0)) == {1.0}


async def test_an_error_that_is_not_retryable_is_raised_at_once() -> None:
    clock = VirtualClock(autojump=True)
    bus, recorder = recorded()
    shared = budget(clock)
    error = ValueError("bad answer")
    dependency = Dependency(clock, error)
    made = policy(clock, budget=shared, events=bus)
    with pytest.raises(ValueError, match="bad answer") as raised:
        await made.call(dependency)
    assert raised.value is error
    assert dependency.attempts == 1
    assert recorder.events == []
    assert shared.stats.spent == 0


async def test_an_error_not_retryable_on_a_later_attempt_ends_the_call() -> None:
    clock = VirtualClock(autojump=True)
    error = KeyError("gone")
    dependency = Dependency(clock, ConnectionError("down"), error)
    made = policy(clock, RetryOptions(attempts=5, jitter=0.0))
    with pytest.raises(KeyError) as raised:
        await made.call(dependency)
    assert raised.value is error
    assert dependency.attempts == 2
    assert made.stats == RetryStats(1, 1, 0, 0, 0)


async def test_an_argument_error_of_this_library_is_never_retried() -> None:
    clock = VirtualClock(autojump=True)
    dependency = Dependency(clock, ArgumentValueError("Thing.field must be ..., got -1"))
    made = policy(clock, RetryOptions(retry_on=(Exception,)))
    with pytest.raises(ArgumentValueError):
        await made.call(dependency)
    assert dependency.attempts == 1
    assert not made.retryable(ArgumentValueError("x"))
    assert made.retryable(ValueError("x"))


async def test_errors_are_retried_by_type_or_by_predicate() -> None:
    made = policy(
        VirtualClock(),
        RetryOptions(retry_on=(KeyError, lambda error: "again" in str(error))),
    )
    assert made.retryable(KeyError("k"))
    assert made.retryable(RuntimeError("try again"))
    assert not made.retryable(RuntimeError("no"))
    assert not made.retryable(asyncio.CancelledError())
    assert not made.retryable(KeyboardInterrupt())


async def test_a_predicate_that_raises_matches_nothing_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(error: Exception) -> bool:
        raise RuntimeError("predicate bug")

    made = policy(VirtualClock(), RetryOptions(retry_on=(broken, OSError)))
    assert made.retryable(OSError("down"))
    assert not made.retryable(ValueError("x"))
    assert len(caplog.records) == 2  # one for each error it was asked about
    record = caplog.records[0]
    assert record.name == "resilient.retry"
    assert record.getMessage().startswith("retry policy 'provider': retry_on predicate <function")
    assert record.exc_info is not None


async def test_a_library_refusal_is_retried_only_when_named() -> None:
    clock = VirtualClock(autojump=True)
    from resilient.breaker import BreakerState

    refusal = CircuitOpenError("b", BreakerState.OPEN, 2.5)
    assert not policy(clock).retryable(refusal)
    named = policy(clock, RetryOptions(retry_on=(CircuitOpenError,), jitter=0.0))
    dependency = Dependency(clock, refusal)
    dependency.succeed_after = 1
    assert await named.call(dependency) == "ok"
    assert dependency.starts == [0.0, 2.5]  # its retry_after, longer than the 0.5 s backoff


# -- Retry-After --------------------------------------------------------------------------------


async def test_a_retry_after_longer_than_the_backoff_is_waited() -> None:
    clock = VirtualClock(autojump=True)
    bus, recorder = recorded()
    dependency = Dependency(clock, Throttled(3.0))
    dependency.succeed_after = 1
    made = policy(clock, RetryOptions(retry_on=(Throttled,), jitter=0.0), events=bus)
    assert await made.call(dependency) == "ok"
    assert dependency.starts == [0.0, 3.0]
    assert recorder.events[0].attributes["delay"] == 3.0
    assert recorder.events[0].attributes["retry_after"] == 3.0


async def test_a_retry_after_shorter_than_the_backoff_changes_nothing() -> None:
    clock = VirtualClock(autojump=True)
    dependency = Dependency(clock, Throttled(0.25))
    dependency.succeed_after = 1
    made = policy(clock, RetryOptions(retry_on=(Throttled,), jitter=0.0))
    assert await made.call(dependency) == "ok"
    assert dependency.starts == [0.0, 0.5]


async def test_a_retry_after_past_the_deadline_gives_up_at_once() -> None:
    clock = VirtualClock(autojump=True)
    bus, recorder = recorded()
    error = Throttled(20.0)
    dependency = Dependency(clock, error)
    made = policy(clock, RetryOptions(retry_on=(Throttled,), timeout=10.0), events=bus)
    with pytest.raises(Throttled) as raised:
        await made.call(dependency)
    assert raised.value is error
    assert clock.monotonic() == 0.0  # no sleep at all
    assert dependency.attempts == 1
    (gave_up,) = recorder.events
    assert gave_up.attributes["reason"] == "time"
    assert made.stats == RetryStats(1, 0, 0, 1, 0)


async def test_aiohttp_response_errors_are_retried_by_status_with_their_retry_after() -> None:
    aiohttp = pytest.importorskip("aiohttp")
    from multidict import CIMultiDict

    def response_error(status: int, **headers: str) -> Exception:
        error: Exception = aiohttp.ClientResponseError(
            None, (), status=status, headers=CIMultiDict(headers)
        )
        return error

    clock = VirtualClock(autojump=True)
    made = policy(clock, RetryOptions(jitter=0.0))
    assert not made.retryable(response_error(400))
    assert not made.retryable(response_error(404))
    for status in (408, 429, 500, 502, 503, 504):
        assert made.retryable(response_error(status))
    assert made.retryable(aiohttp.ServerDisconnectedError())
    dependency = Dependency(clock, response_error(503, **{"Retry-After": "2"}))
    dependency.succeed_after = 1
    assert await made.call(dependency) == "ok"
    assert dependency.starts == [0.0, 2.0]
    milliseconds = Dependency(clock, response_error(429, **{"retry-after-ms": "1500"}))
    milliseconds.succeed_after = 1
    assert await made.call(milliseconds) == "ok"
    assert milliseconds.starts == [2.0, 3.5]


async def test_a_retry_after_date_is_read_against_the_wall_clock() -> None:
    from resilient.retry import retry_after_of

    class Response:
        def __init__(self, value: str) -> None:
            self.headers = {"Retry-After": value}

    class Failed(Exception):
        def __init__(self, value: str) -> None:
            self.response = Response(value)

    now = 1_700_000_000.0  # Tue, 14 Nov 2023 22:13:20 GMT
    assert retry_after_of(Failed("Tue, 14 Nov 2023 22:13:50 GMT"), lambda: now) == 30.0
    assert retry_after_of(Failed("Tue, 14 Nov 2023 22:00:00 GMT"), lambda: now) == 0.0
    assert retry_after_of(Failed("Tue, 14 Nov 2023 22:13:50"), lambda: now) is None
    assert retry_after_of(Failed("soon"), lambda: now) is None
    assert retry_after_of(Failed("7"), lambda: now) == 7.0


# -- the total time and the deadline ------------------------------------------------------------


async def test_no_wait_goes_past_the_total_time() -> None:
    clock = VirtualClock(autojump=True)
    bus, recorder = recorded()
    options = RetryOptions(
        attempts=10, timeout=2.5, backoff_initial=1.0, backoff_max=1.0, jitter=0.0
    )
    dependency = Dependency(clock, ConnectionError("down"))
    made = policy(clock, options, events=bus)
    with pytest.raises(ConnectionError):
        await made.call(dependency)
    assert dependency.starts == [0.0, 1.0, 2.0]  # a wait to 3.0 would pass 2.5
    assert clock.monotonic() == 2.0
    assert recorder.events[-1].attributes["reason"] == "time"
    assert recorder.events[-1].attributes["attempts"] == 3


async def test_a_wait_that_ends_exactly_at_the_deadline_is_not_begun() -> None:
    clock = VirtualClock(autojump=True)
    options = RetryOptions(
        attempts=10, timeout=2.0, backoff_initial=1.0, backoff_max=1.0, jitter=0.0
    )
    dependency = Dependency(clock, ConnectionError("down"))
    with pytest.raises(ConnectionError):
        await policy(clock, options).call(dependency)
    assert dependency.starts == [0.0, 1.0]  # the next would start at 2.0, the deadline


async def test_a_slow_attempt_that_ends_past_the_deadline_is_not_retried() -> None:
    clock = VirtualClock(autojump=True)
    options = RetryOptions(attempts=10, timeout=5.0, backoff_initial=0.0, backoff_max=0.0)
    dependency = Dependency(clock, ConnectionError("down"), takes=6.0)
    made = policy(clock, options)
    with pytest.raises(ConnectionError):
        await made.call(dependency)
    assert dependency.attempts == 1
    assert made.stats.gave_up_time == 1


async def test_the_deadline_reaches_every_attempt() -> None:
    clock = VirtualClock(start=100.0, autojump=True)
    options = RetryOptions(attempts=3, timeout=30.0, jitter=0.0, backoff_initial=1.0)
    seen: list[tuple[int, float, float]] = []

    async def ask(deadline: Deadline, prompt: str) -> str:
        seen.append((deadline.attempt, deadline.at, deadline.remaining()))
        await clock.sleep(2.0)
        if deadline.attempt < 3:
            raise ConnectionError("down")
        return prompt

    assert await policy(clock, options).call_with_deadline(ask, "hi") == "hi"
    assert seen == [(1, 130.0, 30.0), (2, 130.0, 27.0), (3, 130.0, 23.0)]  # waits of 1 s, then 2 s


async def test_calls_with_a_deadline_are_counted_as_calls() -> None:
    clock = VirtualClock(autojump=True)
    shared = budget(clock)
    made = policy(clock, budget=shared)

    async def ask(deadline: Deadline) -> str:
        return "ok"

    for _ in range(3):
        await made.call_with_deadline(ask)
    assert made.stats == RetryStats(3, 0, 0, 0, 0)
    assert shared.stats.requests == 3


def test_stats_are_a_frozen_slotted_snapshot() -> None:
    import dataclasses

    stats = policy(VirtualClock()).stats
    with pytest.raises(dataclasses.FrozenInstanceError):
        stats.calls = 1  # type: ignore[misc]
    assert not hasattr(stats, "__dict__")


async def test_a_deadline_says_what_is_left_and_never_less_than_nothing() -> None:
    clock = VirtualClock()
    deadline = Deadline(5.0, 2, clock)
    assert deadline.remaining() == 5.0
    clock.advance(7.0)
    assert deadline.remaining() == 0.0
    assert repr(deadline) == "Deadline(attempt=2, remaining=0.000)"
    unbounded = Deadline(float("inf"), 1, clock)
    assert unbounded.remaining() == float("inf")


async def test_without_a_time_cap_the_deadline_is_infinite() -> None:
    clock = VirtualClock(autojump=True)
    seen: list[float] = []

    async def ask(deadline: Deadline) -> str:
        seen.append(deadline.at)
        return "ok"

    await policy(clock, RetryOptions(timeout=float("inf"))).call_with_deadline(ask)
    assert seen == [float("inf")]


# -- the budget ---------------------------------------------------------------------------------


async def test_an_exhausted_budget_ends_the_retries_at_once_with_the_last_error() -> None:
    clock = VirtualClock(autojump=True)
    bus, recorder = recorded()
    shared = budget(clock, bus, ratio=0, min_retries=0)
    error = ConnectionError("down")
    dependency = Dependency(clock, error)
    made = policy(clock, budget=shared, events=bus)
    with pytest.raises(ConnectionError) as raised:
        await made.call(dependency)
    assert raised.value is error
    assert clock.monotonic() == 0.0
    assert dependency.attempts == 1
    assert [(e.source, e.name) for e in recorder.events] == [
        ("retry.budget", "exhausted"),
        ("retry", "gave_up"),
    ]
    assert recorder.events[-1].attributes["reason"] == "budget"
    assert recorder.events[-1].attributes["attempts"] == 1
    assert shared.stats.refused == 1
    assert made.stats == RetryStats(1, 0, 0, 0, 1)


async def test_a_retry_taken_by_another_caller_during_the_wait_gives_up_after_it() -> None:
    """One retry left, two callers failing together: both wait, the first to wake spends it,
    the other is refused as its attempt would start, and raises its own last error; the
    first, failing again, finds the budget empty and gives up at once."""
    clock = VirtualClock(autojump=True)
    bus, recorder = recorded()
    shared = budget(clock, bus, ratio=0, min_retries=1)
    made = policy(clock, budget=shared, events=bus)
    errors = [ConnectionError("a"), ConnectionError("b")]
    first, second = Dependency(clock, errors[0]), Dependency(clock, errors[1])
    results = await asyncio.gather(made.call(first), made.call(second), return_exceptions=True)
    assert results == errors
    assert first.starts == [0.0, 1.0]
    assert second.starts == [0.0]
    assert shared.stats.spent == 1
    assert shared.stats.refused == 2
    assert made.stats == RetryStats(2, 1, 0, 0, 2)
    gave_up = [e.attributes for e in recorder.named("gave_up")]
    assert [(g["reason"], g["attempts"], g["error"], g["elapsed"]) for g in gave_up] == [
        ("budget", 2, "ConnectionError: a", 1.0),
        ("budget", 1, "ConnectionError: b", 1.0),
    ]


async def test_attempts_stay_within_the_budget_under_a_dependency_that_always_fails() -> None:
    """500 requests within one window through one shared budget (20% + 3): whatever each
    policy's attempts allow, every attempt but the first of each request is a spent retry,
    and they are at most 1.2 x requests + 3."""
    clock = VirtualClock(autojump=True)
    bus, _ = recorded()
    shared = budget(clock, bus)
    policies = [policy(clock, RetryOptions(attempts=5), budget=shared, seed=n) for n in range(5)]
    dependency = Dependency(clock, ConnectionError("down"))

    async def client(number: int) -> None:
        await clock.sleep(number * 0.01)
        with pytest.raises(ConnectionError):
            await policies[number % 5].call(dependency)

    await asyncio.gather(*(client(n) for n in range(500)))
    assert clock.monotonic() < 10.0
    assert shared.stats.requests == 500
    assert dependency.attempts == 500 + shared.stats.spent
    assert dependency.attempts <= 1.2 * 500 + 3
    assert dependency.attempts >= 1.2 * 500  # the budget is used, not merely never reached
    assert shared.stats.refused > 0


async def test_over_many_windows_attempts_stay_within_the_ratio_and_a_floor_per_window() -> None:
    clock = VirtualClock(autojump=True)
    shared = budget(clock, recorded()[0])
    made = policy(clock, RetryOptions(attempts=4), budget=shared)
    dependency = Dependency(clock, ConnectionError("down"))

    async def client(number: int) -> None:
        await clock.sleep(number * 0.1)
        with pytest.raises(ConnectionError):
            await made.call(dependency)

    await asyncio.gather(*(client(n) for n in range(600)))  # a minute: 6 windows
    windows = int(clock.monotonic() // 10.0) + 1
    assert dependency.attempts <= 1.2 * 600 + 3 * windows


# -- cancellation -------------------------------------------------------------------------------


async def test_a_caller_cancelled_while_waiting_spends_nothing_and_leaves_no_sleeper() -> None:
    clock = VirtualClock()
    shared = budget(clock)
    made = policy(clock, budget=shared)
    dependency = Dependency(clock, ConnectionError("down"))
    task = asyncio.create_task(made.call(dependency))
    await asyncio.sleep(0)
    assert clock.pending == 1  # its backoff
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert clock.pending == 0
    assert shared.stats.spent == 0
    assert shared.available == 3.2
    assert made.stats == RetryStats(1, 0, 0, 0, 0)


async def test_a_caller_cancelled_in_a_retry_is_not_retried_again() -> None:
    clock = VirtualClock()
    shared = budget(clock)
    made = policy(clock, RetryOptions(attempts=5, jitter=0.0, backoff_initial=1.0), budget=shared)
    dependency = Dependency(clock, ConnectionError("down"), takes=5.0)
    task = asyncio.create_task(made.call(dependency))
    await clock.run_for(7.0)  # the first attempt failed at 5, the second started at 6
    assert dependency.starts == [0.0, 6.0]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await clock.run_for(100.0)
    assert dependency.attempts == 2
    assert shared.stats.spent == 1  # the retry that started
    assert clock.pending == 0


async def test_a_cancellation_raised_by_the_dependency_is_never_retried() -> None:
    clock = VirtualClock(autojump=True)
    dependency = Dependency(clock, asyncio.CancelledError())
    made = policy(clock, RetryOptions(retry_on=(Exception,)))
    with pytest.raises(asyncio.CancelledError):
        await made.call(dependency)
    assert dependency.attempts == 1
    later = Dependency(clock, ConnectionError("down"), asyncio.CancelledError())
    with pytest.raises(asyncio.CancelledError):
        await made.call(later)
    assert later.attempts == 2

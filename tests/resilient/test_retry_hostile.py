"""resilient.retry against hostile input: options and arguments refused by name before
anything is built; a caller's mistake never records a request in, nor spends from, the shared
budget; a dependency's strange errors (a Retry-After that is no number, headers that raise)
never break the policy."""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Callable
from typing import Any

import pytest

import resilient
from resilient.clock import VirtualClock
from resilient.errors import ArgumentTypeError, ArgumentValueError
from resilient.events import EventBus
from resilient.retry import (
    RetryBudget,
    RetryBudgetOptions,
    RetryOptions,
    RetryPolicy,
    retry_after_of,
    transient_error,
)
from tests.resilient.retry_world import Dependency, budget, policy

# -- options and constructors, refused by name -------------------------------------------------


@pytest.mark.parametrize(
    ("build", "error", "message"),
    [
        (lambda: RetryOptions(attempts=True), ArgumentTypeError, "RetryOptions.attempts must be"),
        (lambda: RetryOptions(attempts=0), ArgumentValueError, "RetryOptions.attempts must be"),
        (lambda: RetryOptions(attempts=2.0), ArgumentTypeError, "RetryOptions.attempts must be"),
        (lambda: RetryOptions(timeout=math.nan), ArgumentValueError, "RetryOptions.timeout"),
        (lambda: RetryOptions(timeout=0), ArgumentValueError, "RetryOptions.timeout"),
        (lambda: RetryOptions(timeout="45"), ArgumentTypeError, "RetryOptions.timeout"),
        (lambda: RetryOptions(backoff_initial=-1), ArgumentValueError, "RetryOptions.backoff_ini"),
        (
            lambda: RetryOptions(backoff_max=math.inf),
            ArgumentValueError,
            "RetryOptions.backoff_max",
        ),
        (lambda: RetryOptions(backoff_max=10**400), ArgumentValueError, "RetryOptions.backoff_max"),
        (
            lambda: RetryOptions(backoff_multiplier=0.5),
            ArgumentValueError,
            "RetryOptions.backoff_mu",
        ),
        (lambda: RetryOptions(jitter=1.5), ArgumentValueError, "RetryOptions.jitter"),
        (lambda: RetryOptions(jitter=False), ArgumentTypeError, "RetryOptions.jitter"),
        (lambda: RetryOptions(retry_on=OSError), ArgumentTypeError, "RetryOptions.retry_on"),
        (lambda: RetryOptions(retry_on=[OSError]), ArgumentTypeError, "RetryOptions.retry_on"),
        (
            lambda: RetryOptions(retry_on=(asyncio.CancelledError,)),
            ArgumentTypeError,
            "RetryOptions.retry_on",
        ),
        (
            lambda: RetryOptions(retry_on=(BaseException,)),
            ArgumentTypeError,
            "RetryOptions.retry_on",
        ),
        (lambda: RetryOptions(retry_on=(int,)), ArgumentTypeError, "RetryOptions.retry_on"),
        (lambda: RetryOptions(retry_on=("OSError",)), ArgumentTypeError, "RetryOptions.retry_on"),
        (
            lambda: RetryOptions(backoff_initial=9.0),
            ArgumentValueError,
            "RetryOptions.backoff_initial must be <= backoff_max (8), got 9.0",
        ),
        (
            lambda: RetryBudgetOptions(ratio=math.nan),
            ArgumentValueError,
            "RetryBudgetOptions.ratio",
        ),
        (lambda: RetryBudgetOptions(ratio=True), ArgumentTypeError, "RetryBudgetOptions.ratio"),
        (lambda: RetryBudgetOptions(ratio=1e9), ArgumentValueError, "RetryBudgetOptions.ratio"),
        (
            lambda: RetryBudgetOptions(min_retries=-1),
            ArgumentValueError,
            "RetryBudgetOptions.min_r",
        ),
        (lambda: RetryBudgetOptions(min_retries=10**400), ArgumentValueError, "RetryBudgetOptio"),
        (lambda: RetryBudgetOptions(min_retries=3.0), ArgumentTypeError, "RetryBudgetOptions.min_"),
        (lambda: RetryBudgetOptions(window=0.5), ArgumentValueError, "RetryBudgetOptions.window"),
        (lambda: RetryBudgetOptions(window=61), ArgumentValueError, "RetryBudgetOptions.window"),
        (lambda: RetryBudgetOptions(window=math.inf), ArgumentValueError, "RetryBudgetOptions.wi"),
        (lambda: RetryBudgetOptions(buckets=0), ArgumentValueError, "RetryBudgetOptions.buckets"),
        (lambda: RetryBudgetOptions(buckets=10**6), ArgumentValueError, "RetryBudgetOptions.buck"),
        (lambda: RetryBudgetOptions(buckets=True), ArgumentTypeError, "RetryBudgetOptions.buckets"),
        (lambda: RetryBudget("fast"), ArgumentTypeError, "RetryBudget.options must be a RetryBud"),
        (lambda: RetryBudget(clock=object()), ArgumentTypeError, "RetryBudget.clock must be a Cl"),
        (lambda: RetryBudget(events=[]), ArgumentTypeError, "RetryBudget.events must be an Even"),
        (lambda: RetryPolicy(""), ArgumentValueError, "RetryPolicy.name must be a non-empty str"),
        (lambda: RetryPolicy(3), ArgumentTypeError, "RetryPolicy.name must be a non-empty str"),
        (lambda: RetryPolicy("p", {}), ArgumentTypeError, "RetryPolicy.options must be a RetryOp"),
        (
            lambda: RetryPolicy("p", budget=RetryBudgetOptions()),
            ArgumentTypeError,
            "RetryPolicy.budget must be a RetryBudget or None",
        ),
        (
            lambda: RetryPolicy("p", random=random),
            ArgumentTypeError,
            "RetryPolicy.random must be a random.Random or None",
        ),
        (
            lambda: RetryPolicy("p", random=random.random),
            ArgumentTypeError,
            "RetryPolicy.random must be a random.Random",
        ),
        (lambda: RetryPolicy("p", clock=1.0), ArgumentTypeError, "RetryPolicy.clock must be a Cl"),
        (lambda: RetryPolicy("p", events=None), ArgumentTypeError, "RetryPolicy.events must be"),
    ],
)
def test_hostile_options_and_arguments_are_refused_by_name(
    build: Callable[[], object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as raised:
        build()
    assert str(raised.value).startswith(message)


def test_a_refused_policy_leaves_the_shared_budget_untouched() -> None:
    clock = VirtualClock()
    shared = budget(clock)
    with pytest.raises(ArgumentTypeError):
        RetryPolicy("p", budget=shared, random=42, clock=clock)  # type: ignore[arg-type]
    assert shared.stats == resilient.RetryBudgetStats(0, 0, 0)


def test_numbers_are_kept_as_builtins() -> None:
    class Sly(float):
        def __gt__(self, other: object) -> bool:
            return False

    options = RetryOptions(timeout=Sly(3.0), attempts=True.__int__() + 4)
    assert type(options.timeout) is float
    assert RetryBudgetOptions(ratio=Sly(0.5)).ratio == 0.5


# -- a caller's mistake never records a request nor spends -------------------------------------


async def test_a_callers_mistake_changes_nothing_in_the_shared_budget() -> None:
    clock = VirtualClock(autojump=True)
    shared = budget(clock)
    made = policy(clock, RetryOptions(retry_on=(Exception,)), budget=shared)
    before = (shared.stats, shared.available)

    def sync_function() -> int:
        return 3

    async def takes_one(value: int) -> int:
        return value

    async def takes_none() -> int:
        return 0

    with pytest.raises(ArgumentTypeError, match=r"^RetryPolicy.call\(fn\) must be a callable"):
        await made.call("fn")  # type: ignore[arg-type]
    with pytest.raises(ArgumentTypeError, match=r"^RetryPolicy.call\(fn\) must return an await"):
        await made.call(sync_function)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="positional argument"):
        await made.call(takes_one, 1, 2)  # type: ignore[call-arg]
    with pytest.raises(ArgumentTypeError, match=r"^RetryPolicy.call_with_deadline\(fn\) must be"):
        await made.call_with_deadline(None)  # type: ignore[arg-type]
    with pytest.raises(ArgumentTypeError, match=r"call_with_deadline\(fn\) must return an await"):
        await made.call_with_deadline(lambda deadline: deadline)  # type: ignore[arg-type,return-value]
    with pytest.raises(TypeError, match="positional argument"):
        await made.call_with_deadline(takes_none)  # type: ignore[arg-type]
    assert (shared.stats, shared.available) == before
    assert made.stats.calls == 0


async def test_a_bad_value_raised_inside_an_attempt_spends_nothing() -> None:
    clock = VirtualClock(autojump=True)
    shared = budget(clock)
    made = policy(clock, RetryOptions(retry_on=(Exception,)), budget=shared)
    dependency = Dependency(clock, ArgumentValueError("Rate.limit must be an int >= 1, got 0"))
    with pytest.raises(ArgumentValueError):
        await made.call(dependency)
    assert shared.stats.spent == shared.stats.refused == 0


async def test_any_awaitable_is_an_attempt() -> None:
    clock = VirtualClock(autojump=True)
    made = policy(clock)
    loop = asyncio.get_running_loop()

    def future_of(value: str) -> asyncio.Future[str]:
        future: asyncio.Future[str] = loop.create_future()
        future.set_result(value)
        return future

    assert await made.call(future_of, "done") == "done"
    assert await made.call_with_deadline(lambda deadline, value: future_of(value), "too") == "too"
    assert made.stats.calls == 2


# -- a dependency's strange errors --------------------------------------------------------------


class Carrying(Exception):
    def __init__(self, retry_after: object = None, headers: object = None) -> None:
        super().__init__("strange")
        self.retry_after = retry_after
        self.headers = headers


@pytest.mark.parametrize(
    "retry_after",
    [math.nan, math.inf, -1.0, -math.inf, True, "5", 10**400, None, object(), [2.0]],
    ids=repr,
)
def test_a_retry_after_that_is_no_number_of_seconds_says_nothing(retry_after: object) -> None:
    assert retry_after_of(Carrying(retry_after)) is None


@pytest.mark.parametrize(
    "header", ["nan", "inf", "-3", "1e400", "", "soon", "Mon, 99 Foo 2020 99:99:99 GMT", "5 s"]
)
def test_a_retry_after_header_that_is_no_number_of_seconds_says_nothing(header: str) -> None:
    assert retry_after_of(Carrying(headers={"Retry-After": header})) is None
    assert retry_after_of(Carrying(headers={"retry-after-ms": header})) is None


def test_headers_and_attributes_that_raise_say_nothing() -> None:
    class Raising(Exception):
        @property
        def retry_after(self) -> float:
            raise RuntimeError("no")

        @property
        def headers(self) -> object:
            raise RuntimeError("no")

    class BadHeaders:
        def get(self, name: str) -> str:
            raise KeyError(name)

    assert retry_after_of(Raising()) is None
    assert retry_after_of(Carrying(headers=BadHeaders())) is None
    assert retry_after_of(Carrying(headers={"Retry-After": 5})) is None  # not text
    assert retry_after_of(Carrying(headers={"retry-after-ms": "250", "Retry-After": "9"})) == 0.25
    assert retry_after_of(Carrying(retry_after=2, headers={"Retry-After": "9"})) == 2.0
    assert retry_after_of(Carrying(retry_after=0)) == 0.0  # "now" is a number of seconds
    assert retry_after_of(Carrying(headers={"Retry-After": "0"})) == 0.0
    assert retry_after_of(Carrying(headers={"retry-after-ms": "0"})) == 0.0
    assert retry_after_of(Carrying(headers={"Retry-After": "Tue, 14 Nov 2023 22:13:50 GMT"})) == 0.0
    assert retry_after_of(Carrying(headers={"Retry-After": "Fri, 01 Jan 9999 00:00:00 GMT"})) > 1e9


async def test_a_huge_retry_after_gives_up_on_time_rather_than_sleep() -> None:
    clock = VirtualClock(autojump=True)
    made = policy(clock, RetryOptions(retry_on=(Carrying,)))
    dependency = Dependency(clock, Carrying(retry_after=1e300))
    with pytest.raises(Carrying):
        await made.call(dependency)
    assert clock.monotonic() == 0.0
    assert made.stats.gave_up_time == 1


async def test_an_error_whose_message_cannot_be_shown_is_described_by_its_type() -> None:
    class Unprintable(ConnectionError):
        def __str__(self) -> str:
            raise RuntimeError("no")

    clock = VirtualClock(autojump=True)
    recorder = resilient.EventRecorder()
    bus = EventBus()
    bus.subscribe(recorder)
    made = policy(clock, RetryOptions(attempts=2), events=bus)
    with pytest.raises(Unprintable):
        await made.call(Dependency(clock, Unprintable()))
    assert [e.attributes["error"] for e in recorder.events] == [
        "Unprintable: <a message that cannot be shown>"
    ] * 2
    long = ConnectionError("x" * 1000)
    await_error: Any = None
    try:
        await made.call(Dependency(clock, long))
    except ConnectionError as error:
        await_error = error
    assert await_error is long
    assert len(recorder.events[-1].attributes["error"]) < 130
    assert recorder.events[-1].attributes["error"].startswith("ConnectionError: xxx")
    with pytest.raises(TimeoutError):
        await made.call(Dependency(clock, TimeoutError()))
    assert recorder.events[-1].attributes["error"] == "TimeoutError"  # no message: its type


def test_the_default_retries_only_the_dependencys_faults() -> None:
    assert transient_error(ConnectionResetError())
    assert transient_error(TimeoutError())
    assert transient_error(OSError("unreachable"))
    assert not transient_error(ValueError())
    assert not transient_error(resilient.PoolTimeoutError("pool"))  # an OSError of ours
    assert not transient_error(resilient.ConnectRefusedError("db", "open", 1.0))
    assert not transient_error(resilient.LimiterUnavailable("down"))


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: RetryOptions(retry_on=[OSError]),
            "RetryOptions.retry_on must be a tuple of Exception types or predicates, "
            "got [<class 'OSError'>]",
        ),
        (
            lambda: RetryPolicy("p", budget=3),
            "RetryPolicy.budget must be a RetryBudget or None, got 3",
        ),
        (
            lambda: RetryBudget(clock="now"),
            "RetryBudget.clock must be a Clock, got 'now'",
        ),
        (
            lambda: RetryPolicy("p", events=None),
            "RetryPolicy.events must be an EventBus, got None",
        ),
        (
            lambda: RetryPolicy("p", clock=None),
            "RetryPolicy.clock must be a Clock, got None",
        ),
        (
            lambda: RetryPolicy("p", random="seed"),
            "RetryPolicy.random must be a random.Random or None, got 'seed'",
        ),
        (
            lambda: RetryPolicy("p", "fast"),
            "RetryPolicy.options must be a RetryOptions, got 'fast'",
        ),
        (lambda: RetryPolicy(""), "RetryPolicy.name must be a non-empty str, got ''"),
    ],
)
def test_each_refusal_in_its_exact_words(build: Callable[[], object], message: str) -> None:
    with pytest.raises((TypeError, ValueError)) as raised:
        build()
    assert str(raised.value) == message

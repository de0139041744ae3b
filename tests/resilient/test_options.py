"""Every options class refuses a wrong type with TypeError and a bad value with ValueError.

For every public options class and every field: a random value of a wrong type raises
``TypeError``, a random value of the right type outside the field's rule raises
``ValueError``; each message names ``Class.field`` and the value given, and nothing is built.
A bool is never a number, NaN never, infinity only where a rule allows it. The pattern
constructors check their own arguments the same way.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import sys
import typing
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import resilient
from resilient._validate import (
    Choice,
    Instance,
    Integer,
    Number,
    Rule,
    Text,
    TupleOf,
    check,
    rule_of,
    shown,
)
from resilient.errors import ArgumentTypeError, ArgumentValueError

OPTIONS = sorted(
    (getattr(resilient, name) for name in resilient.__all__ if name.endswith("Options")),
    key=lambda cls: cls.__name__,
)
FIELDS = [(cls, field.name) for cls in OPTIONS for field in dataclasses.fields(cls)]

ANY_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.binary(max_size=8),
    st.lists(st.integers(), max_size=3),
    st.tuples(st.integers()),
    st.builds(object),
)


def accepts_type(annotation: Any, value: object) -> bool:
    """Whether ``value`` has a type the annotation allows (judged apart from the rules)."""
    if isinstance(value, bool) and annotation in (int, float):
        return False  # a bool is never a number
    if annotation is float:
        return isinstance(value, (int, float))
    if typing.get_origin(annotation) is typing.Literal:
        return isinstance(value, str)
    if typing.get_origin(annotation) is tuple:
        return isinstance(value, tuple) and all(callable(item) for item in value)
    return isinstance(value, annotation)


def annotation_of(cls: type, name: str) -> Any:
    namespace = vars(resilient.ratelimit) | vars(resilient.breaker)
    hints = typing.get_type_hints(cls, namespace | vars(sys.modules[cls.__module__]))
    return hints[name]


def bad_values(rule: Rule) -> st.SearchStrategy[object] | None:
    """Values of the right type that break ``rule``; None when the rule has no such value."""
    if isinstance(rule, Integer):
        below = st.integers(max_value=rule.min - 1) if rule.min is not None else st.nothing()
        above = st.integers(min_value=rule.max + 1) if rule.max is not None else st.nothing()
        return st.one_of(below, above)
    if isinstance(rule, Number):
        specials: list[float] = [math.nan]
        if rule.finite:
            specials += [math.inf, -math.inf]
        below: st.SearchStrategy[float] = st.nothing()
        if rule.min is not None:
            below = st.floats(
                max_value=rule.min, exclude_max=not rule.min_open, allow_nan=False
            ).filter(math.isfinite)
        return st.one_of(st.sampled_from(specials), below)
    if isinstance(rule, Choice) and rule.enum is None:
        return st.text(max_size=8).filter(lambda text: text not in rule.values)
    if isinstance(rule, Text) and rule.non_empty:
        return st.just("")
    return None


def field_rule(cls: type, name: str) -> Rule:
    field = {f.name: f for f in dataclasses.fields(cls)}[name]
    rule = rule_of(field)
    assert rule is not None
    return rule


def test_every_options_class_is_covered() -> None:
    names = {cls.__name__ for cls in OPTIONS}
    assert {"BreakerOptions", "GuardOptions", "LocalLimiterOptions", "RedisLimiterOptions"} <= names


@pytest.mark.parametrize(("cls", "name"), FIELDS, ids=lambda v: getattr(v, "__name__", v))
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_a_wrong_type_is_a_type_error_naming_the_field(
    cls: type, name: str, data: st.DataObject
) -> None:
    annotation = annotation_of(cls, name)
    value = data.draw(ANY_VALUE.filter(lambda v: not accepts_type(annotation, v)))
    with pytest.raises(ArgumentTypeError) as raised:
        cls(**{name: value})
    assert isinstance(raised.value, TypeError)
    assert f"{cls.__name__}.{name} must be" in str(raised.value)
    assert str(raised.value).endswith(f"got {value!r}")


@pytest.mark.parametrize(("cls", "name"), FIELDS, ids=lambda v: getattr(v, "__name__", v))
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_a_bad_value_is_a_value_error_naming_the_field(
    cls: type, name: str, data: st.DataObject
) -> None:
    strategy = bad_values(field_rule(cls, name))
    if strategy is None:
        return  # every value of the right type is fine (e.g. any str as a key prefix)
    value = data.draw(strategy)
    with pytest.raises(ArgumentValueError) as raised:
        cls(**{name: value})
    assert isinstance(raised.value, ValueError)
    assert f"{cls.__name__}.{name} must be" in str(raised.value)
    assert str(raised.value).endswith(f"got {value!r}")


@pytest.mark.parametrize(("cls", "name"), FIELDS, ids=lambda v: getattr(v, "__name__", v))
def test_the_default_passes_its_own_rule(cls: type, name: str) -> None:
    default = getattr(cls(), name)
    field_rule(cls, name).check(f"{cls.__name__}.{name}", default)


class Colour(enum.Enum):
    RED = "red"


@pytest.mark.parametrize(
    ("rule", "value", "error"),
    [
        (Integer(min=1), True, TypeError),
        (Integer(min=1), 1.0, TypeError),
        (Integer(min=1, max=3), 4, ValueError),
        (Number(min=0), False, TypeError),
        (Number(min=0), "1", TypeError),
        (Number(min=0), math.nan, ValueError),
        (Number(min=0), math.inf, ValueError),
        (Number(min=0, min_open=True), 0, ValueError),
        (Number(min=0, max=1), 1.5, ValueError),
        (Choice(Colour), "red", TypeError),
        (Choice(values=("a",)), 1, TypeError),
        (Choice(values=("a",)), "b", ValueError),
        (Text(non_empty=True), "", ValueError),
        (Text(), b"x", TypeError),
    ],
)
def test_the_rules(rule: Rule, value: object, error: type[Exception]) -> None:
    with pytest.raises(error, match=r"^Thing\.field must be .*, got "):
        rule.check("Thing.field", value)


@pytest.mark.parametrize(
    ("rule", "value"),
    [
        (Integer(min=1), 1),
        (Number(min=0), 0),
        (Number(min=0, finite=False), math.inf),
        (Number(min=0, min_open=True), 1e-300),
        (Choice(Colour), Colour.RED),
        (Choice(values=("a",)), "a"),
        (Text(), ""),
    ],
)
def test_the_rules_accept_what_they_allow(rule: Rule, value: object) -> None:
    rule.check("Thing.field", value)


def _constructors() -> dict[str, Callable[[object], object]]:
    rate = resilient.Rate(1, 1.0)
    local = resilient.LocalLimiter(rate)
    return {
        "LocalLimiter": lambda options: resilient.LocalLimiter(rate, options),  # type: ignore[arg-type]
        "RedisLimiter": lambda options: resilient.RedisLimiter(
            "redis://127.0.0.1:1/0",
            rate,
            options,  # type: ignore[arg-type]
        ),
        "FailOpenGuard": lambda options: resilient.FailOpenGuard(
            local,
            options,  # type: ignore[arg-type]
            fallback=local,
        ),
        "CircuitBreaker": lambda options: resilient.CircuitBreaker("b", options),  # type: ignore[arg-type]
        "RetryPolicy": lambda options: resilient.RetryPolicy("p", options),  # type: ignore[arg-type]
        "RetryBudget": lambda options: resilient.RetryBudget(options),  # type: ignore[arg-type]
    }


@pytest.mark.parametrize("pattern", list(_constructors()))
@pytest.mark.parametrize("options", [None, {"timeout": 1}, "fast", resilient.Rate(1, 1.0)])
def test_a_pattern_refuses_options_of_another_type(pattern: str, options: object) -> None:
    with pytest.raises(ArgumentTypeError, match=rf"^{pattern}\.options must be a "):
        _constructors()[pattern](options)


@pytest.mark.parametrize(
    ("build", "error", "where"),
    [
        (lambda: resilient.Rate(True, 1.0), TypeError, "Rate.limit"),  # type: ignore[arg-type]
        (lambda: resilient.Rate(1, math.nan), ValueError, "Rate.period"),
        (lambda: resilient.Rate(1, math.inf), ValueError, "Rate.period"),
        (lambda: resilient.Rate(1, True), TypeError, "Rate.period"),  # type: ignore[arg-type]
        (lambda: resilient.Rate(1, 1.0, burst=-1), ValueError, "Rate.burst"),
        (lambda: resilient.Rate(1, 1.0).per_share(0), ValueError, "Rate.per_share"),
        (lambda: resilient.CircuitBreaker(""), ValueError, "CircuitBreaker.name"),
        (lambda: resilient.CircuitBreaker(3), TypeError, "CircuitBreaker.name"),  # type: ignore[arg-type]
        (lambda: resilient.LocalLimiter("10/s"), TypeError, "LocalLimiter.rate"),  # type: ignore[arg-type]
        (lambda: resilient.FailOpenGuard(object()), TypeError, "FailOpenGuard.primary"),  # type: ignore[arg-type]
    ],
)
def test_constructor_arguments_are_checked_the_same_way(
    build: Callable[[], object], error: type[Exception], where: str
) -> None:
    with pytest.raises(error, match=rf"^{where}"):
        build()


@pytest.mark.parametrize(
    ("rule", "text"),
    [
        (Integer(), "an int"),
        (Integer(min=1), "an int >= 1"),
        (Integer(min=0, max=3), "an int >= 0 and <= 3"),
        (Integer(max=7), "an int <= 7"),
        (Number(), "a finite number"),
        (Number(finite=False), "a number"),
        (Number(min=0, unit="seconds"), "a finite number of seconds >= 0"),
        (Number(min=0, min_open=True, unit="seconds"), "a finite number of seconds > 0"),
        (Number(min=0.5, max=1e15), "a finite number >= 0.5 and <= 1e+15"),
        (Text(), "a str"),
        (Text(non_empty=True), "a non-empty str"),
        (Choice(Colour), "a Colour"),
        (Choice(values=("server", "clock")), "one of 'server', 'clock'"),
    ],
)
def test_every_rule_says_exactly_what_it_wants(rule: Rule, text: str) -> None:
    assert rule.describe() == text
    with pytest.raises((TypeError, ValueError)) as raised:
        rule.check("Thing.field", object())
    assert str(
        raised.value
    ) == f"Thing.field must be {text}, got {shown(raised.value.args[0])}" or (
        str(raised.value).startswith(f"Thing.field must be {text}, got <object object at")
    )


@pytest.mark.parametrize(
    ("rule", "inside", "outside"),
    [
        (Integer(min=1, max=3), [1, 2, 3], [0, 4]),
        (Number(min=0, max=1), [0, 0.5, 1], [-1e-9, 1.000001]),
        (Number(min=0, min_open=True, max=1), [1e-300, 1], [0, -1]),
    ],
)
def test_both_ends_of_a_range_are_where_they_say(
    rule: Rule, inside: list[float], outside: list[float]
) -> None:
    for value in inside:
        rule.check("Thing.field", value)
    for value in outside:
        with pytest.raises(ValueError, match=r"^Thing\.field must be"):
            rule.check("Thing.field", value)


def test_a_value_is_kept_as_its_builtin() -> None:
    class MyInt(int):
        pass

    class MyFloat(float):
        pass

    options = resilient.BreakerOptions(failure_threshold=MyInt(3), reset_timeout=MyFloat(2.5))
    assert type(options.failure_threshold) is int
    assert type(options.reset_timeout) is float
    assert type(resilient.GuardOptions(timeout=1).timeout) is float  # a number is a float
    assert check("Thing.field", MyInt(4), Integer()) == 4
    assert type(check("Thing.field", MyInt(4), Integer())) is int


def test_a_value_that_cannot_be_shown_is_named_by_its_type() -> None:
    class Unshowable:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    assert shown(Unshowable()).startswith("<Unshowable instance at 0x")
    assert shown(10**5000) == "<int that cannot be shown>"  # past Python's digit limit
    assert "..." in shown("x" * 1000)
    assert len(shown("x" * 1000)) < 120


@pytest.mark.parametrize(
    "rule",
    [
        Integer(min=1),
        Number(min=0),
        Text(non_empty=True),
        Choice(values=("a",)),
        Instance(int, "an int"),
        TupleOf(callable, "a tuple of callables"),
    ],
    ids=lambda rule: type(rule).__name__,
)
def test_rules_are_immutable_values(rule: Rule) -> None:
    assert {rule: "kept"}[dataclasses.replace(rule)] == "kept"  # hashable, equal by value
    with pytest.raises(dataclasses.FrozenInstanceError):
        rule.name = "changed"  # type: ignore[attr-defined]


def test_the_named_defaults() -> None:
    """Every default, as documented (a changed default is a changed behaviour)."""
    breaker = resilient.DEFAULT_BREAKER_OPTIONS
    assert breaker == resilient.BreakerOptions()
    assert (breaker.failure_threshold, breaker.reset_timeout) == (5, 30.0)
    assert (breaker.half_open_max_calls, breaker.exclude) == (1, ())
    assert breaker.metrics_only is False
    sync = resilient.DEFAULT_BREAKER_SYNC_OPTIONS
    assert (sync.prefix, sync.round_trip_timeout, sync.retry_interval) == ("breaker:", 1.0, 1.0)
    from resilient.breaker import _options as breaker_options

    assert breaker_options.DEFAULT_FAILURE_RATE_THRESHOLD == 0.5  # Resilience4j's defaults
    assert breaker_options.DEFAULT_SLOW_CALL_RATE_THRESHOLD == 1.0
    assert breaker_options.DEFAULT_SLOW_CALL_DURATION == 60.0
    assert breaker_options.DEFAULT_WINDOW_SIZE == breaker_options.DEFAULT_MINIMUM_CALLS == 100
    assert breaker_options.DEFAULT_WINDOW_SECONDS == 100.0
    assert breaker_options.MAX_WINDOW_SIZE == 1_000_000  # one byte a call: 1 MB
    assert breaker_options.MAX_WINDOW_BUCKETS == 10_000  # 32 bytes a bucket: 320 kB
    guard = resilient.DEFAULT_GUARD_OPTIONS
    assert (guard.timeout, guard.mode, guard.instances) == (0.020, resilient.GuardMode.FALLBACK, 1)
    assert guard.unavailable == (OSError, resilient.LimiterUnavailable)
    assert (guard.fault_keys, guard.fault_window) == (100, 1.0)
    assert resilient.BreakerOptions(5, 5.0) == resilient.GUARD_BREAKER_OPTIONS
    assert resilient.DEFAULT_LOCAL_LIMITER_OPTIONS.max_memory == 32 * 2**20
    redis = resilient.DEFAULT_REDIS_LIMITER_OPTIONS
    assert (redis.prefix, redis.time_source, redis.round_trip_timeout) == ("rl:", "server", 1.0)
    assert (redis.max_batch, redis.key_ttl_margin) == (512, 0.0)
    retry = resilient.DEFAULT_RETRY_OPTIONS
    assert retry == resilient.RetryOptions()
    assert (retry.attempts, retry.timeout, retry.jitter) == (3, 45.0, 1.0)
    assert (retry.backoff_initial, retry.backoff_multiplier, retry.backoff_max) == (0.5, 2.0, 8.0)
    from resilient.retry import RETRYABLE_STATUSES, transient_error

    assert retry.retry_on == (transient_error,)
    assert frozenset({408, 429, 500, 502, 503, 504}) == RETRYABLE_STATUSES
    budget = resilient.DEFAULT_RETRY_BUDGET_OPTIONS
    assert budget == resilient.RetryBudgetOptions()
    assert (budget.ratio, budget.min_retries, budget.window, budget.buckets) == (0.2, 3, 10.0, 10)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: resilient.BreakerOptions(reset_timeout=-1),
            "BreakerOptions.reset_timeout must be a finite number of seconds >= 0, got -1",
        ),
        (
            lambda: resilient.BreakerOptions(exclude=[OSError]),
            "BreakerOptions.exclude must be a tuple of exception types or predicates, "
            "got [<class 'OSError'>]",
        ),
        (
            lambda: resilient.GuardOptions(unavailable=(3,)),
            "GuardOptions.unavailable must be a tuple of exception types, got (3,)",
        ),
        (
            lambda: resilient.RedisLimiterOptions(time_source="wall"),
            "RedisLimiterOptions.time_source must be one of 'server', 'clock', got 'wall'",
        ),
        (
            lambda: resilient.GuardOptions(mode="fallback"),
            "GuardOptions.mode must be a GuardMode, got 'fallback'",
        ),
    ],
)
def test_each_options_refusal_in_its_exact_words(build: Callable[[], object], message: str) -> None:
    with pytest.raises((TypeError, ValueError)) as raised:
        build()
    assert str(raised.value) == message


@pytest.mark.parametrize("cls", OPTIONS, ids=lambda cls: cls.__name__)
def test_every_options_object_is_frozen_and_slotted(cls: type) -> None:
    options = cls()
    name = dataclasses.fields(cls)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(options, name, getattr(options, name))
    assert not hasattr(options, "__dict__")  # slotted: no stray attribute can be added


def test_an_exclusion_is_an_exception_type_or_a_predicate() -> None:
    from collections.abc import Callable

    from resilient.breaker import Exclusion

    assert Exclusion == type[BaseException] | Callable[[BaseException], bool]


# Each field's bounds, written out (not derived from its rule, which a test must be able to
# catch changing): the last value accepted on each side, and the first refused with its words.
_GATE, _POOL = resilient.GateOptions, resilient.PoolOptions
_RETRY, _BUDGET = resilient.RetryOptions, resilient.RetryBudgetOptions

BOUNDS: list[tuple[type, str, list[object], object, str]] = [
    (resilient.BreakerOptions, "failure_threshold", [1], 0, "an int >= 1"),
    (resilient.BreakerOptions, "reset_timeout", [0, 0.0], -1e-9, "a finite number of seconds >= 0"),
    (resilient.BreakerOptions, "half_open_max_calls", [1], 0, "an int >= 1"),
    (
        resilient.BreakerSyncOptions,
        "round_trip_timeout",
        [1e-9],
        0,
        "a finite number of seconds > 0",
    ),
    (resilient.BreakerSyncOptions, "retry_interval", [1e-9], 0, "a finite number of seconds > 0"),
    (
        resilient.LocalLimiterOptions,
        "max_memory",
        [400, 2**40],
        399,
        "an int >= 400 and <= 1099511627776",
    ),
    (
        resilient.LocalLimiterOptions,
        "max_memory",
        [],
        2**40 + 1,
        "an int >= 400 and <= 1099511627776",
    ),
    (
        resilient.RedisLimiterOptions,
        "round_trip_timeout",
        [1e-9],
        0,
        "a finite number of seconds > 0",
    ),
    (resilient.RedisLimiterOptions, "max_batch", [1], 0, "an int >= 1"),
    (
        resilient.RedisLimiterOptions,
        "key_ttl_margin",
        [0, 315_360_000.0],
        315_360_000.5,
        "a finite number of seconds >= 0 and <= 315360000",
    ),
    (resilient.GuardOptions, "timeout", [1e-9], 0, "a finite number of seconds > 0"),
    (resilient.GuardOptions, "instances", [1], 0, "an int >= 1"),
    (resilient.GuardOptions, "fault_keys", [1], 0, "an int >= 1"),
    (resilient.GuardOptions, "fault_window", [1e-9], 0, "a finite number of seconds > 0"),
    (_GATE, "max_connecting", [1], 0, "an int >= 1"),
    (_GATE, "connect_timeout", [1e-9], 0, "a finite number of seconds > 0"),
    (_GATE, "backoff_initial", [0, 0.0], -1e-9, "a finite number of seconds >= 0"),
    (_GATE, "backoff_multiplier", [1, 1.0], 0.999, "a finite number of times >= 1"),
    (
        _GATE,
        "backoff_jitter",
        [0, 1],
        1.001,
        "a finite number of share >= 0 and <= 1",
    ),
    (_GATE, "backoff_jitter", [], -0.001, "a finite number of share >= 0 and <= 1"),
    (_GATE, "backoff_max", [1.0, 1e9], -1e-9, "a finite number of seconds >= 0"),
    (_GATE, "backoff_max", [], math.inf, "a finite number of seconds >= 0"),
    (_GATE, "churn_window", [0, 1e9], -1e-9, "a finite number of seconds >= 0"),
    (_GATE, "churn_window", [], math.inf, "a finite number of seconds >= 0"),
    (_POOL, "max_size", [1], 0, "an int >= 1"),
    (_POOL, "min_size", [0], -1, "an int >= 0"),
    (_POOL, "warm_jitter", [0, 0.0], -1e-9, "a finite number of seconds >= 0"),
    (_POOL, "acquire_timeout", [1e-9], 0, "a finite number of seconds > 0"),
    (_POOL, "acquire_timeout", [], math.inf, "a finite number of seconds > 0"),
    (_POOL, "max_waiting", [0], -1, "an int >= 0"),
    (_POOL, "idle_timeout", [1e-9, math.inf], 0, "a number of seconds > 0"),
    (_POOL, "max_lifetime", [1e-9, math.inf], 0, "a number of seconds > 0"),
    (
        _POOL,
        "lifetime_jitter",
        [0, 1],
        1.001,
        "a finite number of share >= 0 and <= 1",
    ),
    (_POOL, "check_after_idle", [0, math.inf], -1e-9, "a number of seconds >= 0"),
    (_POOL, "housekeeping", [1e-9], 0, "a finite number of seconds > 0"),
    (_POOL, "housekeeping", [], math.inf, "a finite number of seconds > 0"),
    (_POOL, "rebuild_step", [1], 0, "an int >= 1"),
    (_RETRY, "attempts", [1, 10**6], 0, "an int >= 1"),
    (_RETRY, "timeout", [1e-9, math.inf], 0, "a number of seconds > 0"),
    (_RETRY, "backoff_initial", [0, 0.0], -1e-9, "a finite number of seconds >= 0"),
    (_RETRY, "backoff_multiplier", [1, 1e300], 0.999, "a finite number of times >= 1"),
    (_RETRY, "backoff_max", [0.5, 1e9], math.inf, "a finite number of seconds >= 0"),
    (_RETRY, "jitter", [0, 1], 1.001, "a finite number of share >= 0 and <= 1"),
    (_RETRY, "jitter", [], -0.001, "a finite number of share >= 0 and <= 1"),
    (_BUDGET, "ratio", [0, 1000], 1000.001, "a finite number of retries >= 0 and <= 1000"),
    (_BUDGET, "ratio", [], -1e-9, "a finite number of retries >= 0 and <= 1000"),
    (_BUDGET, "min_retries", [0, 10**9], 10**9 + 1, "an int >= 0 and <= 1000000000"),
    (_BUDGET, "min_retries", [], -1, "an int >= 0 and <= 1000000000"),
    (_BUDGET, "window", [1, 60], 0.999, "a finite number of seconds >= 1 and <= 60"),
    (_BUDGET, "window", [], 60.001, "a finite number of seconds >= 1 and <= 60"),
    (_BUDGET, "buckets", [1, 1000], 1001, "an int >= 1 and <= 1000"),
    (_BUDGET, "buckets", [], 0, "an int >= 1 and <= 1000"),
]


@pytest.mark.parametrize(
    ("cls", "name", "accepted", "refused", "wants"),
    BOUNDS,
    ids=[f"{cls.__name__}.{name}-{refused}" for cls, name, _, refused, _ in BOUNDS],
)
def test_each_bound_is_where_it_is_written(
    cls: type, name: str, accepted: list[object], refused: object, wants: str
) -> None:
    for value in accepted:
        assert getattr(cls(**{name: value}), name) == value
    with pytest.raises(ArgumentValueError) as raised:
        cls(**{name: refused})
    assert str(raised.value) == f"{cls.__name__}.{name} must be {wants}, got {refused!r}"


def test_the_limits_behind_the_bounds() -> None:
    from resilient.ratelimit import _options

    assert _options.MAX_KEY_TTL_MARGIN == 10 * 365 * 24 * 3600 == 315_360_000
    assert _options.DEFAULT_MAX_MEMORY // _options.ENTRY_BYTES == 83_886  # as documented
    assert _options.ENTRY_BYTES == 400
    assert typing.get_args(_options.TimeSource) == ("server", "clock")
    assert [mode.value for mode in resilient.GuardMode] == [
        "fallback",
        "pass_through",
        "fail_closed",
    ]


def test_a_value_is_shown_in_at_most_100_characters() -> None:
    assert shown("x" * 98) == repr("x" * 98)  # 100 characters with its quotes: whole
    assert len(shown("x" * 99)) == 100  # one more: cut to 100
    assert len(shown("x" * 10_000)) == 100
    assert len(shown(10**200)) == 100


# Rate's bounds, written out: what every limiter can serve, and the first value past each.
RATE_BOUNDS: list[tuple[tuple[Any, ...], str | None]] = [
    ((10**9, 1e15), None),
    (
        (10**9, 1.0000000000000002e15),
        "Rate.period must be a finite number of seconds > 0 and <= 1e+15, got 1000000000000000.2",
    ),
    ((1, 0), "Rate.period must be a finite number of seconds > 0 and <= 1e+15, got 0"),
    ((2**50, 1.0), None),
    (
        (2**50 + 1, 1.0),
        "Rate.limit must be an int >= 1 and <= 1125899906842624, got 1125899906842625",
    ),
    ((10**6, 1.0, 2**50 - 1), None),  # one request spans exactly 2^50 us
    (
        (10**6, 1.0, 2**50),
        "Rate.period and Rate.burst: 1000000/1s (+1125899906842624 burst) lets one request span "
        "1125899906842625 us, more than 2^50 us (35.7 years); got period=1.0, "
        "burst=1125899906842624",
    ),
    ((1, 1.0, 1_125_899_905), None),
    (
        (1, 1.0, 1_125_899_906),
        "Rate.period and Rate.burst: 1/1s (+1125899906 burst) lets one request span "
        "1125899907000000 us, more than 2^50 us (35.7 years); got period=1.0, burst=1125899906",
    ),
]


@pytest.mark.parametrize(("arguments", "refusal"), RATE_BOUNDS)
def test_each_bound_of_a_rate_is_where_it_is_written(
    arguments: tuple[Any, ...], refusal: str | None
) -> None:
    from resilient.ratelimit import Rate
    from resilient.ratelimit._types import MAX_SPAN_US

    assert MAX_SPAN_US == 2**50
    if refusal is None:
        rate = Rate(*arguments)
        assert (rate.burst + 1) * rate.emission_us <= MAX_SPAN_US
        assert not hasattr(rate, "__dict__")
        return
    with pytest.raises(ArgumentValueError) as raised:
        Rate(*arguments)
    assert str(raised.value) == refusal

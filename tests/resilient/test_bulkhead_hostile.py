"""Hostile input to a bulkhead and its limits: refused by name, before anything is built or
changed (NaN, a bool for an int, huge numbers, wrong types, a class for an instance)."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from resilient.bulkhead import (
    AIMDLimit,
    AIMDLimitOptions,
    Bulkhead,
    BulkheadOptions,
    FixedLimit,
    Gradient2Limit,
    Gradient2LimitOptions,
    ThrottleOptions,
)
from resilient.clock import VirtualClock
from resilient.errors import ArgumentTypeError, ArgumentValueError
from tests.resilient.bulkhead_world import quiet

BUILDS: list[tuple[Callable[[VirtualClock], object], type[Exception], str]] = [
    (lambda c: Bulkhead("", clock=c), ArgumentValueError, "Bulkhead.name must be a non-empty str"),
    (lambda c: Bulkhead(3, clock=c), ArgumentTypeError, "Bulkhead.name must be a non-empty str"),  # type: ignore[arg-type]
    (lambda c: Bulkhead("db", None, clock=c), ArgumentTypeError, "Bulkhead.options must be a"),  # type: ignore[arg-type]
    (
        lambda c: Bulkhead("db", {"max_waiting": 1}, clock=c),  # type: ignore[arg-type]
        ArgumentTypeError,
        "Bulkhead.options must be a BulkheadOptions",
    ),
    (
        lambda c: Bulkhead("db", limit=25, clock=c),  # type: ignore[arg-type]
        ArgumentTypeError,
        r"Bulkhead.limit must be a Limit \(FixedLimit, AIMDLimit, Gradient2Limit or your own\) "
        "or None, got 25",
    ),
    (
        lambda c: Bulkhead("db", limit=True, clock=c),  # type: ignore[arg-type]
        ArgumentTypeError,
        "Bulkhead.limit must be a Limit",
    ),
    (
        lambda c: Bulkhead("db", limit=AIMDLimit, clock=c),  # type: ignore[arg-type]
        ArgumentTypeError,
        "Bulkhead.limit must be a Limit .* or None, got <class ",
    ),
    (
        lambda c: Bulkhead("db", throttle=object(), clock=c),  # type: ignore[arg-type]
        ArgumentTypeError,
        "Bulkhead.throttle must be an AdaptiveThrottle or None",
    ),
    (lambda c: Bulkhead("db", clock=object()), ArgumentTypeError, "Bulkhead.clock must be a Clock"),  # type: ignore[arg-type]
    (
        lambda c: Bulkhead("db", clock=c, events=print),  # type: ignore[arg-type]
        ArgumentTypeError,
        "Bulkhead.events must be an EventBus",
    ),
    (lambda c: BulkheadOptions(max_waiting=-1), ArgumentValueError, "BulkheadOptions.max_waiting"),
    (lambda c: BulkheadOptions(max_waiting=True), ArgumentTypeError, "BulkheadOptions.max_waiting"),  # type: ignore[arg-type]
    (lambda c: BulkheadOptions(max_waiting=2**31), ArgumentValueError, "BulkheadOptions.max_wait"),
    (lambda c: BulkheadOptions(max_wait=0), ArgumentValueError, "BulkheadOptions.max_wait must"),
    (lambda c: BulkheadOptions(max_wait=math.nan), ArgumentValueError, "BulkheadOptions.max_wait"),
    (lambda c: BulkheadOptions(max_wait=math.inf), ArgumentValueError, "BulkheadOptions.max_wait"),
    (lambda c: BulkheadOptions(max_wait="1"), ArgumentTypeError, "BulkheadOptions.max_wait"),  # type: ignore[arg-type]
    (lambda c: BulkheadOptions(failures=(1,)), ArgumentTypeError, "BulkheadOptions.failures"),  # type: ignore[arg-type]
    (
        lambda c: AIMDLimit(DEFAULT_OPTIONS_OF_ANOTHER_KIND),  # type: ignore[arg-type]
        ArgumentTypeError,
        "AIMDLimit.options must be an AIMDLimitOptions, got Gradient2LimitOptions",
    ),
    (
        lambda c: Gradient2Limit(AIMDLimitOptions()),  # type: ignore[arg-type]
        ArgumentTypeError,
        "Gradient2Limit.options must be a Gradient2LimitOptions, got AIMDLimitOptions",
    ),
    (
        lambda c: AIMDLimitOptions(backoff_ratio=1),
        ArgumentValueError,
        r"AIMDLimitOptions.backoff_ratio must be < 1 \(a drop must lower the limit\), got 1",
    ),
    (
        lambda c: AIMDLimitOptions(backoff_ratio=0.49),
        ArgumentValueError,
        "AIMDLimitOptions.backoff",
    ),
    (lambda c: AIMDLimitOptions(timeout=0), ArgumentValueError, "AIMDLimitOptions.timeout"),
    (
        lambda c: AIMDLimitOptions(min_limit=30),
        ArgumentValueError,
        r"AIMDLimitOptions.initial_limit must be within min_limit and max_limit \(30 to 200\), "
        "got 20",
    ),
    (
        lambda c: AIMDLimitOptions(max_limit=10),
        ArgumentValueError,
        r"AIMDLimitOptions.min_limit must be <= max_limit \(10\), got 20",
    ),
    (
        lambda c: AIMDLimitOptions(min_limit=1, initial_limit=300),
        ArgumentValueError,
        r"AIMDLimitOptions.initial_limit must be within min_limit and max_limit \(1 to 200\), "
        "got 300",
    ),
    (
        lambda c: Gradient2LimitOptions(max_limit=5, min_limit=1, initial_limit=6),
        ArgumentValueError,
        r"Gradient2LimitOptions.initial_limit must be within min_limit and max_limit \(1 to 5\)",
    ),
    (
        lambda c: Gradient2LimitOptions(min_limit=6, max_limit=5),
        ArgumentValueError,
        r"Gradient2LimitOptions.min_limit must be <= max_limit \(5\), got 6",
    ),
    (lambda c: Gradient2LimitOptions(smoothing=0), ArgumentValueError, "Gradient2LimitOptions.smo"),
    (lambda c: Gradient2LimitOptions(smoothing=1.01), ArgumentValueError, "Gradient2LimitOptions"),
    (lambda c: Gradient2LimitOptions(rtt_tolerance=0.9), ArgumentValueError, "Gradient2LimitOpt"),
    (lambda c: Gradient2LimitOptions(long_window=0), ArgumentValueError, "Gradient2LimitOptions"),
    (lambda c: Gradient2LimitOptions(queue_size=-1), ArgumentValueError, "Gradient2LimitOptions"),
    (lambda c: Gradient2LimitOptions(window=math.nan), ArgumentValueError, "Gradient2LimitOpt"),
    (lambda c: Gradient2LimitOptions(initial_limit=10**30), ArgumentValueError, "Gradient2Limit"),
]

DEFAULT_OPTIONS_OF_ANOTHER_KIND = Gradient2LimitOptions()


@pytest.mark.parametrize(("build", "error", "message"), BUILDS)
def test_hostile_input_is_refused_by_name(
    virtual_clock: VirtualClock, build: Callable[[VirtualClock], object], error: type, message: str
) -> None:
    with pytest.raises(error, match=rf"^{message}"):
        build(virtual_clock)


def test_the_bounds_are_where_they_are_written() -> None:
    assert BulkheadOptions(max_waiting=0).max_waiting == 0
    assert BulkheadOptions(max_waiting=2**31 - 1).max_waiting == 2**31 - 1
    assert BulkheadOptions(max_wait=1e-9).max_wait == 1e-9
    assert AIMDLimitOptions(backoff_ratio=0.5).backoff_ratio == 0.5
    assert AIMDLimitOptions(backoff_ratio=0.999).backoff_ratio == 0.999
    options = AIMDLimitOptions(min_limit=5, initial_limit=5, max_limit=5)
    assert (options.min_limit, options.initial_limit, options.max_limit) == (5, 5, 5)
    assert Gradient2LimitOptions(smoothing=1).smoothing == 1.0
    assert Gradient2LimitOptions(rtt_tolerance=1).rtt_tolerance == 1.0
    assert Gradient2LimitOptions(queue_size=0).queue_size == 0
    default = BulkheadOptions()
    assert (default.max_waiting, default.max_wait, default.failures) == (100, 1.0, (OSError,))


def test_a_bad_limit_answer_at_construction_is_refused_before_anything_is_built(
    virtual_clock: VirtualClock,
) -> None:
    class Lying:
        limit = 0

        def on_sample(self, sample: object) -> None:
            pass

    with pytest.raises(ArgumentValueError, match=r"^Bulkhead\.limit\.limit must be an int >= 1"):
        Bulkhead("db", limit=Lying(), clock=virtual_clock)  # type: ignore[arg-type]


async def test_a_hostile_call_changes_nothing(virtual_clock: VirtualClock) -> None:
    bulkhead = Bulkhead("db", limit=FixedLimit(1), clock=virtual_clock, events=quiet())
    for fn in (None, "fn", 3):
        with pytest.raises(ArgumentTypeError, match=r"^Bulkhead\.call\(fn\) must be a callable"):
            await bulkhead.call(fn)  # type: ignore[arg-type]
    stats = bulkhead.stats
    assert (stats.in_flight, stats.admitted, stats.shed) == (0, 0, 0)


# Each field's bounds, written out (not derived from its rule, which a test must be able to
# catch changing): the last values accepted, and the first refused with its words.
_B, _A, _G = BulkheadOptions, AIMDLimitOptions, Gradient2LimitOptions
_T = ThrottleOptions
_SHARE = "a finite number of share"
BOUNDS: list[tuple[type, str, list[object], object, str]] = [
    (_B, "max_waiting", [0, 2**31 - 1], -1, "an int >= 0 and <= 2147483647"),
    (_B, "max_waiting", [], 2**31, "an int >= 0 and <= 2147483647"),
    (_B, "max_wait", [1e-9, 1e9], 0, "a finite number of seconds > 0"),
    (_B, "max_wait", [], math.inf, "a finite number of seconds > 0"),
    (_B, "failures", [(), (OSError, KeyError)], (1,), "a tuple of exception types"),
    (_A, "min_limit", [1], 0, "an int >= 1 and <= 2147483647"),
    (_A, "max_limit", [20, 2**31 - 1], 2**31, "an int >= 1 and <= 2147483647"),
    (_A, "initial_limit", [20], 0, "an int >= 1 and <= 2147483647"),
    (_A, "backoff_ratio", [0.5, 0.99], 0.4999, f"{_SHARE} >= 0.5 and <= 1"),
    (_A, "backoff_ratio", [], 1.01, f"{_SHARE} >= 0.5 and <= 1"),
    (_A, "timeout", [1e-9], 0, "a finite number of seconds > 0"),
    (_G, "min_limit", [1], 0, "an int >= 1 and <= 2147483647"),
    (_G, "max_limit", [20, 2**31 - 1], 2**31, "an int >= 1 and <= 2147483647"),
    (_G, "initial_limit", [20], 0, "an int >= 1 and <= 2147483647"),
    (_G, "smoothing", [1e-9, 1], 0, f"{_SHARE} > 0 and <= 1"),
    (_G, "smoothing", [], 1.001, f"{_SHARE} > 0 and <= 1"),
    (_G, "queue_size", [0, 2**31 - 1], -1, "an int >= 0 and <= 2147483647"),
    (_G, "rtt_tolerance", [1, 1e6], 0.999, "a finite number of times >= 1 and <= 1000000"),
    (_G, "rtt_tolerance", [], 1e6 + 1, "a finite number of times >= 1 and <= 1000000"),
    (_G, "long_window", [1, 2**31 - 1], 0, "an int >= 1 and <= 2147483647"),
    (_G, "window", [1e-9, 1e9], 0, "a finite number of seconds > 0"),
    (_G, "window_min_samples", [1], 0, "an int >= 1 and <= 2147483647"),
    (_G, "min_latency", [1e-9], 0, "a finite number of seconds > 0"),
    (_T, "k", [1, 1e6], 0.999, "a finite number of times >= 1 and <= 1000000"),
    (_T, "window", [1e-9, 1e9], 0, "a finite number of seconds > 0"),
    (_T, "buckets", [1, 10_000], 0, "an int >= 1 and <= 10000"),
    (_T, "buckets", [], 10_001, "an int >= 1 and <= 10000"),
    (_T, "failures", [(ValueError,)], [OSError], "a tuple of exception types"),
]


@pytest.mark.parametrize(
    ("cls", "name", "accepted", "refused", "wants"),
    BOUNDS,
    ids=[f"{cls.__name__}.{name}-{refused!r}" for cls, name, _, refused, _ in BOUNDS],
)
def test_each_bound_is_where_it_is_written(
    cls: type, name: str, accepted: list[object], refused: object, wants: str
) -> None:
    wide = {"min_limit": 1, "max_limit": 2**31 - 1} if cls in (_A, _G) else {}
    for value in accepted:
        options = cls(**({k: v for k, v in wide.items() if k != name} | {name: value}))
        assert getattr(options, name) == value
    with pytest.raises((ArgumentTypeError, ArgumentValueError)) as raised:
        cls(**{name: refused})
    assert str(raised.value) == f"{cls.__name__}.{name} must be {wants}, got {refused!r}"


@pytest.mark.parametrize("cls", [_B, _A, _G, _T], ids=lambda cls: cls.__name__)
def test_every_options_object_is_frozen_and_slotted(cls: type) -> None:
    import dataclasses

    options = cls()
    name = dataclasses.fields(cls)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(options, name, getattr(options, name))
    assert not hasattr(options, "__dict__")


def test_a_fault_is_one_of_the_failures_and_never_resiliences_own() -> None:
    from resilient.bulkhead._options import is_fault
    from resilient.errors import BulkheadFullError, PoolTimeoutError

    assert is_fault(ConnectionResetError(), (OSError,))
    assert not is_fault(ValueError(), (OSError,))
    assert not is_fault(PoolTimeoutError("queued"), (OSError,))  # a TimeoutError, resilient's
    assert not is_fault(BulkheadFullError("db", "full"), (Exception,))
    assert is_fault(KeyError(), (KeyError, OSError))

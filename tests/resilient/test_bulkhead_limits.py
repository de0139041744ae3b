"""The limits: FixedLimit, AIMDLimit and Gradient2Limit, step by step against figures worked
out by hand from Netflix concurrency-limits' formulas, and the Sample they are fed."""

from __future__ import annotations

import math

import pytest

from resilient.bulkhead import (
    DEFAULT_AIMD_OPTIONS,
    DEFAULT_GRADIENT2_OPTIONS,
    AIMDLimit,
    AIMDLimitOptions,
    FixedLimit,
    Gradient2Limit,
    Gradient2LimitOptions,
    Limit,
    Sample,
    _limits,
    _options,
)
from resilient.bulkhead._limits import read_limit
from resilient.errors import ArgumentTypeError, ArgumentValueError


def sample(latency: float = 0.01, in_flight: int = 20, dropped: bool = False, time: float = 0.0):
    return Sample(time, latency, in_flight, dropped)


# -- Sample --------------------------------------------------------------------------------------


def test_a_sample_keeps_its_fields() -> None:
    made = Sample(1.5, 0.25, 3, True)
    assert (made.time, made.latency, made.in_flight, made.dropped) == (1.5, 0.25, 3, True)
    assert repr(made) == "Sample(time=1.5, latency=0.25, in_flight=3, dropped=True)"
    ints = Sample(2, 1, 0, False)  # ints are numbers of seconds too, kept as floats
    assert (type(ints.time), type(ints.latency), ints.in_flight) == (float, float, 0)
    assert Sample(-5.0, 0.0, 0, False).time == -5.0  # a clock's origin is arbitrary


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        ((math.nan, 0.1, 1, False), ArgumentValueError, "Sample.time must be a finite number"),
        ((math.inf, 0.1, 1, False), ArgumentValueError, "Sample.time must be a finite number"),
        ((-math.inf, 0.1, 1, False), ArgumentValueError, "Sample.time must be a finite number"),
        ((0.0, -0.001, 1, False), ArgumentValueError, "Sample.latency must be a finite number"),
        ((0.0, math.nan, 1, False), ArgumentValueError, "Sample.latency"),
        ((0.0, math.inf, 1, False), ArgumentValueError, "Sample.latency"),
        ((0.0, True, 1, False), ArgumentTypeError, "Sample.latency"),
        ((True, 0.1, 1, False), ArgumentTypeError, "Sample.time"),
        ((0.0, 0.1, -1, False), ArgumentValueError, "Sample.in_flight must be an int >= 0"),
        ((0.0, 0.1, 1.0, False), ArgumentTypeError, "Sample.in_flight"),
        ((0.0, 0.1, True, False), ArgumentTypeError, "Sample.in_flight"),
        ((0.0, 0.1, 1, 1), ArgumentTypeError, "Sample.dropped must be a bool, got 1"),
        ((0.0, 0.1, 1, None), ArgumentTypeError, "Sample.dropped"),
        ((0.0, "0.1", 1, False), ArgumentTypeError, "Sample.latency"),
        ((0.0, 10**400, 1, False), ArgumentValueError, "Sample.latency"),
    ],
)
def test_a_bad_sample_is_refused_by_name(
    arguments: tuple[object, ...], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=rf"^{message}"):
        Sample(*arguments)  # type: ignore[arg-type]


# -- FixedLimit ----------------------------------------------------------------------------------


def test_a_fixed_limit_never_moves() -> None:
    limit = FixedLimit(7)
    for dropped in (True, False):
        limit.on_sample(sample(latency=100.0, in_flight=7, dropped=dropped))
    assert limit.limit == 7
    assert repr(limit) == "FixedLimit(7)"
    assert isinstance(limit, Limit)


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (0, ArgumentValueError),
        (2**31, ArgumentValueError),
        (True, ArgumentTypeError),
        (1.0, ArgumentTypeError),
        ("3", ArgumentTypeError),
        (None, ArgumentTypeError),
    ],
)
def test_a_fixed_limit_is_an_int_of_at_least_one(value: object, error: type[Exception]) -> None:
    with pytest.raises(error, match=r"^FixedLimit\.limit must be an int >= 1 and <= 2147483647"):
        FixedLimit(value)  # type: ignore[arg-type]
    assert FixedLimit(2**31 - 1).limit == 2**31 - 1


# -- AIMDLimit -----------------------------------------------------------------------------------


def test_aimd_has_netflixs_defaults() -> None:
    assert AIMDLimitOptions() == DEFAULT_AIMD_OPTIONS
    options = DEFAULT_AIMD_OPTIONS
    assert (options.initial_limit, options.min_limit, options.max_limit) == (20, 20, 200)
    assert (options.backoff_ratio, options.timeout) == (0.9, 5.0)
    assert AIMDLimit().limit == 20
    assert AIMDLimit().options is DEFAULT_AIMD_OPTIONS


def test_aimd_adds_one_per_call_while_half_the_limit_is_used() -> None:
    limit = AIMDLimit(AIMDLimitOptions(initial_limit=20, min_limit=1, max_limit=22))
    limit.on_sample(sample(in_flight=10))  # 10 * 2 >= 20
    assert limit.limit == 21
    limit.on_sample(sample(in_flight=10))  # 10 * 2 < 21: the limit held nothing back
    assert limit.limit == 21
    limit.on_sample(sample(in_flight=11))
    limit.on_sample(sample(in_flight=11))
    limit.on_sample(sample(in_flight=22))
    assert limit.limit == 22  # max_limit
    assert repr(limit) == "AIMDLimit(limit=22)"


def test_aimd_multiplies_by_the_backoff_ratio_per_drop_down_to_its_minimum() -> None:
    limit = AIMDLimit(AIMDLimitOptions(initial_limit=20, min_limit=13, max_limit=40))
    seen = []
    for _ in range(4):
        limit.on_sample(sample(in_flight=1, dropped=True))
        seen.append(limit.limit)
    assert seen == [18, 16, 14, 13]  # 20*0.9, int(16.2), int(14.4), int(12.6) -> min 13


def test_aimd_counts_a_call_slower_than_its_timeout_as_a_drop() -> None:
    limit = AIMDLimit(AIMDLimitOptions(initial_limit=10, min_limit=1, timeout=2.0))
    limit.on_sample(sample(latency=2.0, in_flight=10))  # at the timeout: fine
    assert limit.limit == 11
    limit.on_sample(sample(latency=2.000001, in_flight=10))
    assert limit.limit == 9  # int(11 * 0.9)
    half = AIMDLimit(AIMDLimitOptions(initial_limit=3, min_limit=1, backoff_ratio=0.5))
    half.on_sample(sample(dropped=True))
    half.on_sample(sample(dropped=True))
    assert half.limit == 1  # int(1.5), then int(0.5) = 0 -> min 1


# -- Gradient2Limit ------------------------------------------------------------------------------


def test_gradient2_has_netflixs_defaults() -> None:
    assert Gradient2LimitOptions() == DEFAULT_GRADIENT2_OPTIONS
    o = DEFAULT_GRADIENT2_OPTIONS
    assert (o.initial_limit, o.min_limit, o.max_limit) == (20, 20, 200)
    assert (o.smoothing, o.queue_size, o.rtt_tolerance, o.long_window) == (0.2, 4, 1.5, 600)
    assert (o.window, o.window_min_samples, o.min_latency) == (1.0, 10, 100e-6)
    assert _options.GRADIENT2_WARMUP == 10
    assert (_limits.GRADIENT_FLOOR, _limits.LONG_RESET_RATIO, _limits.LONG_DECAY) == (0.5, 2, 0.95)
    limit = Gradient2Limit()
    assert (limit.limit, limit.long_latency, limit.options) == (20, 0.0, o)


class Windows:
    """Feeds a gradient limit one window at a time: ten samples in each second (the last
    closes it), after one sample at 0 that opens the first window."""

    def __init__(self, limit: Gradient2Limit) -> None:
        self.limit = limit
        self.end = 0.0
        limit.on_sample(sample(latency=1.0, in_flight=1, time=0.0))

    def window(self, latency: float, in_flight: int, count: int = 10) -> int:
        self.end += 1.0
        for step in range(count):
            time = self.end - 0.1 * (count - 1 - step)
            self.limit.on_sample(sample(latency=latency, in_flight=in_flight, time=time))
        return self.limit.limit


def plain(**changes: object) -> Gradient2Limit:
    """Smoothing 1 and no queue: each update's estimate is ``gradient * estimate``."""
    options: dict[str, object] = {
        "initial_limit": 40,
        "min_limit": 1,
        "max_limit": 100,
        "smoothing": 1.0,
        "queue_size": 0,
        "rtt_tolerance": 1.0,
    }
    return Gradient2Limit(Gradient2LimitOptions(**(options | changes)))  # type: ignore[arg-type]


def test_gradient2_follows_the_ratio_of_long_to_recent_latency() -> None:
    limit = plain()
    feed = Windows(limit)
    assert feed.window(0.1, 40) == 40  # long = 0.1: gradient 1
    assert limit.long_latency == pytest.approx(0.1)
    assert feed.window(0.3, 40) == 26  # long = 0.2: 40 * 0.2 / 0.3 = 26.7
    assert feed.window(1.0, 40) == 13  # long = 1.4 / 3: gradient floored at 0.5
    assert limit.long_latency == pytest.approx(1.4 / 3)
    # Recovery: long (0.375) is more than twice recent (0.1): it shrinks by 5% at once, and
    # the gradient (from the long before the cut) is 1.
    assert feed.window(0.1, 40) == 13
    assert limit.long_latency == pytest.approx(0.375 * 0.95)
    # Fewer than half the estimate in flight: the estimate stays, the long average moves
    # (still a plain mean of the updates while warming up: the last cut did not last; this
    # one is cut again, being more than twice 0.1).
    assert feed.window(0.1, 6) == 13
    assert limit.long_latency == pytest.approx(1.6 / 5 * 0.95)
    assert repr(limit) == f"Gradient2Limit(limit=13, long_latency={limit.long_latency!r})"


def test_gradient2_tolerates_latency_up_to_rtt_tolerance() -> None:
    limit = plain(rtt_tolerance=2.0)
    feed = Windows(limit)
    feed.window(0.1, 40)
    assert feed.window(0.3, 40) == 40  # 2 * 0.2 / 0.3 > 1: within tolerance
    assert feed.window(1.4, 40) == 34  # long = 1.8 / 3 = 0.6: 2 * 0.6 / 1.4 = 0.857 of 40


def test_gradient2_smooths_and_grows_by_its_queue_size() -> None:
    limit = Gradient2Limit(Gradient2LimitOptions(initial_limit=20, min_limit=1))
    feed = Windows(limit)
    assert feed.window(0.01, 20) == 20  # 20 + 0.2 * 4 = 20.8
    assert feed.window(0.01, 20) == 21  # 21.6
    assert feed.window(0.01, 20) == 22  # 22.4
    limit = Gradient2Limit(Gradient2LimitOptions(initial_limit=20, min_limit=1))
    feed = Windows(limit)
    feed.window(0.01, 20)  # 20.8, long 0.01
    # Ten times slower: long 0.055, gradient 1.5 * 0.055 / 0.1 = 0.825:
    # 20.8 + 0.2 * (20.8 * 0.825 + 4 - 20.8) = 20.872
    assert feed.window(0.1, 20) == 20
    limit = Gradient2Limit(Gradient2LimitOptions(initial_limit=20, min_limit=1, rtt_tolerance=1))
    feed = Windows(limit)
    feed.window(0.01, 20)
    # gradient 0.55: 20.8 + 0.2 * (20.8 * 0.55 + 4 - 20.8) = 19.728
    assert feed.window(0.1, 20) == 19


def test_gradient2_stays_within_its_minimum_and_maximum() -> None:
    limit = plain(initial_limit=10, min_limit=8, max_limit=12, queue_size=5)
    feed = Windows(limit)
    assert feed.window(0.1, 10) == 12  # 10 + 5 = 15 -> 12
    assert feed.window(10.0, 12) == 11  # long 5.05: 12 * 0.505 + 5 = 11.06
    limit = plain(initial_limit=10, min_limit=8, max_limit=12)
    feed = Windows(limit)
    feed.window(0.1, 10)
    assert feed.window(10.0, 10) == 8  # 10 * 0.5 = 5 -> 8


def test_gradient2_updates_only_from_full_windows_of_samples_that_count() -> None:
    limit = plain()
    feed = Windows(limit)
    assert feed.window(0.1, 40, count=9) == 40  # 9 samples: no update
    assert limit.long_latency == 0.0
    assert feed.window(0.00009, 40) == 40  # under 100 us: left out, not even closing it
    assert limit.long_latency == 0.0
    assert feed.window(0.0001, 40) == 40  # 100 us counts: its first closes the empty window
    assert limit.long_latency == 0.0
    assert feed.window(0.0001, 40) == 40  # and its next ten make an update
    assert limit.long_latency == pytest.approx(0.0001)
    # A window's samples are averaged, and the most in flight of them is what is judged.
    limit = plain()
    feed = Windows(limit)
    feed.window(0.1, 40)
    limit.on_sample(sample(latency=0.1, in_flight=40, time=1.1))
    for step in range(9):
        limit.on_sample(sample(latency=0.5, in_flight=5, time=round(1.2 + 0.1 * step, 9)))
    # closed at 2.0 with 10 samples averaging 0.46, 40 in flight at most (not app-limited):
    # long (0.1 + 0.46) / 2 = 0.28, 40 * 0.28 / 0.46 = 24.3
    assert limit.long_latency == pytest.approx(0.28)
    assert limit.limit == 24


def test_gradient2_windows_last_window_seconds_from_the_sample_that_closed_the_last() -> None:
    limit = plain(window=0.5)
    limit.on_sample(sample(latency=0.2, time=10.0))  # opens the first window, until 10.5
    for step in range(9):
        limit.on_sample(sample(latency=0.2, in_flight=40, time=10.1 + 0.01 * step))
    assert limit.long_latency == 0.0
    limit.on_sample(sample(latency=0.2, in_flight=40, time=10.5))
    assert limit.long_latency == pytest.approx(0.2)


def test_gradient2_long_latency_is_a_mean_then_an_exponential_average() -> None:
    limit = plain(long_window=3)  # factor 2 / (3 + 1) = 0.5 after the first ten updates
    feed = Windows(limit)
    for _ in range(10):
        feed.window(0.1, 40)
    assert limit.long_latency == pytest.approx(0.1)
    feed.window(0.15, 40)
    assert limit.long_latency == pytest.approx(0.125)
    feed.window(0.15, 40)
    assert limit.long_latency == pytest.approx(0.1375)


# -- reading a limit -----------------------------------------------------------------------------


class Answers:
    def __init__(self, answer: object) -> None:
        self.answer = answer

    @property
    def limit(self) -> int:
        return self.answer  # type: ignore[return-value]

    def on_sample(self, sample: Sample) -> None:
        pass


def test_reading_a_limit_checks_its_answer() -> None:
    assert read_limit("L", Answers(5)) == 5
    assert read_limit("L", Answers(2**31 - 1)) == 2**31 - 1

    class Big(int):
        pass

    assert type(read_limit("L", Answers(Big(4)))) is int
    for bad, error in [
        (0, ArgumentValueError),
        (2**31, ArgumentValueError),
        (True, ArgumentTypeError),
        (3.0, ArgumentTypeError),
        (None, ArgumentTypeError),
    ]:
        with pytest.raises(error, match=r"^L must be an int >= 1 and <= 2147483647, got "):
            read_limit("L", Answers(bad))


def test_a_samples_refusal_in_its_exact_words() -> None:
    for arguments, message in [
        ((math.nan, 0.1, 1, False), "Sample.time must be a finite number of seconds, got nan"),
        (
            (0.0, -0.5, 1, False),
            "Sample.latency must be a finite number of seconds >= 0, got -0.5",
        ),
        ((0.0, 0.1, -1, False), "Sample.in_flight must be an int >= 0, got -1"),
    ]:
        with pytest.raises(ArgumentValueError) as raised:
            Sample(*arguments)  # type: ignore[arg-type]
        assert str(raised.value) == message


def test_a_window_of_one_sample_starts_from_nothing() -> None:
    """With one sample a window, the very first sample makes an update of its own: nothing of
    an earlier window (no latency, no count, no calls in flight) is carried into it."""
    limit = plain(initial_limit=1, window_min_samples=1, queue_size=4)
    limit.on_sample(sample(latency=0.1, in_flight=0, time=0.0))
    assert limit.long_latency == pytest.approx(0.1)
    assert limit.limit == 1  # nothing in flight: app-limited, the estimate stays
    limit.on_sample(sample(latency=0.3, in_flight=0, time=1.0))
    assert limit.long_latency == pytest.approx(0.2)
    assert limit.limit == 1
    limit.on_sample(sample(latency=0.2, in_flight=1, time=2.0))
    assert limit.limit == 5  # 1 in flight of 1: 1 * 1 + 4


def test_the_limit_protocol_is_a_property_and_a_method() -> None:
    import inspect

    assert isinstance(inspect.getattr_static(Limit, "limit"), property)
    assert inspect.isfunction(inspect.getattr_static(Limit, "on_sample"))
    for limit in (FixedLimit(1), AIMDLimit(), Gradient2Limit()):
        assert isinstance(inspect.getattr_static(type(limit), "limit"), property)


def test_gradient2_judges_app_limited_and_recovery_at_their_exact_bounds() -> None:
    limit = plain(queue_size=4)  # estimate 40
    feed = Windows(limit)
    assert feed.window(0.1, 15) == 40  # 15 * 2 < 40: app-limited, no growth
    assert feed.window(0.1, 20) == 44  # 20 * 2 = 40: not app-limited, 40 * 1 + 4
    limit = plain()
    feed = Windows(limit)
    feed.window(0.375, 40)  # binary fractions: every sum and mean below is exact
    feed.window(0.125, 40)  # long (0.375 + 0.125) / 2 = 0.25: exactly twice recent, not more
    assert limit.long_latency == 0.25

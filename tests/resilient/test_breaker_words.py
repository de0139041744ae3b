"""The breaker in exact words: every event's name, severity and attributes (in order) as a log
reader or a dashboard sees them, and the events a trip, a recovery and an isolation emit
(mutation survivors of breaker/_events).

Every test runs in virtual time.
"""

from __future__ import annotations

import dataclasses

import pytest

from resilient.breaker import (
    BREAKER_CLOSED,
    BREAKER_EVENT_SOURCE,
    BREAKER_HALF_OPENED,
    BREAKER_ISOLATED,
    BREAKER_OPENED,
    BREAKER_SYNC_LOST,
    BREAKER_SYNC_RESTORED,
    BreakerClosed,
    BreakerHalfOpened,
    BreakerIsolated,
    BreakerOpened,
    BreakerOptions,
    BreakerSyncLost,
    BreakerSyncRestored,
    CircuitBreaker,
)
from resilient.clock import VirtualClock
from resilient.events import EventBus, EventRecorder, Severity


class Boom(Exception):
    pass


async def fail() -> None:
    raise Boom("down")


async def ok() -> str:
    return "ok"


def test_the_event_names_are_the_documented_words() -> None:
    assert (
        BREAKER_EVENT_SOURCE,
        BREAKER_OPENED,
        BREAKER_HALF_OPENED,
        BREAKER_CLOSED,
        BREAKER_ISOLATED,
        BREAKER_SYNC_LOST,
        BREAKER_SYNC_RESTORED,
    ) == ("breaker", "opened", "half_opened", "closed", "isolated", "sync_lost", "sync_restored")


@pytest.mark.parametrize(
    ("event", "name", "severity", "attributes"),
    [
        (
            BreakerOpened("dep", "closed", "why", 3, 10.0),
            "opened",
            Severity.WARNING,
            {
                "breaker": "dep",
                "previous": "closed",
                "reason": "why",
                "failures": 3,
                "reset_timeout": 10.0,
            },
        ),
        (
            BreakerHalfOpened("dep", "open", "why", 2),
            "half_opened",
            Severity.INFO,
            {"breaker": "dep", "previous": "open", "reason": "why", "max_probes": 2},
        ),
        (
            BreakerClosed("dep", "half-open", "why"),
            "closed",
            Severity.INFO,
            {"breaker": "dep", "previous": "half-open", "reason": "why"},
        ),
        (
            BreakerIsolated("dep", "closed", "why"),
            "isolated",
            Severity.WARNING,
            {"breaker": "dep", "previous": "closed", "reason": "why"},
        ),
        (
            BreakerSyncLost("dep", "ConnectionError: refused"),
            "sync_lost",
            Severity.WARNING,
            {"breaker": "dep", "error": "ConnectionError: refused"},
        ),
        (
            BreakerSyncRestored("dep", 2.5),
            "sync_restored",
            Severity.INFO,
            {"breaker": "dep", "down_for": 2.5},
        ),
    ],
)
def test_each_event_has_its_name_severity_and_attributes_in_order(
    event: BreakerOpened, name: str, severity: Severity, attributes: dict[str, object]
) -> None:
    assert (name, severity) == (event.NAME, event.SEVERITY)
    assert list(event) == list(attributes)  # declaration order: the order a log line shows
    assert event == attributes  # a mapping: equal to a plain dict of the same items
    assert dict(event) == attributes
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.breaker = "other"  # type: ignore[misc]
    assert not hasattr(event, "__dict__")


async def test_a_trip_a_recovery_and_an_isolation_emit_exactly_these_events() -> None:
    clock = VirtualClock()
    recorder = EventRecorder()
    bus = EventBus()
    bus.subscribe(recorder)
    breaker = CircuitBreaker(
        "dep",
        BreakerOptions(failure_threshold=2, reset_timeout=10.0, half_open_max_calls=3),
        clock=clock,
        events=bus,
    )
    for _ in range(2):
        with pytest.raises(Boom):
            await breaker.call(fail)
    clock.advance(10.0)
    assert await breaker.call(ok) == "ok"
    breaker.isolate("maintenance")
    breaker.reset()
    told = [(e.source, e.name, e.severity, e.time, dict(e.attributes)) for e in recorder.events]
    assert told == [
        (
            "breaker",
            "opened",
            Severity.WARNING,
            0.0,
            {
                "breaker": "dep",
                "previous": "closed",
                "reason": "ConsecutiveFailures(2) tripped on Boom",
                "failures": 2,
                "reset_timeout": 10.0,
            },
        ),
        (
            "breaker",
            "half_opened",
            Severity.INFO,
            10.0,
            {
                "breaker": "dep",
                "previous": "open",
                "reason": "reset timeout elapsed",
                "max_probes": 3,
            },
        ),
        (
            "breaker",
            "closed",
            Severity.INFO,
            10.0,
            {"breaker": "dep", "previous": "half-open", "reason": "probe succeeded"},
        ),
        (
            "breaker",
            "isolated",
            Severity.WARNING,
            10.0,
            {"breaker": "dep", "previous": "closed", "reason": "maintenance"},
        ),
        (
            "breaker",
            "closed",
            Severity.INFO,
            10.0,
            {"breaker": "dep", "previous": "isolated", "reason": "reset by hand"},
        ),
    ]


# -- the options: every default as documented, every refusal naming its field and bound -------


def test_the_options_defaults_are_the_documented_numbers() -> None:
    from resilient.breaker import (
        DEFAULT_BREAKER_OPTIONS,
        DEFAULT_BREAKER_SYNC_OPTIONS,
        DEFAULT_FAILURE_RATE_THRESHOLD,
        DEFAULT_MINIMUM_CALLS,
        DEFAULT_SLOW_CALL_DURATION,
        DEFAULT_SLOW_CALL_RATE_THRESHOLD,
        DEFAULT_WINDOW_SECONDS,
        DEFAULT_WINDOW_SIZE,
        BreakerSyncOptions,
    )

    assert dataclasses.asdict(BreakerOptions()) == {
        "failure_threshold": 5,
        "reset_timeout": 30.0,
        "half_open_max_calls": 1,
        "exclude": (),
        "metrics_only": False,
    }
    assert BreakerOptions() == DEFAULT_BREAKER_OPTIONS
    assert dataclasses.asdict(BreakerSyncOptions()) == {
        "prefix": "breaker:",
        "round_trip_timeout": 1.0,
        "retry_interval": 1.0,
    }
    assert BreakerSyncOptions() == DEFAULT_BREAKER_SYNC_OPTIONS
    assert (
        DEFAULT_FAILURE_RATE_THRESHOLD,
        DEFAULT_SLOW_CALL_RATE_THRESHOLD,
        DEFAULT_SLOW_CALL_DURATION,
        DEFAULT_WINDOW_SIZE,
        DEFAULT_WINDOW_SECONDS,
        DEFAULT_MINIMUM_CALLS,
    ) == (0.5, 1.0, 60.0, 100, 100.0, 100)


@pytest.mark.parametrize(
    ("build", "error", "message"),
    [
        (
            lambda: BreakerOptions(failure_threshold=0),
            ValueError,
            "BreakerOptions.failure_threshold must be an int >= 1, got 0",
        ),
        (
            lambda: BreakerOptions(reset_timeout=-1),
            ValueError,
            "BreakerOptions.reset_timeout must be a finite number of seconds >= 0, got -1",
        ),
        (
            lambda: BreakerOptions(half_open_max_calls=0),
            ValueError,
            "BreakerOptions.half_open_max_calls must be an int >= 1, got 0",
        ),
        (
            lambda: BreakerOptions(exclude=(3,)),
            TypeError,
            "BreakerOptions.exclude must be a tuple of exception types or predicates, got (3,)",
        ),
        (
            lambda: BreakerOptions(metrics_only=1),
            TypeError,
            "BreakerOptions.metrics_only must be a bool, got 1",
        ),
        (
            lambda: __import__("resilient.breaker").breaker.BreakerSyncOptions(prefix=3),
            TypeError,
            "BreakerSyncOptions.prefix must be a str, got 3",
        ),
        (
            lambda: __import__("resilient.breaker").breaker.BreakerSyncOptions(
                round_trip_timeout=0
            ),
            ValueError,
            "BreakerSyncOptions.round_trip_timeout must be a finite number of seconds > 0, got 0",
        ),
        (
            lambda: __import__("resilient.breaker").breaker.BreakerSyncOptions(retry_interval=0),
            ValueError,
            "BreakerSyncOptions.retry_interval must be a finite number of seconds > 0, got 0",
        ),
    ],
)
def test_a_bad_option_is_refused_naming_its_field_and_bound(
    build: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as refused:
        build()  # type: ignore[operator]
    assert str(refused.value) == message


def test_every_bound_of_the_options_itself_is_accepted() -> None:
    from resilient.breaker import BreakerSyncOptions, CountWindow, TimeWindow

    edge = BreakerOptions(failure_threshold=1, reset_timeout=0, half_open_max_calls=1)
    assert (edge.failure_threshold, edge.reset_timeout, edge.half_open_max_calls) == (1, 0, 1)
    assert BreakerOptions(exclude=(KeyError, callable)).exclude == (KeyError, callable)
    assert BreakerSyncOptions(prefix="").prefix == ""
    assert CountWindow(1_000_000).size == 1_000_000  # MAX_WINDOW_SIZE: one byte a call, 1 MB
    assert TimeWindow(1.0, 10_000).buckets == 10_000  # MAX_WINDOW_BUCKETS
    for options, field in ((BreakerOptions(), "reset_timeout"), (BreakerSyncOptions(), "prefix")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(options, field, 1.0)
        assert not hasattr(options, "__dict__")


def test_exclusion_is_the_public_alias_of_what_exclude_holds() -> None:
    import typing
    from collections.abc import Callable

    from resilient.breaker import Exclusion

    assert typing.get_args(Exclusion) == (
        type[BaseException],
        Callable[[BaseException], bool],
    )

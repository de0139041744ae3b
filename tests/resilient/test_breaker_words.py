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

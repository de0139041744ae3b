"""Events: one shape, in order, logged when unobserved; a listener cannot break the emitter."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import ClassVar

import pytest

from resilient.clock import VirtualClock
from resilient.events import Emitter, Event, EventAttributes, EventBus, EventRecorder, Severity


def test_event_attributes_are_frozen_copies() -> None:
    attributes = {"key": 1}
    event = Event("ratelimit.guard", "degraded", Severity.WARNING, attributes)
    attributes["key"] = 2
    assert event.attributes["key"] == 1
    with pytest.raises(TypeError):
        event.attributes["key"] = 3  # type: ignore[index]


@pytest.mark.parametrize(("source", "name"), [("", "x"), ("x", "")])
def test_event_requires_source_and_name(source: str, name: str) -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        Event(source, name)


def test_listeners_receive_events_in_order_until_unsubscribed() -> None:
    bus = EventBus()
    recorder = EventRecorder()
    unsubscribe = bus.subscribe(recorder)
    bus.emit(Event("a", "one"))
    bus.emit(Event("a", "two"))
    unsubscribe()
    bus.emit(Event("a", "three"))
    assert [e.name for e in recorder.events] == ["one", "two"]


def test_unobserved_events_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    bus = EventBus()
    with caplog.at_level(logging.INFO, logger="resilient"):
        bus.emit(Event("breaker", "opened", Severity.WARNING, {"failures": 5}))
    assert caplog.records[0].name == "resilient.breaker"
    assert caplog.records[0].levelno == logging.WARNING
    assert "opened failures=5" in caplog.records[0].getMessage()


def test_failing_listener_is_logged_and_others_still_run(caplog: pytest.LogCaptureFixture) -> None:
    bus = EventBus()
    recorder = EventRecorder()

    def broken(event: Event) -> None:
        raise RuntimeError("listener bug")

    bus.subscribe(broken)
    bus.subscribe(recorder)
    with caplog.at_level(logging.ERROR, logger="resilient.events"):
        bus.emit(Event("a", "b"))
    assert len(recorder.events) == 1
    assert "listener" in caplog.records[0].getMessage()


@dataclass(frozen=True, slots=True, eq=False)
class Tripped(EventAttributes):
    NAME: ClassVar[str] = "tripped"
    SEVERITY: ClassVar[Severity] = Severity.WARNING

    failures: int
    reason: str


def test_typed_attributes_are_frozen_and_read_as_a_mapping() -> None:
    attributes = Tripped(3, "boom")
    assert attributes.failures == 3
    assert attributes["reason"] == "boom"
    assert dict(attributes) == {"failures": 3, "reason": "boom"}
    assert list(attributes) == ["failures", "reason"]
    assert len(attributes) == 2
    with pytest.raises(KeyError):
        attributes["NAME"]
    with pytest.raises(AttributeError):
        attributes.failures = 4  # type: ignore[misc]


def test_an_emitter_names_the_event_after_its_attributes() -> None:
    bus, recorder, clock = EventBus(), EventRecorder(), VirtualClock(start=7.0)
    bus.subscribe(recorder)
    emit = Emitter("breaker", bus, clock)
    emit(Tripped(3, "boom"))
    (event,) = recorder.events
    assert (event.source, event.name, event.severity, event.time) == (
        "breaker",
        "tripped",
        Severity.WARNING,
        7.0,
    )
    assert event.attributes == Tripped(3, "boom")


def test_unobserved_typed_events_are_logged_field_by_field(
    caplog: pytest.LogCaptureFixture,
) -> None:
    emit = Emitter("breaker", EventBus(), VirtualClock())
    with caplog.at_level(logging.INFO, logger="resilient"):
        emit(Tripped(5, "x"))
    assert "tripped failures=5 reason='x'" in caplog.records[0].getMessage()


# -- the envelope, the bus and the recorder, exactly (mutation survivors) ----------------------


def test_an_event_is_a_frozen_slotted_value_with_its_defaults() -> None:
    import dataclasses

    from resilient.events import Event, Severity

    event = Event("src", "happened")
    assert (event.severity, event.attributes, event.time) == (Severity.INFO, {}, 0.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.name = "other"  # type: ignore[misc]
    assert not hasattr(event, "__dict__")
    for source, name, message in (
        ("", "n", "Event.source must not be empty"),
        ("s", "", "Event.name must not be empty"),
    ):
        with pytest.raises(ValueError, match="must not be empty") as raised:
            Event(source, name)
        assert str(raised.value) == message


def test_event_attributes_are_frozen_slotted_and_equal_as_mappings() -> None:
    import dataclasses

    from resilient.events import EventAttributes, Severity

    assert (EventAttributes.NAME, EventAttributes.SEVERITY) == ("", Severity.INFO)

    @dataclasses.dataclass(frozen=True, slots=True, eq=False)
    class Seen(EventAttributes):
        what: str

    seen = Seen("x")
    assert seen == {"what": "x"}
    assert seen == Seen("x")
    assert seen != Seen("y")
    assert hash(seen) == hash(Seen("x"))
    assert not hasattr(seen, "__dict__")


def test_an_unobserved_event_is_logged_as_its_name_and_details(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from resilient.events import Event, EventBus, Severity

    with caplog.at_level("INFO", logger="resilient.src"):
        EventBus().emit(Event("src", "happened", Severity.WARNING, {"key": "k", "n": 3}))
    assert [(r.name, r.levelname, r.getMessage()) for r in caplog.records] == [
        ("resilient.src", "WARNING", "happened key='k' n=3")
    ]


def test_a_failing_listener_is_logged_by_the_events_logger(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from resilient.events import Event, EventBus

    bus = EventBus()

    def broken(event: Event) -> None:
        raise RuntimeError("listener bug")

    bus.subscribe(broken)
    with caplog.at_level("ERROR", logger="resilient.events"):
        bus.emit(Event("src", "happened"))
    assert [(r.name, r.getMessage()) for r in caplog.records] == [
        ("resilient.events", f"event listener {broken!r} failed on src.happened")
    ]
    assert repr(bus) == "EventBus(listeners=1)"


def test_an_event_emitted_during_delivery_waits_for_every_listener_to_have_the_first() -> None:
    from resilient.events import Event, EventBus

    bus = EventBus()
    seen: list[tuple[str, str]] = []

    def first(event: Event) -> None:
        seen.append(("first", event.name))
        if event.name == "a":
            bus.emit(Event("src", "b"))

    bus.subscribe(first)
    bus.subscribe(lambda event: seen.append(("second", event.name)))
    bus.emit(Event("src", "a"))
    bus.emit(Event("src", "c"))  # the bus is free again
    assert seen == [
        ("first", "a"),
        ("second", "a"),
        ("first", "b"),
        ("second", "b"),
        ("first", "c"),
        ("second", "c"),
    ]


def test_the_default_bus_is_one_shared_bus() -> None:
    from resilient.events import DEFAULT_EVENTS, EventBus

    assert isinstance(DEFAULT_EVENTS, EventBus)


def test_the_recorder_finds_events_by_name_and_source() -> None:
    from resilient.events import Event, EventRecorder

    recorder = EventRecorder()
    events = [Event("a", "x"), Event("b", "x"), Event("a", "y")]
    for event in events:
        recorder(event)
    assert recorder.named("x") == events[:2]
    assert recorder.named("x", "a") == events[:1]
    assert recorder.named("x", "b") == events[1:2]
    assert recorder.named("y", "b") == []


# Every event of the breaker and the rate limiters, written out: its source, name, severity and
# fields are what dashboards and alerts match on, so a change is a change of the public API.
EVENTS: list[tuple[str, str, str, str, str, list[str]]] = [
    ("resilient.breaker._events", "BreakerOpened", "breaker", "opened", "WARNING",
     ["breaker", "previous", "reason", "failures", "reset_timeout"]),
    ("resilient.breaker._events", "BreakerHalfOpened", "breaker", "half_opened", "INFO",
     ["breaker", "previous", "reason", "max_probes"]),
    ("resilient.breaker._events", "BreakerClosed", "breaker", "closed", "INFO",
     ["breaker", "previous", "reason"]),
    ("resilient.ratelimit._events", "GuardDegraded", "ratelimit.guard", "degraded", "WARNING",
     ["reason", "mode"]),
    ("resilient.ratelimit._events", "GuardRecovered", "ratelimit.guard", "recovered", "INFO",
     ["degraded_for"]),
    ("resilient.ratelimit._events", "SuspectedLimiterFault", "ratelimit.guard",
     "suspected_limiter_fault", "WARNING", ["distinct_keys_denied", "window"]),
    ("resilient.ratelimit._events", "LocalLimiterOverflow", "ratelimit.local", "overflow",
     "WARNING", ["max_keys", "live_keys"]),
    ("resilient.ratelimit._events", "RedisRoundTripFailed", "ratelimit.redis",
     "round_trip_failed", "WARNING", ["reason", "decisions"]),
    ("resilient.ratelimit._events", "RedisClientUnsupported", "ratelimit.redis",
     "client_unsupported", "ERROR", ["reason"]),
    ("resilient.ratelimit._events", "RedisScriptReloaded", "ratelimit.redis", "script_reloaded",
     "INFO", ["reason"]),
    ("resilient.pool._events", "ConnectFailed", "pool.gate", "connect_failed", "WARNING",
     ["destination", "error", "failures", "backoff"]),
    ("resilient.pool._events", "ConnectionChurned", "pool.gate", "churned", "WARNING",
     ["destination", "lived", "failures", "backoff"]),
    ("resilient.pool._events", "DestinationRecovered", "pool.gate", "recovered", "INFO",
     ["destination", "failures"]),
    ("resilient.pool._events", "ConnectRefused", "pool.gate", "refused", "INFO",
     ["destination", "reason"]),
    ("resilient.pool._events", "ConnectionDiscarded", "pool", "discarded", "INFO",
     ["reason", "age"]),
    ("resilient.pool._events", "PoolExhausted", "pool", "exhausted", "WARNING",
     ["waiting", "in_use"]),
    ("resilient.pool._events", "PoolRebuilding", "pool", "rebuilding", "INFO", ["old"]),
    ("resilient.pool._events", "PoolClosed", "pool", "closed", "INFO", ["closed", "in_use"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("module", "cls", "source", "name", "severity", "fields"),
    EVENTS,
    ids=[row[1] for row in EVENTS],
)
def test_each_event_is_named_and_shaped_as_written(
    module: str, cls: str, source: str, name: str, severity: str, fields: list[str]
) -> None:
    import dataclasses
    import importlib

    events = importlib.import_module(module)
    attributes = getattr(events, cls)
    assert name == attributes.NAME
    assert attributes.SEVERITY is Severity[severity]
    assert [field.name for field in dataclasses.fields(attributes)] == fields
    sources = {value for key, value in vars(events).items() if key.endswith("_EVENT_SOURCE")}
    assert source in sources
    constants = {value for key, value in vars(events).items() if key.isupper()}
    assert name in constants  # the name is also a constant listeners can match on
    one = attributes(*range(len(fields)))
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(one, fields[0], "changed")
    assert not hasattr(one, "__dict__")
    assert one == dict(zip(fields, range(len(fields)), strict=True))
    assert one == attributes(*range(len(fields)))  # equal as mappings: eq=False kept
    assert one != attributes(*range(1, len(fields) + 1))


def test_each_pattern_emits_under_its_own_source() -> None:
    from resilient.breaker import _events as breaker_events
    from resilient.ratelimit import _events as ratelimit_events

    assert breaker_events.BREAKER_EVENT_SOURCE == "breaker"
    assert (
        ratelimit_events.GUARD_EVENT_SOURCE,
        ratelimit_events.LOCAL_EVENT_SOURCE,
        ratelimit_events.REDIS_EVENT_SOURCE,
    ) == ("ratelimit.guard", "ratelimit.local", "ratelimit.redis")


def test_the_recording_bus_fixture_records_into_the_event_recorder_fixture(
    recording_bus: EventBus, event_recorder: EventRecorder
) -> None:
    event = Event("src", "happened")
    recording_bus.emit(event)
    assert event_recorder.events == [event]
    assert isinstance(event_recorder, EventRecorder)


def test_a_bus_logs_unobserved_events_only_when_made_to_and_while_no_one_listens() -> None:
    quiet = EventBus(log_when_unobserved=False)
    assert not quiet.logs_unobserved  # made not to log: never, listener or none
    logging_bus = EventBus(log_when_unobserved=True)
    assert logging_bus.logs_unobserved
    unsubscribe = logging_bus.subscribe(lambda event: None)
    assert not logging_bus.logs_unobserved  # a listener hears it: the bus does not log
    unsubscribe()
    assert logging_bus.logs_unobserved

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

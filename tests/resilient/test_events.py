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

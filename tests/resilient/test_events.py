"""Events: one shape, in order, logged when unobserved; a listener cannot break the emitter."""

from __future__ import annotations

import logging

import pytest

from resilient.events import Event, EventBus, EventRecorder, Severity


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

"""Test helpers shipped as public API, and the ``virtual_clock`` pytest fixture.

Installed as a pytest plugin (entry point ``resilient``): any suite that has this package
installed can ask for ``virtual_clock`` (autojumping) and ``event_recorder``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from resilient.clock import VirtualClock
from resilient.events import EventBus, EventRecorder

__all__ = ["EventRecorder", "VirtualClock", "event_recorder", "recording_bus", "virtual_clock"]


@pytest.fixture
def virtual_clock() -> VirtualClock:
    """A :class:`VirtualClock` at time 0 that jumps to the next deadline whenever tasks idle."""
    return VirtualClock(autojump=True)


@pytest.fixture
def event_recorder() -> EventRecorder:
    """An empty :class:`EventRecorder`."""
    return EventRecorder()


@pytest.fixture
def recording_bus(event_recorder: EventRecorder) -> Iterator[EventBus]:
    """An :class:`EventBus` whose every event lands in ``event_recorder``."""
    bus = EventBus()
    unsubscribe = bus.subscribe(event_recorder)
    yield bus
    unsubscribe()

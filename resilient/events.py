"""Typed events of one shape, emitted by every pattern.

Every guard reports what it did (degraded, recovered, tripped, dropped, rolled back) as an
:class:`Event`: the ``source`` that emitted it (e.g. ``"ratelimit.guard"``), a ``name``
(e.g. ``"degraded"``), a :class:`Severity`, and its ``attributes``. One dashboard can show them
all because they all look the same.

A pattern's events are declared in its ``_events`` module: one frozen
:class:`EventAttributes` class per event, which carries the event's name and severity, so
``event.attributes.reason`` is typed. Attributes are also a read-only mapping
(``event.attributes["reason"]``, ``dict(event.attributes)``), so a sink (logging, metrics)
handles every event the same way. A pattern emits through an :class:`Emitter`, bound to its
source, bus and clock.

An :class:`EventBus` delivers each event to its listeners in registration order. A bus with no
listener logs the event through :mod:`logging` (logger ``resilient.<source>``), so nothing a
guard reports is lost by default. A listener that raises is logged and never breaks the guard
that emitted the event.
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

from resilient._validate import shown

if TYPE_CHECKING:
    from resilient.clock import Clock

__all__ = [
    "DEFAULT_EVENTS",
    "Emitter",
    "Event",
    "EventAttributes",
    "EventBus",
    "EventListener",
    "EventRecorder",
    "Severity",
    "logging_listener",
]


class Severity(enum.IntEnum):
    """How much an event matters; values match the :mod:`logging` levels."""

    DEBUG = logging.DEBUG
    INFO = logging.INFO
    WARNING = logging.WARNING
    ERROR = logging.ERROR


@dataclass(frozen=True, slots=True, eq=False)
class EventAttributes(Mapping[str, Any]):
    """The typed attributes of one kind of event; subclasses name the event.

    A subclass is a frozen dataclass declared with ``eq=False`` (equality is a mapping's, see
    below) whose fields are the event's attributes, with the class variables ``NAME`` (the
    event's name) and ``SEVERITY``. As a read-only mapping it yields its fields in declaration
    order, and it equals any mapping with the same items (a plain dict included).
    """

    NAME: ClassVar[str] = ""
    SEVERITY: ClassVar[Severity] = Severity.INFO

    def __getitem__(self, name: str) -> Any:
        if name not in self._names():
            raise KeyError(name)
        return getattr(self, name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Mapping):
            return NotImplemented
        return dict(self.items()) == dict(other.items())

    def __hash__(self) -> int:
        return hash(tuple(self.items()))

    def _names(self) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(self))


@dataclass(frozen=True, slots=True)
class Event:
    """One thing a pattern did. ``time`` is read from the emitting pattern's clock."""

    source: str
    name: str
    severity: Severity = Severity.INFO
    attributes: Mapping[str, Any] = field(default_factory=dict)
    time: float = 0.0

    def __post_init__(self) -> None:
        if not self.source:
            raise ValueError("Event.source must not be empty")
        if not self.name:
            raise ValueError("Event.name must not be empty")
        if not isinstance(self.attributes, EventAttributes):
            # A plain mapping (a user's own event) is copied and frozen.
            object.__setattr__(self, "attributes", MappingProxyType(dict(self.attributes)))


EventListener = Callable[[Event], None]
"""A callable that receives every event of a bus; it must not block."""


class Emitter:
    """How a pattern emits: events of one ``source`` to ``bus``, stamped with ``clock``'s time.

    ``emitter(attributes)`` emits one :class:`Event` named ``attributes.NAME`` at severity
    ``attributes.SEVERITY``.
    """

    __slots__ = ("bus", "clock", "source")

    def __init__(self, source: str, bus: EventBus, clock: Clock) -> None:
        self.source = source
        self.bus = bus
        self.clock = clock

    def __call__(self, attributes: EventAttributes) -> None:
        self.bus.emit(
            Event(
                self.source,
                attributes.NAME,
                attributes.SEVERITY,
                attributes,
                self.clock.monotonic(),
            )
        )


def logging_listener(event: Event) -> None:
    """Log ``event`` on logger ``resilient.<source>`` at its severity (each attribute shown in
    at most about 100 characters, even one whose own ``repr`` fails)."""
    logger = logging.getLogger(f"resilient.{event.source}")
    if logger.isEnabledFor(event.severity):
        details = " ".join(f"{key}={shown(value)}" for key, value in event.attributes.items())
        logger.log(event.severity, "%s %s", event.name, details)


_log = logging.getLogger("resilient.events")


class EventBus:
    """Delivers events to listeners, in the order they were emitted; logs them when there is
    no listener. An event emitted while another is being delivered (by a listener, or by code
    a listener calls) waits until every listener has had the first one. Use a bus from one
    thread."""

    def __init__(self, *, log_when_unobserved: bool = True) -> None:
        self._listeners: list[EventListener] = []
        self._log_when_unobserved = log_when_unobserved
        self._queue: collections.deque[Event] = collections.deque()
        self._delivering = False

    def subscribe(self, listener: EventListener) -> Callable[[], None]:
        """Deliver every later event to ``listener``; returns a function that unsubscribes."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    @property
    def logs_unobserved(self) -> bool:
        """Whether the bus logs what it delivers now: it has no listener, and was made to log
        unobserved events. (A sink that subscribes to such a bus subscribes
        :func:`logging_listener` too, so that nothing that was logged stops being logged.)"""
        return self._log_when_unobserved and not self._listeners

    def emit(self, event: Event) -> None:
        """Deliver ``event`` to every listener; a failing listener (or logging) is logged,
        never raised."""
        self._queue.append(event)
        if self._delivering:
            return  # delivered in order by the emit already under way
        self._delivering = True
        try:
            while self._queue:
                self._deliver(self._queue.popleft())
        finally:
            self._delivering = False

    def _deliver(self, event: Event) -> None:
        listeners: tuple[EventListener, ...] = tuple(self._listeners)
        if not listeners and self._log_when_unobserved:
            listeners = (logging_listener,)
        for listener in listeners:
            try:
                listener(event)
            except Exception:
                _log.exception(
                    "event listener %r failed on %s.%s", listener, event.source, event.name
                )

    def __repr__(self) -> str:
        return f"EventBus(listeners={len(self._listeners)})"


DEFAULT_EVENTS = EventBus()
"""The process-wide bus every pattern emits to unless given its own ``events``."""


class EventRecorder:
    """A listener that keeps every event it receives, for tests and reports."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def named(self, name: str, source: str | None = None) -> list[Event]:
        """The recorded events called ``name`` (and from ``source``, when given)."""
        return [e for e in self.events if e.name == name and (source is None or e.source == source)]

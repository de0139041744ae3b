"""Toxics: their configuration as the API sees it, its validation, and what each does to data.

A :class:`Toxic` is the configuration shared by every connection of a proxy. A :class:`Stage` is
that toxic at work on one direction (link) of one connection: it draws ``toxicity`` when it
starts, and ``process`` passes each chunk on through ``emit`` (possibly later, split, or not at
all). A chunk is ``(read_time, data)``; ``data`` is ``None`` for end of stream.

Stages wait through ``host.sleep``, which a change to the link's toxics interrupts: an
interrupted stage forwards what it holds at once ("removing a toxic flushes held data onward"),
and later chunks see the new attributes.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Final, Protocol

from chaos.toxiproxy import _gojson
from chaos.toxiproxy._gojson import MISSING, BadBody

__all__ = [
    "TOXIC_TYPES",
    "BadBody",
    "Chunk",
    "InvalidAttribute",
    "Stage",
    "StageHost",
    "Toxic",
    "make_stage",
    "parse_attributes",
    "validate_attributes",
]

Chunk = tuple[float, bytes | None]
Emit = Callable[[Chunk], Awaitable[None]]

# type -> (Go struct name, ((attribute, Go type), ...)) in Go's field order.
TOXIC_TYPES: Final[dict[str, tuple[str, tuple[tuple[str, str], ...]]]] = {
    "latency": ("LatencyToxic", (("latency", "int64"), ("jitter", "int64"))),
    "bandwidth": ("BandwidthToxic", (("rate", "int64"),)),
    "slow_close": ("SlowCloseToxic", (("delay", "int64"),)),
    "timeout": ("TimeoutToxic", (("timeout", "int64"),)),
    "reset_peer": ("ResetToxic", (("timeout", "int64"),)),
    "slicer": (
        "SlicerToxic",
        (("average_size", "int"), ("size_variation", "int"), ("delay", "int")),
    ),
    "limit_data": ("LimitDataToxic", (("bytes", "int64"),)),
    "noop": ("NoopToxic", ()),
}

_BANDWIDTH_TICK: Final = 0.1
"""Bandwidth sends a large chunk in pieces of ``rate * 100`` bytes, one every 100 ms (as Go)."""


class InvalidAttribute(Exception):
    """An attribute value a real Toxiproxy would crash or hang on; ``str()`` names it."""


@dataclass(eq=False)
class Toxic:
    """One toxic of a proxy, as the API shows it. ``attributes`` holds every key of its type."""

    name: str
    type: str
    stream: str
    upstream: bool
    toxicity: float
    attributes: dict[str, int]

    def to_json(self) -> dict[str, object]:
        """The toxic as the API shows it (``toxicity`` a float32, for :func:`_gojson.encode`)."""
        return {
            "attributes": dict(self.attributes),
            "name": self.name,
            "type": self.type,
            "stream": self.stream,
            "toxicity": _gojson.Float32(self.toxicity),
        }


def parse_attributes(toxic_type: str, value: object, base: dict[str, int]) -> dict[str, int]:
    """``base`` updated with the keys of JSON ``value`` (Go merge semantics); raise BadBody."""
    struct, attributes = TOXIC_TYPES[toxic_type]
    merged = {name: base.get(name, 0) for name, _ in attributes}
    if value is MISSING:
        return merged
    obj = _gojson.as_object_field(value, "attributes", struct)
    for name, go_type in attributes:
        raw = _gojson.field(obj, name)
        if raw is not MISSING:
            merged[name] = _gojson.as_int(raw, struct, f"attributes.{name}", go_type)
    return merged


def validate_attributes(toxic_type: str, attributes: dict[str, int]) -> None:
    """Refuse values that crash or hang a real Toxiproxy, naming the attribute."""
    for name, _go_type in TOXIC_TYPES[toxic_type][1]:
        value = attributes[name]
        if value < 0:
            raise InvalidAttribute(f"invalid attribute {name}: must be >= 0, got {value}")
    if toxic_type == "slicer":
        average, variation = attributes["average_size"], attributes["size_variation"]
        if average < 1:
            raise InvalidAttribute(f"invalid attribute average_size: must be >= 1, got {average}")
        if variation > average:
            raise InvalidAttribute(
                f"invalid attribute size_variation: must be <= average_size ({average}), "
                f"got {variation}"
            )


class StageHost(Protocol):
    """What a stage needs from the link it runs on."""

    rng: random.Random

    def now(self) -> float: ...

    async def sleep(self, seconds: float | None) -> bool:
        """Wait ``seconds`` (forever for None); True when a toxic change cut the wait short."""
        ...

    def call_later(self, seconds: float, callback: Callable[[], None]) -> asyncio.TimerHandle: ...

    def close_connection(self) -> None:
        """Close both sockets of the connection (a normal close: FIN)."""
        ...

    def reset_connection(self) -> None:
        """Reset the client socket (TCP RST) and close the upstream one."""
        ...


class Stage:
    """A toxic at work on one link. Subclasses override ``process`` (and start/stop hooks)."""

    def __init__(self, toxic: Toxic, host: StageHost) -> None:
        self.toxic = toxic
        self.host = host
        self.applies = False
        self.removed = False

    def start(self) -> None:
        """(Re)start on this link: draw toxicity. Called on open, on add and on update."""
        self.applies = self.host.rng.random() < self.toxic.toxicity  # in [0, 1): 1 always applies
        self.on_start()

    def on_start(self) -> None:
        """Hook for timers; ``self.applies`` is already drawn."""

    def stop(self, *, removed: bool) -> None:
        """The stage ends: its toxic was removed (``removed``) or its connection closed."""
        if removed:
            self.removed = True

    def active(self) -> bool:
        return self.applies and not self.removed

    async def process(self, chunk: Chunk, emit: Emit) -> None:
        await emit(chunk)


class _Latency(Stage):
    async def process(self, chunk: Chunk, emit: Emit) -> None:
        if chunk[1] is not None and self.active():
            attributes = self.toxic.attributes
            delay_ms = float(attributes["latency"])
            jitter = attributes["jitter"]
            if jitter > 0:
                delay_ms += self.host.rng.random() * 2 * jitter - jitter
            wait = chunk[0] + delay_ms / 1000 - self.host.now()
            if wait > 0:
                await self.host.sleep(wait)
        await emit(chunk)


class _Bandwidth(Stage):
    def on_start(self) -> None:
        self._debt = 0.0

    async def process(self, chunk: Chunk, emit: Emit) -> None:
        read_time, data = chunk
        if data is None or not self.active():
            await emit(chunk)
            return
        rate = self.toxic.attributes["rate"]
        if rate == 0:
            await self.host.sleep(None)  # stalls until the toxic changes, then flushes
            await emit(chunk)
            return
        self._debt += len(data) / (rate * 1000)
        piece = rate * 100
        view = memoryview(data)
        while len(view) > piece:
            if await self.host.sleep(_BANDWIDTH_TICK):
                await emit((read_time, bytes(view)))
                return
            await emit((read_time, bytes(view[:piece])))
            view = view[piece:]
            self._debt -= _BANDWIDTH_TICK
        if self._debt > 0:
            started = self.host.now()
            await self.host.sleep(self._debt)
            self._debt -= self.host.now() - started
        else:
            self._debt = 0.0
        await emit((read_time, bytes(view)))


class _SlowClose(Stage):
    async def process(self, chunk: Chunk, emit: Emit) -> None:
        if chunk[1] is None and self.active():
            await self.host.sleep(self.toxic.attributes["delay"] / 1000)
        await emit(chunk)


class _Timeout(Stage):
    _timer: asyncio.TimerHandle | None = None

    def on_start(self) -> None:
        self._cancel_timer()
        self._arm()

    def _arm(self) -> None:
        timeout = self.toxic.attributes["timeout"]
        if self.active() and timeout > 0:
            self._timer = self.host.call_later(timeout / 1000, self.host.close_connection)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def stop(self, *, removed: bool) -> None:
        was_active = self.active()
        super().stop(removed=removed)
        self._cancel_timer()
        if removed and was_active:
            self.host.close_connection()

    async def process(self, chunk: Chunk, emit: Emit) -> None:
        if not self.active():
            await emit(chunk)
            return
        if chunk[1] is None:
            self.host.close_connection()
            return
        self._cancel_timer()
        self._arm()  # every chunk restarts the idle timer; the data is dropped


class _ResetPeer(Stage):
    """Resets the connection ``timeout`` ms after the first chunk (or EOF) reaches it.

    The wait follows the toxic: removed, or redrawn so that it no longer applies, it passes the
    chunk on; updated, it measures the new ``timeout`` from the chunk's arrival (resetting at
    once if that is already past); another toxic changing on the link leaves it waiting.
    """

    async def process(self, chunk: Chunk, emit: Emit) -> None:
        arrived = self.host.now()
        while self.active():
            deadline = arrived + self.toxic.attributes["timeout"] / 1000
            remaining = deadline - self.host.now()
            if remaining <= 0 or not await self.host.sleep(remaining):
                self.host.reset_connection()
                return
        await emit(chunk)


class _Slicer(Stage):
    """Cuts each chunk into pieces of about ``average_size`` bytes, ``delay`` µs apart.

    The cuts are Toxiproxy's (halve, move the cut by up to ±``size_variation``, until a piece is
    at most ``average_size + size_variation``) and are made as the pieces go out, so a large chunk
    cut into 1-byte pieces holds O(log n) state, not a list of n pieces. An interrupted delay
    sends the rest of the chunk in one piece.
    """

    async def process(self, chunk: Chunk, emit: Emit) -> None:
        read_time, data = chunk
        if data is None or not self.active():
            await emit(chunk)
            return
        delay = self.toxic.attributes["delay"] / 1_000_000
        view = memoryview(data)
        for start, end in self.cuts(len(data)):
            if start > 0 and delay > 0 and await self.host.sleep(delay):
                await emit((read_time, bytes(view[start:])))
                return
            await emit((read_time, bytes(view[start:end])))

    def cuts(self, size: int) -> Iterator[tuple[int, int]]:
        """``(start, end)`` of each piece of a chunk of ``size`` bytes, in order."""
        average = self.toxic.attributes["average_size"]
        variation = self.toxic.attributes["size_variation"]
        rng = self.host.rng
        pending = [(0, size)]
        while pending:
            start, end = pending.pop()
            if (end - start) - average <= variation:
                yield start, end
                continue
            middle = start + (end - start) // 2
            if variation > 0:
                middle += rng.randrange(variation * 2) - variation
            # A split piece is over average + variation >= 2 * variation bytes, so the cut stays
            # below its end; it can reach its start (Toxiproxy's empty piece), moved on by one.
            middle = max(middle, start + 1)
            pending.append((middle, end))
            pending.append((start, middle))


class _LimitData(Stage):
    transmitted = 0  # kept across restarts of the stage on the same connection

    async def process(self, chunk: Chunk, emit: Emit) -> None:
        read_time, data = chunk
        if data is None or not self.active():
            await emit(chunk)
            return
        remaining = max(self.toxic.attributes["bytes"] - self.transmitted, 0)
        data = data[:remaining]
        if data:
            self.transmitted += len(data)
            await emit((read_time, data))
        if self.toxic.attributes["bytes"] - self.transmitted <= 0:
            self.host.close_connection()


_STAGES: Final[dict[str, type[Stage]]] = {
    "latency": _Latency,
    "bandwidth": _Bandwidth,
    "slow_close": _SlowClose,
    "timeout": _Timeout,
    "reset_peer": _ResetPeer,
    "slicer": _Slicer,
    "limit_data": _LimitData,
    "noop": Stage,
}


def make_stage(toxic: Toxic, host: StageHost) -> Stage:
    """A new, not yet started, stage of ``toxic`` on the link ``host``."""
    return _STAGES[toxic.type](toxic, host)

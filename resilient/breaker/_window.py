"""The windows a :class:`~resilient.breaker.FailureRate` counts over, bounded in bytes.

A window is a small value (:class:`CountWindow`, :class:`TimeWindow`); the counts it holds
live in a :class:`Counts` it makes, whose memory is fixed when it is made and stated in bytes
(``memory_bytes``): no input a caller controls makes it grow.

- :class:`CountWindow` holds the outcomes of the last ``size`` calls in a ring of one byte a
  call (bit 0: failed, bit 1: slow), Resilience4j's ``COUNT_BASED`` window;
- :class:`TimeWindow` holds the calls of the last ``seconds`` in ``buckets`` buckets of
  ``seconds / buckets`` each (32 bytes a bucket: its index and three counts), Resilience4j's
  ``TIME_BASED`` window (whose buckets are one second each). The window judged is the
  current bucket and the ``buckets - 1`` before it: it spans between ``seconds - width`` and
  ``seconds``, to the bucket.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass

from resilient._validate import Integer, Number, check_fields, option
from resilient.breaker._options import (
    DEFAULT_WINDOW_SECONDS,
    DEFAULT_WINDOW_SIZE,
    MAX_WINDOW_BUCKETS,
    MAX_WINDOW_SIZE,
)

__all__ = ["CountWindow", "Counts", "TimeWindow"]

BUCKET_BYTES = 32
"""Bytes of one bucket of a time window: four 8-byte integers."""


class Counts:
    """What a window holds now: ``calls``, ``failures`` and ``slow`` calls among them, in
    ``memory_bytes`` fixed when it was made."""

    __slots__ = ("calls", "failures", "memory_bytes", "slow")

    def __init__(self, memory_bytes: int) -> None:
        self.calls = 0
        self.failures = 0
        self.slow = 0
        self.memory_bytes = memory_bytes

    def record(self, now: float, failed: bool, slow: bool) -> None:  # pragma: no cover
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class CountWindow:
    """The last ``size`` calls (Resilience4j's ``COUNT_BASED`` sliding window, 100 calls)."""

    size: int = option(DEFAULT_WINDOW_SIZE, Integer(min=1, max=MAX_WINDOW_SIZE))
    """Calls held: one byte each."""

    def __post_init__(self) -> None:
        check_fields(self)

    def counts(self) -> Counts:
        """Empty counts of this window."""
        return _Ring(self.size)


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """The calls of the last ``seconds`` (Resilience4j's ``TIME_BASED`` sliding window: 100 s
    in one-second buckets)."""

    seconds: float = option(DEFAULT_WINDOW_SECONDS, Number(min=0, min_open=True, unit="seconds"))
    """Seconds the window spans."""
    buckets: int = option(100, Integer(min=1, max=MAX_WINDOW_BUCKETS))
    """Buckets it is split into (32 bytes each): calls leave the window a bucket at a time."""

    def __post_init__(self) -> None:
        check_fields(self)

    def counts(self) -> Counts:
        """Empty counts of this window."""
        return _Buckets(self.seconds / self.buckets, self.buckets)


class _Ring(Counts):
    """A ring of one byte a call."""

    __slots__ = ("_next", "_ring", "_size")

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self._ring = bytearray(size)
        self._size = size
        self._next = 0

    def record(self, now: float, failed: bool, slow: bool) -> None:
        at = self._next
        ring = self._ring
        if self.calls == self._size:
            old = ring[at]
            self.failures -= old & 1
            self.slow -= old >> 1
        else:
            self.calls += 1
        ring[at] = failed | slow << 1
        self.failures += failed
        self.slow += slow
        self._next = at + 1 if at + 1 < self._size else 0


class _Buckets(Counts):
    """``buckets`` buckets of ``width`` seconds; bucket ``k`` (``floor(now / width)``) lives in
    slot ``k % buckets`` while it is among the last ``buckets``."""

    __slots__ = ("_calls", "_count", "_failures", "_index", "_latest", "_slow", "_width")

    def __init__(self, width: float, buckets: int) -> None:
        super().__init__(BUCKET_BYTES * buckets)
        self._width = width
        self._count = buckets
        self._index = array("q", [0]) * buckets
        self._calls = array("q", [0]) * buckets
        self._failures = array("q", [0]) * buckets
        self._slow = array("q", [0]) * buckets
        self._latest = -1

    def expire(self, now: float) -> None:
        bucket = math.floor(now / self._width)
        if bucket <= self._latest:
            return
        count = self._count
        if bucket - self._latest >= count:  # every bucket held is out of the window
            self.calls = self.failures = self.slow = 0
            for values in (self._calls, self._failures, self._slow):
                values[:] = array("q", [0]) * count
        else:  # the buckets after the latest push out as many old ones, fewer than count
            for index in range(self._latest - count + 1, bucket - count + 1):
                self._clear(index % count, index)
        self._latest = bucket

    def _clear(self, slot: int, index: int) -> None:
        if self._index[slot] == index:
            self.calls -= self._calls[slot]
            self.failures -= self._failures[slot]
            self.slow -= self._slow[slot]
            self._calls[slot] = self._failures[slot] = self._slow[slot] = 0

    def record(self, now: float, failed: bool, slow: bool) -> None:
        self.expire(now)
        slot = self._latest % self._count
        self._index[slot] = self._latest
        self._calls[slot] += 1
        self._failures[slot] += failed
        self._slow[slot] += slow
        self.calls += 1
        self.failures += failed
        self.slow += slow

"""Every event a :class:`~resilient.pool.ConnectGate` (source ``"pool.gate"``) and a
:class:`~resilient.pool.BoundedPool` (source ``"pool"``) emit.

The gate: ``connect_failed`` and ``churned`` (each a failure of the destination, with the
backoff it set), ``recovered`` (the first success after failures), ``refused`` (a caller the gate
could not serve by its deadline). Its breaker emits its own transitions (source ``"breaker"``).
The pool: ``discarded`` (a connection that raised or failed its check, closed), ``exhausted``
(a caller refused as the waiting line is full), ``rebuilding`` and ``closed``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from resilient.events import EventAttributes, Severity

__all__ = [
    "GATE_CHURNED",
    "GATE_CONNECT_FAILED",
    "GATE_EVENT_SOURCE",
    "GATE_RECOVERED",
    "GATE_REFUSED",
    "POOL_CLOSED",
    "POOL_DISCARDED",
    "POOL_EVENT_SOURCE",
    "POOL_EXHAUSTED",
    "POOL_REBUILDING",
    "ConnectFailed",
    "ConnectRefused",
    "ConnectionChurned",
    "ConnectionDiscarded",
    "DestinationRecovered",
    "PoolClosed",
    "PoolExhausted",
    "PoolRebuilding",
]

GATE_EVENT_SOURCE = "pool.gate"
"""The ``source`` of every connect gate event."""
POOL_EVENT_SOURCE = "pool"
"""The ``source`` of every bounded pool event."""

GATE_CONNECT_FAILED = "connect_failed"
GATE_CHURNED = "churned"
GATE_RECOVERED = "recovered"
GATE_REFUSED = "refused"
POOL_DISCARDED = "discarded"
POOL_EXHAUSTED = "exhausted"
POOL_REBUILDING = "rebuilding"
POOL_CLOSED = "closed"


@dataclass(frozen=True, slots=True, eq=False)
class ConnectFailed(EventAttributes):
    """A connect attempt failed: the destination's fault; no attempt starts for ``backoff``."""

    NAME: ClassVar[str] = GATE_CONNECT_FAILED
    SEVERITY: ClassVar[Severity] = Severity.WARNING

    destination: str
    error: str
    failures: int
    """Failures of the destination in a row, this one included."""
    backoff: float
    """Seconds before the next attempt may start."""


@dataclass(frozen=True, slots=True, eq=False)
class ConnectionChurned(EventAttributes):
    """A connection was lost soon after it was opened: counted as a failure of the destination."""

    NAME: ClassVar[str] = GATE_CHURNED
    SEVERITY: ClassVar[Severity] = Severity.WARNING

    destination: str
    lived: float
    """Seconds between its opening and its loss."""
    failures: int
    backoff: float


@dataclass(frozen=True, slots=True, eq=False)
class DestinationRecovered(EventAttributes):
    """A connect succeeded after failures: the backoff is reset."""

    NAME: ClassVar[str] = GATE_RECOVERED
    SEVERITY: ClassVar[Severity] = Severity.INFO

    destination: str
    failures: int
    """Failures in a row before this success."""


@dataclass(frozen=True, slots=True, eq=False)
class ConnectRefused(EventAttributes):
    """A caller got :class:`~resilient.errors.ConnectRefusedError`: no attempt was made."""

    NAME: ClassVar[str] = GATE_REFUSED
    SEVERITY: ClassVar[Severity] = Severity.INFO

    destination: str
    reason: str


@dataclass(frozen=True, slots=True, eq=False)
class ConnectionDiscarded(EventAttributes):
    """A connection was closed instead of being reused: it raised in a caller's hands, or
    failed its check."""

    NAME: ClassVar[str] = POOL_DISCARDED
    SEVERITY: ClassVar[Severity] = Severity.INFO

    reason: str
    age: float
    """Seconds since it was opened."""


@dataclass(frozen=True, slots=True, eq=False)
class PoolExhausted(EventAttributes):
    """A caller was refused at once: ``max_waiting`` callers already wait."""

    NAME: ClassVar[str] = POOL_EXHAUSTED
    SEVERITY: ClassVar[Severity] = Severity.WARNING

    waiting: int
    in_use: int


@dataclass(frozen=True, slots=True, eq=False)
class PoolRebuilding(EventAttributes):
    """:meth:`~resilient.pool.BoundedPool.rebuild` began: ``old`` connections are retired in
    steps, and replaced through the gate."""

    NAME: ClassVar[str] = POOL_REBUILDING
    SEVERITY: ClassVar[Severity] = Severity.INFO

    old: int


@dataclass(frozen=True, slots=True, eq=False)
class PoolClosed(EventAttributes):
    """The pool closed: ``closed`` idle connections closed now; ``in_use`` are closed when
    given back."""

    NAME: ClassVar[str] = POOL_CLOSED
    SEVERITY: ClassVar[Severity] = Severity.INFO

    closed: int
    in_use: int

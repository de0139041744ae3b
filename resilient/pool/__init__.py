"""Bounded connection pools and a connect gate (the 2026-06-02 connection storm).

A :class:`ConnectGate` paces every new connection to one destination: a rate of connect
attempts, a cap on attempts in progress, gRPC's jittered backoff after failures, a breaker
while the destination keeps failing, and churn detection (a connection lost soon after its
opening is a failure). :func:`shared_gate` gives every pool of a process the same gate for one
destination. A :class:`BoundedPool` lends connections within hard bounds, and opens every new
one through its gate.

- the gate: ``_gate.py``; the pool: ``_pool.py``; its records and stats: ``_records.py``;
- every option and its default (with where the default comes from): ``_options.py``;
- the fleet budget check (can every replica's pools exceed the backend?): ``_budget.py``;
- every event: ``_events.py``; its errors: :class:`~resilient.errors.ConnectRefusedError` and
  :class:`~resilient.errors.PoolError`'s leaves.

The options, events and errors import nothing heavy; the gate and the pool (and pybreaker,
through the gate's breaker) are imported when first used.
"""

from typing import TYPE_CHECKING

from resilient._lazy import lazy_exports
from resilient.errors import (
    ConnectRefusedError,
    PoolClosedError,
    PoolError,
    PoolExhaustedError,
    PoolTimeoutError,
)
from resilient.pool._budget import FleetBudget, fleet_budget
from resilient.pool._events import (
    GATE_CHURNED,
    GATE_CONNECT_FAILED,
    GATE_EVENT_SOURCE,
    GATE_RECOVERED,
    GATE_REFUSED,
    POOL_CLOSED,
    POOL_DISCARDED,
    POOL_EVENT_SOURCE,
    POOL_EXHAUSTED,
    POOL_REBUILDING,
    ConnectFailed,
    ConnectionChurned,
    ConnectionDiscarded,
    ConnectRefused,
    DestinationRecovered,
    PoolClosed,
    PoolExhausted,
    PoolRebuilding,
)
from resilient.pool._options import (
    DEFAULT_GATE_OPTIONS,
    DEFAULT_POOL_OPTIONS,
    GATE_BREAKER_OPTIONS,
    GateOptions,
    PoolOptions,
)
from resilient.pool._records import PoolStats

if TYPE_CHECKING:
    from resilient.pool._gate import ConnectGate, GateStats, shared_gate
    from resilient.pool._pool import BoundedPool

__getattr__, __dir__ = lazy_exports(
    __name__,
    globals(),
    {
        "resilient.pool._gate": ["ConnectGate", "GateStats", "shared_gate"],
        "resilient.pool._pool": ["BoundedPool"],
    },
)

__all__ = [
    "DEFAULT_GATE_OPTIONS",
    "DEFAULT_POOL_OPTIONS",
    "GATE_BREAKER_OPTIONS",
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
    "BoundedPool",
    "ConnectFailed",
    "ConnectGate",
    "ConnectRefused",
    "ConnectRefusedError",
    "ConnectionChurned",
    "ConnectionDiscarded",
    "DestinationRecovered",
    "FleetBudget",
    "GateOptions",
    "GateStats",
    "PoolClosed",
    "PoolClosedError",
    "PoolError",
    "PoolExhausted",
    "PoolExhaustedError",
    "PoolOptions",
    "PoolRebuilding",
    "PoolStats",
    "PoolTimeoutError",
    "fleet_budget",
    "shared_gate",
]

"""The fleet budget check: can a configuration of pools and gates, on every replica at once,
exceed what the backend can take?

The 2026-06-02 storm was a fleet phenomenon: each instance's settings looked harmless, their
sum did not. :func:`fleet_budget` adds them up, in the worst case (every pool full, every gate
at its rate), against the backend's connection capacity and accept rate, and says by how much
a configuration can exceed them. The config-rollout issue uses it as a validator.
"""

from __future__ import annotations

from dataclasses import dataclass

from resilient._validate import Instance, Integer, Number, check
from resilient.pool._options import (
    DEFAULT_GATE_OPTIONS,
    DEFAULT_POOL_OPTIONS,
    GateOptions,
    PoolOptions,
)

__all__ = ["FleetBudget", "fleet_budget"]

_COUNT = Integer(min=1, max=10**9)
_CAPACITY = Number(min=0, min_open=True, finite=False, unit="connections")
_RATE = Number(min=0, min_open=True, finite=False, unit="connects per second")


@dataclass(frozen=True, slots=True)
class FleetBudget:
    """What a fleet can ask of a backend at worst, and what the backend can take."""

    connections: int
    """Connections open at once at worst: every pool of every process full."""
    connection_capacity: float
    """Connections the backend can hold."""
    connects_per_second: float
    """New connections a second at worst, sustained: every process's gate at its rate (one
    gate per destination and process, shared by its pools)."""
    accepts_per_second: float
    """New connections a second the backend can accept."""
    connects_at_once: int
    """Connect attempts that may start in one instant: every gate's burst, bounded by its
    ``max_connecting``."""

    @property
    def connections_over(self) -> float:
        """Connections beyond the capacity, at worst (0 when they fit)."""
        return max(0.0, self.connections - self.connection_capacity)

    @property
    def connects_over(self) -> float:
        """Connects a second beyond the accept rate, at worst (0 when they fit)."""
        return max(0.0, self.connects_per_second - self.accepts_per_second)

    @property
    def fits(self) -> bool:
        """True when neither bound can be exceeded."""
        return self.connections_over == 0 and self.connects_over == 0

    def problems(self) -> list[str]:
        """One sentence per bound the configuration can exceed, naming the figures (empty
        when it fits): what a validator reports."""
        found = []
        if self.connections_over:
            found.append(
                f"up to {self.connections} connections at once, the backend holds "
                f"{self.connection_capacity:g}: {self.connections_over:g} over"
            )
        if self.connects_over:
            found.append(
                f"up to {self.connects_per_second:g} connects/s, the backend accepts "
                f"{self.accepts_per_second:g}/s: {self.connects_over:g}/s over"
            )
        return found


def fleet_budget(
    *,
    replicas: int,
    backend_connections: float,
    backend_accepts_per_second: float,
    processes_per_replica: int = 1,
    pools_per_process: int = 1,
    pool: PoolOptions = DEFAULT_POOL_OPTIONS,
    gate: GateOptions = DEFAULT_GATE_OPTIONS,
) -> FleetBudget:
    """Add up, at worst, what ``replicas`` x ``processes_per_replica`` processes, each with
    ``pools_per_process`` pools of ``pool`` sharing one gate of ``gate`` to the backend, can
    ask of a backend that holds ``backend_connections`` and accepts
    ``backend_accepts_per_second`` (``math.inf``: no bound)."""
    replicas = check("fleet_budget(replicas)", replicas, _COUNT)
    processes_per_replica = check(
        "fleet_budget(processes_per_replica)", processes_per_replica, _COUNT
    )
    pools_per_process = check("fleet_budget(pools_per_process)", pools_per_process, _COUNT)
    backend_connections = check("fleet_budget(backend_connections)", backend_connections, _CAPACITY)
    backend_accepts_per_second = check(
        "fleet_budget(backend_accepts_per_second)", backend_accepts_per_second, _RATE
    )
    check("fleet_budget(pool)", pool, Instance(PoolOptions, "a PoolOptions"))
    check("fleet_budget(gate)", gate, Instance(GateOptions, "a GateOptions"))
    processes = replicas * processes_per_replica
    rate = gate.connect_rate
    at_once = min(rate.burst + 1, gate.max_connecting)
    return FleetBudget(
        connections=processes * pools_per_process * pool.max_size,
        connection_capacity=backend_connections,
        connects_per_second=processes * rate.limit / rate.period,
        accepts_per_second=backend_accepts_per_second,
        connects_at_once=processes * at_once,
    )

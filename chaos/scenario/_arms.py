"""The arms of a scenario: the ways of building the service under test, and what they get.

An :class:`Arm` is ``naive`` (the incident's code: it must reproduce the incident) or
``guarded`` (the pattern: it must keep the steady-state hypothesis). Patterns come into the
harness through an arm's ``build`` only; the engine knows none.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from chaos.scenario._errors import ScenarioError

if TYPE_CHECKING:
    from aiohttp import web

    from chaos.scenario._scenario import Scenario

__all__ = ["Arm", "ArmBuilder", "ArmContext", "Role"]

Role = Literal["naive", "guarded"]
"""What an arm stands for: the incident's code, or the guard."""


class ArmContext(Protocol):
    """What an arm's builder gets: where the topology is, and where to register gauges."""

    @property
    def seed(self) -> int:
        """The run's seed (the same for every arm)."""
        ...

    @property
    def scenario(self) -> Scenario:
        """The scenario being run (already scaled)."""
        ...

    @property
    def replica(self) -> tuple[int, int]:
        """``(index, replicas)``: which replica of a fleet arm this build is for, of how many
        (``(0, 1)`` for an arm that is not a fleet)."""
        ...

    def address(self, name: str) -> tuple[str, int]:
        """``(host, port)`` of proxy ``name``, or of server ``name`` when no proxy has it."""
        ...

    def direct_address(self, server: str) -> tuple[str, int]:
        """``(host, port)`` of server ``server`` itself, bypassing any proxy."""
        ...

    def url(self, name: str, scheme: str = "http", path: str = "") -> str:
        """``scheme://host:port/path`` of :meth:`address` (e.g. ``redis://...`` with ``/0``)."""
        ...

    def gauge(self, name: str, read: Callable[[], float | Awaitable[float]]) -> None:
        """Sample ``read()`` on the scenario's gauge interval during the load.

        ``read`` may be a coroutine function (e.g. ``INFO clients`` on the server's direct
        address); a sample it cannot give within one interval is recorded as NaN (missing),
        so a slow dependency never stalls the other gauges.
        """
        ...

    def at(self, offset: float, step: Callable[[], Awaitable[None] | None], what: str) -> None:
        """Run ``step()`` at ``offset`` seconds from load start, on the fault timeline.

        For what happens to the service under test besides the network faults (a new plan
        published to a scheduler, an operator's action): the engine runs it in timeline order
        with the faults, records it beside them (kind ``ArmStep``, described by ``what``) and
        judges its delay like theirs. ``offset`` is on the scenario's (scaled) time axis and
        must lie within the load; a ``step`` that raises ends the arm as ``error``.
        """
        ...

    async def disable_proxy(self, name: str) -> None:
        """Disable proxy ``name`` now (its listener closes, live connections drop): an arm's
        own action on the topology, e.g. a scheduler taking an engine out of service."""
        ...

    async def enable_proxy(self, name: str) -> None:
        """Enable proxy ``name`` again (same listen address)."""
        ...

    def note(self, text: str) -> None:
        """Add a line to the arm's report (``ArmResult.notes``): what the arm wants a reader
        to see beside its SLOs, e.g. each action a guard dropped and why."""
        ...


ArmBuilder = Callable[[ArmContext], Awaitable["web.Application"]]


@dataclass(frozen=True)
class Arm:
    """One way of building the service under test; ``role`` is ``naive`` or ``guarded``.

    ``build`` returns the aiohttp application the load hits; the engine serves it on a free
    loopback port and cleans it up after the run (put teardown in ``app.on_cleanup``).

    ``replicas`` > 1 makes it a *fleet*: the engine runs the service as that many processes,
    each building it with ``build`` (then a module-level function: each process imports it by
    reference) on its own event loop, and spreads the load over them round-robin. A gauge is
    summed over the replicas, a step (:meth:`ArmContext.at`) runs in every replica, and a
    replica's notes carry its index (see ``chaos/_fleet.py``).
    """

    name: str
    role: Role
    build: ArmBuilder
    description: str = ""
    replicas: int = 1

    def __post_init__(self) -> None:
        replicas = self.replicas
        if type(replicas) is not int or replicas < 1:
            raise ScenarioError(
                f"arm {self.name!r}: replicas must be an int >= 1, got {replicas!r}"
            )

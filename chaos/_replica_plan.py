"""What the engine sends a fleet arm's replica (:mod:`chaos._replica`), and the routes it adds.

A module of its own: the replica runs as ``__main__``, so a class it defined itself would not
be the class the engine pickled.
"""

from __future__ import annotations

from dataclasses import dataclass

from chaos.scenario import Scenario

__all__ = ["GAUGES_PATH", "STEPS_PATH", "ReplicaPlan"]

GAUGES_PATH = "/__chaos/gauges"
"""``GET``: every gauge the replica registered, read now (JSON)."""
STEPS_PATH = "/__chaos/steps/{n}"
"""``POST``: run the replica's step ``n``; answers once it has run."""


@dataclass(frozen=True)
class ReplicaPlan:
    """What a replica builds, sent by the engine."""

    module: str
    qualname: str
    """The arm's builder, imported by reference (a module-level function)."""
    scenario: Scenario
    seed: int
    index: int
    replicas: int
    servers: dict[str, tuple[str, int]]
    proxies: dict[str, tuple[str, int]]
    proxy_names: dict[str, str]
    control_url: str

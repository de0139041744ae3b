"""The time axis of a scenario: the fault timeline and the named windows SLOs are measured on.

Offsets are seconds from load start; :meth:`chaos.scenario.Scenario.scaled` multiplies every
one of them by the same factor.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "AddToxic",
    "DisableProxy",
    "EnableProxy",
    "Fault",
    "RemoveToxic",
    "UpdateToxic",
    "Window",
]


@dataclass(frozen=True)
class AddToxic:
    """At ``at`` seconds from load start, add toxic ``name`` of ``type`` to ``proxy``."""

    at: float
    proxy: str
    type: str
    name: str
    attributes: Mapping[str, int] = field(default_factory=dict)
    stream: Literal["downstream", "upstream"] = "downstream"
    toxicity: float = 1.0

    def describe(self) -> str:
        attrs = ", ".join(f"{k}={v}" for k, v in self.attributes.items())
        return f"add {self.type} toxic {self.name!r} to {self.proxy} ({attrs})"


@dataclass(frozen=True)
class UpdateToxic:
    """At ``at``, change the attributes (and optionally toxicity) of toxic ``name``."""

    at: float
    proxy: str
    name: str
    attributes: Mapping[str, int] = field(default_factory=dict)
    toxicity: float | None = None

    def describe(self) -> str:
        attrs = ", ".join(f"{k}={v}" for k, v in self.attributes.items())
        return f"update toxic {self.name!r} on {self.proxy} ({attrs})"


@dataclass(frozen=True)
class RemoveToxic:
    """At ``at``, remove toxic ``name`` from ``proxy``."""

    at: float
    proxy: str
    name: str

    def describe(self) -> str:
        return f"remove toxic {self.name!r} from {self.proxy}"


@dataclass(frozen=True)
class DisableProxy:
    """At ``at``, disable ``proxy``: its listener closes and open connections drop."""

    at: float
    proxy: str

    def describe(self) -> str:
        return f"disable proxy {self.proxy}"


@dataclass(frozen=True)
class EnableProxy:
    """At ``at``, enable ``proxy`` again (same listen address)."""

    at: float
    proxy: str

    def describe(self) -> str:
        return f"enable proxy {self.proxy}"


Fault = AddToxic | UpdateToxic | RemoveToxic | DisableProxy | EnableProxy


@dataclass(frozen=True)
class Window:
    """A named span of the run, ``[start, end)`` seconds from load start."""

    name: str
    start: float
    end: float

"""What an arm's builder gets (:class:`chaos.scenario.ArmContext`), one implementation for the
engine's process and for every replica of a fleet arm."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from chaos.scenario import Scenario
from chaos.toxiproxy.control import ToxiproxyControl

__all__ = ["BuildContext", "Step"]


class BuildContext:
    """The :class:`chaos.scenario.ArmContext` handed to an arm's builder: in the engine's
    process, or in each replica of a fleet arm (``replica``: its index, of how many)."""

    def __init__(
        self,
        scenario: Scenario,
        seed: int,
        control: ToxiproxyControl,
        replica: tuple[int, int] = (0, 1),
    ) -> None:
        self._scenario = scenario
        self._seed = seed
        self._control = control
        self._replica = replica
        self.servers: dict[str, tuple[str, int]] = {}
        self.proxies: dict[str, tuple[str, int]] = {}
        self.proxy_names: dict[str, str] = {}
        """The Toxiproxy name of each declared proxy."""
        self.gauges: dict[str, Callable[[], float | Awaitable[float]]] = {}
        self.steps: list[Step] = []
        self.notes: list[str] = []

    @property
    def seed(self) -> int:
        return self._seed

    @property
    def scenario(self) -> Scenario:
        return self._scenario

    @property
    def replica(self) -> tuple[int, int]:
        return self._replica

    def address(self, name: str) -> tuple[str, int]:
        if name in self.proxies:
            return self.proxies[name]
        if name in self.servers:
            return self.servers[name]
        raise KeyError(f"no proxy or server named {name!r} in scenario {self._scenario.name!r}")

    def direct_address(self, server: str) -> tuple[str, int]:
        if server not in self.servers:
            raise KeyError(f"no server named {server!r} in scenario {self._scenario.name!r}")
        return self.servers[server]

    def url(self, name: str, scheme: str = "http", path: str = "") -> str:
        host, port = self.address(name)
        return f"{scheme}://{host}:{port}/{path.lstrip('/')}"

    def gauge(self, name: str, read: Callable[[], float | Awaitable[float]]) -> None:
        if name in self.gauges:
            raise ValueError(f"gauge {name!r} is registered twice")
        self.gauges[name] = read

    def at(self, offset: float, step: Callable[[], Awaitable[None] | None], what: str) -> None:
        duration = self._scenario.duration
        if not (math.isfinite(offset) and 0 <= offset <= duration):
            raise ValueError(f"step {what!r} at {offset} s is outside the load (0..{duration})")
        self.steps.append(Step(offset, step, what))

    async def disable_proxy(self, name: str) -> None:
        await self._control.disable(self._proxy_name(name))

    async def enable_proxy(self, name: str) -> None:
        await self._control.enable(self._proxy_name(name))

    def _proxy_name(self, name: str) -> str:
        if name not in self.proxy_names:
            raise KeyError(f"no proxy named {name!r} in scenario {self._scenario.name!r}")
        return self.proxy_names[name]

    def note(self, text: str) -> None:
        self.notes.append(str(text))


@dataclass(frozen=True)
class Step:
    """An arm's own step on the timeline (:meth:`chaos.scenario.ArmContext.at`)."""

    at: float
    run: Callable[[], Awaitable[None] | None]
    what: str

    def describe(self) -> str:
        return self.what

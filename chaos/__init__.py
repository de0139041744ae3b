"""chaos: reproduce the 2026 incidents against real servers on loopback, and prove the guards hold.

Layers (imports point down only):

    cli, report                  the `chaos` command and its reports
    scenarios                    one module per incident (the only place patterns come in)
    engine                       running a scenario: topology served, load, faults, gauges, verdicts
    scenario, load               declarations and measures: topology, faults, SLOs; open-loop load
    toxiproxy, servers           the embedded Toxiproxy drop-in and its control facade; real servers

``chaos.toxiproxy`` imports neither ``resilient`` nor the engine; the engine (``engine``,
``scenario``, ``load``, ``report``, ``cli``) imports no pattern. The engine's public names below
are loaded on first use, so ``import chaos.toxiproxy`` stays free of the engine.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chaos.engine import ArmResult, ScenarioResult, run_scenario
    from chaos.load import Load, LoadResult, Reply, RequestSpec
    from chaos.scenario import (
        AddedLatency,
        AddToxic,
        AiohttpServer,
        Arm,
        ArmContext,
        DisableProxy,
        EnableProxy,
        Gauge,
        Incident,
        LatencyPercentile,
        OutcomeRate,
        OutcomeRatio,
        Proxy,
        RedisServer,
        RemoveToxic,
        Scenario,
        SuccessRatio,
        TcpServer,
        UpdateToxic,
        Window,
    )

__version__ = "0.1.0"

_ENGINE_NAMES = {
    "ArmResult": "chaos.engine",
    "ScenarioResult": "chaos.engine",
    "run_scenario": "chaos.engine",
    "Load": "chaos.load",
    "LoadResult": "chaos.load",
    "Reply": "chaos.load",
    "RequestSpec": "chaos.load",
    **dict.fromkeys(
        [
            "AddedLatency", "AddToxic", "AiohttpServer", "Arm", "ArmContext", "DisableProxy",
            "EnableProxy", "Gauge", "Incident", "LatencyPercentile", "OutcomeRate",
            "OutcomeRatio", "Proxy", "RedisServer", "RemoveToxic", "Scenario", "SuccessRatio",
            "TcpServer", "UpdateToxic", "Window",
        ],
        "chaos.scenario",
    ),
}  # fmt: skip

__all__ = [
    "AddToxic",
    "AddedLatency",
    "AiohttpServer",
    "Arm",
    "ArmContext",
    "ArmResult",
    "DisableProxy",
    "EnableProxy",
    "Gauge",
    "Incident",
    "LatencyPercentile",
    "Load",
    "LoadResult",
    "OutcomeRate",
    "OutcomeRatio",
    "Proxy",
    "RedisServer",
    "RemoveToxic",
    "Reply",
    "RequestSpec",
    "Scenario",
    "ScenarioResult",
    "SuccessRatio",
    "TcpServer",
    "UpdateToxic",
    "Window",
    "__version__",
    "run_scenario",
]


def __getattr__(name: str) -> Any:
    module = _ENGINE_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module 'chaos' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)

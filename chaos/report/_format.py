"""How the table and the HTML page write a value: the same text in both."""

from __future__ import annotations

from collections.abc import Mapping

from chaos.engine import ArmResult, ScenarioResult
from chaos.scenario import SLOResult

__all__ = ["counts_text", "format_value", "must_break"]


def format_value(value: float | None, slo: SLOResult) -> str:
    """A value or bound of ``slo`` in its unit: ms for latencies, /s for rates, % for shares."""
    if value is None:
        return "n/a"
    if slo.unit == "s":
        return f"{value * 1000:.1f} ms"
    if slo.unit == "req/s":
        return f"{value:.1f}/s"
    if slo.unit == "x":
        return f"{value:.2f}x"
    if slo.kind in ("OutcomeRatio", "SuccessRatio"):
        return f"{value:.2%}"
    return f"{value:g}"


def counts_text(counts: Mapping[str, int]) -> str:
    """Requests per outcome, most frequent first (``ok 900, false_429 12``)."""
    return ", ".join(f"{name} {n}" for name, n in sorted(counts.items(), key=lambda kv: -kv[1]))


def must_break(result: ScenarioResult, arm: ArmResult) -> set[str]:
    """The SLOs ``arm`` must break to reproduce the incident (none for a guarded arm)."""
    return set(result.scenario.breaks) if arm.role == "naive" else set()

"""How the table, the page, the JUnit file and ``chaos compare`` write a value: the same text
in each. They all read the JSON document (:mod:`chaos.report._json`), so a saved report is
rendered exactly as the run that wrote it was."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["counts_text", "format_value", "must_break", "slo_line"]


def format_value(value: float | None, slo: Mapping[str, Any]) -> str:
    """A value or bound of the SLO document ``slo`` in its unit: ms for latencies, /s for
    rates, % for shares; ``n/a`` for nothing measured (or an infinite value)."""
    if value is None:
        return "n/a"
    unit = slo["unit"]
    if unit == "s":
        return f"{value * 1000:.1f} ms"
    if unit == "req/s":
        return f"{value:.1f}/s"
    if unit == "x":
        return f"{value:.2f}x"
    if slo["kind"] in ("OutcomeRatio", "SuccessRatio"):
        return f"{value:.2%}"
    return f"{value:g}"


def slo_line(slo: Mapping[str, Any], *, must_break: bool = False) -> str:
    """``PASS name: value <= bound`` (FAIL, or INCONCLUSIVE), ``(must fail)`` for an SLO the
    naive arm must break."""
    mark = "INCONCLUSIVE" if slo.get("inconclusive") else "PASS" if slo["passed"] else "FAIL"
    wanted = " (must fail)" if must_break else ""
    value, bound = format_value(slo["value"], slo), format_value(slo["bound"], slo)
    return f"{mark} {slo['name']}: {value} {slo['op']} {bound}{wanted}"


def counts_text(counts: Mapping[str, int]) -> str:
    """Requests per outcome, most frequent first (``ok 900, false_429 12``)."""
    return ", ".join(f"{name} {n}" for name, n in sorted(counts.items(), key=lambda kv: -kv[1]))


def must_break(scenario: Mapping[str, Any], arm: Mapping[str, Any]) -> set[str]:
    """The SLOs ``arm`` (a document's) must break to reproduce the incident (none for a
    guarded arm)."""
    return set(scenario["breaks"]) if arm["role"] == "naive" else set()

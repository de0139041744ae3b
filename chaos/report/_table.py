"""The terminal table of a run (``rich``): one row per arm, every SLO with its value and bound.

Drawn from the JSON document, so ``chaos report`` shows a saved run as ``chaos run`` did."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.table import Table
from rich.text import Text

from chaos.report._format import counts_text, must_break, slo_line

__all__ = ["render_table"]

_STYLES = {  # a colour for every verdict of the schema; no default: rich refuses "[]error[/]"
    "reproduced": "green",
    "mitigated": "green",
    "failed": "bold red",
    "not-reproduced": "yellow",
    "error": "bold magenta",
}


def render_table(document: Mapping[str, Any]) -> Table:
    """A ``rich`` table of the report ``document``: scenario, arm, verdict, trust, requests
    and every SLO's value; an arm run more than once says which attempt it is and why each
    earlier one was not trusted."""
    table = Table(title="chaos run", show_lines=True)
    for column in ("scenario", "arm", "verdict", "lag p99", "requests", "SLOs (value / bound)"):
        table.add_column(column, overflow="fold")
    for scenario in document["scenarios"]:
        for arm in scenario["arms"]:
            load = arm["load"]
            lag_p99 = None if load is None else load["lag_ms"]["p99"]
            lag = "-" if lag_p99 is None else f"{lag_p99:.2f} ms"
            if load is not None and not arm["trustworthy"]:
                lag += " (untrusted)"
            requests = "-" if load is None else counts_text(load["outcomes"])
            breaks = must_break(scenario, arm)
            lines = [
                slo_line(slo, must_break=slo["name"] in breaks)
                for slo in (*arm["slos"], *arm["signature"])
            ]
            lines += [f"premise: {slo_line(slo)}" for slo in arm["premises"]]
            lines += [f"note: {note}" for note in arm.get("notes", ())]
            if arm["error"]:
                lines.append(f"error: {arm['error']}")
            for number, attempt in enumerate(arm["attempts"], start=1):
                lines.append(f"attempt {number}: {attempt['verdict']}: {attempt['error']}")
            verdict = f"[{_STYLES[arm['verdict']]}]{arm['verdict']}[/]"
            if arm["attempts"]:
                verdict += f"\n(attempt {len(arm['attempts']) + 1})"
            # Text, not markup: a name or a message with "[...]" in it is shown as it is
            table.add_row(
                Text(scenario["name"]), Text(f"{arm['name']} ({arm['role']})"), verdict,
                Text(lag), Text(requests), Text("\n".join(lines)),
            )  # fmt: skip
    return table

"""The terminal table of a run (``rich``): one row per arm, every SLO with its value and bound."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table

from chaos.engine import ScenarioResult
from chaos.report._format import counts_text, format_value, must_break
from chaos.scenario import SLOResult

__all__ = ["render_table"]


def render_table(results: Sequence[ScenarioResult]) -> Table:
    """A ``rich`` table: scenario, arm, verdict, trust, requests and every SLO's value; an arm
    run more than once says which attempt it is and why each earlier one was not trusted."""
    table = Table(title="chaos run", show_lines=True)
    for column in ("scenario", "arm", "verdict", "lag p99", "requests", "SLOs (value / bound)"):
        table.add_column(column, overflow="fold")
    styles = {
        "reproduced": "green",
        "mitigated": "green",
        "failed": "bold red",
        "not-reproduced": "yellow",
        "error": "bold magenta",
    }
    for result in results:
        for arm in result.arms:
            load = arm.load
            lag = "-" if load is None else f"{load.lag_p99() * 1000:.2f} ms"
            if load is not None and not arm.trustworthy:
                lag += " (untrusted)"
            requests = "-" if load is None else counts_text(load.counts())
            checks = [*arm.slos, *arm.signature]
            lines = [
                _slo_line(slo, must_break=slo.name in must_break(result, arm)) for slo in checks
            ]
            lines += [f"premise: {_slo_line(slo, must_break=False)}" for slo in arm.premises]
            lines += [f"note: {note}" for note in arm.notes]
            if arm.error:
                lines.append(f"error: {arm.error}")
            for number, attempt in enumerate(arm.attempts, start=1):
                lines.append(f"attempt {number}: {attempt.verdict}: {attempt.error}")
            verdict = f"[{styles.get(arm.verdict, '')}]{arm.verdict}[/]"
            if arm.attempts:
                verdict += f"\n(attempt {len(arm.attempts) + 1})"
            table.add_row(
                result.scenario.name, f"{arm.name} ({arm.role})", verdict, lag, requests,
                "\n".join(lines),
            )  # fmt: skip
    return table


def _slo_line(slo: SLOResult, *, must_break: bool) -> str:
    mark = "INCONCLUSIVE" if slo.inconclusive else "PASS" if slo.passed else "FAIL"
    wanted = " (must fail)" if must_break else ""
    value = format_value(slo.value, slo)
    return f"{mark} {slo.name}: {value} {slo.op} {format_value(slo.bound, slo)}{wanted}"

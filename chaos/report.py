"""Reports of a ``chaos run``: a terminal table, a JSON document, and one HTML page.

The JSON document follows ``chaos/report_schema.json`` (JSON Schema 2020-12), versioned by
``schema_version`` (:data:`SCHEMA_VERSION`; a change that removes or renames a field bumps it).
It holds, per scenario and arm: the verdict, every SLO and signature check (value, bound,
pass/fail), per-window and per-bucket request counts by outcome and latency percentiles, the
gauges' samples, the faults as applied, and the load generator's scheduling lag with the
``trustworthy`` flag; at the top: the seed, the scale, the exit status and the versions of the
project, Python, aiohttp and the Toxiproxy server used. Times are seconds from load start;
fields ending in ``_ms`` are milliseconds.

The HTML page opens offline: its plots (matplotlib, PNG) are inlined as data URIs.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import platform
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from importlib import metadata, resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from rich.table import Table

from chaos._engine import ArmResult, ScenarioResult
from chaos.load import MAX_TRUSTED_LAG, LoadResult
from chaos.scenario import SLOResult, Window

__all__ = [
    "SCHEMA_VERSION",
    "build_report",
    "load_schema",
    "render_table",
    "write_html",
    "write_json",
    "write_reports",
]

SCHEMA_VERSION = 2
"""Version of the JSON report's shape (``schema_version`` in every document).

2: the SLO kinds ``GaugeMax`` and ``GaugeMin`` became one kind, ``Gauge`` (``op`` says which
bound it has).
"""

_OUTCOME_COLORS = {
    "ok": "#2ca02c",
    "fallback": "#17becf",
    "limited": "#bcbd22",
    "false_429": "#d62728",
    "error": "#8c1c13",
    "timeout": "#9467bd",
    "conn_error": "#8c564b",
    "overflow": "#000000",
    "classify_error": "#7f7f7f",
}
_EXTRA_COLORS = ["#1f77b4", "#ff7f0e", "#e377c2", "#aec7e8", "#ffbb78", "#98df8a"]


def load_schema() -> dict[str, Any]:
    """The JSON Schema of the report, as shipped in the package."""
    text = resources.files("chaos").joinpath("report_schema.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def build_report(
    results: Sequence[ScenarioResult],
    *,
    exit_status: int,
    seed: int,
    scale: float,
    errors: Sequence[str] = (),
) -> dict[str, Any]:
    """The JSON document of one run (see the module docstring and the schema)."""
    toxiproxy = results[0] if results else None
    return {
        "schema_version": SCHEMA_VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "seed": seed,
        "scale": scale,
        "exit_status": exit_status,
        "errors": list(errors),
        "versions": {
            "project": _project_version(),
            "python": platform.python_version(),
            "aiohttp": metadata.version("aiohttp"),
            "toxiproxy": toxiproxy.toxiproxy_version if toxiproxy else None,
        },
        "toxiproxy": {
            "url": toxiproxy.toxiproxy_url if toxiproxy else None,
            "embedded": toxiproxy.toxiproxy_embedded if toxiproxy else None,
        },
        "max_trusted_lag_ms": MAX_TRUSTED_LAG * 1000,
        "scenarios": [_scenario_doc(result) for result in results],
    }


def write_json(document: Mapping[str, Any], path: Path) -> None:
    """Write the JSON document (UTF-8, indented)."""
    path.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n", encoding="utf-8")


def write_reports(
    results: Sequence[ScenarioResult], document: Mapping[str, Any], directory: Path
) -> tuple[Path, Path]:
    """Write ``report.json`` and ``report.html`` into ``directory`` (created if needed)."""
    directory.mkdir(parents=True, exist_ok=True)
    json_path, html_path = directory / "report.json", directory / "report.html"
    write_json(document, json_path)
    write_html(results, document, html_path)
    return json_path, html_path


def render_table(results: Sequence[ScenarioResult]) -> Table:
    """A ``rich`` table: scenario, arm, verdict, trust, requests and every SLO's value."""
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
            if load is not None and not load.trustworthy:
                lag += " (untrusted)"
            requests = "-" if load is None else _counts_text(load.counts())
            checks = [*arm.slos, *arm.signature]
            lines = [_slo_line(slo, must_break=slo.name in _breaks(result, arm)) for slo in checks]
            if arm.error:
                lines.append(f"error: {arm.error}")
            verdict = f"[{styles.get(arm.verdict, '')}]{arm.verdict}[/]"
            table.add_row(
                result.scenario.name, f"{arm.name} ({arm.role})", verdict, lag, requests,
                "\n".join(lines),
            )  # fmt: skip
    return table


def _breaks(result: ScenarioResult, arm: ArmResult) -> set[str]:
    return set(result.scenario.breaks) if arm.role == "naive" else set()


def _slo_line(slo: SLOResult, *, must_break: bool) -> str:
    mark = "PASS" if slo.passed else "FAIL"
    wanted = " (must fail)" if must_break else ""
    value = _format_value(slo.value, slo)
    return f"{mark} {slo.name}: {value} {slo.op} {_format_value(slo.bound, slo)}{wanted}"


def _format_value(value: float | None, slo: SLOResult) -> str:
    if value is None:
        return "n/a"
    if slo.unit == "s":
        return f"{value * 1000:.1f} ms"
    if slo.unit == "req/s":
        return f"{value:.1f}/s"
    if slo.kind in ("OutcomeRatio", "SuccessRatio"):
        return f"{value:.2%}"
    return f"{value:g}"


def _counts_text(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{name} {n}" for name, n in sorted(counts.items(), key=lambda kv: -kv[1]))


# -- JSON ------------------------------------------------------------------------------------


def _project_version() -> str:
    try:
        return metadata.version("resilient-chaos")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        from chaos import __version__

        return __version__


def _scenario_doc(result: ScenarioResult) -> dict[str, Any]:
    scenario = result.scenario
    return {
        "name": scenario.name,
        "incident": {"file": scenario.incident.file, "summary": scenario.incident.summary},
        "pattern": scenario.pattern,
        "description": scenario.description,
        "duration_s": scenario.duration,
        "load": {
            "rate": scenario.load.rate,
            "arrivals": scenario.load.arrivals,
            "ramp_s": scenario.load.ramp,
            "timeout_s": scenario.load.timeout,
            "max_in_flight": scenario.load.max_in_flight,
        },
        "bucket_s": scenario.bucket,
        "windows": [{"name": w.name, "start": w.start, "end": w.end} for w in scenario.windows],
        "faults": [
            {"at": f.at, "proxy": f.proxy, "description": f.describe()} for f in scenario.faults
        ],
        "breaks": list(scenario.breaks),
        "arms": [_arm_doc(result, arm) for arm in result.arms],
    }  # fmt: skip


def _arm_doc(result: ScenarioResult, arm: ArmResult) -> dict[str, Any]:
    scenario = result.scenario
    load = arm.load
    doc: dict[str, Any] = {
        "name": arm.name,
        "role": arm.role,
        "verdict": arm.verdict,
        "error": arm.error,
        "wall_time_s": round(arm.wall_time, 3),
        "trustworthy": arm.trustworthy,
        "slos": [_slo_doc(slo) for slo in arm.slos],
        "signature": [_slo_doc(slo) for slo in arm.signature],
        "faults_applied": [
            {"at": f.at, "applied_at": f.applied_at, "kind": f.kind, "proxy": f.proxy,
             "description": f.description}
            for f in arm.faults
        ],
        "gauges": {
            name: {
                "t": _floats(series.t),
                "values": _floats(series.values),
                "max": _finite(float(np.nanmax(series.values))) if len(series.values) else None,
                "min": _finite(float(np.nanmin(series.values))) if len(series.values) else None,
            }
            for name, series in arm.gauges.items()
        },
        "load": None,
    }  # fmt: skip
    if load is None:
        return doc
    lag = load.lag
    doc["load"] = {
        "planned": len(load.scheduled),
        "sent": int((~np.isnan(load.started)).sum()),
        "event_loop": load.event_loop,
        "lag_ms": _percentiles(lag),
        "outcomes": load.counts(),
        "latency_ms": _percentiles(load.latency[~np.isnan(load.latency)]),
        "service_time_ms": _percentiles(load.service_time[~np.isnan(load.service_time)]),
        "errors": list(load.errors),
    }
    doc["windows"] = [
        {"name": w.name, "start": w.start, "end": w.end, **_span_stats(load, w.start, w.end)}
        for w in scenario.windows
    ]
    doc["timeline"] = _timeline(load, scenario.bucket)
    return doc


def _slo_doc(slo: SLOResult) -> dict[str, Any]:
    return {
        "name": slo.name,
        "kind": slo.kind,
        "description": slo.description,
        "window": slo.window,
        "value": _finite(slo.value),
        "op": slo.op,
        "bound": slo.bound,
        "unit": slo.unit,
        "passed": slo.passed,
        "problem": slo.problem,
    }


def _span_stats(load: LoadResult, start: float, end: float) -> dict[str, Any]:
    mask = (load.scheduled >= start) & (load.scheduled < end)
    latency = load.latency[mask]
    return {
        "requests": int(mask.sum()),
        "outcomes": load.counts(mask),
        "latency_ms": _percentiles(latency[~np.isnan(latency)]),
    }


def _timeline(load: LoadResult, bucket: float) -> list[dict[str, Any]]:
    count = max(1, math.ceil(load.duration / bucket - 1e-9))
    index = np.minimum((load.scheduled // bucket).astype(np.int64), count - 1)
    latency = load.latency
    buckets = []
    for i in range(count):
        mask = index == i
        values = latency[mask]
        values = values[~np.isnan(values)]
        buckets.append(
            {
                "t": round(i * bucket, 6),
                "requests": int(mask.sum()),
                "outcomes": load.counts(mask),
                "p50_ms": _ms(np.percentile(values, 50)) if len(values) else None,
                "p99_ms": _ms(np.percentile(values, 99)) if len(values) else None,
            }
        )
    return buckets


def _percentiles(values: npt.NDArray[np.float64]) -> dict[str, float | None]:
    if len(values) == 0:
        return {"count": 0, "p50": None, "p90": None, "p99": None, "max": None}
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return {
        "count": len(values),
        "p50": _ms(p50),
        "p90": _ms(p90),
        "p99": _ms(p99),
        "max": _ms(values.max()),
    }


def _ms(seconds: float | np.floating[Any]) -> float:
    return round(float(seconds) * 1000, 3)


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _floats(values: npt.NDArray[np.float64]) -> list[float | None]:
    return [round(v, 6) if math.isfinite(v) else None for v in values.tolist()]


# -- HTML ------------------------------------------------------------------------------------


def write_html(results: Sequence[ScenarioResult], document: Mapping[str, Any], path: Path) -> None:
    """Write one self-contained HTML page: per scenario, its plot and its SLO tables."""
    sections = []
    for result, doc in zip(results, document["scenarios"], strict=True):
        sections.append(_scenario_html(result, doc))
    versions = document["versions"]
    head = (
        f"seed {document['seed']}, scale {document['scale']:g}, exit status "
        f"{document['exit_status']}; project {versions['project']}, Python {versions['python']}, "
        f"aiohttp {versions['aiohttp']}, Toxiproxy {versions['toxiproxy']} "
        f"({'embedded' if document['toxiproxy']['embedded'] else 'external'})"
    )
    errors = "".join(f"<p class=fail>{html.escape(e)}</p>" for e in document["errors"])
    page = _PAGE.format(
        created=html.escape(document["created"]),
        head=html.escape(head),
        errors=errors,
        body="\n".join(sections),
    )
    path.write_text(page, encoding="utf-8")


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>chaos report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; }}
td, th {{ border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; font-size: 0.9em; }}
.pass {{ color: #1a7f1a; font-weight: bold; }} .fail {{ color: #b00; font-weight: bold; }}
img {{ max-width: 100%; }} .meta {{ color: #555; }}
</style></head><body>
<h1>chaos report</h1>
<p class=meta>{created} &mdash; {head}</p>
{errors}
{body}
</body></html>
"""


def _scenario_html(result: ScenarioResult, doc: Mapping[str, Any]) -> str:
    scenario = result.scenario
    parts = [
        f"<h2>{html.escape(scenario.name)}</h2>",
        f"<p>{html.escape(scenario.incident.summary)} (incident "
        f"<code>{html.escape(scenario.incident.file)}</code>; pattern: "
        f"{html.escape(scenario.pattern)})</p>",
    ]
    if any(arm.load is not None for arm in result.arms):
        png = base64.b64encode(plot_scenario(result)).decode("ascii")
        parts.append(f'<img alt="timeline of {html.escape(scenario.name)}" '
                     f'src="data:image/png;base64,{png}">')  # fmt: skip
    rows = []
    for arm in doc["arms"]:
        lag = arm["load"]["lag_ms"]["p99"] if arm["load"] else None
        trust = "" if arm["trustworthy"] else " <span class=fail>(not trustworthy)</span>"
        verdict_ok = arm["verdict"] in ("reproduced", "mitigated")
        rows.append(
            f"<tr><td>{html.escape(arm['name'])}</td><td>{arm['role']}</td>"
            f"<td class={'pass' if verdict_ok else 'fail'}>{arm['verdict']}</td>"
            f"<td>{'-' if lag is None else f'{lag:.2f} ms'}{trust}</td>"
            f"<td>{html.escape(_counts_text(arm['load']['outcomes']) if arm['load'] else '-')}</td>"
            f"<td>{html.escape(arm['error'] or '')}</td></tr>"
        )
    parts.append(
        "<table><tr><th>arm</th><th>role</th><th>verdict</th><th>lag p99</th>"
        "<th>requests</th><th>error</th></tr>" + "".join(rows) + "</table>"
    )
    fault_rows = "".join(
        f"<tr><td>{html.escape(arm['name'])}</td><td>{f['at']:g} s</td>"
        f"<td>{f['applied_at']:.3f} s</td><td>{html.escape(f['description'])}</td></tr>"
        for arm in doc["arms"]
        for f in arm["faults_applied"]
    )
    window_rows = "".join(
        f"<tr><td>{html.escape(w['name'])}</td><td>{w['start']:g} s</td>"
        f"<td>{w['end']:g} s</td></tr>"
        for w in doc["windows"]
    )
    parts.append(
        "<table><tr><th>window</th><th>start</th><th>end</th></tr>" + window_rows + "</table>"
    )
    parts.append(
        "<table><tr><th>arm</th><th>fault planned</th><th>applied</th><th>what</th></tr>"
        + fault_rows
        + "</table>"
    )
    slo_rows = []
    for arm_result in result.arms:
        for group, checks in (("hypothesis", arm_result.slos), ("signature", arm_result.signature)):
            for slo in checks:
                must = " (must fail)" if slo.name in _breaks(result, arm_result) else ""
                slo_rows.append(
                    f"<tr><td>{html.escape(arm_result.name)}</td><td>{group}</td>"
                    f"<td>{html.escape(slo.name)}{must}</td><td>{html.escape(slo.description)}</td>"
                    f"<td>{html.escape(_format_value(slo.value, slo))}</td>"
                    f"<td>{slo.op} {html.escape(_format_value(slo.bound, slo))}</td>"
                    f"<td class={'pass' if slo.passed else 'fail'}>"
                    f"{'pass' if slo.passed else 'fail'}</td></tr>"
                )
    parts.append(
        "<table><tr><th>arm</th><th>group</th><th>SLO</th><th>what</th><th>value</th>"
        "<th>bound</th><th>result</th></tr>" + "".join(slo_rows) + "</table>"
    )
    return "\n".join(parts)


def plot_scenario(result: ScenarioResult) -> bytes:
    """PNG of the scenario's timeline: per arm (side by side), request rate by outcome
    (stacked) and latency p50/p99 over time (log scale), windows shaded, faults marked."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter

    scenario = result.scenario
    arms = [arm for arm in result.arms if arm.load is not None]
    outcomes: list[str] = []
    for arm in arms:
        assert arm.load is not None
        for name in arm.load.counts():
            if name not in outcomes:
                outcomes.append(name)
    colors = _colors(outcomes)
    gauge_names = sorted({name for arm in arms for name in arm.gauges})
    rows = 3 if gauge_names else 2
    fig, axes = plt.subplots(
        rows, len(arms), figsize=(6.5 * len(arms), 3.25 * rows), sharex=True, sharey="row",
        squeeze=False, gridspec_kw={"height_ratios": [3, 2, 2][:rows]},
    )  # fmt: skip
    bucket = scenario.bucket
    for column, arm in enumerate(arms):
        load = arm.load
        assert load is not None
        rate_ax, latency_ax = axes[0][column], axes[1][column]
        buckets = _timeline(load, bucket)
        edges = np.array([b["t"] for b in buckets] + [scenario.duration])

        def stepped(values: list[float]) -> npt.NDArray[np.float64]:
            return np.array([*values, values[-1]], dtype=np.float64)

        stacks = [
            stepped([b["outcomes"].get(name, 0) / bucket for b in buckets]) for name in outcomes
        ]
        rate_ax.stackplot(edges, *stacks, labels=outcomes, colors=[colors[o] for o in outcomes],
                          step="post", alpha=0.9)  # fmt: skip
        rate_ax.set_title(f"{arm.name} ({arm.role}): {arm.verdict}")
        rate_ax.set_ylabel("requests/s by outcome")
        p50 = stepped([b["p50_ms"] if b["p50_ms"] is not None else np.nan for b in buckets])
        p99 = stepped([b["p99_ms"] if b["p99_ms"] is not None else np.nan for b in buckets])
        latency_ax.step(edges, p99, where="post", color="#d62728", label="p99")
        latency_ax.step(edges, p50, where="post", color="#1f77b4", label="p50")
        latency_ax.set_yscale("log")
        latency_ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        latency_ax.yaxis.set_minor_formatter(NullFormatter())
        latency_ax.set_ylabel("latency from schedule (ms)")
        panels = [rate_ax, latency_ax]
        if gauge_names:
            gauge_ax = axes[2][column]
            for i, name in enumerate(gauge_names):
                series = arm.gauges.get(name)
                if series is not None:
                    gauge_ax.step(series.t, series.values, where="post", label=name,
                                  color=_EXTRA_COLORS[i % len(_EXTRA_COLORS)])  # fmt: skip
            gauge_ax.set_ylabel("gauges")
            panels.append(gauge_ax)
        panels[-1].set_xlabel("seconds from load start")
        for ax in panels:
            for i, window in enumerate(scenario.windows):
                ax.axvspan(window.start, window.end, color=f"C{i % 10}", alpha=0.08)
            for fault in arm.faults:
                ax.axvline(fault.applied_at, color="#555", linestyle=":", linewidth=1)
            ax.set_xlim(0, scenario.duration)
            ax.grid(alpha=0.3)
        label_rows = _label_rows(scenario.windows, scenario.duration)
        for i, (window, row) in enumerate(zip(scenario.windows, label_rows, strict=True)):
            rate_ax.text(
                (window.start + window.end) / 2, 1.0 - 0.07 * row, window.name, ha="center",
                va="top", transform=rate_ax.get_xaxis_transform(), fontsize=8, color=f"C{i % 10}",
            )  # fmt: skip
    axes[0][-1].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    for row in range(1, rows):
        axes[row][-1].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    fig.suptitle(f"{scenario.name}: {scenario.incident.summary}", fontsize=11)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return buffer.getvalue()


def _label_rows(windows: Sequence[Window], duration: float) -> list[int]:
    """A text row per window label, so that labels never print over each other: each label
    (centred on its window, about ``_LABEL_CHAR_WIDTH`` of the axis per character) takes the
    first row where it is clear of every label already placed."""
    taken: list[list[tuple[float, float]]] = []
    rows = []
    for window in windows:
        half = len(window.name) * _LABEL_CHAR_WIDTH * duration / 2
        centre = (window.start + window.end) / 2
        left, right = centre - half, centre + half
        row = next(
            (
                row
                for row, spans in enumerate(taken)
                if all(right <= start or left >= end for start, end in spans)
            ),
            len(taken),
        )
        if row == len(taken):
            taken.append([])
        taken[row].append((left, right))
        rows.append(row)
    return rows


_LABEL_CHAR_WIDTH = 0.012
"""Share of a timeline axis one character of a window label takes (font size 8)."""


def _colors(outcomes: Sequence[str]) -> dict[str, str]:
    extra = iter(_EXTRA_COLORS * 4)
    return {name: _OUTCOME_COLORS.get(name) or next(extra) for name in outcomes}

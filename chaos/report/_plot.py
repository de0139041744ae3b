"""The timeline plot of a scenario (matplotlib, PNG): per arm, request rate by outcome, latency
percentiles and gauges over time, windows shaded and faults marked.

matplotlib is imported on first use, with its non-interactive ``Agg`` backend.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from chaos.scenario import Window

__all__ = ["plot_scenario"]


def plot_scenario(scenario: Mapping[str, Any]) -> bytes:
    """PNG of the timeline of ``scenario`` (one scenario of a report document): per arm (side
    by side), request rate by outcome (stacked), latency p50/p99 over time (log scale) and
    each gauge on a row of its own (its own scale, shared by the arms, with the bound of each
    whole-run hypothesis SLO on it dashed: the document's ``gauge_bounds``), windows shaded,
    faults marked."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter

    arms = [arm for arm in scenario["arms"] if arm["load"] is not None]
    outcomes: list[str] = []
    for arm in arms:
        for name in arm["load"]["outcomes"]:
            if name not in outcomes:
                outcomes.append(name)
    colors = _colors(outcomes)
    gauge_names = sorted({name for arm in arms for name in arm["gauges"]})
    rows = 2 + len(gauge_names)  # one row per gauge: each on its own scale
    ratios = [3.0, 2.0] + [1.5] * len(gauge_names)
    fig, axes = plt.subplots(
        rows, len(arms), figsize=(6.5 * len(arms), 1.3 * sum(ratios)), sharex=True,
        sharey="row", squeeze=False, gridspec_kw={"height_ratios": ratios},
    )  # fmt: skip
    bounds: Mapping[str, list[float]] = scenario.get("gauge_bounds", {})
    bucket, duration = scenario["bucket_s"], scenario["duration_s"]
    windows = [Window(w["name"], w["start"], w["end"]) for w in scenario["windows"]]
    for column, arm in enumerate(arms):
        rate_ax, latency_ax = axes[0][column], axes[1][column]
        buckets = arm["timeline"]
        edges = np.array([b["t"] for b in buckets] + [duration])

        def stepped(values: list[float]) -> npt.NDArray[np.float64]:
            return np.array([*values, values[-1]], dtype=np.float64)

        stacks = [
            stepped([b["outcomes"].get(name, 0) / bucket for b in buckets]) for name in outcomes
        ]
        rate_ax.stackplot(edges, *stacks, labels=outcomes, colors=[colors[o] for o in outcomes],
                          step="post", alpha=0.9)  # fmt: skip
        rate_ax.set_title(f"{arm['name']} ({arm['role']}): {arm['verdict']}")
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
        for i, name in enumerate(gauge_names):
            gauge_ax = axes[2 + i][column]
            series = arm["gauges"].get(name)
            if series is not None:
                gauge_ax.step(_array(series["t"]), _array(series["values"]), where="post",
                              label=name, color=_EXTRA_COLORS[i % len(_EXTRA_COLORS)])  # fmt: skip
            for bound in bounds.get(name, ()):
                gauge_ax.axhline(bound, color="#d62728", linestyle="--", linewidth=1)
            gauge_ax.set_ylabel(_wrapped(name), fontsize=8)
            panels.append(gauge_ax)
        panels[-1].set_xlabel("seconds from load start")
        for ax in panels:
            for i, window in enumerate(windows):
                ax.axvspan(window.start, window.end, color=f"C{i % 10}", alpha=0.08)
            for fault in arm["faults_applied"]:
                ax.axvline(fault["applied_at"], color="#555", linestyle=":", linewidth=1)
            ax.set_xlim(0, duration)
            ax.grid(alpha=0.3)
        label_rows = _label_rows(windows, duration)
        for i, (window, row) in enumerate(zip(windows, label_rows, strict=True)):
            rate_ax.text(
                (window.start + window.end) / 2, 1.0 - 0.07 * row, window.name, ha="center",
                va="top", transform=rate_ax.get_xaxis_transform(), fontsize=8, color=f"C{i % 10}",
            )  # fmt: skip
    for i, name in enumerate(gauge_names):
        limits = gauge_limits(
            [arm["gauges"][name]["values"] for arm in arms if name in arm["gauges"]],
            bounds.get(name, []),
        )
        if limits is not None:
            axes[2 + i][0].set_ylim(*limits)  # the row shares it: one scale for both arms
    for row in range(rows):
        _legend(axes[row])
    fig.suptitle(f"{scenario['name']}: {scenario['incident']['summary']}", fontsize=11)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return buffer.getvalue()


def _legend(row: Sequence[Any]) -> None:
    """One legend for a row of panels, right of its last column: every line any arm drew on
    the row, named once (an arm may lack a gauge or an outcome another arm has); none for a
    row with nothing named."""
    named: dict[str, Any] = {}
    for ax in row:
        handles, labels = ax.get_legend_handles_labels()
        for handle, label in zip(handles, labels, strict=True):
            named.setdefault(label, handle)
    if named:
        row[-1].legend(
            list(named.values()), list(named), loc="upper left", bbox_to_anchor=(1.01, 1.0),
            fontsize=8,
        )  # fmt: skip


def _array(values: Sequence[float | None]) -> npt.NDArray[np.float64]:
    """A document's series (None for a sample the gauge could not give) as floats, NaN for
    None."""
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def gauge_limits(
    series: Sequence[Iterable[float | None]], bounds: Sequence[float]
) -> tuple[float, float] | None:
    """The y range of one gauge's row, from 0, when no sample of any arm (nor a bound) is
    negative: over every arm's samples and the bounds, so that neither arm's line leaves the
    plot (set on the first arm alone, a row whose first arm stayed at 0 was cut at 0.05 and
    hid the other arm's whole line). None leaves matplotlib's own range."""
    values = [
        float(v) for values in series for v in values if v is not None and not np.isnan(v)
    ] + [float(b) for b in bounds]
    if not values or min(values) < 0:
        return None
    top = max(values)
    return 0.0, top * 1.05 if top > 0 else 1.0


def _wrapped(name: str) -> str:
    """A gauge's name as its axis label: on two lines at its middle underscore when long."""
    if len(name) <= 14 or "_" not in name:
        return name
    cuts = [i for i, c in enumerate(name) if c == "_"]
    cut = min(cuts, key=lambda i: abs(i - len(name) / 2))
    return name[:cut] + "\n" + name[cut + 1 :]


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
    """Each outcome's colour: its own for an outcome the harness names, else the extra colours
    in turn (again from the first after the last: a scenario's classify may name any
    number of outcomes)."""
    extra = itertools.cycle(_EXTRA_COLORS)
    return {name: _OUTCOME_COLORS.get(name) or next(extra) for name in outcomes}


_OUTCOME_COLORS = {
    "ok": "#2ca02c",
    "fallback": "#17becf",
    "limited": "#bcbd22",
    "false_429": "#d62728",
    "overloaded": "#ff7f0e",
    "no_engine": "#d62728",
    "error": "#8c1c13",
    "timeout": "#9467bd",
    "conn_error": "#8c564b",
    "overflow": "#000000",
    "classify_error": "#7f7f7f",
}
_EXTRA_COLORS = ["#1f77b4", "#ff7f0e", "#e377c2", "#aec7e8", "#ffbb78", "#98df8a"]

"""The JSON document of a run, as ``report_schema.json`` (beside this module) describes it.

The document is versioned by ``schema_version`` (:data:`SCHEMA_VERSION`; a change that removes
or renames a field, or a value of an enumerated field, bumps it).
"""

from __future__ import annotations

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

from chaos.engine import ArmResult, ScenarioResult
from chaos.load import MAX_TRUSTED_LAG, LoadResult
from chaos.report._atomic import write_atomically
from chaos.scenario import Gauge, Role, Scenario, SLOResult, max_timeline_slip

__all__ = ["SCHEMA_VERSION", "build_report", "load_schema", "timeline_buckets", "write_json"]

SCHEMA_VERSION = 3
"""Version of the JSON report's shape (``schema_version`` in every document).

3: an arm's ``trustworthy`` says whether the harness trusted its measurement (the rules of
:mod:`chaos.scenario._verdicts`), no longer only whether its lag p99 kept
``max_trusted_lag_ms``; arms gain ``untrusted`` and ``attempts`` (earlier, untrusted runs of
the arm) and ``premises``, SLOs ``inconclusive``, and ``max_timeline_slip_ms``.
2: the SLO kinds ``GaugeMax`` and ``GaugeMin`` became one kind, ``Gauge`` (``op`` says which
bound it has).
"""


def load_schema() -> dict[str, Any]:
    """The JSON Schema of the report, as shipped in the package."""
    text = resources.files("chaos.report").joinpath("report_schema.json").read_text("utf-8")
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
    """Write the JSON document (UTF-8, indented), atomically: a reader never sees half."""
    text = json.dumps(document, indent=2, allow_nan=False) + "\n"
    write_atomically(path, text.encode("utf-8"))


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
        "gauge_bounds": _gauge_bounds(scenario),
        "arms": [_arm_doc(result, arm) for arm in result.arms],
    }  # fmt: skip


def _gauge_bounds(scenario: Scenario) -> dict[str, list[float]]:
    """The bound of every hypothesis SLO on a gauge over the whole run, by gauge: the plot
    draws them as dashed lines on the gauge's row."""
    bounds: dict[str, list[float]] = {}
    for slo in scenario.hypothesis:
        if isinstance(slo, Gauge) and slo.window is None:
            bounds.setdefault(slo.gauge, []).append(slo.bound()[1])
    return bounds


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
        "max_timeline_slip_ms": max_timeline_slip(scenario, _role(arm)) * 1000,
        "untrusted": list(arm.untrusted),
        "attempts": [_arm_doc(result, attempt) for attempt in arm.attempts],
        "slos": [_slo_doc(slo) for slo in arm.slos],
        "signature": [_slo_doc(slo) for slo in arm.signature],
        "premises": [_slo_doc(slo) for slo in arm.premises],
        "notes": list(arm.notes),
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
    doc["timeline"] = timeline_buckets(load, scenario.bucket)
    return doc


def _role(arm: ArmResult) -> Role:
    return "naive" if arm.role == "naive" else "guarded"


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
        "inconclusive": slo.inconclusive,
    }


def _span_stats(load: LoadResult, start: float, end: float) -> dict[str, Any]:
    mask = (load.scheduled >= start) & (load.scheduled < end)
    latency = load.latency[mask]
    return {
        "requests": int(mask.sum()),
        "outcomes": load.counts(mask),
        "latency_ms": _percentiles(latency[~np.isnan(latency)]),
    }


_SLACK = 1e-9
"""Buckets of floating-point error allowed for on a bucket's boundary: a run of 3.0000000001
buckets has 3 buckets, and a request at 1.0 s is in the bucket of 0.1 s that starts there
(1.0 / 0.1 is 10.0, but 1.0 // 0.1 is 9.0)."""


def timeline_buckets(load: LoadResult, bucket: float) -> list[dict[str, Any]]:
    """Requests by the ``bucket`` (seconds) of their scheduled start: count, outcomes and
    latency percentiles per bucket; a request at or past the run's end is in the last one."""
    count = max(1, math.ceil(load.duration / bucket - _SLACK))
    index = np.minimum(np.floor(load.scheduled / bucket + _SLACK).astype(np.int64), count - 1)
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

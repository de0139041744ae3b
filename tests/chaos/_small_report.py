"""Small report documents built by hand, for the tests of what the HTML page and its plot show
(every field the shipped schema requires, with values small enough to assert exactly)."""

from __future__ import annotations

from typing import Any

__all__ = ["arm", "document", "load", "scenario", "slo", "timeline"]


def slo(
    name: str,
    *,
    value: float | None = 0.0,
    bound: float = 0.0,
    passed: bool = True,
    kind: str = "OutcomeRatio",
    unit: str = "",
    op: str = "<=",
    inconclusive: str | None = None,
    description: str = "",
) -> dict[str, Any]:
    return {
        "name": name,
        "kind": kind,
        "description": description or f"{name} {op} {bound}",
        "window": None,
        "value": value,
        "op": op,
        "bound": bound,
        "unit": unit,
        "passed": passed,
        "problem": None,
        "inconclusive": inconclusive,
    }


def timeline(*outcomes: dict[str, int], bucket: float = 0.5) -> list[dict[str, Any]]:
    """An arm's timeline of one bucket per ``outcomes`` (p50 1 ms, p99 2 ms in each)."""
    return [
        {"t": n * bucket, "requests": sum(o.values()), "outcomes": o, "p50_ms": 1.0, "p99_ms": 2.0}
        for n, o in enumerate(outcomes)
    ]


def _percentiles(p99: float) -> dict[str, float]:
    return {"count": 1, "p50": p99, "p90": p99, "p99": p99, "max": p99}


def load(outcomes: dict[str, int], *, lag_p99: float = 0.0) -> dict[str, Any]:
    """An arm's load: requests per outcome, the event loop's lag p99 (ms)."""
    total = sum(outcomes.values())
    return {
        "planned": total,
        "sent": total,
        "event_loop": "asyncio",
        "lag_ms": _percentiles(lag_p99),
        "outcomes": outcomes,
        "latency_ms": _percentiles(1.0),
        "service_time_ms": _percentiles(1.0),
        "errors": [],
    }


def arm(
    name: str, role: str = "guarded", verdict: str = "mitigated", **fields: Any
) -> dict[str, Any]:
    """An arm with no load, no SLO and nothing on its timeline, but ``fields``."""
    built: dict[str, Any] = {
        "name": name,
        "role": role,
        "verdict": verdict,
        "error": None,
        "wall_time_s": 1.0,
        "trustworthy": True,
        "max_timeline_slip_ms": 0.0,
        "untrusted": [],
        "attempts": [],
        "slos": [],
        "signature": [],
        "premises": [],
        "notes": [],
        "faults_applied": [],
        "gauges": {},
        "load": None,
        "windows": [],
        "timeline": [],
    }
    built.update(fields)
    return built


def scenario(name: str, arms: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    """A scenario of ``arms``, 2 s long in buckets of 0.5 s, without windows unless given."""
    built: dict[str, Any] = {
        "name": name,
        "incident": {"file": f"{name}.md", "summary": f"{name} incident"},
        "pattern": f"{name} pattern",
        "description": "",
        "duration_s": 2.0,
        "load": {
            "rate": 10,
            "arrivals": "constant",
            "ramp_s": 0.0,
            "timeout_s": 1.0,
            "max_in_flight": 16,
        },
        "bucket_s": 0.5,
        "windows": [],
        "faults": [],
        "breaks": [],
        "arms": arms,
    }
    built.update(fields)
    return built


def document(scenarios: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    """A report of ``scenarios`` (exit status 0, seed 7, scale 0.5, no harness error)."""
    built: dict[str, Any] = {
        "schema_version": 3,
        "created": "2026-11-30T08:00:00+00:00",
        "seed": 7,
        "scale": 0.5,
        "exit_status": 0,
        "errors": [],
        "versions": {
            "project": "0.1.0",
            "python": "3.11.7",
            "aiohttp": "3.14.5",
            "toxiproxy": "2.12.0",
        },
        "toxiproxy": {"url": "http://127.0.0.1:8474", "embedded": True},
        "max_trusted_lag_ms": 5.0,
        "scenarios": scenarios,
    }
    built.update(fields)
    return built

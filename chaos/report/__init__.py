"""Reports of a ``chaos run``: a terminal table, a JSON document, and one HTML page.

The JSON document follows ``chaos/report/report_schema.json`` (JSON Schema 2020-12), versioned by
``schema_version`` (:data:`SCHEMA_VERSION`; a change that removes or renames a field bumps it).
It holds, per scenario and arm: the verdict, every SLO and signature check (value, bound,
pass/fail), per-window and per-bucket request counts by outcome and latency percentiles, the
gauges' samples, the faults as applied, and the load generator's scheduling lag with the
``trustworthy`` flag; at the top: the seed, the scale, the exit status and the versions of the
project, Python, aiohttp and the Toxiproxy server used. Times are seconds from load start;
fields ending in ``_ms`` are milliseconds.

The HTML page opens offline: its plots (matplotlib, PNG) are inlined as data URIs.

One module per output: ``_json`` (the document and its schema), ``_table`` (the terminal
table), ``_html`` (the page), ``_plot`` (its timeline plots) and ``_junit`` (JUnit XML for CI);
``_format`` writes values the same way in each; ``_read`` reads a saved report back, checked
against the schema, and ``_compare`` compares two. Every output is drawn from the JSON document,
so a saved report (``chaos report``) is drawn as its run drew it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from chaos.report._compare import (
    VERDICT_ORDER,
    ArmChange,
    Comparison,
    SLOChange,
    compare_reports,
)
from chaos.report._html import write_html
from chaos.report._json import SCHEMA_VERSION, build_report, load_schema, write_json
from chaos.report._junit import junit_xml, write_junit
from chaos.report._plot import plot_scenario
from chaos.report._read import ReportError, read_report
from chaos.report._table import render_table

__all__ = [
    "SCHEMA_VERSION",
    "VERDICT_ORDER",
    "ArmChange",
    "Comparison",
    "ReportError",
    "SLOChange",
    "build_report",
    "compare_reports",
    "junit_xml",
    "load_schema",
    "plot_scenario",
    "read_report",
    "render_table",
    "write_html",
    "write_json",
    "write_junit",
    "write_reports",
]


def write_reports(document: Mapping[str, Any], directory: Path) -> tuple[Path, Path]:
    """Write ``report.json`` and ``report.html`` of ``document`` into ``directory`` (created
    if needed)."""
    directory.mkdir(parents=True, exist_ok=True)
    json_path, html_path = directory / "report.json", directory / "report.html"
    write_json(document, json_path)
    write_html(document, html_path)
    return json_path, html_path

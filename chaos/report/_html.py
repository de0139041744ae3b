"""The HTML page of a run: one self-contained page (it opens offline; plots are inlined PNGs).

Drawn from the JSON document, so ``chaos report --html`` draws a saved run as ``chaos run``
did."""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from chaos.report._atomic import write_atomically
from chaos.report._format import counts_text, format_value, must_break
from chaos.report._plot import plot_scenario

__all__ = ["write_html"]


def write_html(document: Mapping[str, Any], path: Path) -> None:
    """Write one self-contained HTML page of the report ``document`` (atomically): per
    scenario, its plot and its SLO tables."""
    sections = [_scenario_html(doc) for doc in document["scenarios"]]
    versions = document["versions"]
    head = (
        f"seed {document['seed']}, scale {document['scale']:g}, exit status "
        f"{document['exit_status']}; project {versions['project']}, Python {versions['python']}, "
        f"aiohttp {versions['aiohttp']}, Toxiproxy {versions['toxiproxy']} "
        f"({'embedded' if document['toxiproxy']['embedded'] else 'external'})"
    )
    errors = "".join(f"<p class=fail>{_text(e)}</p>" for e in document["errors"])
    page = _PAGE.format(
        created=_text(document["created"]),
        head=_text(head),
        errors=errors,
        body="\n".join(sections),
    )
    write_atomically(path, page.encode("utf-8"))


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


def _scenario_html(doc: Mapping[str, Any]) -> str:
    parts = [
        f"<h2>{_text(doc['name'])}</h2>",
        f"<p>{_text(doc['incident']['summary'])} (incident "
        f"<code>{_text(doc['incident']['file'])}</code>; pattern: "
        f"{_text(doc['pattern'])})</p>",
    ]
    if any(arm["load"] is not None for arm in doc["arms"]):
        png = base64.b64encode(plot_scenario(doc)).decode("ascii")
        parts.append(f'<img alt="timeline of {_text(doc["name"])}" '
                     f'src="data:image/png;base64,{png}">')  # fmt: skip
    rows = []
    for arm in doc["arms"]:
        lag = arm["load"]["lag_ms"]["p99"] if arm["load"] else None
        trust = "" if arm["trustworthy"] else " <span class=fail>(not trustworthy)</span>"
        verdict_ok = arm["verdict"] in ("reproduced", "mitigated")
        rows.append(
            f"<tr><td>{_text(arm['name'])}</td><td>{_text(arm['role'])}</td>"
            f"<td class={'pass' if verdict_ok else 'fail'}>{_text(arm['verdict'])}</td>"
            f"<td>{'-' if lag is None else f'{lag:.2f} ms'}{trust}</td>"
            f"<td>{_text(counts_text(arm['load']['outcomes']) if arm['load'] else '-')}</td>"
            f"<td>{'<br>'.join(_text(line) for line in _errors(arm))}</td></tr>"
        )
    parts.append(
        "<table><tr><th>arm</th><th>role</th><th>verdict</th><th>lag p99</th>"
        "<th>requests</th><th>error</th></tr>" + "".join(rows) + "</table>"
    )
    fault_rows = "".join(
        f"<tr><td>{_text(arm['name'])}</td><td>{f['at']:g} s</td>"
        f"<td>{f['applied_at']:.3f} s</td><td>{_text(f['description'])}</td></tr>"
        for arm in doc["arms"]
        for f in arm["faults_applied"]
    )
    window_rows = "".join(
        f"<tr><td>{_text(w['name'])}</td><td>{w['start']:g} s</td><td>{w['end']:g} s</td></tr>"
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
    for arm in doc["arms"]:
        breaks = must_break(doc, arm)
        groups = (
            ("hypothesis", arm["slos"]),
            ("signature", arm["signature"]),
            ("premise", arm["premises"]),
        )
        for group, checks in groups:
            for slo in checks:
                must = " (must fail)" if slo["name"] in breaks else ""
                result = (
                    "inconclusive" if slo.get("inconclusive") else
                    "pass" if slo["passed"] else "fail"
                )  # fmt: skip
                slo_rows.append(
                    f"<tr><td>{_text(arm['name'])}</td><td>{group}</td>"
                    f"<td>{_text(slo['name'])}{must}</td>"
                    f"<td>{_text(slo['description'])}</td>"
                    f"<td>{_text(format_value(slo['value'], slo))}</td>"
                    f"<td>{_text(slo['op'])} {_text(format_value(slo['bound'], slo))}</td>"
                    f"<td class={'pass' if slo['passed'] else 'fail'}>{result}</td></tr>"
                )
    parts.append(
        "<table><tr><th>arm</th><th>group</th><th>SLO</th><th>what</th><th>value</th>"
        "<th>bound</th><th>result</th></tr>" + "".join(slo_rows) + "</table>"
    )
    note_rows = "".join(
        f"<tr><td>{_text(arm['name'])}</td><td>{_text(note)}</td></tr>"
        for arm in doc["arms"]
        for note in arm.get("notes", ())
    )
    if note_rows:
        parts.append("<table><tr><th>arm</th><th>note</th></tr>" + note_rows + "</table>")
    return "\n".join(parts)


def _errors(arm: Mapping[str, Any]) -> list[str]:
    """The arm's error, then each earlier attempt's (an arm run again was untrusted before)."""
    lines = [arm["error"]] if arm["error"] else []
    for number, attempt in enumerate(arm["attempts"], start=1):
        lines.append(f"attempt {number}: {attempt['verdict']}: {attempt['error']}")
    return lines


_NOT_HTML = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff]")
"""What an HTML page cannot carry: control characters (but tab, newline, form feed and carriage
return), lone surrogates and noncharacters (a browser drops a NUL and shows the others as
nothing, or a box)."""


def _text(value: str) -> str:
    """``value`` as text of the page: HTML-escaped, and each character an HTML page cannot carry
    written as a Python escape (``\\x01``, ``\\ud800``), as the JUnit file writes it: a user's
    scenario may name itself anything, and nothing is silently dropped."""
    escaped = html.escape(value)
    return _NOT_HTML.sub(lambda match: match.group().encode("unicode_escape").decode(), escaped)

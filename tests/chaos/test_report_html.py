"""The HTML page of a report, drawn from small hand-built documents: its header, every table
cell (each verdict's and each result's class), every SLO value and bound, and text of any kind
escaped. The page is read back with the standard library's HTML parser."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from chaos.report import load_schema
from chaos.report._html import write_html
from tests.chaos._small_report import arm, document, load, scenario, slo, timeline

PLOT = b"\x89PNG plot"
IMG_SRC = "data:image/png;base64," + base64.b64encode(PLOT).decode()

ARMS_HEADER = ["arm", "role", "verdict", "lag p99", "requests", "error"]
WINDOWS_HEADER = ["window", "start", "end"]
FAULTS_HEADER = ["arm", "fault planned", "applied", "what"]
SLOS_HEADER = ["arm", "group", "SLO", "what", "value", "bound", "result"]
NOTES_HEADER = ["arm", "note"]


class _Outline(HTMLParser):
    """The page's body as blocks: ``(tag.class, raw inner HTML)`` for a heading or a
    paragraph, ``("img", its start tag as written)`` for an image, and ``("table", rows)`` for
    a table, each row a list of cells, each cell its raw inner HTML (entities as written),
    prefixed ``[class]`` when it has one. Text outside every block, or inside a table outside
    every cell, is ``stray``."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.head: list[str] = []
        self.blocks: list[tuple[str, Any]] = []
        self.stray: list[str] = []
        self._body = False
        self._inner: list[str] | None = None
        self._rows: list[list[str]] | None = None
        self._tag = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body":
            self._body = True
        elif not self._body:
            self.head.append(tag)
        elif self._inner is not None:
            self._inner.append(self.get_starttag_text() or "")
        elif tag == "img":
            self.blocks.append(("img", self.get_starttag_text()))
        elif tag == "table":
            self._rows = []
            self.blocks.append(("table", self._rows))
        elif tag == "tr":
            assert self._rows is not None, "a row outside a table"
            self._rows.append([])
        else:
            cls = dict(attrs).get("class")
            self._inner = [f"[{cls}] "] if tag in ("td", "th") and cls else []
            self._tag = tag if tag in ("td", "th") or cls is None else f"{tag}.{cls}"

    def handle_endtag(self, tag: str) -> None:
        if not self._body or tag in ("tr", "body", "html"):
            return
        if tag == "table":
            self._rows = None
        elif self._inner is not None and tag == self._tag.split(".")[0]:
            text = "".join(self._inner)
            if tag in ("td", "th"):
                assert self._rows, "a cell outside a row"
                self._rows[-1].append(text)
            else:
                self.blocks.append((self._tag, text))
            self._inner = None
        elif self._inner is not None:
            self._inner.append(f"</{tag}>")

    def handle_data(self, data: str) -> None:
        if self._inner is not None:
            self._inner.append(data)
        elif self._body and data.strip():
            self.stray.append(data)

    def handle_entityref(self, name: str) -> None:
        self.handle_data(f"&{name};")

    def handle_charref(self, name: str) -> None:
        self.handle_data(f"&#{name};")


def _page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, doc: dict[str, Any]
) -> tuple[str, _Outline]:
    """The page of ``doc`` (valid against the shipped schema), its plots replaced by ``PLOT``,
    as text and as an outline (with no stray text)."""
    jsonschema.Draft202012Validator(load_schema()).validate(doc)
    drawn: list[str] = []
    monkeypatch.setattr(
        "chaos.report._html.plot_scenario", lambda scenario: drawn.append(scenario["name"]) or PLOT
    )
    path = tmp_path / "report.html"
    write_html(doc, path)
    text = path.read_bytes().decode("utf-8")
    outline = _Outline()
    outline.feed(text)
    outline.close()
    assert outline.stray == []
    assert drawn == [
        s["name"] for s in doc["scenarios"] if any(a["load"] is not None for a in s["arms"])
    ]
    return text, outline


HOSTILE = [
    pytest.param("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;", id="markup"),
    pytest.param("quote \"'&amp", "quote &quot;&#x27;&amp;amp", id="quotes"),
    pytest.param(
        "ctl\x00\x01\x08\x0b\x0e\x1f\x7f\x85\x9f",
        "ctl\\x00\\x01\\x08\\x0b\\x0e\\x1f\\x7f\\x85\\x9f",
        id="control",
    ),
    pytest.param("lone \ud800 and \udfff", "lone \\ud800 and \\udfff", id="surrogates"),
    pytest.param("non \ufdd0\ufdef\ufffe\uffff", "non \\ufdd0\\ufdef\\ufffe\\uffff", id="nonchar"),
    pytest.param("tab\tnewline\nff\x0ccr\r kept", "tab\tnewline\nff\x0ccr\r kept", id="whitespace"),
    pytest.param("emoji \U0001f525 CJK \u969c\u5bb3 \xa0", None, id="unicode"),
]


@pytest.mark.parametrize(("name", "shown"), HOSTILE)
def test_any_text_of_the_document_is_shown_escaped_and_nothing_is_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, shown: str | None
) -> None:
    """A user's scenario may name itself anything: markup is escaped, and what an HTML page
    cannot carry (control characters, lone surrogates, noncharacters) is written as a Python
    escape, as the JUnit file writes it."""
    shown = name if shown is None else shown
    named = arm(
        name,
        load=load({name: 1}),
        error=name,
        notes=[name],
        slos=[slo(name, description=name)],
        faults_applied=[
            {"at": 0.0, "applied_at": 0.0, "kind": "AddToxic", "proxy": "p", "description": name}
        ],
    )
    doc = scenario(name, [named], pattern=name, windows=[{"name": name, "start": 0, "end": 1}])
    doc["incident"] = {"file": name, "summary": name}
    _, outline = _page(tmp_path, monkeypatch, document([doc], errors=[name], created=name))
    (_, meta), error = outline.blocks[1:3]
    assert meta.startswith(f"{shown} &mdash; seed 7")
    assert error == ("p.fail", shown)
    assert outline.blocks[3:8] == [
        ("h2", shown),
        ("p", f"{shown} (incident <code>{shown}</code>; pattern: {shown})"),
        ("img", f'<img alt="timeline of {shown}" src="{IMG_SRC}">'),
        (
            "table",
            [ARMS_HEADER, [shown, "guarded", "[pass] mitigated", "0.00 ms", f"{shown} 1", shown]],
        ),
        ("table", [WINDOWS_HEADER, [shown, "0 s", "1 s"]]),
    ]
    faults, slos, notes = (rows for _, rows in outline.blocks[8:])
    assert faults[1] == [shown, "0 s", "0.000 s", shown]
    assert slos[1] == [shown, "hypothesis", shown, shown, "0.00%", "&lt;= 0.00%", "[pass] pass"]
    assert notes[1] == [shown, shown]


def test_each_comparison_of_a_bound_is_escaped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checks = [slo("at-most", op="<=", bound=0.25), slo("at-least", op=">=", bound=0.5)]
    doc = scenario("ops", [arm("a", slos=checks)])
    _, outline = _page(tmp_path, monkeypatch, document([doc]))
    slos = outline.blocks[-1][1]
    assert [row[5] for row in slos[1:]] == ["&lt;= 25.00%", "&gt;= 50.00%"]


def _fault(at: float, applied_at: float, description: str) -> dict[str, Any]:
    return {"at": at, "applied_at": applied_at, "kind": "AddToxic", "proxy": "redis",
            "description": description}  # fmt: skip


@pytest.mark.parametrize(("embedded", "proxy"), [(True, "embedded"), (False, "external")])
def test_the_header_gives_the_run_and_each_harness_error_in_red(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, embedded: bool, proxy: str
) -> None:
    doc = document(
        [], exit_status=2, errors=["scenario 'x': refused", "scenario 'y': gone"], seed=11
    )
    doc["toxiproxy"]["embedded"] = embedded
    text, outline = _page(tmp_path, monkeypatch, doc)
    assert text.startswith(
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>chaos report</title>'
    )
    assert outline.head == ["html", "head", "meta", "title", "style"]
    assert ".pass { color: #1a7f1a; font-weight: bold; } .fail { color: #b00;" in text
    assert outline.blocks == [
        ("h1", "chaos report"),
        (
            "p.meta",
            "2026-11-30T08:00:00+00:00 &mdash; seed 11, scale 0.5, exit status 2; project 0.1.0, "
            f"Python 3.11.7, aiohttp 3.14.5, Toxiproxy 2.12.0 ({proxy})",
        ),
        ("p.fail", "scenario &#x27;x&#x27;: refused"),
        ("p.fail", "scenario &#x27;y&#x27;: gone"),
    ]
    assert text.endswith("</body></html>\n")


def _demo() -> dict[str, Any]:
    """A scenario of three arms: a naive arm that reproduced the incident, a guarded arm that
    failed on an untrusted measurement after two attempts, and a naive arm that never ran."""
    naive = arm(
        "naive", "naive", "reproduced",
        load=load({"ok": 3, "false_429": 5}, lag_p99=1.234),
        timeline=timeline({"ok": 3}, {"false_429": 4}, {"false_429": 1}, {}),
        faults_applied=[_fault(0.5, 0.5014, "add latency <2 s>"), _fault(1.25, 1.2516, "cut")],
        slos=[
            slo("no-false-429", value=0.625, passed=False, description="share false_429"),
            slo("p99", kind="LatencyPercentile", unit="s", value=0.0125, bound=0.5,
                description="latency p99"),
        ],
        signature=[slo("shows-429", kind="OutcomeRate", unit="req/s", value=2.5, bound=1.0,
                       op=">=", description="rate of false_429")],
        premises=[slo("busy", kind="Gauge", value=None, bound=3, op=">=", passed=False,
                      inconclusive="a gauge with gaps", description="connections in use")],
        notes=["fault took 1 ms"],
    )  # fmt: skip
    guarded = arm(
        "guarded", "guarded", "failed",
        load=load({"ok": 8}, lag_p99=0.5), trustworthy=False, error="lag too high",
        timeline=timeline({"ok": 2}, {"ok": 2}, {"ok": 2}, {"ok": 2}),
        attempts=[arm("guarded", verdict="error", error="refused"),
                  arm("guarded", verdict="failed", error="late")],
        slos=[
            slo("no-false-429", description="share false_429"),
            slo("growth", kind="LatencyGrowth", unit="x", value=2.5, bound=2.0, passed=False,
                description="p99 growth"),
        ],
    )  # fmt: skip
    idle = arm("idle", "naive", "not-reproduced", error="no proxy", notes=["gave up"])
    return scenario(
        "demo",
        [naive, guarded, idle],
        windows=[{"name": "before", "start": 0, "end": 0.5},
                 {"name": "fault", "start": 0.5, "end": 1.5}],
        breaks=["no-false-429"],
    )  # fmt: skip


DEMO = [
    ("h2", "demo"),
    ("p", "demo incident (incident <code>demo.md</code>; pattern: demo pattern)"),
    ("img", f'<img alt="timeline of demo" src="{IMG_SRC}">'),
    (
        "table",
        [
            ARMS_HEADER,
            ["naive", "naive", "[pass] reproduced", "1.23 ms", "false_429 5, ok 3", ""],
            [
                "guarded", "guarded", "[fail] failed",
                "0.50 ms <span class=fail>(not trustworthy)</span>", "ok 8",
                "lag too high<br>attempt 1: error: refused<br>attempt 2: failed: late",
            ],
            ["idle", "naive", "[fail] not-reproduced", "-", "-", "no proxy"],
        ],
    ),
    ("table", [WINDOWS_HEADER, ["before", "0 s", "0.5 s"], ["fault", "0.5 s", "1.5 s"]]),
    (
        "table",
        [
            FAULTS_HEADER,
            ["naive", "0.5 s", "0.501 s", "add latency &lt;2 s&gt;"],
            ["naive", "1.25 s", "1.252 s", "cut"],
        ],
    ),
    (
        "table",
        [
            SLOS_HEADER,
            ["naive", "hypothesis", "no-false-429 (must fail)", "share false_429", "62.50%",
             "&lt;= 0.00%", "[fail] fail"],
            ["naive", "hypothesis", "p99", "latency p99", "12.5 ms", "&lt;= 500.0 ms",
             "[pass] pass"],
            ["naive", "signature", "shows-429", "rate of false_429", "2.5/s", "&gt;= 1.0/s",
             "[pass] pass"],
            ["naive", "premise", "busy", "connections in use", "n/a", "&gt;= 3",
             "[fail] inconclusive"],
            ["guarded", "hypothesis", "no-false-429", "share false_429", "0.00%", "&lt;= 0.00%",
             "[pass] pass"],
            ["guarded", "hypothesis", "growth", "p99 growth", "2.50x", "&lt;= 2.00x",
             "[fail] fail"],
        ],
    ),
    ("table", [NOTES_HEADER, ["naive", "fault took 1 ms"], ["idle", "gave up"]]),
]  # fmt: skip


def test_a_scenario_shows_its_plot_and_every_arm_window_fault_slo_and_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, outline = _page(tmp_path, monkeypatch, document([_demo()]))
    assert outline.blocks[2:] == DEMO


def test_a_scenario_no_arm_loaded_has_no_plot_and_no_notes_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    steady = arm("steady")
    del steady["notes"]  # an optional field of the schema
    calm = scenario("calm", [steady, arm("late", "naive", "reproduced", notes=[])])
    _, outline = _page(tmp_path, monkeypatch, document([_demo(), calm]))
    assert outline.blocks[2:] == [
        *DEMO,
        ("h2", "calm"),
        ("p", "calm incident (incident <code>calm.md</code>; pattern: calm pattern)"),
        (
            "table",
            [
                ARMS_HEADER,
                ["steady", "guarded", "[pass] mitigated", "-", "-", ""],
                ["late", "naive", "[pass] reproduced", "-", "-", ""],
            ],
        ),
        ("table", [WINDOWS_HEADER]),
        ("table", [FAULTS_HEADER]),
        ("table", [SLOS_HEADER]),
    ]


def test_the_page_inlines_the_plot_as_drawn(tmp_path: Path) -> None:
    """The real plot, not a stand-in: a PNG in a data URL, the only image and the only link."""
    path = tmp_path / "report.html"
    write_html(document([_demo()]), path)
    page = path.read_text("utf-8")
    (encoded,) = re.findall(
        r'<img alt="timeline of demo" src="data:image/png;base64,([^"]+)">', page
    )
    assert base64.b64decode(encoded, validate=True).startswith(b"\x89PNG\r\n\x1a\n")
    assert page.count("<img") == 1
    assert re.findall(r"(?:src|href)=", page) == ["src="]

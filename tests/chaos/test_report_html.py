"""The HTML page of a report, drawn from small hand-built documents: its header, every table
cell (each verdict's and each result's class), every SLO value and bound, and text of any kind
escaped. The page is read back with the standard library's HTML parser."""

from __future__ import annotations

import base64
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from chaos.report import load_schema
from chaos.report._html import write_html
from tests.chaos._small_report import arm, document, load, scenario, slo

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

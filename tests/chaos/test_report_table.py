"""The terminal table of a run (``render_table``), drawn from small hand-built documents: its
columns, one row per arm, the lag and request cells, every SLO, premise, note, error and
earlier attempt of an arm, and each verdict's colour."""

from __future__ import annotations

import io
from typing import Any

import pytest
from rich.console import Console
from rich.segment import Segment
from rich.style import Style

from chaos.report import load_schema, render_table


def _slo(
    name: str, value: float, bound: float, *, passed: bool, op: str = "<=", kind: str = "Count"
) -> dict[str, Any]:
    return {
        "name": name, "kind": kind, "value": value, "op": op, "bound": bound, "unit": "",
        "passed": passed,
    }  # fmt: skip


def _arm(name: str, role: str, verdict: str, **fields: Any) -> dict[str, Any]:
    """An arm of a document, as the table reads it: no load, nothing measured, unless given."""
    arm: dict[str, Any] = {
        "name": name, "role": role, "verdict": verdict, "trustworthy": False, "load": None,
        "slos": [], "signature": [], "premises": [], "notes": [], "error": None, "attempts": [],
    }  # fmt: skip
    arm.update(fields)
    return arm


def _load(p99: float, outcomes: dict[str, int]) -> dict[str, Any]:
    return {"lag_ms": {"p99": p99}, "outcomes": outcomes}


def _document(*arms: dict[str, Any], breaks: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"scenarios": [{"name": "outage", "breaks": list(breaks), "arms": list(arms)}]}


def _text(document: dict[str, Any], width: int = 100) -> str:
    """The table as a terminal ``width`` columns wide shows it (no trailing spaces)."""
    console = Console(width=width, record=True, file=io.StringIO())
    console.print(render_table(document))
    return "".join(line.rstrip() + "\n" for line in console.export_text().splitlines())


def _segments(document: dict[str, Any]) -> list[Segment]:
    console = Console(width=160, file=io.StringIO(), color_system="truecolor", force_terminal=True)
    return list(console.render(render_table(document)))


NAIVE = _arm(
    "n", "naive", "reproduced",
    trustworthy=True,
    load=_load(1.234, {"429": 10, "ok": 90}),
    slos=[_slo("a", 10, 0, passed=False)],
    signature=[_slo("b", 10, 5, passed=True, op=">=")],
)  # fmt: skip
"""A trusted naive arm that broke the SLO it must break (``a``)."""

BROKEN = _arm("x", "guarded", "error", error="no redis")
"""An arm the harness failed before its load: no lag and no requests."""

GUARDED = _arm(
    "g", "guarded", "error",
    load=_load(12.0, {"ok": 100}),
    slos=[_slo("a", 0, 0, passed=True)],
    premises=[_slo("c", 5, 2, passed=True, op=">=")],
    notes=["opened at 3 s", "closed at 7 s"],
    error="lag 12 ms > 5 ms",
    attempts=[{"verdict": "error", "error": "one"}, {"verdict": "failed", "error": "two"}],
)  # fmt: skip
"""An untrusted guarded arm, run a third time: two earlier attempts, a premise and notes."""


def test_the_table_has_its_title_six_columns_and_a_row_per_arm_between_lines() -> None:
    assert _text(_document(NAIVE, BROKEN, breaks=("a",))) == (
        """\
                                           chaos run
┏━━━━━━━━━━┳━━━━━━━━━━━━━┳━━━━━━━━━━━━┳━━━━━━━━━┳━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┓
┃ scenario ┃ arm         ┃ verdict    ┃ lag p99 ┃ requests      ┃ SLOs (value / bound)        ┃
┡━━━━━━━━━━╇━━━━━━━━━━━━━╇━━━━━━━━━━━━╇━━━━━━━━━╇━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┩
│ outage   │ n (naive)   │ reproduced │ 1.23 ms │ ok 90, 429 10 │ FAIL a: 10 <= 0 (must fail) │
│          │             │            │         │               │ PASS b: 10 >= 5             │
├──────────┼─────────────┼────────────┼─────────┼───────────────┼─────────────────────────────┤
│ outage   │ x (guarded) │ error      │ -       │ -             │ error: no redis             │
└──────────┴─────────────┴────────────┴─────────┴───────────────┴─────────────────────────────┘
"""
    )


def test_an_arm_run_again_shows_its_attempt_premises_notes_error_and_earlier_attempts() -> None:
    assert _text(_document(GUARDED, breaks=("a",))) == (
        """\
                                             chaos run
┏━━━━━━━━━━┳━━━━━━━━━━━━━┳━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━━┓
┃ scenario ┃ arm         ┃ verdict     ┃ lag p99              ┃ requests ┃ SLOs (value / bound)    ┃
┡━━━━━━━━━━╇━━━━━━━━━━━━━╇━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━━┩
│ outage   │ g (guarded) │ error       │ 12.00 ms (untrusted) │ ok 100   │ PASS a: 0 <= 0          │
│          │             │ (attempt 3) │                      │          │ premise: PASS c: 5 >= 2 │
│          │             │             │                      │          │ note: opened at 3 s     │
│          │             │             │                      │          │ note: closed at 7 s     │
│          │             │             │                      │          │ error: lag 12 ms > 5 ms │
│          │             │             │                      │          │ attempt 1: error: one   │
│          │             │             │                      │          │ attempt 2: failed: two  │
└──────────┴─────────────┴─────────────┴──────────────────────┴──────────┴─────────────────────────┘
"""
    )


def _row(text: str, arm: str) -> list[str]:
    """The cells of the first line of ``arm``'s row (``arm`` as the arm column shows it)."""
    line = next(line for line in text.splitlines() if f"│ {arm} " in line)
    return [cell.strip() for cell in line.split("│")[1:-1]]


def test_lag_p99_is_in_milliseconds_to_two_places_and_untrusted_only_with_a_load() -> None:
    untrusted = _arm("u", "guarded", "error", load=_load(0.456, {"ok": 1}))
    trusted = _arm("t", "naive", "reproduced", trustworthy=True, load=_load(4.999, {"ok": 2}))
    text = _text(_document(untrusted, trusted, BROKEN))
    assert _row(text, "u (guarded)")[2:5] == ["error", "0.46 ms (untrusted)", "ok 1"]
    assert _row(text, "t (naive)")[2:5] == ["reproduced", "5.00 ms", "ok 2"]
    assert _row(text, "x (guarded)")[2:5] == ["error", "-", "-"]  # untrusted too, but no load


def test_an_arm_without_notes_in_its_document_shows_none() -> None:
    old = {key: value for key, value in NAIVE.items() if key != "notes"}  # before notes existed
    assert _row(_text(_document(old)), "n (naive)")[5] == "FAIL a: 10 <= 0"
    assert "note:" not in _text(_document(old))


def test_a_word_too_long_for_its_column_is_folded_onto_more_lines_never_cut() -> None:
    arm = _arm("naive", "naive", "reproduced", error="z" * 60)
    text = _text(_document(arm), width=60)
    assert text.count("z") == 60
    assert "…" not in text


def _verdict_style(document: dict[str, Any], verdict: str) -> Style | None:
    (segment,) = [s for s in _segments(document) if s.text == verdict]
    return segment.style


COLOURS = {
    "reproduced": "green",
    "mitigated": "green",
    "failed": "bold red",
    "not-reproduced": "yellow",
    "error": "bold magenta",
}


def test_every_verdict_of_the_schema_has_a_colour() -> None:
    verdicts = load_schema()["$defs"]["arm"]["properties"]["verdict"]["enum"]
    assert sorted(verdicts) == sorted(COLOURS)


@pytest.mark.parametrize(("verdict", "colour"), COLOURS.items())
def test_each_verdict_is_drawn_in_its_colour(verdict: str, colour: str) -> None:
    document = _document(_arm("arm", "guarded", verdict, error="e"))
    assert _verdict_style(document, verdict) == Style.parse(colour)


def test_the_attempt_under_a_verdict_is_not_coloured() -> None:
    segments = _segments(_document(GUARDED))
    assert _verdict_style(_document(GUARDED), "error") == Style.parse("bold magenta")
    (attempt,) = [s for s in segments if s.text == "(attempt 3)"]
    assert not attempt.style

"""Saved reports for the tests of the commands that read them (report, compare, JUnit).

``data/report-v3.json`` is a report as ``chaos run`` wrote it before ``gauge_bounds`` existed
(built from tests/chaos/test_report.py's two judged arms of the demo scenario: the naive arm
reproduced, the guarded arm mitigated): every reader must still take it.
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

import xmlschema

DATA = Path(__file__).parent / "data"
SAVED_REPORT = DATA / "report-v3.json"
JUNIT_XSD = DATA / "junit-10.xsd"


@functools.cache
def _saved() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(SAVED_REPORT.read_text("utf-8"))
    return document


def saved_report() -> dict[str, Any]:
    """A fresh copy of the saved report (change it freely)."""
    return copy.deepcopy(_saved())


@functools.cache
def junit_schema() -> xmlschema.XMLSchema:
    """Jenkins' JUnit schema (data/junit-10.xsd, its source noted there)."""
    return xmlschema.XMLSchema(str(JUNIT_XSD))


def arm_of(document: dict[str, Any], arm: str, scenario: int = 0) -> dict[str, Any]:
    """The arm called ``arm`` of the ``scenario``-th scenario of ``document``."""
    found: dict[str, Any] = next(
        a for a in document["scenarios"][scenario]["arms"] if a["name"] == arm
    )
    return found


def fail_guard(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with its guarded arm failed: SLO no-false-429 at 12% against <= 0%."""
    guarded = arm_of(document, "guarded")
    guarded["verdict"] = "failed"
    slo = next(s for s in guarded["slos"] if s["name"] == "no-false-429")
    slo["value"], slo["passed"] = 0.12, False
    return document


def write(document: dict[str, Any], path: Path) -> Path:
    path.write_text(json.dumps(document), encoding="utf-8")
    return path

"""JUnit XML of a run (``chaos run --junit FILE``): what every CI system's test report reads.

One ``<testsuite>`` per scenario, one ``<testcase>`` per arm (``classname`` ``chaos.<scenario>``,
``name`` ``<arm> (<role>)``, ``time`` its wall time):

- ``mitigated`` (a guarded arm) and ``reproduced`` (a naive arm) pass;
- ``failed``: a ``<failure type="guard-failed">`` whose message names every SLO the guarded
  arm broke, with its value and bound (``FAIL no-false-429: 12.00% <= 1.00%``);
- ``not-reproduced``: a ``<failure type="not-reproduced">`` naming each SLO the naive arm
  should have broken but kept, and each signature check it did not show;
- ``error``: an ``<error>``, never a failure: ``type="untrusted"`` when the harness could not
  trust its measurement (a busy machine), ``type="harness-error"`` when it could not run the
  arm. Neither says anything about the guard.

Every arm's SLO lines (value and bound, as the terminal table writes them) are in its
``<system-out>``. Harness errors outside any arm (the document's ``errors``, e.g. a scenario
the Toxiproxy server refused) are test cases of a suite of their own, :data:`HARNESS_SUITE`,
each an ``<error>``. The file is valid against Jenkins' JUnit schema (the tests validate it).

Text that XML 1.0 cannot carry (control characters, lone surrogates, U+FFFE/U+FFFF: a user's
scenario may name itself anything) is written as a Python escape (``\\x01``, ``\\ud800``), so
the file always parses and nothing is silently dropped.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from chaos.report._atomic import write_atomically
from chaos.report._format import must_break, slo_line

__all__ = ["HARNESS_SUITE", "junit_xml", "write_junit"]

HARNESS_SUITE = "chaos harness"
"""The test suite holding the harness errors outside any arm (one test case each)."""

_PASSED = ("mitigated", "reproduced")


def junit_xml(document: Mapping[str, Any]) -> bytes:
    """The JUnit XML (UTF-8, with its declaration) of the report ``document``."""
    errors = document["errors"]
    arms = [arm for scenario in document["scenarios"] for arm in scenario["arms"]]
    tests, failures, arm_errors = _counts(arms)
    root = ET.Element(
        "testsuites",
        name="chaos run",
        tests=str(tests + len(errors)),
        failures=str(failures),
        errors=str(arm_errors + len(errors)),
        time=_seconds(sum(arm["wall_time_s"] for arm in arms)),
    )
    root.extend(_suite(document, scenario) for scenario in document["scenarios"])
    if errors:
        root.append(_harness_suite(document, errors))
    ET.indent(root)
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return data + b"\n"


def write_junit(document: Mapping[str, Any], path: Path) -> None:
    """Write :func:`junit_xml` of ``document`` to ``path``, atomically (a CI step never reads
    half a file)."""
    write_atomically(path, junit_xml(document))


def _suite(document: Mapping[str, Any], scenario: Mapping[str, Any]) -> ET.Element:
    arms = scenario["arms"]
    tests, failures, errors = _counts(arms)
    suite = ET.Element(
        "testsuite",
        name=_text(scenario["name"]),
        tests=str(tests),
        failures=str(failures),
        errors=str(errors),
        skipped="0",
        time=_seconds(sum(arm["wall_time_s"] for arm in arms)),
        timestamp=_text(document["created"]),
    )
    properties = ET.SubElement(suite, "properties")
    for name, value in (
        ("incident", scenario["incident"]["file"]),
        ("summary", scenario["incident"]["summary"]),
        ("pattern", scenario["pattern"]),
        ("seed", document["seed"]),
        ("scale", document["scale"]),
        ("toxiproxy", document["versions"]["toxiproxy"]),
        ("project", document["versions"]["project"]),
    ):
        ET.SubElement(properties, "property", name=name, value=_text(str(value)))
    for arm in arms:
        suite.append(_case(scenario, arm))
    return suite


def _counts(arms: Sequence[Mapping[str, Any]]) -> tuple[int, int, int]:
    """Test cases, failures and errors of ``arms``."""
    errors = sum(arm["verdict"] == "error" for arm in arms)
    passed = sum(arm["verdict"] in _PASSED for arm in arms)
    return len(arms), len(arms) - passed - errors, errors


def _case(scenario: Mapping[str, Any], arm: Mapping[str, Any]) -> ET.Element:
    case = ET.Element(
        "testcase",
        classname=_text(f"chaos.{scenario['name']}"),
        name=_text(f"{arm['name']} ({arm['role']})"),
        time=_seconds(arm["wall_time_s"]),
    )
    breaks = must_break(scenario, arm)
    lines = [
        slo_line(slo, must_break=slo["name"] in breaks) for slo in (*arm["slos"], *arm["signature"])
    ]
    lines += [f"premise: {slo_line(slo)}" for slo in arm["premises"]]
    lines += [f"note: {note}" for note in arm.get("notes", ())]
    verdict = arm["verdict"]
    if verdict == "failed":
        broken = [slo_line(slo) for slo in arm["slos"] if _broken(slo)]
        _child(case, "failure", "guard-failed", "the guard failed: " + "; ".join(broken), lines)
    elif verdict == "not-reproduced":
        kept = [
            slo_line(slo, must_break=True)
            for slo in arm["slos"]
            if slo["name"] in breaks and slo["passed"] and not slo.get("inconclusive")
        ]
        kept += [f"signature {slo_line(slo)}" for slo in arm["signature"] if _broken(slo)]
        message = "the incident did not reproduce: " + "; ".join(kept)
        _child(case, "failure", "not-reproduced", message, lines)
    elif verdict == "error":
        kind = "untrusted" if arm["untrusted"] else "harness-error"
        reasons = [arm["error"]] if arm["error"] else []
        reasons += [r for r in arm["untrusted"] if r not in reasons]
        details = [
            f"attempt {number}: {attempt['verdict']}: {attempt['error']}"
            for number, attempt in enumerate(arm["attempts"], start=1)
        ]
        message = "; ".join(reasons) or "the harness could not judge this arm"
        _child(case, "error", kind, message, [*details, *lines])
    if lines:
        ET.SubElement(case, "system-out").text = _text("\n".join(lines))
    return case


def _harness_suite(document: Mapping[str, Any], errors: Sequence[str]) -> ET.Element:
    suite = ET.Element(
        "testsuite",
        name=HARNESS_SUITE,
        tests=str(len(errors)),
        failures="0",
        errors=str(len(errors)),
        skipped="0",
        time=_seconds(0.0),
        timestamp=_text(document["created"]),
    )
    for number, error in enumerate(errors, start=1):
        case = ET.SubElement(suite, "testcase", classname="chaos", name=f"harness error {number}")
        _child(case, "error", "harness-error", error, [])
    return suite


def _child(case: ET.Element, tag: str, kind: str, message: str, lines: Sequence[str]) -> None:
    element = ET.SubElement(case, tag, type=kind, message=_text(message))
    element.text = _text("\n".join([message, *lines]))


def _broken(slo: Mapping[str, Any]) -> bool:
    """Shown broken by the measurement (as :mod:`chaos.scenario._verdicts` judges)."""
    return not slo["passed"] and not slo.get("inconclusive") and not slo.get("problem")


def _seconds(value: float) -> str:
    """A duration as the schema's ``SUREFIRE_TIME`` wants it: digits, a point, no sign."""
    return f"{max(0.0, value):.3f}"


_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
"""A character XML 1.0 cannot carry, even escaped."""


def _text(value: str) -> str:
    """``value`` with every character XML cannot carry written as its Python escape."""
    return _NOT_XML.sub(lambda match: match.group().encode("unicode_escape").decode(), value)

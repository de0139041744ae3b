"""Reading a saved JSON report back (``chaos report``, ``chaos compare``): checked against the
shipped schema before anything is drawn from it, so a malformed, truncated or other-version
file gets one clear error naming the file and the field, never a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema

from chaos.report._json import SCHEMA_VERSION, load_schema

__all__ = ["ReportError", "read_report"]


class ReportError(Exception):
    """A saved report that cannot be read: the message names the file and the bad field."""


def read_report(path: Path) -> dict[str, Any]:
    """The report document saved at ``path``, checked against the schema of this version
    (:data:`~chaos.report.SCHEMA_VERSION`), scenario names unique and arm names unique in
    each scenario. Raises :class:`ReportError` otherwise."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ReportError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ReportError(f"{path} is not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    try:
        document = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise ReportError(
            f"{path} is not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    except ValueError as exc:  # NaN or Infinity, which the report never holds
        raise ReportError(f"{path} is not a report: {exc}") from None
    except RecursionError:
        raise ReportError(f"{path} is not a report: JSON nested too deeply") from None
    if not isinstance(document, dict):
        raise ReportError(f"{path} is not a report: a JSON object was expected at the top")
    version = document.get("schema_version")
    if "schema_version" in document and version != SCHEMA_VERSION:
        raise ReportError(
            f"{path} is a report of schema_version {version!r}; this chaos reads version "
            f"{SCHEMA_VERSION} (draw it with the chaos version that wrote it, or run again)"
        )
    validator = jsonschema.Draft202012Validator(load_schema())
    error = jsonschema.exceptions.best_match(validator.iter_errors(document))
    if error is not None:
        message = error.message
        if len(message) > _MAX_MESSAGE:  # the message quotes the bad value, which may be huge
            message = message[: _MAX_MESSAGE - 3] + "..."
        raise ReportError(f"{path} is not a valid report: at {error.json_path}: {message}")
    _check_unique(path, document)
    return document


_MAX_MESSAGE = 300
"""Characters of the schema's message kept in the error (it quotes the bad value)."""


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number a report holds")


def _check_unique(path: Path, document: dict[str, Any]) -> None:
    scenarios: set[str] = set()
    for index, scenario in enumerate(document["scenarios"]):
        if scenario["name"] in scenarios:
            raise ReportError(
                f"{path} is not a valid report: at $.scenarios[{index}].name: scenario "
                f"{scenario['name']!r} appears twice"
            )
        scenarios.add(scenario["name"])
        arms: set[str] = set()
        for number, arm in enumerate(scenario["arms"]):
            if arm["name"] in arms:
                raise ReportError(
                    f"{path} is not a valid report: at $.scenarios[{index}].arms[{number}].name:"
                    f" arm {arm['name']!r} appears twice in scenario {scenario['name']!r}"
                )
            arms.add(arm["name"])

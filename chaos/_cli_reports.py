"""The commands of ``chaos`` that read saved runs (see :mod:`chaos.cli`):

    chaos report REPORT.json [--html DIR] [--junit FILE]
    chaos compare OLD.json NEW.json

``report`` draws a saved JSON report (``chaos run --report DIR`` or ``--json``) again: the
terminal table on stdout, with ``--html`` the HTML page as ``DIR/report.html``, with
``--junit`` the JUnit XML; it exits 0 once drawn (the saved run's own status is printed, as
``run`` printed it).

``compare`` prints, per scenario, arm and SLO, what changed from OLD to NEW (the order of
verdicts is :mod:`chaos.report._compare`'s) and exits 1 when any verdict got worse (an arm
missing from NEW included), naming each such arm, else 0.

Both exit 2, with one line naming the file and the field, for a file that is missing, not
JSON, not a report, or a report of another ``schema_version``.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console

__all__ = [
    "EXIT_COMPARED_WORSE",
    "EXIT_READ_OK",
    "EXIT_UNREADABLE",
    "STATUS_TEXT",
    "add_report_commands",
    "console_for",
    "run_compare",
    "run_report",
]

EXIT_READ_OK = 0
"""``report`` drew the run; ``compare`` found no verdict worse."""

EXIT_COMPARED_WORSE = 1
"""``compare``: a verdict got worse from OLD to NEW (or an arm of OLD is missing from NEW)."""

EXIT_UNREADABLE = 2
"""A report could not be read (missing, not JSON, not valid), or an output not written."""

STATUS_TEXT = {  # by exit status of `chaos run`
    0: "every guard held and every incident reproduced",
    1: "a guard failed",
    2: "the harness could not run everything",
    3: "a naive arm did not reproduce its incident",
}


def add_report_commands(commands: Any) -> None:
    """Add ``report`` and ``compare`` to the ``chaos`` parser's subcommands."""
    report = commands.add_parser(
        "report", help="draw a saved JSON report again: the table, the HTML page, JUnit XML"
    )
    report.add_argument("report", type=Path, metavar="REPORT.json", help="a saved JSON report")
    report.add_argument("--html", type=Path, metavar="DIR", help="write DIR/report.html")
    report.add_argument("--junit", type=Path, metavar="FILE", help="write JUnit XML to FILE")
    compare = commands.add_parser(
        "compare", help="what changed between two saved runs; exit 1 if a verdict got worse"
    )
    compare.add_argument("old", type=Path, metavar="OLD.json", help="the earlier run (e.g. main)")
    compare.add_argument("new", type=Path, metavar="NEW.json", help="the later run (e.g. a PR)")


def run_report(args: argparse.Namespace) -> int:
    """``chaos report``: see the module docstring."""
    from chaos.report import ReportError, read_report, render_table, write_html, write_junit

    _tolerant(sys.stdout)
    try:
        document = read_report(args.report)
    except ReportError as exc:
        return _error(str(exc))
    console_for(sys.stdout).print(render_table(document))
    for error in document["errors"]:
        print(f"error: {error}")
    status = document["exit_status"]
    print(f"exit status {status}: {STATUS_TEXT[status]}")
    target: Path | None = None
    try:
        if args.html is not None:
            target = args.html / "report.html"
            args.html.mkdir(parents=True, exist_ok=True)
            write_html(document, target)
            print(f"chaos: wrote {target}", file=sys.stderr)
        if args.junit is not None:
            target = args.junit
            write_junit(document, target)
            print(f"chaos: wrote {target}", file=sys.stderr)
    except OSError as exc:
        return _error(f"cannot write {target}: {exc.strerror or exc}")
    return EXIT_READ_OK


def run_compare(args: argparse.Namespace) -> int:
    """``chaos compare``: see the module docstring."""
    from chaos.report import ReportError, compare_reports, read_report

    _tolerant(sys.stdout)
    try:
        old, new = read_report(args.old), read_report(args.new)
    except ReportError as exc:
        return _error(str(exc))
    comparison = compare_reports(old, new)
    print(f"chaos compare: OLD {args.old} -> NEW {args.new}")
    for line in comparison.lines():
        print(line)
    return EXIT_COMPARED_WORSE if comparison.worse else EXIT_READ_OK


def console_for(stream: TextIO) -> Console:
    """A ``rich`` console on ``stream``: 160 columns wide when it is not a terminal (a CI log)."""
    console = Console(file=stream)
    if not console.is_terminal:
        console = Console(file=stream, width=160)
    return console


def _error(message: str) -> int:
    print(f"chaos: error: {message}", file=sys.stderr)
    return EXIT_UNREADABLE


def _tolerant(stream: TextIO) -> None:
    """Write what the stream's encoding cannot (a lone surrogate a report's JSON may hold) as
    an escape instead of failing halfway through the output."""
    if isinstance(stream, io.TextIOWrapper):
        stream.reconfigure(errors="backslashreplace")

"""The ``chaos`` command: listing, argument errors as one line, and exit statuses."""

from __future__ import annotations

import contextlib
import errno
import http.server
import io
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaos.cli import (
    EXIT_GUARD_FAILED,
    EXIT_HARNESS_ERROR,
    EXIT_NOT_REPRODUCED,
    EXIT_OK,
    exit_status,
    main,
)
from chaos.engine import ArmResult, ScenarioResult
from chaos.scenario import Verdict
from chaos.servers import free_port
from tests.chaos.selftest_scenarios import SCENARIOS

SELFTEST = ["--scenarios-module", "tests.chaos.selftest_scenarios"]


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err
    return lines[0]


def test_list_shows_name_incident_and_pattern(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", *SELFTEST]) == EXIT_OK
    out = capsys.readouterr().out
    for scenario in SCENARIOS:
        assert scenario.name in out
    assert "selftest.txt" in out
    assert "deadline with fallback" in out


def test_list_names_prints_one_name_per_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--names", *SELFTEST]) == EXIT_OK
    assert capsys.readouterr().out.split() == [s.name for s in SCENARIOS]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["run", "nope", *SELFTEST], "unknown scenario 'nope'"),
        (["run", "selftest-deadline", "--toxiproxy", "ftp://x:1", *SELFTEST], "bad Toxiproxy URL"),
        (["run", "selftest-deadline", "--scale", "-1", *SELFTEST], "positive"),
        (["run", "selftest-deadline", "--seed", "x", *SELFTEST], "--seed"),
        (["run", "selftest-deadline", "--arms", "canary", *SELFTEST], "no arm 'canary'"),
        (["list", "--scenarios-module", "no.such.module"], "cannot import scenario module"),
        (["list", "--scenarios-module", "json"], "has no SCENARIOS"),
        (["frobnicate"], "invalid choice"),
        ([], "choose a command"),
    ],
)
def test_bad_arguments_get_one_line_and_the_harness_status(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == EXIT_HARNESS_ERROR
    line = _one_error_line(capsys)
    assert line.startswith("chaos: error: ")
    assert expected in line


@pytest.mark.real_server
def test_unreachable_toxiproxy_gets_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"127.0.0.1:{free_port()}"
    assert main(["run", "selftest-deadline", "--toxiproxy", url, *SELFTEST]) == EXIT_HARNESS_ERROR
    line = _one_error_line(capsys)
    assert "Toxiproxy" in line
    assert url in line


def test_python_dash_m_chaos_is_the_command() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "chaos", "list", "--names", *SELFTEST],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert completed.returncode == EXIT_OK, completed.stderr
    assert completed.stdout.split() == [s.name for s in SCENARIOS]


def test_toxiproxy_serve_delegates_to_the_embedded_server(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["toxiproxy", "serve", "-version"]) == 0
    assert "toxiproxy-server version" in capsys.readouterr().out


# -- exit status -------------------------------------------------------------------------------


def _result(*arms: tuple[str, Verdict]) -> ScenarioResult:
    return ScenarioResult(
        scenario=SCENARIOS[0],
        seed=1,
        scale=1.0,
        arms=[ArmResult(name=role, role=role, verdict=verdict) for role, verdict in arms],
        toxiproxy_url="http://127.0.0.1:1",
        toxiproxy_version="2.12.0",
        toxiproxy_embedded=True,
    )


@pytest.mark.parametrize(
    ("arms", "harness_errors", "status"),
    [
        ([("naive", "reproduced"), ("guarded", "mitigated")], 0, EXIT_OK),
        ([("guarded", "mitigated")], 0, EXIT_OK),
        ([("naive", "reproduced"), ("guarded", "failed")], 0, EXIT_GUARD_FAILED),
        ([("naive", "error"), ("guarded", "failed")], 0, EXIT_GUARD_FAILED),
        ([("naive", "reproduced"), ("guarded", "error")], 0, EXIT_HARNESS_ERROR),
        ([("naive", "reproduced"), ("guarded", "mitigated")], 1, EXIT_HARNESS_ERROR),
        ([("naive", "not-reproduced"), ("guarded", "error")], 0, EXIT_HARNESS_ERROR),
        ([("naive", "not-reproduced"), ("guarded", "mitigated")], 0, EXIT_NOT_REPRODUCED),
    ],
)
def test_exit_status_ranks_guard_failure_first(
    arms: list[tuple[str, Verdict]], harness_errors: int, status: int
) -> None:
    assert exit_status([_result(*arms)], harness_errors) == status


def test_progress_off_a_terminal_prints_plain_lines_with_rate_and_bad_share() -> None:
    from chaos.cli import _Progress
    from chaos.engine import ArmProgress
    from chaos.load import LoadProgress

    stream = io.StringIO()
    progress = _Progress(stream)
    progress.update(ArmProgress("demo", "guarded", "guarded", "building", 0.0, 10.0, None))
    done = LoadProgress(10.0, 10.0, 1000, 1000, {"ok": 900, "false_429": 100})
    progress.update(ArmProgress("demo", "guarded", "guarded", "done", 10.0, 10.0, done))
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("demo / guarded (guarded) building")
    assert "10.0/10.0 s" in lines[1]
    assert "100 req/s" in lines[1]
    assert "bad  10.0%" in lines[1]


def test_progress_counts_the_scenarios_ok_outcomes_as_good() -> None:
    from chaos.cli import _Progress
    from chaos.engine import ArmProgress
    from chaos.load import LoadProgress

    stream = io.StringIO()
    good = ("ok", "ok_degraded", "limited")
    done = LoadProgress(
        10.0, 10.0, 1000, 1000, {"ok": 300, "ok_degraded": 400, "limited": 200, "error": 100}
    )
    _Progress(stream).update(
        ArmProgress("demo", "guarded", "guarded", "done", 10.0, 10.0, done, good)
    )
    assert "bad  10.0%" in stream.getvalue()


_WITHOUT_RICH = """
import importlib.abc, sys

class NoRich(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "rich":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NoRich())
from chaos.__main__ import main
sys.exit(main())
"""


def test_without_the_chaos_extra_the_command_says_what_to_install() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_RICH, "list"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "chaos: error: rich is not installed; the harness needs the 'chaos' extra: "
        "pip install 'resilient-chaos[chaos]'"
    )


# -- clear errors, one line each -------------------------------------------------------------


def _serve(*flags: str) -> subprocess.CompletedProcess[str]:
    """``python -m chaos toxiproxy serve FLAGS`` as a user runs it (killed after 30 s)."""
    return subprocess.run(
        [sys.executable, "-m", "chaos", "toxiproxy", "serve", *flags],
        capture_output=True, text=True, check=False, timeout=30,
    )  # fmt: skip


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_toxiproxy_serve_with_a_port_out_of_range_is_one_line() -> None:
    done = _serve("-port", "99999")
    assert done.returncode == 2
    assert _one_line(done.stderr) == (
        "chaos toxiproxy serve: error: argument -port/--port: port must be 0-65535 "
        "(0: a free port), got 99999"
    )


@pytest.mark.real_server
def test_toxiproxy_serve_on_a_port_in_use_is_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _serve("-port", str(port))
    assert done.returncode == 1
    assert _one_line(done.stderr) == (
        f"chaos toxiproxy serve: error: cannot listen on 127.0.0.1:{port}: "
        f"{os.strerror(errno.EADDRINUSE)}"
    )


def test_toxiproxy_serve_on_a_host_that_does_not_resolve_is_one_line() -> None:
    done = _serve("-host", "no-such-host.invalid", "-port", "0")
    assert done.returncode == 1
    line = _one_line(done.stderr)
    assert line.startswith(
        "chaos toxiproxy serve: error: cannot listen on no-such-host.invalid:0: "
    )


@contextlib.contextmanager
def _web_server(status: int, body: str) -> Iterator[str]:
    """A plain HTTP server on loopback (not Toxiproxy) answering every GET with ``body``."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


_PAGE = "<!DOCTYPE html><html><head><title>404 Not Found</title></head><body>" + "x" * 5000


@pytest.mark.real_server
@pytest.mark.parametrize(
    ("status", "body", "why"),
    [
        (404, _PAGE, "GET /version answered HTTP 404 (404 Not Found xxxxx"),
        (200, _PAGE.replace("404 Not Found", "Welcome"), "GET /version answered (Welcome x"),
    ],
    ids=["404-page", "200-page"],
)
def test_toxiproxy_url_naming_a_server_that_is_not_toxiproxy_is_one_line_with_its_source(
    status: int,
    body: str,
    why: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with _web_server(status, body) as address:
        monkeypatch.setenv("TOXIPROXY_URL", address)
        assert main(["run", "selftest-deadline", *SELFTEST]) == EXIT_HARNESS_ERROR
    line = _one_error_line(capsys)
    assert line.startswith(
        f"chaos: error: the server at http://{address} (URL from $TOXIPROXY_URL) is not a "
        "Toxiproxy server: "
    )
    assert why in line
    assert len(line) < 250


def test_an_unwritable_report_directory_is_found_before_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    report = blocker / "report"
    started = time.monotonic()
    status = main(["run", "selftest-deadline", *SELFTEST, "--report", str(report)])
    assert status == EXIT_HARNESS_ERROR
    assert time.monotonic() - started < 10  # the scenario (6 s of load per arm) never ran
    line = _one_error_line(capsys)  # no progress line either: nothing started
    assert line == f"chaos: error: cannot write the report to {report}: Not a directory"


def test_all_with_another_name_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "all", "extra", *SELFTEST]) == EXIT_HARNESS_ERROR
    assert _one_error_line(capsys) == (
        "chaos: error: 'all' runs every scenario and takes no other name (got: all extra)"
    )


def test_a_scale_below_the_scenarios_smallest_is_refused_before_the_run(
    capsys: pytest.CaptureFixture[str],
) -> None:
    started = time.monotonic()
    assert main(["run", "rate-limiter-outage", "--scale", "0.25"]) == EXIT_HARNESS_ERROR
    assert time.monotonic() - started < 10  # nothing ran (an arm takes 5 s at this scale)
    assert _one_error_line(capsys) == (
        "chaos: error: scenario 'rate-limiter-outage' runs at scale 0.6 or more, not 0.25: "
        "each 0.75 s onset window (times the scale) needs 100 control requests at 225/s to "
        "estimate a p99 added latency"
    )


def test_list_shows_each_scenarios_smallest_scale(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == EXIT_OK
    assert "min scale" in capsys.readouterr().out

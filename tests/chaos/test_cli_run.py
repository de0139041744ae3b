"""``chaos run`` from its arguments to its output, on a stand-in engine: what reaches the run
(seed, scale, arms, retries, Toxiproxy URL), what is printed (the table, errors, the exit
status line, or the JSON document), which files are written, and every error's one line."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import chaos._proxy_process
import chaos.cli
import chaos.report
from chaos.cli import _Progress, main
from chaos.engine import ArmProgress, ArmResult, ScenarioResult
from chaos.load import LoadProgress
from chaos.scenario import Scenario
from chaos.toxiproxy.errors import ToxiproxyError

SELFTEST = ["--scenarios-module", "tests.chaos.selftest_scenarios"]
PASSING = {"naive": "reproduced", "guarded": "mitigated"}
STATUS_LINES = {
    0: "exit status 0: every guard held and every incident reproduced",
    1: "exit status 1: a guard failed",
    2: "exit status 2: the harness could not run everything",
    3: "exit status 3: a naive arm did not reproduce its incident",
}


@dataclass
class Engine:
    """A stand-in for the Toxiproxy server and run_scenario: records what it was given."""

    verdicts: dict[str, Mapping[str, str]] = field(default_factory=dict)
    """Verdicts by arm of each scenario (default: every arm its role's passing verdict)."""
    fails: dict[str, Exception] = field(default_factory=dict)
    """An error run_scenario raises for a scenario."""
    toxiproxy: list[tuple[str | None, int]] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    server_error: Exception | None = None
    during_run: Callable[[], Any] | None = None
    released: bool = False

    @contextlib.asynccontextmanager
    async def run_toxiproxy(self, url: str | None, *, seed: int) -> AsyncIterator[object]:
        self.toxiproxy.append((url, seed))
        if self.server_error is not None:
            raise self.server_error
        try:
            yield "control"
        finally:
            self.released = True

    async def run_scenario(
        self, scenario: Scenario, control: object, **kwargs: Any
    ) -> ScenarioResult:
        self.runs.append({"scenario": scenario.name, "control": control, **kwargs})
        kwargs["on_progress"](ArmProgress(scenario.name, "naive", "naive", "done", 2.0, 2.0, None))
        if self.during_run is not None:
            await self.during_run()
        if scenario.name in self.fails:
            raise self.fails[scenario.name]
        verdicts = self.verdicts.get(scenario.name, PASSING)
        arms = [
            ArmResult(arm.name, arm.role, verdicts.get(arm.name, PASSING[arm.role]))  # type: ignore[arg-type]
            for arm in scenario.arms
            if kwargs["arms"] is None or arm.name in kwargs["arms"]
        ]
        return ScenarioResult(
            scenario=scenario, seed=kwargs["seed"], scale=kwargs["scale"], arms=arms,
            toxiproxy_url="http://127.0.0.1:1", toxiproxy_version="2.12.0",
            toxiproxy_embedded=True,
        )  # fmt: skip


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> Engine:
    fake = Engine()
    monkeypatch.setattr(chaos._proxy_process, "run_toxiproxy", fake.run_toxiproxy)
    monkeypatch.setattr(chaos.cli, "run_scenario", fake.run_scenario)
    monkeypatch.setattr(chaos.report, "render_table", lambda document: "THE TABLE")
    return fake


def _progress_line(scenario: str) -> str:
    return f"{scenario} / naive (naive) done       2.0/2.0 s       0 req/s  bad   0.0%"


# -- what reaches the run ----------------------------------------------------------------------


def test_a_run_gets_the_default_seed_scale_retries_and_every_arm(engine: Engine) -> None:
    assert main(["run", "selftest-deadline", *SELFTEST]) == 0
    assert engine.toxiproxy == [(None, 1)]
    ((run),) = engine.runs
    assert {k: v for k, v in run.items() if k != "on_progress"} == {
        "scenario": "selftest-deadline", "control": "control", "seed": 1, "scale": 1.0,
        "arms": None, "retries": 4,
    }  # fmt: skip
    assert engine.released


def test_a_run_gets_the_options_given(engine: Engine) -> None:
    argv = ["run", "selftest-deadline", "--seed", "7", "--scale", "2.5", "--arms", "guarded",
            "--retries", "0", "--toxiproxy", "127.0.0.1:8474", *SELFTEST]  # fmt: skip
    assert main(argv) == 0
    assert engine.toxiproxy == [("127.0.0.1:8474", 7)]
    ((run),) = engine.runs
    assert (run["seed"], run["scale"], run["arms"], run["retries"]) == (7, 2.5, ["guarded"], 0)


@pytest.mark.parametrize("names", [[], ["all"]])
def test_no_name_or_all_runs_every_scenario_in_order(engine: Engine, names: list[str]) -> None:
    from tests.chaos.selftest_scenarios import SCENARIOS

    assert main(["run", *names, *SELFTEST]) in (0, 1, 3)
    assert [run["scenario"] for run in engine.runs] == [s.name for s in SCENARIOS]


def test_named_scenarios_run_in_the_order_named(engine: Engine) -> None:
    assert main(["run", "selftest-broken-guard", "selftest-deadline", *SELFTEST]) == 0
    assert [run["scenario"] for run in engine.runs] == [
        "selftest-broken-guard",
        "selftest-deadline",
    ]


# -- what is printed ---------------------------------------------------------------------------


def test_the_table_then_the_exit_status_go_to_stdout_and_progress_to_stderr(
    engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "selftest-deadline", *SELFTEST]) == 0
    captured = capsys.readouterr()
    assert captured.out == f"THE TABLE\n{STATUS_LINES[0]}\n"
    assert captured.err == _progress_line("selftest-deadline") + "\n"


@pytest.mark.parametrize(
    ("verdicts", "status"),
    [
        ({"guarded": "failed"}, 1),
        ({"naive": "error"}, 2),
        ({"naive": "not-reproduced"}, 3),
    ],
)
def test_the_exit_status_line_says_what_the_status_means(
    engine: Engine,
    capsys: pytest.CaptureFixture[str],
    verdicts: dict[str, str],
    status: int,
) -> None:
    engine.verdicts["selftest-deadline"] = verdicts
    assert main(["run", "selftest-deadline", *SELFTEST]) == status
    assert capsys.readouterr().out == f"THE TABLE\n{STATUS_LINES[status]}\n"


def test_a_scenario_toxiproxy_refused_is_an_error_line_and_the_next_one_still_runs(
    engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    engine.fails["selftest-deadline"] = ToxiproxyError(
        500, "boom", method="POST", path="/proxies", url="http://127.0.0.1:1"
    )
    argv = ["run", "selftest-deadline", "selftest-broken-guard", "--json", *SELFTEST]
    assert main(argv) == 2
    document = json.loads(capsys.readouterr().out)
    assert [s["name"] for s in document["scenarios"]] == ["selftest-broken-guard"]
    assert document["errors"] == [
        "scenario 'selftest-deadline': Toxiproxy: POST http://127.0.0.1:1/proxies -> HTTP 500: boom"
    ]
    assert main(argv[:3] + SELFTEST) == 2
    assert capsys.readouterr().out == (
        "THE TABLE\n"
        "error: scenario 'selftest-deadline': Toxiproxy: "
        "POST http://127.0.0.1:1/proxies -> HTTP 500: boom\n"
        f"{STATUS_LINES[2]}\n"
    )


def test_json_prints_the_document_indented_by_two_instead_of_the_table(
    engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["run", "selftest-deadline", "--json", "--seed", "3", "--scale", "0.5", *SELFTEST]
    assert main(argv) == 0
    out = capsys.readouterr().out
    document = json.loads(out)
    assert out == json.dumps(document, indent=2) + "\n"
    assert (document["exit_status"], document["seed"], document["scale"]) == (0, 3, 0.5)
    assert document["errors"] == []
    assert [arm["verdict"] for arm in document["scenarios"][0]["arms"]] == [
        "reproduced", "mitigated",
    ]  # fmt: skip


# -- files written -----------------------------------------------------------------------------


def test_report_writes_the_json_and_the_page_into_the_folder(
    engine: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "new" / "site"
    assert main(["run", "selftest-deadline", "--report", str(folder), *SELFTEST]) == 0
    assert sorted(p.name for p in folder.iterdir()) == ["report.html", "report.json"]
    assert json.loads((folder / "report.json").read_text())["exit_status"] == 0
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"chaos: wrote {folder / 'report.json'} and {folder / 'report.html'}"
    )


def test_junit_writes_the_file_named(
    engine: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junit = tmp_path / "out" / "junit.xml"
    assert main(["run", "selftest-deadline", "--junit", str(junit), *SELFTEST]) == 0
    assert junit.read_text().startswith("<?xml")
    assert sorted(p.name for p in junit.parent.iterdir()) == ["junit.xml"]
    assert capsys.readouterr().err.splitlines()[-1] == f"chaos: wrote {junit}"


def test_junit_naming_a_folder_is_refused_before_the_run(
    engine: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "selftest-deadline", "--junit", str(tmp_path), *SELFTEST]) == 2
    assert capsys.readouterr().err == (
        f"chaos: error: --junit takes a file, and {tmp_path} is a folder\n"
    )
    assert engine.toxiproxy == []


def test_junit_in_an_unwritable_place_is_refused_before_the_run(
    engine: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    junit = blocker / "junit.xml"
    assert main(["run", "selftest-deadline", "--junit", str(junit), *SELFTEST]) == 2
    assert capsys.readouterr().err == (
        f"chaos: error: cannot write the JUnit file to {junit}: {blocker} is a file, not a folder\n"
    )
    assert engine.toxiproxy == []


def test_a_report_folder_that_is_a_file_is_refused_before_the_run_naming_it(
    engine: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main(["run", "selftest-deadline", "--report", str(blocker), *SELFTEST]) == 2
    assert capsys.readouterr().err == (
        f"chaos: error: cannot write the report to {blocker}: {blocker} is a file, not a folder\n"
    )
    assert engine.toxiproxy == []


def test_the_writability_check_leaves_no_file_behind(engine: Engine, tmp_path: Path) -> None:
    folder = tmp_path / "site"
    assert main(["run", "selftest-deadline", "--report", str(folder), "--junit",
                 str(tmp_path / "j" / "junit.xml"), *SELFTEST]) == 0  # fmt: skip
    assert sorted(p.name for p in folder.iterdir()) == ["report.html", "report.json"]
    assert sorted(p.name for p in (tmp_path / "j").iterdir()) == ["junit.xml"]


def _fail_to_write(*args: object) -> None:
    raise OSError(28, "No space left on device")


@pytest.mark.parametrize(
    ("option", "writer", "message"),
    [
        ("--report", "write_reports", "cannot write the report"),
        ("--junit", "write_junit", "cannot write the JUnit file"),
    ],
)
@pytest.mark.parametrize(("verdicts", "status"), [({}, 2), ({"guarded": "failed"}, 1)])
def test_a_file_not_written_after_the_run_is_an_error_line_and_at_least_status_2(
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    option: str,
    writer: str,
    message: str,
    verdicts: dict[str, str],
    status: int,
) -> None:
    monkeypatch.setattr(chaos.report, writer, _fail_to_write)
    engine.verdicts["selftest-deadline"] = verdicts
    assert main(["run", "selftest-deadline", option, str(tmp_path / "x"), *SELFTEST]) == status
    captured = capsys.readouterr()
    assert captured.err.splitlines()[-1] == (
        f"chaos: error: {message}: [Errno 28] No space left on device"
    )
    assert captured.out.splitlines()[-1] == STATUS_LINES[status]


# -- errors before and around the run ----------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "line"),
    [
        (ValueError("bad Toxiproxy URL 'x'"), "bad Toxiproxy URL 'x'"),
        (
            ToxiproxyError(0, "refused", method="GET", path="/version", url="http://h:1"),
            "GET http://h:1/version -> HTTP 0: refused",
        ),
        (OSError("no ports"), "cannot start the embedded Toxiproxy: no ports"),
        (RuntimeError("it died"), "cannot start the embedded Toxiproxy: it died"),
    ],
)
def test_a_toxiproxy_server_that_cannot_be_had_is_one_line(
    engine: Engine, capsys: pytest.CaptureFixture[str], error: Exception, line: str
) -> None:
    engine.server_error = error
    assert main(["run", "selftest-deadline", *SELFTEST]) == 2
    assert capsys.readouterr() == ("", f"chaos: error: {line}\n")


@pytest.mark.parametrize(
    ("option", "value", "why"),
    [
        ("--scale", "x", "not a number: 'x'"),
        ("--scale", "0", "must be a positive number, got '0'"),
        ("--scale", "-1", "must be a positive number, got '-1'"),
        ("--scale", "inf", "must be a positive number, got 'inf'"),
        ("--scale", "nan", "must be a positive number, got 'nan'"),
        ("--retries", "x", "not a whole number: 'x'"),
        ("--retries", "1.5", "not a whole number: '1.5'"),
        ("--retries", "-1", "must be 0 or more, got '-1'"),
        ("--seed", "x", "invalid int value: 'x'"),
    ],
)
def test_a_bad_option_value_names_the_option(
    engine: Engine, capsys: pytest.CaptureFixture[str], option: str, value: str, why: str
) -> None:
    assert main(["run", "selftest-deadline", option, value, *SELFTEST]) == 2
    assert capsys.readouterr() == ("", f"chaos: error: argument {option}: {why}\n")
    assert engine.toxiproxy == []


def test_an_unknown_scenario_names_the_known_ones(
    engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.chaos.selftest_scenarios import SCENARIOS

    assert main(["run", "selftest-deadline", "nope", *SELFTEST]) == 2
    known = ", ".join(s.name for s in SCENARIOS)
    assert capsys.readouterr() == ("", f"chaos: error: unknown scenario 'nope' (known: {known})\n")
    assert engine.runs == []


def test_an_unknown_arm_names_the_scenarios_arms(
    engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "selftest-deadline", "--arms", "guarded", "canary", *SELFTEST]) == 2
    assert capsys.readouterr() == (
        "",
        "chaos: error: scenario 'selftest-deadline' has no arm 'canary' (arms: naive, guarded)\n",
    )


def test_a_bad_toxiproxy_url_is_refused_before_the_run(
    engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "selftest-deadline", "--toxiproxy", "ftp://x:1", *SELFTEST]) == 2
    assert capsys.readouterr().err.startswith("chaos: error: bad Toxiproxy URL")
    assert engine.toxiproxy == []


def _no_scenarios(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chaos.cli, "discover_scenarios", lambda modules: {})


@pytest.mark.parametrize("names", [[], ["all"]])
def test_running_all_of_no_scenario_is_one_line(
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    names: list[str],
) -> None:
    _no_scenarios(monkeypatch)
    assert main(["run", *names]) == 2
    assert capsys.readouterr() == ("", "chaos: error: no scenarios registered\n")


def test_an_unknown_scenario_among_none_says_none_are_known(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _no_scenarios(monkeypatch)
    assert main(["run", "nope"]) == 2
    assert capsys.readouterr() == ("", "chaos: error: unknown scenario 'nope' (known: none)\n")


def test_a_scenario_called_all_is_run_by_its_name_among_others(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.chaos.selftest_scenarios import SCENARIOS

    named = {"all": SCENARIOS[0], "other": SCENARIOS[1]}
    monkeypatch.setattr(chaos.cli, "discover_scenarios", lambda modules: named)
    main(["run", "other", "all"])
    assert [run["scenario"] for run in engine.runs] == [SCENARIOS[1].name, SCENARIOS[0].name]


def test_list_of_no_scenario_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _no_scenarios(monkeypatch)
    assert main(["list"]) == 0
    assert capsys.readouterr() == ("no scenarios registered\n", "")
    assert main(["list", "--names"]) == 0
    assert capsys.readouterr() == ("", "")


def test_list_draws_a_row_per_scenario(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["list", *SELFTEST]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].strip() == "chaos scenarios"
    assert [cell.strip() for cell in lines[2].split("┃")[1:-1]] == [
        "name", "incident", "pattern", "min scale",
    ]  # fmt: skip
    row = [cell.strip() for cell in lines[4].split("│")[1:-1]]
    assert row[0] == "selftest-deadline"
    assert row[1] == "selftest.txt"
    assert row[3] == "0"


# -- interrupted -------------------------------------------------------------------------------


def test_ctrl_c_is_one_line_and_status_130(
    engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    async def interrupt() -> None:
        raise KeyboardInterrupt

    engine.during_run = interrupt
    assert main(["run", "selftest-deadline", *SELFTEST]) == 130
    assert capsys.readouterr().err.splitlines()[-1] == "chaos: interrupted"
    assert engine.released


def test_sigterm_cancels_the_run_releases_it_and_is_status_143(
    engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    import asyncio

    async def terminate() -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.Event().wait()

    engine.during_run = terminate
    before = signal.getsignal(signal.SIGTERM)
    assert main(["run", "selftest-deadline", *SELFTEST]) == 143
    assert capsys.readouterr().err.splitlines()[-1] == "chaos: terminated"
    assert engine.released
    assert signal.getsignal(signal.SIGTERM) == before


def test_a_cancelled_run_without_sigterm_is_not_taken_for_terminated(
    engine: Engine,
) -> None:
    import asyncio

    async def cancel() -> None:
        raise asyncio.CancelledError

    engine.during_run = cancel
    with pytest.raises(asyncio.CancelledError):
        main(["run", "selftest-deadline", *SELFTEST])


# -- progress ----------------------------------------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _load(completed: int, outcomes: dict[str, int]) -> LoadProgress:
    return LoadProgress(10.0, 10.0, completed, completed, outcomes)


def _progress(
    phase: str, elapsed: float, load: LoadProgress | None, *, arm: str = "naive", attempt: int = 1
) -> ArmProgress:
    return ArmProgress("demo", arm, "naive", phase, elapsed, 10.0, load, ("ok",), attempt, 3)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _Clock:
    fake = _Clock()
    monkeypatch.setattr(chaos.cli.time, "monotonic", fake)
    return fake


def _lines(stream: Any) -> list[str]:
    return [line.rstrip() for line in stream.getvalue().splitlines()]


def test_progress_prints_a_plain_line_every_5_seconds_with_the_last_seconds_rate(
    clock: _Clock,
) -> None:
    import io

    stream = io.StringIO()
    progress = _Progress(stream)
    progress.update(_progress("load", 0.0, _load(0, {})))
    clock.now += 1.0
    progress.update(_progress("load", 1.0, _load(100, {"ok": 90, "error": 10})))
    clock.now += 3.9
    progress.update(_progress("load", 4.9, _load(300, {"ok": 280, "error": 20})))
    clock.now += 0.1
    progress.update(_progress("load", 5.0, _load(320, {"ok": 290, "error": 30})))
    clock.now += 0.5
    progress.update(_progress("load", 5.5, _load(400, {"ok": 380, "error": 20})))
    assert _lines(stream) == [
        "demo / naive (naive) load       0.0/10.0 s       0 req/s  bad   0.0%",
        "demo / naive (naive) load       5.0/10.0 s      51 req/s  bad   5.0%",
    ]


def test_progress_of_a_new_attempt_starts_afresh_and_names_the_attempt(clock: _Clock) -> None:
    import io

    stream = io.StringIO()
    progress = _Progress(stream)
    progress.update(_progress("load", 0.0, _load(0, {})))
    clock.now += 2.0
    progress.update(_progress("load", 2.0, _load(100, {"ok": 50, "error": 50})))
    progress.update(_progress("load", 0.0, _load(0, {}), attempt=2))
    clock.now += 1.0
    progress.update(_progress("done", 4.0, _load(200, {"ok": 150, "error": 50}), attempt=2))
    assert _lines(stream) == [
        "demo / naive (naive) load       0.0/10.0 s       0 req/s  bad   0.0%",
        "demo / naive (naive) attempt 2/3 load       0.0/10.0 s       0 req/s  bad   0.0%",
        "demo / naive (naive) attempt 2/3 done       4.0/10.0 s      50 req/s  bad  25.0%",
    ]


def test_a_final_line_over_no_time_or_no_request_has_no_rate(clock: _Clock) -> None:
    import io

    stream = io.StringIO()
    progress = _Progress(stream)
    progress.update(_progress("error", 0.0, None))
    assert _lines(stream) == [
        "demo / naive (naive) error      0.0/10.0 s       0 req/s  bad   0.0%",
    ]


def test_on_a_terminal_progress_is_one_live_line_stopped_by_finish(clock: _Clock) -> None:
    import io

    from rich.console import Console

    stream = io.StringIO()
    progress = _Progress(stream)
    progress.console = Console(file=stream, force_terminal=True, width=120)
    progress.update(_progress("load", 0.0, _load(0, {})))
    live = progress.live
    assert live is not None
    assert live.is_started
    assert not live.auto_refresh  # no refresh thread beside the service under test
    assert "demo / naive (naive) load       0.0/10.0 s" in stream.getvalue()  # drawn at once
    clock.now += 1.0
    progress.update(_progress("load", 5.0, _load(100, {"ok": 100})))
    assert progress.live is live
    assert "5.0/10.0 s     100 req/s" in stream.getvalue()  # redrawn at once
    progress.finish()
    assert progress.live is None
    assert not live.is_started
    output = stream.getvalue()
    assert "demo / naive (naive) load       5.0/10.0 s     100 req/s  bad   0.0%" in output
    progress.finish()


def test_without_arguments_main_reads_the_command_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.chaos.selftest_scenarios import SCENARIOS

    monkeypatch.setattr("sys.argv", ["chaos", "list", "--names", *SELFTEST])
    assert main() == 0
    assert capsys.readouterr().out.split() == [s.name for s in SCENARIOS]


def test_a_plain_progress_line_is_never_wrapped(clock: _Clock) -> None:
    import io

    stream = io.StringIO()
    progress = _Progress(stream)
    long = "a-scenario-whose-name-is-long-" * 4
    progress.update(ArmProgress(long, "naive", "naive", "done", 1.0, 1.0, None))
    assert _lines(stream) == [
        f"{long} / naive (naive) done       1.0/1.0 s       0 req/s  bad   0.0%"
    ]


def test_main_run_off_the_main_thread_runs_without_a_sigterm_handler(engine: Engine) -> None:
    import threading

    statuses: list[int] = []
    thread = threading.Thread(
        target=lambda: statuses.append(main(["run", "selftest-deadline", *SELFTEST]))
    )
    thread.start()
    thread.join(30)
    assert statuses == [0]
    assert [run["scenario"] for run in engine.runs] == ["selftest-deadline"]


def test_no_command_is_one_line_naming_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert capsys.readouterr() == (
        "",
        "chaos: error: choose a command: list, run, report, compare, toxiproxy serve\n",
    )


def test_the_exit_status_counts_no_harness_error_unless_told() -> None:
    from tests.chaos.selftest_scenarios import SCENARIOS

    passed = ScenarioResult(
        scenario=SCENARIOS[0], seed=1, scale=1.0,
        arms=[
            ArmResult("naive", "naive", "reproduced"),
            ArmResult("guarded", "guarded", "mitigated"),
        ],
        toxiproxy_url="http://127.0.0.1:1", toxiproxy_version=None, toxiproxy_embedded=False,
    )  # fmt: skip
    assert chaos.cli.exit_status([passed]) == 0
    assert chaos.cli.exit_status([]) == 0


# -- help --------------------------------------------------------------------------------------


def _help(argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: Any) -> str:
    monkeypatch.setenv("COLUMNS", "100")
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 0
    out: str = capsys.readouterr().out
    return out


def test_help_names_every_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _help(["--help"], monkeypatch, capsys) == (
        "usage: chaos [-h] {list,run,report,compare,toxiproxy} ...\n"
        "\n"
        "Reproduce incidents; prove the guards hold.\n"
        "\n"
        "positional arguments:\n"
        "  {list,run,report,compare,toxiproxy}\n"
        "    list                list the scenarios (name, incident, pattern, smallest --scale)\n"
        "    run                 run scenarios and judge every arm\n"
        "    report              draw a saved JSON report again: the table, the HTML page, "
        "JUnit XML\n"
        "    compare             what changed between two saved runs; exit 1 if a verdict got "
        "worse\n"
        "    toxiproxy           the embedded Toxiproxy server\n"
        "\n"
        "options:\n"
        "  -h, --help            show this help message and exit\n"
    )


def test_list_help_names_its_options(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _help(["list", "--help"], monkeypatch, capsys) == (
        "usage: chaos list [-h] [--scenarios-module M] [--names]\n"
        "\n"
        "options:\n"
        "  -h, --help            show this help message and exit\n"
        "  --scenarios-module M  load scenarios from this module instead of chaos.scenarios "
        "(repeatable)\n"
        "  --names               print the names only\n"
    )


def test_run_help_names_its_options(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _help(["run", "--help"], monkeypatch, capsys) == (
        "usage: chaos run [-h] [--toxiproxy URL] [--seed N] [--scale F] [--arms ARM [ARM ...]]\n"
        "                 [--retries N] [--report DIR] [--junit FILE] [--json] "
        "[--scenarios-module M]\n"
        "                 [NAME ...]\n"
        "\n"
        "positional arguments:\n"
        "  NAME                  scenario names, or all (default)\n"
        "\n"
        "options:\n"
        "  -h, --help            show this help message and exit\n"
        "  --toxiproxy URL       Toxiproxy server (default: embedded)\n"
        "  --seed N              seed of the load and toxics\n"
        "  --scale F             multiply every duration by F\n"
        "  --arms ARM [ARM ...]  run only these arms\n"
        "  --retries N           run an arm whose measurement is untrusted again, up to N times "
        "(default 4)\n"
        "  --report DIR          write report.json and .html\n"
        "  --junit FILE          write JUnit XML (for CI)\n"
        "  --json                print the JSON report to stdout\n"
        "  --scenarios-module M  load scenarios from this module instead of chaos.scenarios "
        "(repeatable)\n"
    )


def test_toxiproxy_help_names_serve(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _help(["toxiproxy", "--help"], monkeypatch, capsys) == (
        "usage: chaos toxiproxy [-h] {serve}\n"
        "\n"
        "positional arguments:\n"
        "  {serve}     serve: run it (flags as toxiproxy)\n"
        "\n"
        "options:\n"
        "  -h, --help  show this help message and exit\n"
    )


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["toxiproxy", "nope"], "argument action: invalid choice: 'nope' (choose from 'serve')"),
        (["toxiproxy"], "the following arguments are required: action"),
        (["run", "--json=x"], "argument --json: ignored explicit argument 'x'"),
        (["list", "--names=x"], "argument --names: ignored explicit argument 'x'"),
    ],
)
def test_a_bad_word_after_a_command_is_one_line(
    argv: list[str], line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert capsys.readouterr() == ("", f"chaos: error: {line}\n")


def test_list_folds_a_word_too_long_for_its_column_instead_of_cutting_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import dataclasses

    from tests.chaos.selftest_scenarios import SCENARIOS

    scenario = dataclasses.replace(SCENARIOS[0], pattern="Q" * 300)
    monkeypatch.setattr(chaos.cli, "discover_scenarios", lambda modules: {"x": scenario})
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert out.count("Q") == 300
    assert "…" not in out


def test_json_never_prints_a_nan_which_is_not_json(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(chaos.report, "build_report", lambda *a, **k: {"x": float("nan")})
    with pytest.raises(ValueError, match="not JSON compliant"):
        main(["run", "selftest-deadline", "--json", *SELFTEST])
    assert "NaN" not in capsys.readouterr().out


def test_an_error_prints_the_arms_final_line_at_once(clock: _Clock) -> None:
    import io

    stream = io.StringIO()
    progress = _Progress(stream)
    progress.update(_progress("load", 0.0, _load(0, {})))
    clock.now += 0.5
    progress.update(_progress("error", 2.0, _load(50, {"ok": 40, "error": 10})))
    assert _lines(stream) == [
        "demo / naive (naive) load       0.0/10.0 s       0 req/s  bad   0.0%",
        "demo / naive (naive) error      2.0/10.0 s      25 req/s  bad  20.0%",
    ]


def test_a_good_outcome_no_request_had_counts_none(clock: _Clock) -> None:
    import io

    stream = io.StringIO()
    good = ArmProgress(
        "demo", "naive", "naive", "done", 1.0, 1.0, _load(10, {"ok": 9, "error": 1}),
        ("ok", "limited", "degraded"),
    )  # fmt: skip
    _Progress(stream).update(good)
    assert _lines(stream) == [
        "demo / naive (naive) done       1.0/1.0 s      10 req/s  bad  10.0%",
    ]


def _drawn(progress: _Progress) -> tuple[Any, Any]:
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text

    assert progress.live is not None
    line = progress.live._renderable  # what update() drew (renderable wraps it in a Group)
    assert isinstance(line, Table)
    bar, text = (column._cells[0] for column in line.columns)
    assert isinstance(bar, ProgressBar)
    assert isinstance(text, Text)
    return line, bar


def test_a_terminal_line_is_a_20_wide_bar_of_elapsed_over_planned_then_the_text(
    clock: _Clock,
) -> None:
    import io

    from rich.console import Console

    stream = io.StringIO()
    progress = _Progress(stream)
    progress.console = Console(file=stream, force_terminal=True, width=120)
    progress.update(_progress("load", 2.5, _load(0, {})))
    line, bar = _drawn(progress)
    assert (bar.total, bar.completed, bar.width) == (10.0, 2.5, 20)
    assert line.padding == (0, 1, 0, 1)
    progress.update(ArmProgress("demo", "naive", "naive", "building", 0.0, 0.0, None))
    _, bar = _drawn(progress)
    assert (bar.total, bar.completed) == (1.0, 0.0)
    progress.finish()

"""The README shows real usage that runs, the way a user runs it.

Every Python block of the README (and of examples/ and docs/) is run by tests/test_docs.py: each
program in a subprocess, the pytest file by pytest itself in a fresh directory with
pytest-asyncio's default settings. Here the aiohttp service the README builds is exercised
against a real Redis, and the README's commands are accounted for. Every shell command is
either run here as written (only a fixed port is replaced by a free one), run as written by
another test (named in :data:`RUN_ELSEWHERE`), or listed in :data:`NOT_RUN` with the reason;
a new command in the README fails :func:`test_every_shell_command_is_run_or_accounted_for`
until it is one of them.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from chaos.servers import RedisServer

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
COMMANDS = [
    line.split("#", 1)[0].strip()
    for block in re.findall(r"```sh\n(.*?)```", README.read_text(), re.S)
    for line in block.splitlines()
    if line.split("#", 1)[0].strip()
]

TOXIPROXY_SERVE = "python -m chaos.toxiproxy -port 8474 -seed 1"
"""Run here, with the port replaced by 0 (a free one): a test never holds a fixed port."""

RUN_ELSEWHERE = {
    "chaos list": "tests/test_wheel.py, from the installed wheel outside the checkout",
    "chaos run rate-limiter-outage --scale 0.6 --report reports": "tests/test_wheel.py, likewise",
}
NOT_RUN = {
    "python3 dev.py chaos": "CI runs it (.ci/run); its scenario runs in tests/test_wheel.py",
    "python3 dev.py test": "the command that runs this test",
    ".venv/bin/python bench/bench_proxy.py": "a benchmark: needs the bench extra, run by hand",
    ".venv/bin/python bench/bench_ratelimit.py": "a benchmark: needs the bench extra",
    ".venv/bin/python bench/bench_load.py": "a benchmark: needs the bench extra",
    ".venv/bin/python bench/bench_import.py": "a benchmark: needs the bench extra",
    ".venv/bin/python bench/bench_release.py": "a benchmark: needs the bench extra",
    ".venv/bin/python bench/bench_pool.py": "a benchmark: needs the bench extra",
    ".venv/bin/python bench/bench_rollout.py": "a benchmark: needs the bench extra",
    ".venv/bin/python bench/bench_failover.py": "a benchmark: run by hand",
    ".venv/bin/python bench/bench_breaker.py": "a benchmark: needs the bench extra",
    ".venv/bin/python bench/bench_retry.py": "a benchmark: needs the bench extra (stamina)",
    ".venv/bin/python bench/bench_bulkhead.py": "a benchmark: needs the bench extra",
    ".venv/bin/python bench/bench_pipeline.py": "a benchmark: needs the bench extra (stamina)",
    ".venv/bin/python bench/bench_metrics.py": "a benchmark: run by hand",
    "python3 dev.py mutate resilient/ratelimit/_guard.py --tests tests/resilient/test_guard*.py": (
        "mutation testing: minutes per module, run on demand, never in CI"
    ),
    # The guide's own package (docs/writing-scenarios.md) is not installed here: its scenario is
    # run, its commands parsed, in tests/chaos/test_writing_scenarios_guide.py, and these
    # commands' behaviour is tested in tests/chaos/test_report_commands.py.
    "chaos run checkout-slow-pricing --report reports --junit reports/junit.xml": (
        "the guide's scenario, registered by its package: run in the guide's test"
    ),
    "chaos report reports/report.json --html site": "a saved run: test_report_commands.py",
    "chaos compare main/report.json reports/report.json": "two saved runs: test_report_commands.py",
}


def test_every_shell_command_is_run_or_accounted_for() -> None:
    accounted = {TOXIPROXY_SERVE, *RUN_ELSEWHERE, *NOT_RUN}
    assert [command for command in COMMANDS if command not in accounted] == []
    assert TOXIPROXY_SERVE in COMMANDS
    assert set(RUN_ELSEWHERE) <= set(COMMANDS)


def test_the_readme_has_programs_and_fragments() -> None:
    assert len([block for block in BLOCKS if "asyncio.run(main())" in block]) >= 4
    assert any("def build_app" in block for block in BLOCKS)


@pytest.mark.real_server
async def test_readme_service_limits_and_shows_the_source(redis_server: RedisServer) -> None:
    (block,) = [block for block in BLOCKS if "def build_app" in block]
    namespace: dict[str, object] = {}
    exec(compile(block, "README.md", "exec"), namespace)
    app = namespace["build_app"](redis_server.url)  # type: ignore[operator]
    async with TestClient(TestServer(app)) as client:
        first = await client.get("/", headers={"X-Api-Key": "readme-user"})
        assert first.status == 200
        assert await first.text() == "decided by primary\n"
        statuses = [
            (await client.get("/", headers={"X-Api-Key": "readme-user"})).status for _ in range(40)
        ]
        assert 429 in statuses


def _user_env() -> dict[str, str]:
    """The environment of a user's shell: no proxy chosen, no pytest options of this suite."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "TOXIPROXY_"))}
    env.pop("PYTHONPATH", None)
    return env


@pytest.mark.real_server
@pytest.mark.parametrize(
    "command",
    [TOXIPROXY_SERVE, "chaos toxiproxy serve -port 8474 -seed 1"],
    ids=["python-m", "chaos-toxiproxy-serve"],
)
def test_the_readme_toxiproxy_command_serves_and_stops_on_ctrl_c(command: str) -> None:
    args = shlex.split(command.replace("-port 8474", "-port 0"))
    if args[0] == "python":
        args[0] = sys.executable
    else:  # the console script of the installed package
        args[0] = str(Path(sys.executable).parent / args[0])
    process = subprocess.Popen(
        args, env=_user_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("toxiproxy: listening on http://127.0.0.1:"), line
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=30)

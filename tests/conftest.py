"""Suite-wide options and real-server fixtures.

``--fail-on-skip`` (set by ``python3 dev.py test`` and so by CI) turns any skipped test into a
failed run: a missing Redis or proxy must never pass quietly.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from chaos.servers import RedisServer


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fail-on-skip",
        action="store_true",
        help="fail the run when any test is skipped (CI: real-server tests must run)",
    )


def _skipped(config: pytest.Config) -> int:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    return len(reporter.stats.get("skipped", [])) if reporter is not None else 0


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    skipped = _skipped(config)
    if skipped and config.getoption("--fail-on-skip"):
        terminalreporter.write_line(
            f"--fail-on-skip: {skipped} test(s) skipped; the run fails", red=True
        )


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if session.config.getoption("--fail-on-skip") and _skipped(session.config) and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One real redis-server for the session (tests must use their own keys or FLUSHDB)."""
    with RedisServer() as server:
        yield server


@pytest.fixture
def fresh_redis_server() -> Iterator[RedisServer]:
    """A real redis-server of this test alone (free to kill and restart)."""
    with RedisServer() as server:
        yield server

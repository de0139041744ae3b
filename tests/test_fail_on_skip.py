"""``--fail-on-skip`` (what CI runs with) turns a skipped test into a failed run."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

CONFTEST = Path(__file__).resolve().parent / "conftest.py"


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST.read_text())
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(
        test_servers="""
        import pytest

        def test_runs():
            pass

        def test_needs_a_server():
            pytest.skip("no redis-server")
        """
    )
    return pytester


def test_a_skip_fails_the_run_and_says_why(suite: pytest.Pytester) -> None:
    result = suite.runpytest("--fail-on-skip", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*--fail-on-skip: 1 test(s) skipped; the run fails*"])


def test_without_the_option_a_skip_passes(suite: pytest.Pytester) -> None:
    result = suite.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=1, skipped=1)

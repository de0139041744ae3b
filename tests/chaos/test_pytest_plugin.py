"""The ``chaos`` pytest plugin, as a user's own suite sees it (run through ``pytester``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaos.servers import free_port
from chaos.toxiproxy.control import normalize_toxiproxy_url
from chaos.toxiproxy.server import BackgroundToxiproxy

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]

INI = "[pytest]\nasyncio_mode = {mode}\nasyncio_default_fixture_loop_scope = function\n"

USER_TESTS = """
import asyncio

import pytest

CREATED = []


async def _echo(reader, writer):
    while data := await reader.read(1024):
        writer.write(data)
        await writer.drain()
    writer.close()


@pytest.mark.chaos
@pytest.mark.asyncio
async def test_traffic_flows_through_a_factory_proxy(toxiproxy, toxiproxy_proxy):
    upstream = await asyncio.start_server(_echo, "127.0.0.1", 0)
    port = upstream.sockets[0].getsockname()[1]
    proxy = await toxiproxy_proxy(upstream=f"127.0.0.1:{port}")
    CREATED.append(proxy.name)
    assert proxy.name.startswith("test_traffic_flows_through_a_factory_proxy-1-")
    assert proxy.listen_host == "127.0.0.1"
    assert proxy.listen_port not in (0, port)
    await toxiproxy.add_toxic(proxy.name, "latency", attributes={"latency": 20})
    reader, writer = await asyncio.open_connection(proxy.listen_host, proxy.listen_port)
    writer.write(b"hi")
    assert await reader.readexactly(2) == b"hi"
    writer.close()
    upstream.close()


@pytest.mark.asyncio
async def test_a_failing_test_still_gets_its_proxies_removed(toxiproxy_proxy):
    proxy = await toxiproxy_proxy("127.0.0.1:1", name="user-named-proxy")
    CREATED.append(proxy.name)
    second = await toxiproxy_proxy("127.0.0.1:2")
    CREATED.append(second.name)
    raise AssertionError("this test fails on purpose")


@pytest.mark.asyncio
async def test_proxies_made_by_earlier_tests_are_gone(toxiproxy):
    assert len(CREATED) == 3
    assert not set(CREATED) & set(await toxiproxy.proxies())


@pytest.mark.asyncio
async def test_the_control_is_of_the_session_server(toxiproxy, toxiproxy_server):
    assert toxiproxy.url == toxiproxy_server.url
    assert toxiproxy.embedded == toxiproxy_server.embedded
    assert toxiproxy.server_version == toxiproxy_server.version


@pytest.mark.real_server
def test_the_session_server(toxiproxy_server):
    assert toxiproxy_server.url.startswith("http://")
    assert toxiproxy_server.version
    print("EMBEDDED", toxiproxy_server.embedded, toxiproxy_server.url)
"""


@pytest.fixture
def external() -> Iterator[BackgroundToxiproxy]:
    server = BackgroundToxiproxy()
    server.start()
    yield server
    server.stop()


def test_a_users_strict_mode_suite_passes_and_factory_proxies_are_removed(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TOXIPROXY_URL", raising=False)
    pytester.makeini(INI.format(mode="strict"))
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest("--strict-markers", "-p", "no:cacheprovider", "-s")
    result.assert_outcomes(passed=4, failed=1)
    result.stdout.fnmatch_lines(["*EMBEDDED True http://127.0.0.1:*"])
    result.stdout.fnmatch_lines(["E * this test fails on purpose"])


def test_in_auto_mode_against_toxiproxy_url_nothing_is_left_on_the_server(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, external: BackgroundToxiproxy
) -> None:
    monkeypatch.setenv("TOXIPROXY_URL", external.url)
    pytester.makeini(INI.format(mode="auto"))
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest("--strict-markers", "-p", "no:cacheprovider", "-s")
    result.assert_outcomes(passed=4, failed=1)
    result.stdout.fnmatch_lines([f"*EMBEDDED False {normalize_toxiproxy_url(external.url)}"])
    with urllib.request.urlopen(external.url.rstrip("/") + "/proxies", timeout=5) as reply:
        assert json.loads(reply.read()) == {}


def test_the_markers_are_registered(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI.format(mode="strict"))
    result = pytester.runpytest("--markers", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(
        [
            "@pytest.mark.chaos: the test injects network faults through a Toxiproxy server",
            "@pytest.mark.real_server: the test needs a real server (redis-server, the proxy) "
            "started on loopback",
        ]
    )


def test_markers_the_suite_registers_itself_are_left_as_they_are(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini(
        INI.format(mode="strict")
        + "markers =\n    chaos : our own words\n    real_server(kind): ours too\n"
    )
    result = pytester.runpytest("--markers", "-p", "no:cacheprovider")
    lines = [line for line in result.outlines if line.startswith("@pytest.mark.")]
    assert [line for line in lines if "chaos" in line] == ["@pytest.mark.chaos : our own words"]
    assert [line for line in lines if "real_server" in line] == [
        "@pytest.mark.real_server(kind): ours too"
    ]


def test_without_pytest_asyncio_an_async_fixture_fails_its_test_saying_so(
    tmp_path: Path,
) -> None:
    shadow = tmp_path / "shadow"  # first on the path: pytest_asyncio's import fails, as
    shadow.mkdir()  # when it is not installed (and its plugin is not loaded: -p no:asyncio)
    (shadow / "pytest_asyncio.py").write_text("raise ImportError('not installed')\n")
    (tmp_path / "test_user.py").write_text(
        "def test_it(toxiproxy_proxy):\n    pass\n\n\ndef test_other():\n    pass\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(shadow), str(ROOT)])}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:asyncio", "-p", "no:cacheprovider"],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert "1 passed, 1 error" in done.stdout, done.stdout + done.stderr
    assert (
        "E       Failed: the `toxiproxy_proxy` fixture needs pytest-asyncio "
        "(pip install pytest-asyncio)"
    ) in done.stdout.splitlines()


def test_an_unreachable_toxiproxy_url_fails_the_tests_with_one_clear_line(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    monkeypatch.setenv("TOXIPROXY_URL", f"127.0.0.1:{port}")
    pytester.makeini(INI.format(mode="strict"))
    pytester.makepyfile(test_user="def test_it(toxiproxy_server):\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*ToxiproxyUnavailable*http://127.0.0.1:{port}*cannot connect*"])


def test_the_plugin_does_not_import_resilient() -> None:
    code = (
        "import sys, chaos.pytest_plugin; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'resilient'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"

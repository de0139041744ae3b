"""The command-line server (flags, port line, signals), config files, the background server."""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from chaos.toxiproxy import BackgroundToxiproxy, ToxiproxyServer
from chaos.toxiproxy import __main__ as toxiproxy_main

pytestmark = pytest.mark.real_server

_PREFIX = "toxiproxy: listening on "


@contextmanager
def _server(*flags: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "chaos.toxiproxy", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith(_PREFIX), (line, process.stderr.read() if process.stderr else "")
        yield process, line[len(_PREFIX) :].strip()
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.read().decode()


@pytest.mark.parametrize(
    ("flags", "signum"),
    [
        (("-port", "0", "-seed", "1"), signal.SIGTERM),
        (("--port=0", "--host=127.0.0.1"), signal.SIGINT),
    ],
)
def test_serves_on_the_printed_port_and_exits_0_on_signal(
    flags: tuple[str, ...], signum: signal.Signals
) -> None:
    with _server(*flags) as (process, url):
        assert url.startswith("http://127.0.0.1:")
        assert _get(url + "/version") == (200, '{"version": "2.12.0"}\n')
        process.send_signal(signum)
        assert process.wait(10) == 0


def test_config_file_populates_proxies(tmp_path: Path) -> None:
    config = tmp_path / "proxies.json"
    config.write_text(
        json.dumps(
            [
                {"name": "on", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:1"},
                {
                    "name": "off",
                    "listen": "127.0.0.1:0",
                    "upstream": "127.0.0.1:2",
                    "enabled": False,
                },
            ]
        )
    )
    with _server("-port", "0", "-config", str(config)) as (process, url):
        status, body = _get(url + "/proxies")
        proxies = json.loads(body)
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
    assert status == 200
    assert sorted(proxies) == ["off", "on"]
    assert proxies["on"]["enabled"] is True
    assert not proxies["on"]["listen"].endswith(":0")  # bound
    assert proxies["off"]["enabled"] is False


def test_a_missing_config_file_is_logged_and_the_server_starts(tmp_path: Path) -> None:
    with _server("-port", "0", "-config", str(tmp_path / "absent.json")) as (process, url):
        assert _get(url + "/proxies") == (200, "{}")
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0


def test_version_flag_prints_the_toxiproxy_version() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "chaos.toxiproxy", "-version"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (completed.returncode, completed.stdout) == (0, "toxiproxy-server version 2.12.0\n")


async def test_config_loading_stops_at_the_first_failure_keeping_earlier_proxies(
    tmp_path: Path,
) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        config = tmp_path / "proxies.json"
        config.write_text(
            json.dumps(
                [
                    {"name": "first", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:1"},
                    {"name": "clash", "listen": f"127.0.0.1:{taken}", "upstream": "127.0.0.1:1"},
                    {"name": "never", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:1"},
                ]
            )
        )
        async with ToxiproxyServer(config=config) as server:
            assert list(server.collection.all()) == ["first"]


def test_background_server_serves_from_its_own_thread_and_stops() -> None:
    threads = threading.active_count()
    with BackgroundToxiproxy(seed=3) as background:
        assert _get(background.url + "/version") == (200, '{"version": "2.12.0"}\n')
        port = background.port
    assert threading.active_count() == threads
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port)):
        pass


# -- the command's flags and logging, in process ---------------------------------------------


class _Recorded:
    """Stands in for ToxiproxyServer and asyncio.run: records what main() asks for."""

    def __init__(self) -> None:
        self.servers: list[tuple[tuple[object, ...], dict[str, object]]] = []
        self.logging: dict[str, object] = {}

    def server(self, *args: object, **kwargs: object) -> str:
        self.servers.append((args, kwargs))
        return "server"

    def run(self, coroutine: Coroutine[object, object, None]) -> None:
        coroutine.close()

    def basic_config(self, **kwargs: object) -> None:
        self.logging = kwargs


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> _Recorded:
    record = _Recorded()
    monkeypatch.setattr(toxiproxy_main, "ToxiproxyServer", record.server)
    monkeypatch.setattr(asyncio, "run", record.run)  # as main() sees them (a sync test: no loop)
    monkeypatch.setattr(logging, "basicConfig", record.basic_config)
    monkeypatch.delenv("LOG_LEVEL", raising=False)
    return record


def test_the_defaults_are_loopback_port_8474_no_seed_no_config(recorded: _Recorded) -> None:
    assert toxiproxy_main.main([]) == 0
    assert recorded.servers == [(("127.0.0.1", 8474), {"seed": None, "config": None})]
    assert recorded.logging == {
        "level": logging.WARNING,
        "stream": sys.stderr,
        "format": "%(asctime)s %(levelname)s %(name)s: %(message)s",
    }


@pytest.mark.parametrize(
    "argv",
    [
        ["-host", "0.0.0.0", "-port", "0", "-seed", "7", "-config", "c.json"],
        ["--host=0.0.0.0", "--port=0", "--seed=7", "--config=c.json"],
    ],
)
def test_the_flags_reach_the_server(recorded: _Recorded, argv: list[str]) -> None:
    assert toxiproxy_main.main(argv) == 0
    assert recorded.servers == [(("0.0.0.0", 0), {"seed": 7, "config": "c.json"})]


@pytest.mark.parametrize(
    ("value", "level"),
    [
        ("panic", logging.CRITICAL),
        ("fatal", logging.CRITICAL),
        ("error", logging.ERROR),
        ("warn", logging.WARNING),
        ("warning", logging.WARNING),
        ("info", logging.INFO),
        ("debug", logging.DEBUG),
        ("trace", logging.DEBUG),
        (" Info ", logging.INFO),
        ("loud", logging.WARNING),
    ],
)
def test_log_level_is_read_as_toxiproxy_reads_it(
    recorded: _Recorded, monkeypatch: pytest.MonkeyPatch, value: str, level: int
) -> None:
    monkeypatch.setenv("LOG_LEVEL", value)
    toxiproxy_main.main([])
    assert recorded.logging["level"] == level


def test_the_version_flag_starts_nothing(
    recorded: _Recorded, capsys: pytest.CaptureFixture[str]
) -> None:
    assert toxiproxy_main.main(["-version"]) == 0
    assert capsys.readouterr().out == "toxiproxy-server version 2.12.0\n"
    assert (recorded.servers, recorded.logging) == ([], {})


def test_the_help_names_the_command_and_each_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        toxiproxy_main.main(["-h"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m chaos.toxiproxy ")
    assert "\nToxiproxy-compatible server\n" in out
    shown = {line.split("  ")[-1].strip() for line in out.splitlines()}
    for text in (
        "API interface",
        "API port (0: free port)",
        "JSON file of proxies",
        "seed for toxics",
        "print the version",
    ):
        assert text in shown, out


# -- bad flags and addresses: one line on stderr, Go's exit statuses --------------------------


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("-port=99999", "port must be 0-65535 (0: a free port), got 99999"),
        ("-port=65536", "port must be 0-65535 (0: a free port), got 65536"),
        ("-port=-1", "port must be 0-65535 (0: a free port), got -1"),
        ("-port=http", "not a port number: 'http'"),
    ],
)
def test_a_bad_port_is_one_line_and_exit_status_2(
    recorded: _Recorded, capsys: pytest.CaptureFixture[str], flag: str, message: str
) -> None:
    assert toxiproxy_main.main([flag], prog="serve") == 2
    assert capsys.readouterr().err == f"serve: error: argument -port/--port: {message}\n"
    assert recorded.servers == []


@pytest.mark.parametrize("port", [0, 65535])
def test_the_ports_at_either_end_are_taken(recorded: _Recorded, port: int) -> None:
    assert toxiproxy_main.main(["-port", str(port)]) == 0
    assert recorded.servers == [(("127.0.0.1", port), {"seed": None, "config": None})]


def test_a_port_in_use_is_one_line_and_exit_status_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(logging, "basicConfig", lambda **kwargs: None)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert toxiproxy_main.main(["-port", str(port)], prog="serve") == 1
    assert capsys.readouterr() == (
        "",
        f"serve: error: cannot listen on 127.0.0.1:{port}: {os.strerror(errno.EADDRINUSE)}\n",
    )


def test_a_host_that_does_not_resolve_is_one_line_in_the_resolvers_words(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(logging, "basicConfig", lambda **kwargs: None)
    with pytest.raises(socket.gaierror) as unresolved:
        socket.getaddrinfo("no-such-host.invalid", None, type=socket.SOCK_STREAM)
    status = toxiproxy_main.main(["-host", "no-such-host.invalid", "-port", "7"], prog="serve")
    assert status == 1
    assert capsys.readouterr().err == (
        f"serve: error: cannot listen on no-such-host.invalid:7: {unresolved.value.strerror}\n"
    )


def test_the_port_line_is_flushed_at_once_when_stdout_is_a_pipe() -> None:
    """A parent reads the port from the first line while the server runs: it must not wait in
    the buffer of a pipe (as it would without ``PYTHONUNBUFFERED``, which users rarely set)."""
    env = {name: value for name, value in os.environ.items() if name != "PYTHONUNBUFFERED"}
    process = subprocess.Popen(
        [sys.executable, "-m", "chaos.toxiproxy", "-port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        assert process.stdout is not None
        readable, _, _ = select.select([process.stdout], [], [], 30)
        assert readable, "no line within 30 s"
        line = process.stdout.readline().decode()
        assert line.startswith(_PREFIX)
        assert process.poll() is None  # it came while the server runs, not at its exit
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        if process.stdout is not None:
            process.stdout.close()

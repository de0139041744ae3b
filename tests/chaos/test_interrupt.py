"""An interrupted run leaves no process and no port behind, whenever the signal comes.

Each test runs the code in a subprocess started in a fresh directory (which marks every process
of its tree, see :mod:`tests.chaos._processes`), sends SIGINT (or SIGTERM) at offsets spread
over the start-up, and checks, as soon as the subprocess has exited, that no process of its
tree is alive and that every port it was seen listening on is free again. Every wait is bounded.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.chaos._processes import listening_ports, marked_processes, port_is_free

pytestmark = [pytest.mark.real_server, pytest.mark.timeout(240)]

_REDIS_SCRIPT = """
import asyncio
import chaos.servers as servers

_free_port = servers.free_port


def announced_free_port(host="127.0.0.1"):
    port = _free_port(host)
    print(port, flush=True)  # the server is spawned right after: the start-up begins here
    return port


servers.free_port = announced_free_port


async def main():
    async with servers.redis_server():
        print("ready", flush=True)
        await asyncio.sleep(60)


asyncio.run(main())
"""


def _sigint_as_at_a_terminal() -> None:
    """In the child: SIGINT handled by default, as when a user runs the command at a terminal.

    A shell starts a background job (``cmd &``) with SIGINT ignored, and a child keeps an
    ignored signal ignored across exec; Python then installs no handler at all. A test suite
    run in the background would otherwise test a ``chaos run`` that cannot be interrupted.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _env(work: Path) -> dict[str, str]:
    env = {**os.environ, "TMPDIR": str(work)}  # redis-server's --dir goes under it
    env.pop("TOXIPROXY_URL", None)
    return env


def _redis_start(work: Path, offset: float | None) -> tuple[int, bool]:
    """Run ``redis_server()`` in a subprocess; SIGINT ``offset`` s after the start-up began
    (None: once it is ready). Returns the server's port and whether it was ready before."""
    work.mkdir()
    process = subprocess.Popen(
        [sys.executable, "-c", _REDIS_SCRIPT],
        cwd=work, env=_env(work), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_sigint_as_at_a_terminal,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        if offset is None:
            assert process.stdout.readline() == "ready\n"
        else:
            time.sleep(offset)
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return port, offset is None or "ready" in out


def _startup_seconds(work: Path) -> float:
    """How long ``redis_server()`` takes to start here, now (from the port to "ready")."""
    work.mkdir()
    process = subprocess.Popen(
        [sys.executable, "-c", _REDIS_SCRIPT],
        cwd=work, env=_env(work), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_sigint_as_at_a_terminal,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        process.stdout.readline()
        began = time.monotonic()
        assert process.stdout.readline() == "ready\n"
        return time.monotonic() - began
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)


def test_redis_server_interrupted_anywhere_in_its_start_leaves_nothing(tmp_path: Path) -> None:
    startup = _startup_seconds(tmp_path / "measure")
    offsets = [startup * 1.5 * i / 15 for i in range(16)]  # 0 to 1.5x the start-up, 16 steps
    interrupted_before_ready = 0
    for i, offset in enumerate([*offsets, None]):
        work = tmp_path / f"try-{i}"
        port, ready = _redis_start(work, offset)
        interrupted_before_ready += not ready
        left = marked_processes(work)
        if left:
            for pid in left:
                os.kill(pid, signal.SIGKILL)
        assert left == {}, f"SIGINT {offset} s into the start left {left}"
        assert port_is_free(port), f"SIGINT {offset} s into the start left port {port} held"
    assert interrupted_before_ready >= 3, "no SIGINT came during the start-up"


# -- chaos run ---------------------------------------------------------------------------------

_RUN = ("-m", "chaos", "run", "rate-limiter-outage")
_SETTLE = 60.0
"""Seconds a run may take to reach its anchor, and then to exit once signalled."""


def _interrupt_run(
    work: Path, anchor: str, offset: float, signum: int = signal.SIGINT
) -> tuple[int, str, set[int], dict[int, str]]:
    """Run ``chaos run`` in ``work``; send ``signum`` ``offset`` s after a process whose command
    line holds ``anchor`` joins its tree. Returns the exit status, stderr, every port the tree
    was seen listening on, and the processes of the tree alive after its exit.

    The tree is polled every millisecond for the anchor; its listening ports (a slower read)
    are collected by a thread beside it until the signal is sent.
    """
    work.mkdir()
    stderr = work / "stderr.txt"
    with stderr.open("w") as err:
        process = subprocess.Popen(
            [sys.executable, *_RUN], cwd=work, env=_env(work), stdout=subprocess.DEVNULL,
            stderr=err, preexec_fn=_sigint_as_at_a_terminal,
        )  # fmt: skip
    ports: set[int] = set()
    signalled = threading.Event()

    def collect_ports() -> None:
        while not signalled.wait(0.02):
            ports.update(listening_ports(set(marked_processes(work))))

    collector = threading.Thread(target=collect_ports, daemon=True)
    collector.start()
    try:
        began = time.monotonic()
        anchored = None
        while process.poll() is None and time.monotonic() - began < _SETTLE:
            now = time.monotonic()
            if anchored is None and any(anchor in c for c in marked_processes(work).values()):
                anchored = now
            if anchored is not None and now >= anchored + offset:
                process.send_signal(signum)
                break
            time.sleep(0.0005)
        else:
            raise AssertionError(f"no {anchor!r} within {_SETTLE} s, or the run ended first")
        signalled.set()
        collector.join(timeout=_SETTLE)
        process.wait(timeout=_SETTLE)
    finally:
        signalled.set()
        if process.poll() is None:
            process.kill()
            process.wait()
    left = marked_processes(work)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    return process.returncode, stderr.read_text(), ports, left


_OFFSETS: Sequence[tuple[str, float]] = (
    ("chaos.toxiproxy", 0.0),  # the embedded Toxiproxy spawned, not yet listening
    ("chaos.toxiproxy", 0.2),
    ("redis-server", 0.0),  # redis-server spawned, not yet answering
    ("redis-server", 0.002),
    ("redis-server", 0.005),
    ("redis-server", 0.010),
    ("redis-server", 0.050),  # proxies, the service
    ("chaos.load._child", 0.0),  # the load process spawned, not yet ready
    ("chaos.load._child", 1.0),  # the load running
)


@pytest.mark.chaos
@pytest.mark.parametrize(("anchor", "offset"), _OFFSETS)
def test_chaos_run_interrupted_leaves_no_process_and_no_port(
    tmp_path: Path, anchor: str, offset: float
) -> None:
    status, err, ports, left = _interrupt_run(tmp_path / "run", anchor, offset)
    assert left == {}, f"SIGINT {offset} s after {anchor} left {left}\n{err}"
    assert [port for port in ports if not port_is_free(port)] == []
    assert status == 130, err
    assert err.strip().splitlines()[-1] == "chaos: interrupted", err
    assert "Traceback" not in err, err


@pytest.mark.chaos
def test_chaos_run_terminated_leaves_no_process_and_no_port(tmp_path: Path) -> None:
    status, err, ports, left = _interrupt_run(tmp_path / "run", "redis-server", 0.2, signal.SIGTERM)
    assert left == {}, f"SIGTERM left {left}\n{err}"
    assert [port for port in ports if not port_is_free(port)] == []
    assert status == 143, err
    assert err.strip().splitlines()[-1] == "chaos: terminated", err
    assert "Traceback" not in err, err

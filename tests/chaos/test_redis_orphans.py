"""A ``redis-server`` dies with the process that started it, even one SIGKILLed (a test run's
timeout), when no ``stop`` can run; started from a thread that then ends, it lives on.

Each test runs a Python process that starts a :class:`chaos.servers.RedisServer` and prints
its pid, SIGKILLs that process, and polls (bounded) until the server is gone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.real_server, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[2]

IN_MAIN_THREAD = """
import sys
from chaos.servers import RedisServer

server = RedisServer()
server.start()
print(server._process.pid, flush=True)
sys.stdin.read()
"""

IN_A_THREAD_THAT_ENDS = """
import asyncio, sys, threading
from chaos.servers import RedisServer

server = RedisServer()
thread = threading.Thread(target=server.start)
thread.start()
thread.join()
asyncio.run(asyncio.to_thread(server.kill))  # a restart from asyncio's worker threads
asyncio.run(asyncio.to_thread(server.start))  # (which end with their loop)
assert server.running and server._pings()
print(server._process.pid, flush=True)
sys.stdin.read()
"""


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie, dead but not yet reaped, is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _start(script: str) -> tuple[subprocess.Popen[str], int]:
    """The Python process running ``script``, and the pid of the server it started."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-c", script],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT,
    )  # fmt: skip
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.strip().isdigit(), f"the script printed {line!r}"
    return process, int(line)


@pytest.mark.parametrize("script", [IN_MAIN_THREAD, IN_A_THREAD_THAT_ENDS], ids=["main", "thread"])
def test_the_server_dies_with_a_sigkilled_process_that_started_it(script: str) -> None:
    process, server = _start(script)
    try:
        assert _alive(server)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        assert _gone_within(server, 10.0), f"redis-server {server} outlived its parent"
    finally:
        _leave_nothing(process, server)


def test_a_server_started_from_a_thread_that_ended_lives_until_its_process_ends() -> None:
    process, server = _start(IN_A_THREAD_THAT_ENDS)
    try:
        assert _alive(server)  # the script checked it answers PING after its threads ended
        assert process.stdin is not None
        process.stdin.close()  # the script ends (never stopping its server)
        process.wait(timeout=30)
        assert _gone_within(server, 10.0), f"redis-server {server} outlived its parent"
    finally:
        _leave_nothing(process, server)


def _leave_nothing(process: subprocess.Popen[str], server: int) -> None:
    if process.poll() is None:
        process.kill()
        process.wait()
    if _alive(server):
        os.kill(server, signal.SIGKILL)

"""The embedded server's life beyond one start and stop (``chaos.toxiproxy.server``): a
background server's loop (asyncio's, or uvloop's when asked), its daemon thread, starting again
after a stop, what is left on its loop when it stops; which address a host name binds.
``test_server.py`` has the first start and stop.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import threading
import urllib.request

import pytest
import uvloop

from chaos.toxiproxy import server as server_module
from chaos.toxiproxy.server import BackgroundToxiproxy

from ._process import server_process

NOFILE = 160
"""The server's open-file limit where it runs out of descriptors (as test_fd_exhaustion's)."""

pytestmark = pytest.mark.real_server


def _version(url: str) -> str:
    with urllib.request.urlopen(url + "/version", timeout=5) as response:
        return str(response.read().decode())


def _new_thread(name: str, before: set[threading.Thread]) -> threading.Thread:
    """The one thread called ``name`` started since ``before`` (the session's own embedded
    server, of the chaos plugin's ``toxiproxy_server`` fixture, may run another)."""
    (found,) = [t for t in threading.enumerate() if t.name == name and t not in before]
    return found


def test_a_background_server_runs_asyncios_loop_on_a_daemon_thread() -> None:
    before = set(threading.enumerate())
    with BackgroundToxiproxy() as background:
        assert isinstance(background.loop, asyncio.SelectorEventLoop)
        assert not isinstance(background.loop, uvloop.Loop)
        # a program that forgets stop() still exits
        assert _new_thread("toxiproxy", before).daemon
        assert _version(background.url) == '{"version": "2.12.0"}\n'


def test_a_background_server_runs_uvloop_when_asked() -> None:
    with BackgroundToxiproxy(use_uvloop=True) as background:
        assert isinstance(background.loop, uvloop.Loop)
        assert _version(background.url) == '{"version": "2.12.0"}\n'


def test_a_background_server_starts_again_after_it_stopped() -> None:
    background = BackgroundToxiproxy()
    background.start()
    first = background.port
    background.stop()
    background.start()  # a fresh loop and thread; the server binds a free port again
    try:
        assert background.loop.is_running()
        assert _version(background.url) == '{"version": "2.12.0"}\n'
        assert background.port != 0
    finally:
        background.stop()
    assert first != 0


def test_tasks_left_on_the_background_loop_are_cancelled_when_it_stops() -> None:
    background = BackgroundToxiproxy()
    background.start()
    left = asyncio.run_coroutine_threadsafe(asyncio.sleep(3600), background.loop)
    background.stop()  # neither waits an hour nor raises the cancellation
    assert left.cancelled()


def test_a_start_that_cannot_make_its_thread_leaves_nothing_behind(
    monkeypatch: pytest.MonkeyPatch, recwarn: pytest.WarningsRecorder
) -> None:
    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    background = BackgroundToxiproxy()
    with monkeypatch.context() as patch:
        patch.setattr(threading.Thread, "start", refuse)
        with pytest.raises(RuntimeError, match=r"^can't start new thread$"):
            background.start()
    with pytest.raises(RuntimeError, match=r"^BackgroundToxiproxy is not started$"):
        _ = background.loop
    background.stop()  # nothing to stop
    gc.collect()
    assert [w for w in recwarn if "unclosed event loop" in str(w.message)] == []
    with background:  # and it can start once threads can
        assert _version(background.url) == '{"version": "2.12.0"}\n'


async def test_a_name_with_ipv6_and_ipv4_addresses_binds_its_ipv4_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Whatever order the resolver gives them in (it often puts IPv6 first)."""
    asked: list[tuple[object, ...]] = []

    async def getaddrinfo(*args: object, **kwargs: object) -> list[tuple[object, ...]]:
        asked.append((*args, kwargs))
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", 0, 0, 0)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.2", 0)),
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::2", 0, 0, 0)),
        ]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", getaddrinfo)
    assert await server_module._resolve("dual.example") == "127.0.0.2"
    assert asked == [("dual.example", None, {"type": socket.SOCK_STREAM})]


async def test_only_brackets_are_taken_off_an_address() -> None:
    assert await server_module._resolve("[127.0.0.1]") == "127.0.0.1"
    with pytest.raises(socket.gaierror):  # a name (that resolves nowhere), not 127.0.0.1
        await server_module._resolve("X127.0.0.1X")


async def test_out_of_descriptors_the_api_pauses_accepting_and_sheds_no_connection() -> None:
    """Held API connections exhaust the server's descriptors: the API says so once, under its
    name, and pauses accepting; unlike a proxy it closes none of the connections waiting for it
    (each is a request to answer once descriptors are free)."""
    async with server_process(nofile=NOFILE) as server:
        host, port = server.url.removeprefix("http://").rsplit(":", 1)
        held: list[socket.socket] = []
        try:
            for _ in range(NOFILE + 40):  # more than the server can hold, the rest wait
                held.append(socket.create_connection((host, int(port)), timeout=5))
            for _ in range(200):
                if "API: too many open files;" in server.log_text():
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.3)  # long enough for a few pauses of 5 ms doubling
            closed = [sock for sock in held if _closed_by_peer(sock)]
            log = server.log_text()
        finally:
            for sock in held:
                sock.close()
    warnings = [line for line in log.splitlines() if "too many open files" in line]
    assert len(warnings) == 1, log
    message = warnings[0].split(" chaos.toxiproxy: ", 1)[1]
    assert message.startswith("API: too many open files; accepting with a pause of 5 ms")
    assert closed == []


def _closed_by_peer(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except ConnectionError:
        return True

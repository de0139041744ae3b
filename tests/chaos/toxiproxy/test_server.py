"""The embedded server's own API (``chaos.toxiproxy.server``): start, stop, config, threads.

``test_api.py`` checks what the server answers; here: its URL and addresses, starting twice,
binding failures, what loading a config file logs, stopping (idempotent, and everything closed),
and :class:`BackgroundToxiproxy`'s thread and loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from chaos.toxiproxy import server as server_module
from chaos.toxiproxy.server import DEFAULT_HOST, BackgroundToxiproxy, ToxiproxyServer

pytestmark = pytest.mark.real_server


def _version(url: str) -> str:
    with urllib.request.urlopen(url + "/version", timeout=5) as response:
        return str(response.read().decode())


def _refused(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return False
    except ConnectionRefusedError:
        return True


def test_the_defaults_are_loopback_a_free_port_and_toxiproxys_timeouts() -> None:
    server = ToxiproxyServer()
    assert DEFAULT_HOST == "127.0.0.1"
    assert (server.host, server.port, server.seed, server.config) == ("127.0.0.1", 0, None, None)
    assert (server.read_timeout, server.idle_timeout) == (15.0, 60.0)
    assert server.url == "http://127.0.0.1:0"


def test_the_url_brackets_an_ipv6_host_and_the_config_is_a_path() -> None:
    server = ToxiproxyServer("::1", 8474, seed=3, config="proxies.json", read_timeout=2.5)
    assert server.url == "http://[::1]:8474"
    assert (server.seed, server.config, server.read_timeout) == (3, Path("proxies.json"), 2.5)


async def test_start_binds_the_api_and_stop_closes_it(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "chaos.toxiproxy")
    server = ToxiproxyServer()
    await server.start()
    try:
        assert server.port != 0
        assert server.url == f"http://127.0.0.1:{server.port}"
        assert await asyncio.to_thread(_version, server.url) == '{"version": "2.12.0"}\n'
        assert caplog.messages == [f"API listening on {server.url}"]
        with pytest.raises(RuntimeError, match=r"^ToxiproxyServer is already started$"):
            await server.start()
    finally:
        await server.stop()
    assert await asyncio.to_thread(_refused, server.port)
    assert server.collection.guard.spares == 0
    await server.stop()  # idempotent


async def test_stop_closes_every_proxy_and_connection(echo_address: str) -> None:
    async with ToxiproxyServer() as server:
        body = json.dumps({"name": "p", "listen": "127.0.0.1:0", "upstream": echo_address})
        proxy = await server.collection.create(body.encode())
        reader, writer = await asyncio.open_connection("127.0.0.1", int(proxy.listen[10:]))
        writer.write(b"ping")
        assert await asyncio.wait_for(reader.readexactly(4), 5) == b"ping"
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the server's stop
    writer.close()
    assert proxy.enabled is False
    assert proxy.connection_count == 0


@pytest.fixture
async def echo_address() -> AsyncIterator[str]:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    server.close()
    await server.wait_closed()


async def test_a_host_name_is_resolved_preferring_ipv4() -> None:
    async with ToxiproxyServer("localhost") as server:
        assert server.url == f"http://localhost:{server.port}"
        assert server._acceptor is not None
        assert server._acceptor.address == ("127.0.0.1", server.port)


async def test_an_address_in_use_is_an_os_error_and_nothing_is_left_running() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        server = ToxiproxyServer(port=port)
        with pytest.raises(OSError, match=r"Address already in use") as caught:
            await server.start()
        assert caught.value.filename == "bind"
    assert server._runner is None
    await server.start()  # the failed start left nothing behind: it can start again
    await server.stop()


async def test_a_config_file_is_populated_at_start_and_its_count_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "chaos.toxiproxy")
    config = tmp_path / "proxies.json"
    config.write_text(
        json.dumps(
            [
                {"name": "a", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:1"},
                {"name": "b", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:2", "enabled": False},
            ]
        )
    )
    async with ToxiproxyServer(config=str(config)) as server:
        assert list(server.collection.all()) == ["a", "b"]
    assert f"config {config}: 2 proxies" in caplog.messages


async def test_a_missing_config_file_is_logged_and_the_server_serves(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = tmp_path / "absent.json"
    async with ToxiproxyServer(config=missing) as server:
        assert server.collection.all() == {}
        assert await asyncio.to_thread(_version, server.url) == '{"version": "2.12.0"}\n'
    errors = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert [record.getMessage() for record in errors] == [
        f"config {missing} not loaded: [Errno 2] No such file or directory: '{missing}'"
    ]


async def test_a_bad_config_file_is_logged_with_the_apis_message(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = tmp_path / "bad.json"
    config.write_text('[{"name": "a"}]')
    async with ToxiproxyServer(config=config) as server:
        assert server.collection.all() == {}
    errors = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert [record.getMessage() for record in errors] == [
        f"config {config}: missing required field: upstream at proxy 1"
    ]


def test_a_background_server_runs_on_its_own_thread_and_loop() -> None:
    background = BackgroundToxiproxy(seed=5)
    assert (background.host, background.port) == ("127.0.0.1", 0)
    assert background.server.seed == 5
    with pytest.raises(RuntimeError, match=r"^BackgroundToxiproxy is not started$"):
        _ = background.loop
    threads = threading.active_count()
    background.start()
    try:
        assert background.port != 0
        assert background.url == f"http://127.0.0.1:{background.port}"
        assert _version(background.url) == '{"version": "2.12.0"}\n'
        assert background.loop.is_running()
        assert threading.active_count() == threads + 1
        assert any(thread.name == "toxiproxy" for thread in threading.enumerate())
        with pytest.raises(RuntimeError, match=r"^BackgroundToxiproxy is already started$"):
            background.start()
    finally:
        loop = background.loop
        background.stop()
    assert loop.is_closed()
    assert threading.active_count() == threads
    assert _refused(background.port)
    background.stop()  # idempotent
    with pytest.raises(RuntimeError, match=r"^BackgroundToxiproxy is not started$"):
        _ = background.loop


def test_a_background_server_that_cannot_start_raises_and_leaves_no_thread() -> None:
    threads = threading.active_count()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        background = BackgroundToxiproxy(port=holder.getsockname()[1])
        with pytest.raises(OSError, match=r"^\[Errno 98\] Address already in use: 'bind'$"):
            background.start()
    assert threading.active_count() == threads
    with pytest.raises(RuntimeError, match=r"^BackgroundToxiproxy is not started$"):
        _ = background.loop
    background.stop()  # nothing to stop


def test_a_background_server_with_its_config(tmp_path: Path) -> None:
    config = tmp_path / "one.json"
    config.write_text('[{"name": "one", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:1"}]')
    with (
        BackgroundToxiproxy(config=config) as background,
        urllib.request.urlopen(background.url + "/proxies", timeout=5) as response,
    ):
        assert list(json.loads(response.read())) == ["one"]


async def test_resolve_takes_ip_addresses_as_they_are_and_refuses_unknown_names() -> None:
    assert await server_module._resolve("127.0.0.1") == "127.0.0.1"
    assert await server_module._resolve("[::1]") == "::1"
    assert await server_module._resolve("::1") == "::1"
    with pytest.raises(socket.gaierror):
        await server_module._resolve("nosuchhost.invalid")

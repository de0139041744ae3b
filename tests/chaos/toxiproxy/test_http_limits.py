"""The API's connections have Go's timeouts, and a client's disconnect is not an error (point 12).

Toxiproxy's server gives a request 15 s to arrive (headers and body, from its first byte) and a
keep-alive connection 60 s between requests; the tests shorten both through
``ToxiproxyServer(read_timeout=..., idle_timeout=...)`` and check the defaults separately.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest

from chaos.toxiproxy import ToxiproxyServer
from tests.chaos.toxiproxy._process import server_process

pytestmark = pytest.mark.real_server

READ_TIMEOUT = 0.4
IDLE_TIMEOUT = 1.2


@pytest.fixture
async def server() -> AsyncIterator[ToxiproxyServer]:
    async with ToxiproxyServer(read_timeout=READ_TIMEOUT, idle_timeout=IDLE_TIMEOUT) as running:
        yield running


async def _closed_after(reader: asyncio.StreamReader, limit: float = 5.0) -> tuple[float, bytes]:
    """Seconds until the server closes the connection, and what it sent before."""
    started = time.perf_counter()
    received = bytearray()
    with contextlib.suppress(ConnectionResetError):
        while data := await asyncio.wait_for(reader.read(65536), limit):
            received.extend(data)
    return time.perf_counter() - started, bytes(received)


async def _trickle(writer: asyncio.StreamWriter, data: bytes, every: float) -> None:
    with contextlib.suppress(ConnectionError):
        for byte in data:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(every)


def test_the_default_timeouts_are_toxiproxys() -> None:
    server = ToxiproxyServer()
    assert (server.read_timeout, server.idle_timeout) == (15.0, 60.0)
    with pytest.raises(ValueError, match="read_timeout must be > 0"):
        ToxiproxyServer(read_timeout=0)


async def test_partial_headers_are_closed_at_the_read_timeout_however_slowly_they_trickle(
    server: ToxiproxyServer,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    trickle = asyncio.create_task(
        _trickle(writer, b"GET /version HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100, 0.05)
    )
    elapsed, received = await _closed_after(reader)
    trickle.cancel()
    writer.close()
    assert READ_TIMEOUT * 0.9 <= elapsed <= READ_TIMEOUT + 0.6
    assert received == b""


async def test_a_slow_body_is_closed_at_the_read_timeout(server: ToxiproxyServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"POST /proxies HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
    trickle = asyncio.create_task(_trickle(writer, b'"name": "slow"' * 10, 0.05))
    elapsed, _received = await _closed_after(reader)
    trickle.cancel()
    writer.close()
    assert elapsed <= READ_TIMEOUT + 0.6
    assert server.collection.all() == {}


async def test_a_silent_new_connection_is_closed_at_the_read_timeout(
    server: ToxiproxyServer,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    elapsed, _received = await _closed_after(reader)
    writer.close()
    assert READ_TIMEOUT * 0.9 <= elapsed <= READ_TIMEOUT + 0.6


async def test_a_keep_alive_connection_waits_the_idle_timeout_between_requests(
    server: ToxiproxyServer,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    request = b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n"
    for _ in range(2):
        writer.write(request)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
        assert head.startswith(b"HTTP/1.1 200 OK")
        assert await reader.readexactly(len(b'{"version": "2.12.0"}\n'))
        await asyncio.sleep(READ_TIMEOUT * 1.5)  # idle, past the read timeout: still open
    elapsed, _received = await _closed_after(reader)
    writer.close()
    assert elapsed <= IDLE_TIMEOUT + 0.6


async def test_many_slowloris_connections_are_all_closed_and_the_api_serves_meanwhile(
    server: ToxiproxyServer,
) -> None:
    streams = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(50)]
    for _reader, writer in streams:
        writer.write(b"GET /version HTTP/1.1\r\nHost: x\r\n")
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
    assert head.startswith(b"HTTP/1.1 200 OK")
    writer.close()
    closed = await asyncio.gather(*(_closed_after(reader) for reader, _writer in streams))
    for _reader, writer in streams:
        writer.close()
    assert max(elapsed for elapsed, _received in closed) <= READ_TIMEOUT + 1.0


@pytest.mark.parametrize("log_level", ["warn", "debug"])
async def test_a_client_gone_mid_body_logs_no_traceback(log_level: str) -> None:
    async with server_process(log_level=log_level) as server:
        host, port = server.url.removeprefix("http://").rsplit(":", 1)
        for _ in range(5):
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(b"POST /proxies HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.close()
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)).startswith(
            b"HTTP/1.1 200"
        )
        writer.close()
        await asyncio.sleep(0.1)
        log = server.log_text()
    assert "Traceback" not in log
    assert "ERROR" not in log
    if log_level == "warn":
        assert log == ""

"""redis-py's pool with every connection through a connect gate (``resilient.redis``), against
a real redis-server. Also run on the oldest supported redis-py (``dev.py``): the adapter
overrides one of its methods.
"""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as aredis

from chaos.servers import RedisServer
from resilient.errors import ArgumentValueError, ConfigurationError
from resilient.events import EventBus
from resilient.pool import GateOptions, shared_gate
from resilient.ratelimit import Rate
from resilient.redis import gated_connection_pool

pytestmark = [pytest.mark.real_server]

RATE = Rate(20, 1.0)


def quiet() -> EventBus:
    return EventBus(log_when_unobserved=False)


async def test_redis_pys_connections_pass_the_gate(redis_server: RedisServer) -> None:
    options = GateOptions(connect_rate=RATE)
    pool = gated_connection_pool(redis_server.url, options, events=quiet(), max_connections=8)
    client = aredis.Redis(connection_pool=pool)
    try:
        started = time.monotonic()
        await asyncio.gather(*(client.blpop([f"gate-test-{n}"], timeout=0.3) for n in range(5)))
        elapsed = time.monotonic() - started
        gate = shared_gate(f"{redis_server.host}:{redis_server.port}", options)
        assert gate.stats.connects == 5  # five blocked at once: five connections
        assert elapsed >= 4 / RATE.limit * 0.95
    finally:
        await client.aclose()
        await pool.aclose()


async def test_a_redis_connect_the_gate_refuses_is_redis_pys_connection_error(
    unused_tcp_port: int,
) -> None:
    options = GateOptions(backoff_initial=5.0, backoff_max=5.0)
    url = f"redis://127.0.0.1:{unused_tcp_port}/0"
    pool = gated_connection_pool(url, options, events=quiet(), socket_connect_timeout=0.5)
    client = aredis.Redis(connection_pool=pool, retry=None)
    try:
        with pytest.raises(aredis.ConnectionError):
            await client.ping()
        with pytest.raises(aredis.ConnectionError, match="no connection to"):
            await client.ping()
        gate = shared_gate(f"127.0.0.1:{unused_tcp_port}", options)
        assert (gate.stats.failures, gate.stats.refused) == (1, 1)
    finally:
        await client.aclose()
        await pool.aclose()


def test_only_a_tcp_url_makes_a_gated_redis_pool() -> None:
    for url in ("rediss://h:1/0", "unix:///tmp/r.sock", 5):
        with pytest.raises(ValueError, match="must be a redis:// URL"):
            gated_connection_pool(url)  # type: ignore[arg-type]


def test_a_redis_py_without_the_method_the_adapter_overrides_is_refused_loudly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import resilient.redis as adapter

    def sync_connect(self: object) -> None:
        return None

    monkeypatch.setattr(aredis.Connection, "_connect", sync_connect)
    with pytest.raises(ConfigurationError, match=r"does not have as a coroutine method"):
        adapter._check_redis()
    monkeypatch.setattr(aredis.Connection, "_connect", None)
    with pytest.raises(ConfigurationError, match=r"overrides redis\.asyncio\.Connection"):
        adapter._check_redis()


def test_the_adapters_refusals_in_exact_words(monkeypatch: pytest.MonkeyPatch) -> None:
    import redis

    import resilient.redis as adapter

    with pytest.raises(ArgumentValueError) as raised:
        gated_connection_pool("rediss://h:1/0")
    assert str(raised.value) == (
        "gated_connection_pool(url) must be a redis:// URL (TCP), got 'rediss://h:1/0'"
    )
    with pytest.raises(ArgumentValueError) as raised:
        gated_connection_pool("unix://" + "x" * 200)
    assert str(raised.value).endswith(", got 'unix://" + "x" * 92)  # the URL cut at 100
    for name, value, message in (
        ("gate_options", 5, "a GateOptions, got 5"),
        ("clock", "now", "a Clock, got 'now'"),
        ("events", None, "an EventBus, got None"),
    ):
        with pytest.raises((TypeError, ValueError)) as refused:
            gated_connection_pool("redis://h:1/0", **{name: value})  # type: ignore[arg-type]
        assert str(refused.value) == f"gated_connection_pool.{name} must be {message}"
    monkeypatch.setattr(aredis.Connection, "_connect", None)
    with pytest.raises(ConfigurationError) as wrong:
        adapter._check_redis()
    assert str(wrong.value) == (
        "GatedConnection overrides redis.asyncio.Connection._connect(self), which "
        f"redis-py {redis.__version__} does not have as a coroutine method"
    )

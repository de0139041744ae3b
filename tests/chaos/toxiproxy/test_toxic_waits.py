"""Every toxic's wait follows the toxic: removing or updating it takes effect at once.

A toxic that holds data (latency, bandwidth, slow_close, slicer, reset_peer) must let go of it
when the toxic is removed, and must use the new attributes when it is updated, on connections
that are already waiting. Toxiproxy 2.12's ``reset_peer`` does not (its wait is a bare timer), so
these run against the embedded server only. Every bound is two-sided: a toxic that waits far too
long fails as surely as one that does not wait.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.chaos.toxiproxy.conftest import Peer, ToxiproxyApi, read_until_eof, round_trip

pytestmark = pytest.mark.real_server


async def test_removing_reset_peer_lets_the_held_chunk_through_and_keeps_the_connection(
    embedded_toxiproxy: ToxiproxyApi, echo_peer: Peer
) -> None:
    proxy = await embedded_toxiproxy.create_proxy("reset_removed", echo_peer.address)
    await proxy.add_toxic("reset_peer", stream="upstream", attributes={"timeout": 2000})
    reader, writer = await proxy.connect()
    writer.write(b"held")
    await asyncio.sleep(0.2)
    assert echo_peer.reads == []  # held by the toxic
    started = time.perf_counter()
    await proxy.remove_toxic("reset_peer_upstream")
    assert await asyncio.wait_for(reader.readexactly(4), 1) == b"held"
    assert time.perf_counter() - started < 0.5
    assert await round_trip(reader, writer) < 0.5  # not reset: the connection still works
    await asyncio.sleep(2.0)  # past the old timeout: still no reset
    assert await round_trip(reader, writer) < 0.5
    writer.close()


async def test_updating_reset_peer_to_a_shorter_timeout_resets_on_the_new_one(
    embedded_toxiproxy: ToxiproxyApi, echo_peer: Peer
) -> None:
    proxy = await embedded_toxiproxy.create_proxy("reset_updated", echo_peer.address)
    await proxy.add_toxic("reset_peer", stream="upstream", attributes={"timeout": 100_000})
    reader, writer = await proxy.connect()
    started = time.perf_counter()
    writer.write(b"hello")
    await asyncio.sleep(0.1)
    await proxy.update_toxic("reset_peer_upstream", attributes={"timeout": 300})
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(100), 2)
    elapsed = time.perf_counter() - started
    writer.close()
    assert 0.28 <= elapsed <= 0.6  # 300 ms from the chunk's arrival, not from the update
    assert echo_peer.reads == []  # the chunk it held is dropped, as on a reset


async def test_updating_reset_peer_past_its_deadline_resets_at_once(
    embedded_toxiproxy: ToxiproxyApi, echo_peer: Peer
) -> None:
    proxy = await embedded_toxiproxy.create_proxy("reset_now", echo_peer.address)
    await proxy.add_toxic("reset_peer", stream="upstream", attributes={"timeout": 10**12})
    reader, writer = await proxy.connect()
    writer.write(b"hello")
    await asyncio.sleep(0.2)
    started = time.perf_counter()
    await proxy.update_toxic("reset_peer_upstream", attributes={"timeout": 100})
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(100), 2)
    writer.close()
    assert time.perf_counter() - started < 0.3


async def test_reset_peer_with_a_huge_timeout_is_released_by_removal(
    embedded_toxiproxy: ToxiproxyApi, echo_peer: Peer
) -> None:
    proxy = await embedded_toxiproxy.create_proxy("reset_huge", echo_peer.address)
    await proxy.add_toxic("reset_peer", stream="upstream", attributes={"timeout": 10**12})
    reader, writer = await proxy.connect()
    writer.write(b"stuck?")
    await asyncio.sleep(0.1)
    await proxy.remove_toxic("reset_peer_upstream")
    assert await asyncio.wait_for(reader.readexactly(6), 1) == b"stuck?"
    writer.close()


async def test_reset_peer_whose_toxicity_drops_to_zero_lets_the_chunk_through(
    embedded_toxiproxy: ToxiproxyApi, echo_peer: Peer
) -> None:
    proxy = await embedded_toxiproxy.create_proxy("reset_toxicity", echo_peer.address)
    await proxy.add_toxic("reset_peer", stream="upstream", attributes={"timeout": 10**9})
    reader, writer = await proxy.connect()
    writer.write(b"spared")
    await asyncio.sleep(0.1)
    await proxy.update_toxic("reset_peer_upstream", toxicity=0)
    assert await asyncio.wait_for(reader.readexactly(6), 1) == b"spared"
    assert await round_trip(reader, writer) < 0.5
    writer.close()


async def test_reset_peer_keeps_waiting_when_another_toxic_changes(
    embedded_toxiproxy: ToxiproxyApi, echo_peer: Peer
) -> None:
    proxy = await embedded_toxiproxy.create_proxy("reset_other", echo_peer.address)
    await proxy.add_toxic("reset_peer", stream="upstream", attributes={"timeout": 400})
    reader, writer = await proxy.connect()
    started = time.perf_counter()
    writer.write(b"hello")
    await asyncio.sleep(0.1)
    await proxy.add_toxic("noop", name="other", stream="upstream")
    await proxy.remove_toxic("other")
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(100), 2)
    writer.close()
    assert 0.38 <= time.perf_counter() - started <= 0.7
    assert echo_peer.reads == []


@pytest.mark.parametrize(
    ("toxic_type", "attributes"),
    [
        ("latency", {"latency": 10**12}),
        ("bandwidth", {"rate": 0}),
        ("bandwidth", {"rate": 1}),  # 1 KB/s: 100-byte pieces every 100 ms
        ("slicer", {"average_size": 1, "delay": 10**9}),
        ("reset_peer", {"timeout": 10**12}),
    ],
)
async def test_removing_a_holding_toxic_delivers_every_byte_at_once_in_order(
    embedded_toxiproxy: ToxiproxyApi, echo_peer: Peer, toxic_type: str, attributes: dict[str, int]
) -> None:
    proxy = await embedded_toxiproxy.create_proxy(f"release_{toxic_type}", echo_peer.address)
    await proxy.add_toxic(toxic_type, name="held", stream="upstream", attributes=attributes)
    reader, writer = await proxy.connect()
    payload = bytes(range(256)) * 20
    writer.write(payload)
    await asyncio.sleep(0.15)
    assert len(b"".join(echo_peer.reads)) < len(payload)  # the toxic holds (most of) it
    started = time.perf_counter()
    await proxy.remove_toxic("held")
    assert await asyncio.wait_for(reader.readexactly(len(payload)), 2) == payload
    assert time.perf_counter() - started < 0.5
    writer.close()


@pytest.mark.parametrize(
    ("toxic_type", "held", "released"),
    [
        ("latency", {"latency": 10**12}, {"latency": 0}),
        ("bandwidth", {"rate": 0}, {"rate": 100_000}),
        ("slicer", {"average_size": 1, "delay": 10**9}, {"delay": 0}),
    ],
)
async def test_updating_a_holding_toxic_releases_what_it_holds(
    embedded_toxiproxy: ToxiproxyApi,
    echo_peer: Peer,
    toxic_type: str,
    held: dict[str, int],
    released: dict[str, int],
) -> None:
    proxy = await embedded_toxiproxy.create_proxy(f"update_{toxic_type}", echo_peer.address)
    await proxy.add_toxic(toxic_type, name="held", stream="upstream", attributes=held)
    reader, writer = await proxy.connect()
    writer.write(b"0123456789")
    await asyncio.sleep(0.15)
    started = time.perf_counter()
    await proxy.update_toxic("held", attributes=released)
    assert await asyncio.wait_for(reader.readexactly(10), 2) == b"0123456789"
    assert time.perf_counter() - started < 0.5
    assert await round_trip(reader, writer) < 0.5  # and later chunks see the new attributes
    writer.close()


async def test_removing_slow_close_with_a_huge_delay_closes_at_once(
    embedded_toxiproxy: ToxiproxyApi, closing_peer: Peer
) -> None:
    proxy = await embedded_toxiproxy.create_proxy("slow_close_huge", closing_peer.address)
    await proxy.add_toxic("slow_close", attributes={"delay": 10**12})
    reader, writer = await proxy.connect()
    writer.write(b"bye")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.read(1), 0.2)
    started = time.perf_counter()
    await proxy.remove_toxic("slow_close_downstream")
    assert await read_until_eof(reader, 2) == b""
    assert time.perf_counter() - started < 0.5
    writer.close()


async def test_updating_a_timeout_toxic_rearms_it_with_the_new_timeout(
    embedded_toxiproxy: ToxiproxyApi, echo_peer: Peer
) -> None:
    proxy = await embedded_toxiproxy.create_proxy("timeout_update", echo_peer.address)
    await proxy.add_toxic("timeout", stream="upstream", attributes={"timeout": 10**12})
    reader, writer = await proxy.connect()
    await asyncio.sleep(0.1)
    started = time.perf_counter()
    await proxy.update_toxic("timeout_upstream", attributes={"timeout": 150})
    assert await read_until_eof(reader, 2) == b""
    writer.close()
    assert 0.14 <= time.perf_counter() - started <= 0.45

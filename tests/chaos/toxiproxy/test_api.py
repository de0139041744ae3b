"""Every endpoint of the Toxiproxy 2.12 API, with exact statuses, headers and bodies (raw HTTP)."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import socket
import subprocess
import sys
import warnings

import pytest

from chaos.toxiproxy import ToxiproxyServer, _collection
from chaos.toxiproxy._api import make_app
from chaos.toxiproxy._collection import ApiError, ProxyCollection
from chaos.toxiproxy._http import ApiConnections
from chaos.toxiproxy._link import WorkBudget
from chaos.toxiproxy._loops import Endpoint
from tests.chaos.toxiproxy.conftest import Peer, ToxiproxyApi, round_trip

pytestmark = pytest.mark.real_server


def _error_body(message: str, status: int) -> str:
    return json.dumps({"error": message, "status": status}, separators=(",", ":")) + "\n"


async def test_version_is_2_12_with_its_exact_body(toxiproxy: ToxiproxyApi) -> None:
    reply = await toxiproxy.request("GET", "/version")
    assert reply.status == 200
    assert reply.text == '{"version": "2.12.0"}\n'
    assert reply.headers["Content-Type"] == "application/json;charset=utf-8"
    assert reply.headers["X-Toxiproxy-Request-Id"]


async def test_create_returns_201_and_the_bound_address(
    toxiproxy: ToxiproxyApi, echo_peer: Peer
) -> None:
    name = toxiproxy.name("created")
    toxiproxy.created.add(name)
    reply = await toxiproxy.request(
        "POST", "/proxies", {"name": name, "listen": "localhost:0", "upstream": echo_peer.address}
    )
    assert reply.status == 201
    assert reply.headers["Content-Type"] == "application/json"
    body = reply.json
    host, port = body.pop("listen").rsplit(":", 1)
    assert host == "127.0.0.1"
    assert int(port) > 0
    body.pop("Logger", None)
    assert body == {"name": name, "upstream": echo_peer.address, "enabled": True, "toxics": []}


async def test_get_list_and_delete_a_proxy(toxiproxy: ToxiproxyApi, echo_peer: Peer) -> None:
    proxy = await toxiproxy.create_proxy("crud", echo_peer.address)
    one = await toxiproxy.request("GET", f"/proxies/{proxy.name}")
    assert one.status == 200
    assert one.json["listen"] == proxy.listen
    listing = await toxiproxy.request("GET", "/proxies")
    assert listing.status == 200
    assert listing.json[proxy.name]["upstream"] == echo_peer.address
    deleted = await toxiproxy.request("DELETE", f"/proxies/{proxy.name}")
    assert (deleted.status, deleted.text) == (204, "")
    gone = await toxiproxy.request("GET", f"/proxies/{proxy.name}")
    assert (gone.status, gone.text) == (404, _error_body("proxy not found", 404))
    with pytest.raises(ConnectionRefusedError):
        await proxy.connect()


async def test_proxy_created_disabled_keeps_its_listen_as_given(
    toxiproxy: ToxiproxyApi, echo_peer: Peer
) -> None:
    proxy = await toxiproxy.create_proxy(
        "disabled", echo_peer.address, listen="127.0.0.1:0", enabled=False
    )
    reply = await toxiproxy.request("GET", f"/proxies/{proxy.name}")
    assert reply.json["enabled"] is False
    assert reply.json["listen"] == "127.0.0.1:0"


async def test_update_by_patch_and_by_deprecated_post(
    toxiproxy: ToxiproxyApi, echo_peer: Peer, sink_peer: Peer
) -> None:
    proxy = await toxiproxy.create_proxy("update", echo_peer.address)
    patched = await toxiproxy.request(
        "PATCH", f"/proxies/{proxy.name}", {"upstream": sink_peer.address}
    )
    assert patched.status == 200
    assert patched.json["upstream"] == sink_peer.address
    assert patched.json["listen"] == proxy.listen
    posted = await toxiproxy.request("POST", f"/proxies/{proxy.name}", {"enabled": False})
    assert posted.status == 200
    assert posted.json["enabled"] is False
    enabled = await toxiproxy.request("PATCH", f"/proxies/{proxy.name}", {"enabled": True})
    assert enabled.json["listen"] == proxy.listen  # the same concrete port


async def test_patch_enables_only_a_disabled_proxy_and_disables_only_an_enabled_one(
    toxiproxy: ToxiproxyApi, echo_peer: Peer
) -> None:
    proxy = await toxiproxy.create_proxy("switch", echo_peer.address, enabled=False)
    path = f"/proxies/{proxy.name}"
    still = await toxiproxy.request("PATCH", path, {"enabled": False})
    assert (still.json["enabled"], still.json["listen"]) == (False, "127.0.0.1:0")  # not bound
    enabled = (await toxiproxy.request("PATCH", path, {"enabled": True})).json
    assert enabled["enabled"] is True
    host, port = enabled["listen"].rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    await round_trip(reader, writer)
    again = await toxiproxy.request("PATCH", path, {"enabled": True})
    assert again.json == enabled
    await round_trip(reader, writer)  # enabling an enabled proxy leaves its connections be
    disabled = await toxiproxy.request("PATCH", path, {"enabled": False})
    assert disabled.json["enabled"] is False
    assert await asyncio.wait_for(reader.read(), 2) == b""  # disabling closes them
    writer.close()


async def test_patch_moves_a_proxy_to_a_new_listen_address(
    toxiproxy: ToxiproxyApi, echo_peer: Peer
) -> None:
    proxy = await toxiproxy.create_proxy("moved", echo_peer.address)
    with socket.socket() as probe:  # a port free now
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    moved = await toxiproxy.request(
        "PATCH", f"/proxies/{proxy.name}", {"listen": f"127.0.0.1:{port}"}
    )
    assert (moved.status, moved.json["listen"]) == (200, f"127.0.0.1:{port}")
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await round_trip(reader, writer)
    writer.close()
    with pytest.raises(ConnectionRefusedError):
        await proxy.connect()  # the old address is closed


async def test_a_listen_address_that_resolves_to_the_same_one_changes_nothing(
    toxiproxy: ToxiproxyApi, echo_peer: Peer
) -> None:
    proxy = await toxiproxy.create_proxy("same", echo_peer.address)
    reader, writer = await proxy.connect()
    await round_trip(reader, writer)
    same = await toxiproxy.request(
        "PATCH", f"/proxies/{proxy.name}", {"listen": f"localhost:{proxy.port}"}
    )
    assert (same.status, same.json["listen"]) == (200, proxy.listen)
    await round_trip(reader, writer)  # not restarted: the connection lives on
    writer.close()


async def test_changing_upstream_closes_live_connections(
    toxiproxy: ToxiproxyApi, echo_peer: Peer, sink_peer: Peer
) -> None:
    proxy = await toxiproxy.create_proxy("reroute", echo_peer.address)
    reader, writer = await proxy.connect()
    await round_trip(reader, writer)
    await toxiproxy.request("PATCH", f"/proxies/{proxy.name}", {"upstream": sink_peer.address})
    assert await asyncio.wait_for(reader.read(), 2) == b""
    writer.close()


async def test_toxic_create_get_list_update_delete(
    toxiproxy: ToxiproxyApi, echo_peer: Peer
) -> None:
    proxy = await toxiproxy.create_proxy("toxics", echo_peer.address)
    base = f"/proxies/{proxy.name}/toxics"
    created = await toxiproxy.request(
        "POST", base, {"type": "latency", "attributes": {"latency": 300}}
    )
    assert created.status == 200
    assert created.headers["Content-Type"] == "application/json"
    expected = {
        "attributes": {"latency": 300, "jitter": 0},
        "name": "latency_downstream",
        "type": "latency",
        "stream": "downstream",
        "toxicity": 1,
    }
    assert created.json == expected
    assert (await toxiproxy.request("GET", f"{base}/latency_downstream")).json == expected
    assert (await toxiproxy.request("GET", base)).json == [expected]
    updated = await toxiproxy.request(
        "PATCH", f"{base}/latency_downstream", {"attributes": {"jitter": 5}, "name": "ignored"}
    )
    assert updated.status == 200
    assert updated.json == {**expected, "attributes": {"latency": 300, "jitter": 5}}
    posted = await toxiproxy.request("POST", f"{base}/latency_downstream", {"toxicity": 0.5})
    assert posted.json["toxicity"] == 0.5
    assert posted.json["attributes"] == {"latency": 300, "jitter": 5}
    deleted = await toxiproxy.request("DELETE", f"{base}/latency_downstream")
    assert (deleted.status, deleted.text) == (204, "")
    assert (await toxiproxy.request("GET", base)).text == "[]"


async def test_toxic_defaults_stream_case_and_explicit_zero_toxicity(
    toxiproxy: ToxiproxyApi, echo_peer: Peer
) -> None:
    proxy = await toxiproxy.create_proxy("defaults", echo_peer.address)
    upper = await proxy.add_toxic("noop", stream="UPSTREAM")
    assert (upper["name"], upper["stream"], upper["toxicity"]) == ("noop_UPSTREAM", "UPSTREAM", 1)
    zero = await proxy.add_toxic("timeout", toxicity=0)
    assert zero["toxicity"] == 0
    assert zero["attributes"] == {"timeout": 0}


async def test_toxics_are_listed_upstream_first_then_downstream_in_add_order(
    toxiproxy: ToxiproxyApi, echo_peer: Peer
) -> None:
    proxy = await toxiproxy.create_proxy("order", echo_peer.address)
    for name, stream in [("d1", "downstream"), ("u1", "upstream"), ("d2", "downstream")]:
        await proxy.add_toxic("noop", name=name, stream=stream)
    await proxy.add_toxic("noop", name="u2", stream="upstream")
    listed = (await toxiproxy.request("GET", f"/proxies/{proxy.name}/toxics")).json
    assert [toxic["name"] for toxic in listed] == ["u1", "u2", "d1", "d2"]
    shown = (await toxiproxy.request("GET", f"/proxies/{proxy.name}")).json["toxics"]
    assert [toxic["name"] for toxic in shown] == ["u1", "u2", "d1", "d2"]


async def test_populate_creates_keeps_identical_and_replaces_changed(
    toxiproxy: ToxiproxyApi, echo_peer: Peer, sink_peer: Peer
) -> None:
    kept = await toxiproxy.create_proxy("kept", echo_peer.address)
    await kept.add_toxic("noop")
    await toxiproxy.request("PATCH", f"/proxies/{kept.name}", {"enabled": False})
    replaced = await toxiproxy.create_proxy("replaced", echo_peer.address)
    await replaced.add_toxic("noop")
    new_name = toxiproxy.name("new")
    toxiproxy.created.add(new_name)
    body = [
        {"name": kept.name, "listen": kept.listen, "upstream": echo_peer.address, "enabled": True},
        {"name": replaced.name, "listen": replaced.listen, "upstream": sink_peer.address},
        {"name": new_name, "listen": "127.0.0.1:0", "upstream": echo_peer.address},
    ]
    reply = await toxiproxy.request("POST", "/populate", body)
    assert reply.status == 201
    assert reply.headers["Content-Type"] == "application/json"
    proxies = reply.json["proxies"]
    assert [proxy["name"] for proxy in proxies] == [kept.name, replaced.name, new_name]
    assert proxies[0]["enabled"] is False  # identical: left as it was, toxics and all
    assert len(proxies[0]["toxics"]) == 1
    assert proxies[1]["toxics"] == []
    assert proxies[1]["upstream"] == sink_peer.address
    assert proxies[2]["enabled"] is True


async def test_populate_of_an_empty_list_returns_null(toxiproxy: ToxiproxyApi) -> None:
    reply = await toxiproxy.request("POST", "/populate", [])
    assert (reply.status, reply.json) == (201, {"proxies": None})


async def test_populate_missing_field_creates_nothing(
    toxiproxy: ToxiproxyApi, echo_peer: Peer
) -> None:
    name = toxiproxy.name("never")
    body = [{"name": name, "listen": "127.0.0.1:0", "upstream": echo_peer.address}, {"name": "x"}]
    reply = await toxiproxy.request("POST", "/populate", body)
    assert reply.status == 400
    assert reply.json == {
        "error": "missing required field: upstream at proxy 2",
        "status": 400,
        "proxies": None,
    }
    assert (await toxiproxy.request("GET", f"/proxies/{name}")).status == 404
    body = [{"name": name, "upstream": echo_peer.address}, {"upstream": echo_peer.address}]
    reply = await toxiproxy.request("POST", "/populate", body)
    assert (reply.status, reply.json) == (
        400,
        {"error": "missing required field: name at proxy 2", "status": 400, "proxies": None},
    )
    assert (await toxiproxy.request("GET", f"/proxies/{name}")).status == 404


async def test_populate_stops_at_the_first_failure_with_the_partial_list(
    toxiproxy: ToxiproxyApi, echo_peer: Peer
) -> None:
    taken = await toxiproxy.create_proxy("taken", echo_peer.address)
    first, second = toxiproxy.name("first"), toxiproxy.name("second")
    toxiproxy.created.update({first, second})
    body = [
        {"name": first, "listen": "127.0.0.1:0", "upstream": echo_peer.address},
        {"name": second, "listen": taken.listen, "upstream": echo_peer.address},
    ]
    reply = await toxiproxy.request("POST", "/populate", body)
    assert reply.status == 500
    assert reply.headers["Content-Type"] == "application/json"
    data = reply.json
    assert data["error"] == f"listen tcp {taken.listen}: bind: address already in use"
    assert data["status"] == 500
    assert [proxy["name"] for proxy in data["proxies"]] == [first]


async def test_reset_enables_every_proxy_and_removes_every_toxic(
    toxiproxy: ToxiproxyApi, echo_peer: Peer
) -> None:
    proxy = await toxiproxy.create_proxy("reset", echo_peer.address)
    await proxy.add_toxic("latency", attributes={"latency": 1000})
    await proxy.set_enabled(False)
    reply = await toxiproxy.request("POST", "/reset", raw=b"ignored")
    assert (reply.status, reply.text) == (204, "")
    shown = (await toxiproxy.request("GET", f"/proxies/{proxy.name}")).json
    assert shown["enabled"] is True
    assert shown["toxics"] == []
    reader, writer = await proxy.connect()
    assert await round_trip(reader, writer) < 0.5
    writer.close()


async def test_unknown_path_is_a_plain_404_and_wrong_method_an_empty_405(
    toxiproxy: ToxiproxyApi,
) -> None:
    missing = await toxiproxy.request("GET", "/nothing/here")
    assert (missing.status, missing.text) == (404, "404 page not found\n")
    assert "X-Toxiproxy-Request-Id" not in missing.headers
    wrong = await toxiproxy.request("PUT", "/proxies")
    assert (wrong.status, wrong.text) == (405, "")


async def test_browsers_are_refused_with_403(toxiproxy: ToxiproxyApi) -> None:
    reply = await toxiproxy.request(
        "GET", "/proxies", headers={"User-Agent": "Mozilla/5.0 (X11; Linux x86_64)"}
    )
    assert (reply.status, reply.text) == (403, "User agent not allowed\n")
    unrouted = await toxiproxy.request(
        "GET", "/nowhere", headers={"User-Agent": "Mozilla/5.0 (X11; Linux x86_64)"}
    )
    assert unrouted.status == 404  # Go's router answers before the user-agent check


async def test_every_routed_reply_carries_a_request_id(toxiproxy: ToxiproxyApi) -> None:
    for method, path in [("GET", "/proxies"), ("GET", "/proxies/none"), ("POST", "/reset")]:
        reply = await toxiproxy.request(method, path)
        assert reply.headers.get("X-Toxiproxy-Request-Id"), (method, path)


async def test_proxy_with_a_dead_upstream_closes_the_client_and_stays_enabled(
    toxiproxy: ToxiproxyApi,
) -> None:
    dead = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    address = f"127.0.0.1:{dead.sockets[0].getsockname()[1]}"
    dead.close()
    await dead.wait_closed()
    proxy = await toxiproxy.create_proxy("dead", address)
    reader, writer = await proxy.connect()
    assert await asyncio.wait_for(reader.read(), 2) == b""
    writer.close()
    assert (await toxiproxy.request("GET", f"/proxies/{proxy.name}")).json["enabled"] is True


async def test_client_eof_reaches_the_upstream(toxiproxy: ToxiproxyApi, sink_peer: Peer) -> None:
    proxy = await toxiproxy.create_proxy("eof", sink_peer.address)
    reader, writer = await proxy.connect()
    writer.write(b"last words")
    writer.write_eof()
    assert await asyncio.wait_for(reader.read(), 2) == b""  # the proxy closes fully
    writer.close()
    assert b"".join(sink_peer.reads) == b"last words"


async def test_every_error_reply_is_plain_text_that_browsers_must_not_sniff(
    toxiproxy: ToxiproxyApi,
) -> None:
    api_error = await toxiproxy.request("GET", "/proxies/none")
    unrouted = await toxiproxy.request("GET", "/nothing/here")
    browser = await toxiproxy.request("GET", "/proxies", headers={"User-Agent": "Mozilla/5.0"})
    for reply in (api_error, unrouted, browser):
        assert reply.headers["Content-Type"] == "text/plain; charset=utf-8", reply.status
        assert reply.headers["X-Content-Type-Options"] == "nosniff", reply.status


async def test_request_ids_are_20_digits_counting_up_by_one(toxiproxy: ToxiproxyApi) -> None:
    ids = [
        (await toxiproxy.request("GET", "/version")).headers["X-Toxiproxy-Request-Id"]
        for _ in range(3)
    ]
    assert all(re.fullmatch(r"\d{20}", id_) for id_ in ids), ids
    first = int(ids[0])
    assert [int(id_) for id_ in ids] == [first, first + 1, first + 2]


async def test_a_client_gone_before_its_body_arrived_costs_one_debug_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="chaos.toxiproxy")
    async with ToxiproxyServer() as server:
        host, port = server.url.removeprefix("http://").rsplit(":", 1)
        _reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"POST /proxies HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        await writer.drain()
        writer.transport.abort()  # gone mid-body
        expected = "API: POST /proxies: client gone before its body arrived"
        for _ in range(1000):  # a log line, no event to await: polled, up to 5 s
            if expected in _messages(caplog):
                break
            await asyncio.sleep(0.005)
    assert expected in _messages(caplog)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def _messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "chaos.toxiproxy"]


@pytest.mark.parametrize(
    "path", ["/version", "/proxies", "/proxies/p", "/proxies/p/toxics", "/proxies/p/toxics/t"]
)
async def test_head_is_not_allowed_on_get_routes(toxiproxy: ToxiproxyApi, path: str) -> None:
    reply = await toxiproxy.request("HEAD", path)
    assert reply.status == 405  # Go's router matches GET only


async def test_a_request_answered_leaves_its_connection_without_a_read_deadline() -> None:
    async with ToxiproxyServer() as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n")
        await reader.readuntil(b'"2.12.0"}\n')
        (connection,) = server._connections._connections.values()
        assert connection._timer is None  # idle: the middleware said read, then answered
        writer.close()


def test_the_first_request_id_of_a_process_is_1() -> None:
    script = (
        "import asyncio\n"
        "from chaos.toxiproxy import ToxiproxyServer\n"
        "async def main():\n"
        "    async with ToxiproxyServer() as server:\n"
        "        reader, writer = await asyncio.open_connection('127.0.0.1', server.port)\n"
        "        writer.write(b'GET /version HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n')\n"
        "        print((await reader.readuntil(b'\\r\\n\\r\\n')).decode())\n"
        "        writer.close()\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert "X-Toxiproxy-Request-Id: 00000000000000000001" in done.stdout.splitlines()


def test_the_app_is_built_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. aiohttp's NotAppKeyWarning for an untyped key
        app = make_app(ProxyCollection(seed=None), ApiConnections())
    assert len(app.router.routes()) == 15


async def test_the_servers_seed_guard_and_budget_reach_every_proxy(echo_peer: Peer) -> None:
    collection = ProxyCollection(seed=7)
    created = await collection.create(
        json.dumps({"name": "a", "upstream": echo_peer.address, "enabled": False}).encode()
    )
    (populated,) = await collection.populate(
        json.dumps([{"name": "b", "upstream": echo_peer.address, "enabled": False}]).encode()
    )
    for proxy in (created, populated):
        assert proxy.guard is collection.guard
        assert proxy.budget is collection.budget
        assert isinstance(proxy.budget, WorkBudget)
        draw = proxy._link_rng(1, "up").random()  # the seed's draws: per seed, name, link
        assert draw == random.Random(f"7/{proxy.name}/1/up").random()


async def test_a_port_picked_by_the_system_is_checked_for_a_loop_once_bound(
    monkeypatch: pytest.MonkeyPatch, echo_peer: Peer
) -> None:
    # The bound port cannot be known beforehand, so the loop check is told what to find.
    checked: list[str] = []

    async def loops_once_bound(proxy: Endpoint, others: object) -> str | None:
        checked.append(proxy.listen)
        return None if proxy.listen.endswith(":0") else "a loop"

    monkeypatch.setattr(_collection, "find_loop", loops_once_bound)
    collection = ProxyCollection(seed=None)
    body = {"name": "a", "listen": "127.0.0.1:0", "upstream": echo_peer.address}
    with pytest.raises(ApiError) as refused:
        await collection.create(json.dumps(body).encode())
    assert (refused.value.status, refused.value.message) == (400, "a loop")
    assert checked[0] == "127.0.0.1:0"
    assert checked[1].startswith("127.0.0.1:")  # the port actually bound
    assert collection.all() == {}

    disabled = await collection.create(json.dumps({**body, "enabled": False}).encode())
    with pytest.raises(ApiError):
        await collection.update("a", b'{"enabled": true}')
    assert (disabled.enabled, disabled.listen) == (False, "127.0.0.1:0")  # as it was
    with socket.socket() as probe:  # the bound port was let go
        probe.bind(("127.0.0.1", int(checked[-1].rsplit(":", 1)[1])))


async def test_stopping_every_proxy_returns_once_their_connections_are_gone(
    echo_peer: Peer,
) -> None:
    collection = ProxyCollection(seed=None)
    body = {"name": "a", "listen": "127.0.0.1:0", "upstream": echo_peer.address}
    proxy = await collection.create(json.dumps(body).encode())
    host, port = proxy.listen.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    await round_trip(reader, writer)
    assert proxy.connection_count == 1
    await collection.stop_all()  # the server shutting down: connections dropped at once
    assert proxy.connection_count == 0
    writer.close()

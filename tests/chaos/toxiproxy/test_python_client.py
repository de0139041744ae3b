"""Users' unchanged toxiproxy-python code works against the server (embedded, or $TOXIPROXY_URL).

Every endpoint toxiproxy-python 0.1.1 can drive is exercised the way its users call it,
including its error classes. What the client cannot send (PATCH of a toxic, PATCH of a proxy's
listen/upstream, the server-side /populate) is checked with raw aiohttp requests.
"""

from __future__ import annotations

import json
import socket
import socketserver
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from urllib.parse import urlsplit

import aiohttp
import pytest
from toxiproxy import Toxiproxy
from toxiproxy.api import APIConsumer
from toxiproxy.exceptions import InvalidToxic, NotFound, ProxyExists
from toxiproxy.proxy import Proxy

from chaos.servers import free_port
from chaos.toxiproxy.control import ToxiproxyEndpoint, running_toxiproxy

# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def endpoint() -> Iterator[ToxiproxyEndpoint]:
    with running_toxiproxy() as chosen:
        yield chosen


@pytest.fixture
def client(endpoint: ToxiproxyEndpoint) -> Iterator[Toxiproxy]:
    """A toxiproxy-python client pointed at the server, as its users do it."""
    parts = urlsplit(endpoint.url)
    saved = (APIConsumer.host, APIConsumer.port)
    server = Toxiproxy()
    server.update_api_consumer(parts.hostname, parts.port)
    yield server
    APIConsumer.host, APIConsumer.port = saved


@pytest.fixture
def names(client: Toxiproxy) -> Iterator[Callable[[str], str]]:
    """Unique proxy names; every proxy so named is destroyed after the test."""
    made: list[str] = []

    def unique(stem: str) -> str:
        made.append(f"{stem}-{uuid.uuid4().hex[:8]}")
        return made[-1]

    yield unique
    for name in made:
        proxy = client.get_proxy(name)
        if proxy is not None:
            client.destroy(proxy)


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


@pytest.fixture
def echo() -> Iterator[str]:
    """A threaded TCP echo server on loopback; its ``host:port``."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def host_port(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host, int(port)


def round_trip(proxy: Proxy, payload: bytes) -> bytes:
    with socket.create_connection(host_port(proxy.listen), timeout=5) as sock:
        sock.sendall(payload)
        return sock.recv(65536)


def refuses_connections(proxy: Proxy) -> bool:
    try:
        socket.create_connection(host_port(proxy.listen), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


# -- toxiproxy-python, unchanged ------------------------------------------------------------


def test_version_and_running(client: Toxiproxy) -> None:
    assert client.running() is True
    version = client.version()
    assert isinstance(version, bytes)
    assert json.loads(version)["version"][0].isdigit()


def test_create_list_get_destroy_proxies(
    client: Toxiproxy, names: Callable[[str], str], echo: str
) -> None:
    name = names("crud")
    proxy = client.create(upstream=echo, name=name)
    assert (proxy.name, proxy.upstream, proxy.enabled) == (name, echo, True)
    assert host_port(proxy.listen)[1] != 0
    listed = client.proxies()
    assert listed[name].listen == proxy.listen
    fetched = client.get_proxy(name)
    assert fetched is not None
    assert fetched.upstream == echo
    assert client.destroy(proxy) is True
    assert client.get_proxy(name) is None


def test_data_flows_through_a_proxy_the_client_created(
    client: Toxiproxy, names: Callable[[str], str], echo: str
) -> None:
    proxy = client.create(upstream=echo, name=names("flow"), listen=f"127.0.0.1:{free_port()}")
    assert round_trip(proxy, b"through the proxy") == b"through the proxy"


def test_disable_enable_and_down(client: Toxiproxy, names: Callable[[str], str], echo: str) -> None:
    proxy = client.create(upstream=echo, name=names("toggle"))
    proxy.disable()
    assert proxy.enabled is False
    assert client.proxies()[proxy.name].enabled is False
    assert refuses_connections(proxy)
    proxy.enable()
    assert client.proxies()[proxy.name].enabled is True
    assert round_trip(proxy, b"up") == b"up"
    with proxy.down():
        assert refuses_connections(proxy)
    assert round_trip(proxy, b"up again") == b"up again"


def test_add_list_get_destroy_toxics(
    client: Toxiproxy, names: Callable[[str], str], echo: str
) -> None:
    proxy = client.create(upstream=echo, name=names("toxics"))
    assert proxy.add_toxic(type="latency", attributes={"latency": 120}) is None
    proxy.add_toxic(type="bandwidth", stream="upstream", name="bw", attributes={"rate": 1000})
    proxy.add_toxic(type="noop", name="rarely", toxicity=0.0)
    toxics = proxy.toxics()
    assert set(toxics) == {"latency_downstream", "bw", "rarely"}
    latency = proxy.get_toxic("latency_downstream")
    assert latency is not None
    assert (latency.type, latency.stream, latency.toxicity) == ("latency", "downstream", 1)
    assert latency.attributes == {"latency": 120, "jitter": 0}
    assert toxics["bw"].stream == "upstream"
    assert toxics["rarely"].toxicity == 0
    assert proxy.get_toxic("absent") is None

    started = time.monotonic()
    assert round_trip(proxy, b"slow") == b"slow"
    assert 0.11 <= time.monotonic() - started <= 0.5  # a new connection, then 120 ms

    assert proxy.destroy_toxic("latency_downstream") is True
    assert set(proxy.toxics()) == {"bw", "rarely"}


def test_reset_enables_proxies_and_removes_toxics(
    client: Toxiproxy, names: Callable[[str], str], echo: str
) -> None:
    proxy = client.create(upstream=echo, name=names("reset"))
    proxy.add_toxic(type="latency", attributes={"latency": 10})
    proxy.disable()
    assert client.reset() is True
    assert client.proxies()[proxy.name].enabled is True
    assert proxy.toxics() == {}


def test_client_side_populate_creates_the_listed_proxies(
    client: Toxiproxy, names: Callable[[str], str], echo: str
) -> None:
    first, second = names("pop"), names("pop")
    listen = f"127.0.0.1:{free_port()}"
    created = client.populate(
        [
            {"name": first, "upstream": echo, "listen": listen},
            {"name": second, "upstream": echo, "listen": f"127.0.0.1:{free_port()}"},
        ]
    )
    assert sorted(p.name for p in created) == sorted([first, second])
    again = client.populate([{"name": first, "upstream": echo, "listen": listen}])
    assert again == []  # unchanged: kept, not recreated


def test_destroy_all_removes_every_proxy(
    client: Toxiproxy, names: Callable[[str], str], echo: str
) -> None:
    client.create(upstream=echo, name=names("all"))
    client.create(upstream=echo, name=names("all"))
    client.destroy_all()
    assert client.proxies() == {}


def test_the_clients_error_classes(
    client: Toxiproxy, names: Callable[[str], str], echo: str
) -> None:
    proxy = client.create(upstream=echo, name=names("errors"))
    with pytest.raises(ProxyExists):
        client.create(upstream=echo, name=proxy.name)
    proxy.add_toxic(type="noop")
    with pytest.raises(ProxyExists) as duplicate:  # the client's name for any 409
        proxy.add_toxic(type="noop")
    assert json.loads(duplicate.value.args[0]) == {"error": "toxic already exists", "status": 409}
    with pytest.raises(InvalidToxic) as invalid:
        proxy.add_toxic(type="teleport")
    assert json.loads(invalid.value.args[0])["error"] == "invalid toxic type"
    with pytest.raises(NotFound):
        proxy.destroy_toxic("absent")
    ghost = Proxy(name="ghost-" + uuid.uuid4().hex[:8], upstream=echo, enabled=True, listen="")
    with pytest.raises(NotFound):
        ghost.destroy()


def test_a_listen_clash_fails_in_the_client_as_against_a_real_server(
    client: Toxiproxy, names: Callable[[str], str], echo: str
) -> None:
    """The 500 is not raised by the client; its ``create`` then trips on the error body."""
    taken = client.create(upstream=echo, name=names("taken"))
    with pytest.raises(KeyError, match="name"):
        client.create(upstream=echo, name=names("clash"), listen=taken.listen)


# -- what the client cannot send: raw HTTP --------------------------------------------------


@pytest.fixture
async def http(endpoint: ToxiproxyEndpoint) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(
        base_url=endpoint.url + "/", timeout=aiohttp.ClientTimeout(total=5)
    ) as session:
        yield session


async def test_patch_merges_toxic_attributes(
    http: aiohttp.ClientSession, names: Callable[[str], str], echo: str
) -> None:
    name = names("patch-toxic")
    async with http.post("proxies", json={"name": name, "upstream": echo}) as reply:
        assert reply.status == 201
    body = {"type": "latency", "attributes": {"latency": 10, "jitter": 3}}
    async with http.post(f"proxies/{name}/toxics", json=body) as reply:
        assert reply.status == 200
    patch = {"attributes": {"latency": 40}, "toxicity": 0.5}
    async with http.patch(f"proxies/{name}/toxics/latency_downstream", json=patch) as reply:
        assert reply.status == 200
        toxic = await reply.json()
    assert toxic["attributes"] == {"latency": 40, "jitter": 3}
    assert toxic["toxicity"] == 0.5
    async with http.get(f"proxies/{name}/toxics/latency_downstream") as reply:
        assert await reply.json() == toxic


async def test_patch_changes_proxy_listen_and_upstream(
    http: aiohttp.ClientSession, names: Callable[[str], str], echo: str
) -> None:
    name = names("patch-proxy")
    async with http.post("proxies", json={"name": name, "upstream": "127.0.0.1:1"}) as reply:
        assert reply.status == 201
    listen = f"127.0.0.1:{free_port()}"
    async with http.patch(f"proxies/{name}", json={"listen": listen, "upstream": echo}) as reply:
        assert reply.status == 200
        proxy = await reply.json()
    assert (proxy["listen"], proxy["upstream"], proxy["enabled"]) == (listen, echo, True)
    with socket.create_connection(host_port(listen), timeout=5) as sock:
        sock.sendall(b"moved")
        assert sock.recv(64) == b"moved"


async def test_server_side_populate(
    http: aiohttp.ClientSession, names: Callable[[str], str], echo: str
) -> None:
    one, two = names("srv-pop"), names("srv-pop")
    entries = [
        {"name": one, "listen": f"127.0.0.1:{free_port()}", "upstream": echo},
        {"name": two, "listen": f"127.0.0.1:{free_port()}", "upstream": echo, "enabled": False},
    ]
    async with http.post("populate", json=entries) as reply:
        assert reply.status == 201
        body = await reply.json()
    assert [(p["name"], p["enabled"]) for p in body["proxies"]] == [(one, True), (two, False)]
    async with http.post("populate", json=[]) as reply:
        assert (reply.status, await reply.json()) == (201, {"proxies": None})


async def test_error_bodies_are_json_under_a_text_plain_content_type(
    http: aiohttp.ClientSession,
) -> None:
    async with http.get("proxies/absent-proxy") as reply:
        assert reply.status == 404
        assert reply.content_type == "text/plain"
        assert json.loads(await reply.text()) == {"error": "proxy not found", "status": 404}

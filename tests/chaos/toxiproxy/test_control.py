"""ToxiproxyControl end to end: every method, typed errors, timeouts, URLs, server selection.

Runs against the embedded server, or unchanged against ``$TOXIPROXY_URL`` when it is set (the
tests that are about selection or about two servers start their own embedded servers).
"""

from __future__ import annotations

import asyncio
import contextlib
import pickle
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
from aiohttp import web

from chaos.servers import free_port
from chaos.toxiproxy.control import (
    AlreadyExists,
    BadRequest,
    NotFound,
    ProxyInfo,
    ProxyNotFound,
    ToxicInfo,
    ToxicNotFound,
    ToxiproxyControl,
    ToxiproxyEndpoint,
    ToxiproxyError,
    ToxiproxyUnavailable,
    normalize_toxiproxy_url,
    running_toxiproxy,
    toxiproxy_server,
)
from chaos.toxiproxy.server import BackgroundToxiproxy

# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def endpoint() -> Iterator[ToxiproxyEndpoint]:
    """The server under test: ``$TOXIPROXY_URL`` if set, else an embedded one."""
    with running_toxiproxy() as chosen:
        yield chosen


@pytest.fixture
async def control(endpoint: ToxiproxyEndpoint) -> AsyncIterator[ToxiproxyControl]:
    async with ToxiproxyControl(endpoint.url) as ctl:
        yield ctl


@pytest.fixture
async def names(control: ToxiproxyControl) -> AsyncIterator[Callable[[str], str]]:
    """Unique proxy names; every proxy so named is deleted after the test."""
    made: list[str] = []

    def unique(stem: str) -> str:
        made.append(f"{stem}-{uuid.uuid4().hex[:8]}")
        return made[-1]

    yield unique
    for name in made:
        with contextlib.suppress(ProxyNotFound):
            await control.delete_proxy(name)


@pytest.fixture
def background_servers() -> Iterator[Callable[[], BackgroundToxiproxy]]:
    """Start extra embedded servers on demand; all are stopped after the test."""
    started: list[BackgroundToxiproxy] = []

    def start() -> BackgroundToxiproxy:
        server = BackgroundToxiproxy()
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


async def _start_tagged_echo(tag: bytes) -> tuple[asyncio.Server, str]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(tag + data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"127.0.0.1:{port}"


@pytest.fixture
async def echo() -> AsyncIterator[Callable[[bytes], Awaitable[str]]]:
    """Start loopback echo servers that prefix each reply with a tag; returns their address."""
    servers: list[asyncio.Server] = []

    async def start(tag: bytes = b"") -> str:
        server, address = await _start_tagged_echo(tag)
        servers.append(server)
        return address

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


async def round_trip(proxy: ProxyInfo, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(proxy.listen_host, proxy.listen_port)
    try:
        writer.write(payload)
        await writer.drain()
        return await asyncio.wait_for(reader.read(65536), 5)
    finally:
        writer.close()


# -- server ---------------------------------------------------------------------------------


async def test_version_is_a_version_string_and_is_remembered(control: ToxiproxyControl) -> None:
    version = await control.version()
    assert version[0].isdigit()
    assert version.count(".") == 2
    assert control.server_version == version


# -- proxies --------------------------------------------------------------------------------


async def test_create_get_list_delete_a_proxy(
    control: ToxiproxyControl, names: Callable[[str], str], echo: Callable[..., Awaitable[str]]
) -> None:
    upstream = await echo()
    name = names("crud")
    created = await control.create_proxy(name, upstream)
    assert created.name == name
    assert created.upstream == upstream
    assert created.enabled is True
    assert created.toxics == ()
    assert created.listen_host == "127.0.0.1"
    assert created.listen_port != 0  # the bound port, not the requested 0
    assert await control.get_proxy(name) == created
    assert (await control.proxies())[name] == created
    await control.delete_proxy(name)
    assert name not in await control.proxies()
    with pytest.raises(ProxyNotFound):
        await control.get_proxy(name)


async def test_data_flows_through_a_created_proxy(
    control: ToxiproxyControl, names: Callable[[str], str], echo: Callable[..., Awaitable[str]]
) -> None:
    proxy = await control.create_proxy(names("flow"), await echo(b"echo:"))
    assert await round_trip(proxy, b"hello") == b"echo:hello"


async def test_create_disabled_proxy_does_not_listen(
    control: ToxiproxyControl, names: Callable[[str], str], echo: Callable[..., Awaitable[str]]
) -> None:
    port = free_port()
    proxy = await control.create_proxy(
        names("off"), await echo(), listen=f"127.0.0.1:{port}", enabled=False
    )
    assert proxy.enabled is False
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", port)


async def test_disable_refuses_connections_and_enable_rebinds_the_same_port(
    control: ToxiproxyControl, names: Callable[[str], str], echo: Callable[..., Awaitable[str]]
) -> None:
    proxy = await control.create_proxy(names("toggle"), await echo())
    disabled = await control.disable(proxy.name)
    assert disabled.enabled is False
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection(proxy.listen_host, proxy.listen_port)
    enabled = await control.enable(proxy.name)
    assert enabled.enabled is True
    assert enabled.listen == proxy.listen
    assert await round_trip(enabled, b"back") == b"back"


async def test_update_proxy_changes_upstream_and_listen(
    control: ToxiproxyControl, names: Callable[[str], str], echo: Callable[..., Awaitable[str]]
) -> None:
    proxy = await control.create_proxy(names("move"), await echo(b"A:"))
    assert await round_trip(proxy, b"x") == b"A:x"
    moved = await control.update_proxy(proxy.name, upstream=await echo(b"B:"))
    assert await round_trip(moved, b"x") == b"B:x"
    new_port = free_port()
    relisted = await control.update_proxy(proxy.name, listen=f"127.0.0.1:{new_port}")
    assert relisted.listen_port == new_port
    assert await round_trip(relisted, b"y") == b"B:y"


async def test_update_proxy_without_fields_is_refused_before_any_request(
    control: ToxiproxyControl,
) -> None:
    with pytest.raises(ValueError, match="at least one of listen, upstream, enabled"):
        await control.update_proxy("whatever")


async def test_populate_creates_keeps_and_replaces_on_the_server(
    control: ToxiproxyControl, names: Callable[[str], str], echo: Callable[..., Awaitable[str]]
) -> None:
    upstream = await echo()
    kept, replaced = names("kept"), names("replaced")
    kept_listen, replaced_listen = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    first = await control.populate(
        [
            {"name": kept, "listen": kept_listen, "upstream": upstream},
            {"name": replaced, "listen": replaced_listen, "upstream": upstream},
        ]
    )
    assert [p.name for p in first] == [kept, replaced]
    await control.add_toxic(kept, "latency", attributes={"latency": 1})
    await control.add_toxic(replaced, "latency", attributes={"latency": 1})
    other = await echo(b"other:")
    second = await control.populate(
        [
            {"name": kept, "listen": kept_listen, "upstream": upstream},
            {"name": replaced, "listen": replaced_listen, "upstream": other},
        ]
    )
    assert [p.name for p in second] == [kept, replaced]
    assert [t.name for t in (await control.get_proxy(kept)).toxics] == ["latency_downstream"]
    assert (await control.get_proxy(replaced)).toxics == ()
    assert await round_trip(await control.get_proxy(replaced), b"z") == b"other:z"


async def test_populate_with_a_missing_upstream_creates_nothing(
    control: ToxiproxyControl, names: Callable[[str], str], echo: Callable[..., Awaitable[str]]
) -> None:
    good, bad = names("good"), names("bad")
    with pytest.raises(BadRequest) as caught:
        await control.populate(
            [
                {"name": good, "listen": "127.0.0.1:0", "upstream": await echo()},
                {"name": bad, "listen": "127.0.0.1:0"},
            ]
        )
    assert caught.value.message == "missing required field: upstream at proxy 2"
    assert good not in await control.proxies()


async def test_populate_of_nothing_returns_nothing(control: ToxiproxyControl) -> None:
    assert await control.populate([]) == []


# -- toxics ---------------------------------------------------------------------------------


async def test_add_toxic_fills_in_the_server_defaults(
    control: ToxiproxyControl, names: Callable[[str], str], echo: Callable[..., Awaitable[str]]
) -> None:
    proxy = await control.create_proxy(names("tox"), await echo())
    toxic = await control.add_toxic(proxy.name, "latency", attributes={"latency": 50})
    assert toxic.name == "latency_downstream"
    assert toxic.type == "latency"
    assert toxic.stream == "downstream"
    assert toxic.toxicity == 1.0
    assert dict(toxic.attributes) == {"latency": 50, "jitter": 0}
    assert await control.get_toxic(proxy.name, toxic.name) == toxic
    assert (await control.get_proxy(proxy.name)).toxic(toxic.name) == toxic


async def test_toxics_list_upstream_first_then_downstream_in_order_added(
    control: ToxiproxyControl, names: Callable[[str], str], echo: Callable[..., Awaitable[str]]
) -> None:
    proxy = await control.create_proxy(names("order"), await echo())
    await control.add_toxic(proxy.name, "noop", name="d1")
    await control.add_toxic(proxy.name, "noop", name="u1", stream="upstream")
    await control.add_toxic(proxy.name, "latency", name="d2", toxicity=0.5)
    await control.add_toxic(proxy.name, "noop", name="u2", stream="upstream")
    listed = await control.toxics(proxy.name)
    assert [t.name for t in listed] == ["u1", "u2", "d1", "d2"]
    assert [t.toxicity for t in listed] == [1.0, 1.0, 1.0, 0.5]


async def test_update_toxic_merges_attributes_and_keeps_toxicity(
    control: ToxiproxyControl, names: Callable[[str], str], echo: Callable[..., Awaitable[str]]
) -> None:
    proxy = await control.create_proxy(names("patch"), await echo())
    await control.add_toxic(
        proxy.name, "latency", name="lag", toxicity=0.25, attributes={"latency": 10, "jitter": 5}
    )
    updated = await control.update_toxic(proxy.name, "lag", attributes={"latency": 20})
    assert dict(updated.attributes) == {"latency": 20, "jitter": 5}
    assert updated.toxicity == 0.25
    updated = await control.update_toxic(proxy.name, "lag", toxicity=1.0)
    assert updated.toxicity == 1.0
    assert dict(updated.attributes) == {"latency": 20, "jitter": 5}
    with pytest.raises(ValueError, match="attributes or toxicity"):
        await control.update_toxic(proxy.name, "lag")


async def test_latency_toxic_delays_the_reply_by_its_latency(
    control: ToxiproxyControl, names: Callable[[str], str], echo: Callable[..., Awaitable[str]]
) -> None:
    proxy = await control.create_proxy(names("slow"), await echo())
    await control.add_toxic(proxy.name, "latency", attributes={"latency": 150})
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await round_trip(proxy, b"ping") == b"ping"
    assert 0.14 <= loop.time() - started <= 0.4


async def test_remove_toxic_then_it_is_gone(
    control: ToxiproxyControl, names: Callable[[str], str], echo: Callable[..., Awaitable[str]]
) -> None:
    proxy = await control.create_proxy(names("rm"), await echo())
    await control.add_toxic(proxy.name, "noop")
    await control.remove_toxic(proxy.name, "noop_downstream")
    assert await control.toxics(proxy.name) == []
    with pytest.raises(ToxicNotFound) as caught:
        await control.remove_toxic(proxy.name, "noop_downstream")
    assert caught.value.message == "toxic not found"


async def test_reset_enables_every_proxy_and_removes_every_toxic(
    control: ToxiproxyControl, names: Callable[[str], str], echo: Callable[..., Awaitable[str]]
) -> None:
    proxy = await control.create_proxy(names("reset"), await echo())
    await control.add_toxic(proxy.name, "latency", attributes={"latency": 1})
    await control.disable(proxy.name)
    await control.reset()
    after = await control.get_proxy(proxy.name)
    assert after.enabled is True
    assert after.toxics == ()
    assert await round_trip(after, b"ok") == b"ok"


# -- typed errors with the server's message -------------------------------------------------


async def test_missing_proxy_is_proxy_not_found_with_the_server_message(
    control: ToxiproxyControl,
) -> None:
    with pytest.raises(ProxyNotFound) as caught:
        await control.get_proxy("no-such-proxy")
    error = caught.value
    assert isinstance(error, NotFound)
    assert (error.status, error.message) == (404, "proxy not found")
    assert (error.method, error.path) == ("GET", "/proxies/no-such-proxy")
    assert "proxy not found" in str(error)
    with pytest.raises(ProxyNotFound):
        await control.add_toxic("no-such-proxy", "noop")
    with pytest.raises(ProxyNotFound):
        await control.delete_proxy("no-such-proxy")


async def test_duplicates_are_already_exists(
    control: ToxiproxyControl, names: Callable[[str], str], echo: Callable[..., Awaitable[str]]
) -> None:
    proxy = await control.create_proxy(names("dup"), await echo())
    with pytest.raises(AlreadyExists) as caught:
        await control.create_proxy(proxy.name, proxy.upstream)
    assert (caught.value.status, caught.value.message) == (409, "proxy already exists")
    await control.add_toxic(proxy.name, "noop")
    with pytest.raises(AlreadyExists) as caught:
        await control.add_toxic(proxy.name, "noop")
    assert (caught.value.status, caught.value.message) == (409, "toxic already exists")


async def test_invalid_toxic_type_and_stream_are_bad_requests(
    control: ToxiproxyControl, names: Callable[[str], str], echo: Callable[..., Awaitable[str]]
) -> None:
    proxy = await control.create_proxy(names("bad"), await echo())
    with pytest.raises(BadRequest) as caught:
        await control.add_toxic(proxy.name, "teleport")
    assert (caught.value.status, caught.value.message) == (400, "invalid toxic type")
    with pytest.raises(BadRequest) as caught:
        await control.add_toxic(proxy.name, "latency", stream="sideways")
    assert caught.value.message == "stream was invalid, can be either upstream or downstream"
    with pytest.raises(BadRequest, match="missing required field: upstream"):
        await control.create_proxy(names("no-upstream"), "")


async def test_listen_clash_is_a_500_naming_the_address(
    control: ToxiproxyControl, names: Callable[[str], str], echo: Callable[..., Awaitable[str]]
) -> None:
    first = await control.create_proxy(names("first"), await echo())
    with pytest.raises(ToxiproxyError) as caught:
        await control.create_proxy(names("second"), first.upstream, listen=first.listen)
    error = caught.value
    assert type(error) is ToxiproxyError
    assert error.status == 500
    assert "address already in use" in error.message
    assert first.listen in error.message


async def test_names_with_a_slash_are_refused_before_any_request(
    control: ToxiproxyControl,
) -> None:
    with pytest.raises(ValueError, match="contains '/'"):
        await control.create_proxy("a/b", "127.0.0.1:1")
    with pytest.raises(ValueError, match="contains '/'"):
        await control.add_toxic("p", "noop", name="x/y")


async def _fake_api(reply: web.Response) -> tuple[web.AppRunner, str]:
    async def handler(request: web.Request) -> web.Response:
        return reply

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


@pytest.mark.parametrize(
    ("reply", "kind", "message"),
    [
        (
            web.Response(
                status=418,
                text='{"error":"short and stout","status":418}\n',
                content_type="text/plain",
            ),
            ToxiproxyError,
            "short and stout",
        ),
        (web.Response(status=404, text="404 page not found\n"), NotFound, "404 page not found"),
        (web.Response(status=405), ToxiproxyError, "HTTP 405 with an empty body"),
        (
            web.Response(status=403, text="User agent not allowed\n"),
            ToxiproxyError,
            "User agent not allowed",
        ),
        # bytes that are not UTF-8 are read as U+FFFD, not an error of their own
        (web.Response(status=500, body=b"bad \xff byte\n"), ToxiproxyError, "bad \ufffd byte"),
    ],
)
async def test_error_message_is_taken_from_the_body_whatever_the_content_type(
    reply: web.Response, kind: type[ToxiproxyError], message: str
) -> None:
    runner, url = await _fake_api(reply)
    try:
        async with ToxiproxyControl(url) as ctl:
            with pytest.raises(kind) as caught:
                await ctl.proxies()
        assert caught.value.message == message
        assert caught.value.status == reply.status
    finally:
        await runner.cleanup()


def test_errors_survive_pickling_with_every_field() -> None:
    error = ProxyNotFound(
        404, "proxy not found", method="GET", path="/proxies/x", url="http://h:1", body={"a": 1}
    )
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is ProxyNotFound
    assert (copy.status, copy.message, copy.method, copy.path, copy.url, copy.body) == (
        404,
        "proxy not found",
        "GET",
        "/proxies/x",
        "http://h:1",
        {"a": 1},
    )
    assert str(copy) == str(error)


async def test_a_reply_that_is_not_json_is_a_clear_error() -> None:
    runner, url = await _fake_api(web.Response(status=200, text="<html>"))
    try:
        async with ToxiproxyControl(url) as ctl:
            with pytest.raises(ToxiproxyError, match="malformed reply"):
                await ctl.proxies()
    finally:
        await runner.cleanup()


# -- timeouts and unreachable servers -------------------------------------------------------


async def test_a_server_that_never_answers_times_out_as_unavailable() -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)  # read nothing, answer nothing

    silent = await asyncio.start_server(hold, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{silent.sockets[0].getsockname()[1]}"
    loop = asyncio.get_running_loop()
    try:
        async with ToxiproxyControl(url, timeout=0.2) as ctl:
            started = loop.time()
            with pytest.raises(ToxiproxyUnavailable) as caught:
                await ctl.version()
            elapsed = loop.time() - started
        assert accepted, "the request never reached the silent server"
        assert caught.value.status == 0
        assert url in str(caught.value)
        assert "no answer within 0.2 s" in str(caught.value)
        assert elapsed < 3.0  # bounded by the timeout, not hung
    finally:
        for writer in accepted:
            writer.close()
        silent.close()
        await silent.wait_closed()


async def test_a_closed_port_is_unavailable_naming_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    async with ToxiproxyControl(url, timeout=2) as ctl:
        with pytest.raises(ToxiproxyUnavailable, match="cannot connect") as caught:
            await ctl.proxies()
    assert url in str(caught.value)


def test_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="timeout"):
        ToxiproxyControl("127.0.0.1:8474", timeout=0)


# -- URLs -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "normalised"),
    [
        ("http://127.0.0.1:8474", "http://127.0.0.1:8474"),
        ("http://127.0.0.1:8474/", "http://127.0.0.1:8474"),
        ("127.0.0.1:8474", "http://127.0.0.1:8474"),
        ("  localhost:8474/ ", "http://localhost:8474"),
        ("https://toxi.example:443", "https://toxi.example:443"),
        ("[::1]:8474", "http://[::1]:8474"),
    ],
)
def test_urls_are_normalised(given: str, normalised: str) -> None:
    assert normalize_toxiproxy_url(given) == normalised
    assert ToxiproxyControl(given).url == normalised


@pytest.mark.parametrize(
    "bad", ["http://", "foo", "h:notaport", "", "ftp://h:21", "h:0", "h:99999", "http://h:1?x=1"]
)
def test_bad_urls_raise_value_error_naming_the_value(bad: str) -> None:
    with pytest.raises(ValueError, match="bad Toxiproxy URL") as caught:
        normalize_toxiproxy_url(bad)
    assert repr(bad) in str(caught.value)


# -- several servers, selection -------------------------------------------------------------


async def test_concurrent_calls_on_one_control_all_succeed(
    control: ToxiproxyControl, names: Callable[[str], str]
) -> None:
    wanted = [names("many") for _ in range(20)]
    made = await asyncio.gather(*(control.create_proxy(n, "127.0.0.1:1") for n in wanted))
    assert sorted(p.name for p in made) == sorted(wanted)
    assert len({p.listen_port for p in made}) == len(wanted)
    await asyncio.gather(*(control.add_toxic(n, "noop") for n in wanted))
    listed = await asyncio.gather(*(control.toxics(n) for n in wanted))
    assert all([t.name for t in toxics] == ["noop_downstream"] for toxics in listed)


async def test_two_controls_on_two_servers_do_not_interfere(
    background_servers: Callable[[], BackgroundToxiproxy], echo: Callable[..., Awaitable[str]]
) -> None:
    one, two = background_servers(), background_servers()
    async with ToxiproxyControl(one.url) as first, ToxiproxyControl(two.url) as second:
        up_one, up_two = await echo(b"1:"), await echo(b"2:")
        made = await asyncio.gather(
            first.create_proxy("same", up_one), second.create_proxy("same", up_two)
        )
        assert await round_trip(made[0], b"x") == b"1:x"
        assert await round_trip(made[1], b"x") == b"2:x"
        await first.add_toxic("same", "noop")
        assert await second.toxics("same") == []
        await first.delete_proxy("same")
        assert "same" not in await first.proxies()
        assert (await second.get_proxy("same")).upstream == up_two


async def test_toxiproxy_server_starts_embedded_without_a_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TOXIPROXY_URL", raising=False)
    async with toxiproxy_server(seed=7) as ctl:
        assert ctl.embedded is True
        assert ctl.server_version
        assert ctl.url.startswith("http://127.0.0.1:")
        assert await ctl.proxies() == {}
        url = ctl.url
    async with ToxiproxyControl(url, timeout=2) as after:
        with pytest.raises(ToxiproxyUnavailable):
            await after.version()


async def test_empty_toxiproxy_url_means_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOXIPROXY_URL", "  ")
    async with toxiproxy_server() as ctl:
        assert ctl.embedded is True


async def test_toxiproxy_server_uses_the_server_named_by_the_env_var(
    monkeypatch: pytest.MonkeyPatch, background_servers: Callable[[], BackgroundToxiproxy]
) -> None:
    external = background_servers()
    host_port = external.url.removeprefix("http://").rstrip("/")
    monkeypatch.setenv("TOXIPROXY_URL", host_port)
    async with toxiproxy_server() as ctl:
        assert ctl.embedded is False
        assert ctl.url == normalize_toxiproxy_url(external.url)
        await ctl.create_proxy("seen-outside", "127.0.0.1:1")
    async with ToxiproxyControl(external.url) as direct:
        assert "seen-outside" in await direct.proxies()  # the external server was used, and kept


async def test_an_explicit_url_wins_over_the_env_var(
    monkeypatch: pytest.MonkeyPatch, background_servers: Callable[[], BackgroundToxiproxy]
) -> None:
    monkeypatch.setenv("TOXIPROXY_URL", f"127.0.0.1:{free_port()}")
    external = background_servers()
    async with toxiproxy_server(external.url) as ctl:
        assert ctl.url == normalize_toxiproxy_url(external.url)
        assert ctl.embedded is False


async def test_an_unreachable_toxiproxy_url_is_one_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("TOXIPROXY_URL", url)
    with pytest.raises(ToxiproxyUnavailable) as caught:
        async with toxiproxy_server(timeout=2):
            pytest.fail("the block must not run")
    text = str(caught.value)
    assert "\n" not in text
    assert url in text
    assert "$TOXIPROXY_URL" in text


async def test_a_garbage_toxiproxy_url_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TOXIPROXY_URL", "h:notaport")
    with pytest.raises(ValueError, match=r"\$TOXIPROXY_URL: bad Toxiproxy URL 'h:notaport'"):
        async with toxiproxy_server():
            pytest.fail("the block must not run")


def test_running_toxiproxy_chooses_by_the_same_rules(
    monkeypatch: pytest.MonkeyPatch, background_servers: Callable[[], BackgroundToxiproxy]
) -> None:
    monkeypatch.delenv("TOXIPROXY_URL", raising=False)
    with running_toxiproxy() as embedded:
        assert embedded.embedded is True
        assert embedded.version
    external = background_servers()
    monkeypatch.setenv("TOXIPROXY_URL", external.url)
    with running_toxiproxy() as chosen:
        assert chosen == ToxiproxyEndpoint(
            normalize_toxiproxy_url(external.url), embedded=False, version=embedded.version
        )
    monkeypatch.setenv("TOXIPROXY_URL", f"127.0.0.1:{free_port()}")
    with pytest.raises(ToxiproxyUnavailable, match="cannot connect"), running_toxiproxy():
        pytest.fail("the block must not run")


# -- never blocking the event loop ----------------------------------------------------------


async def test_requests_leave_the_event_loop_free() -> None:
    """The fake server answers only after a ticker on the same loop has ticked five times, so
    a control that blocked the loop while waiting could never get its answer."""
    ticks = 0
    ticked = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.001)
            ticks += 1
            if ticks >= 5:
                ticked.set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await ticked.wait()
        body = b'{"version": "9.9.9"}\n'
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    ticking = asyncio.create_task(ticker())
    try:
        url = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
        async with ToxiproxyControl(url, timeout=5) as ctl:
            assert await ctl.version() == "9.9.9"
        assert ticks >= 5
    finally:
        ticking.cancel()
        server.close()
        await server.wait_closed()


def test_a_control_belongs_to_the_loop_that_first_used_it(endpoint: ToxiproxyEndpoint) -> None:
    control = ToxiproxyControl(endpoint.url)
    first, second = asyncio.new_event_loop(), asyncio.new_event_loop()
    try:
        first.run_until_complete(control.version())
        with pytest.raises(RuntimeError, match="bound to another event loop"):
            second.run_until_complete(control.version())
        first.run_until_complete(control.aclose())
        assert second.run_until_complete(control.version())  # usable again after aclose()
        second.run_until_complete(control.aclose())
    finally:
        first.close()
        second.close()


# -- the value objects ----------------------------------------------------------------------


def test_proxy_info_parses_the_api_object_and_ignores_unknown_keys() -> None:
    proxy = ProxyInfo.from_json(
        {
            "name": "p",
            "listen": "[::1]:26001",
            "upstream": "127.0.0.1:1",
            "enabled": True,
            "Logger": {},
            "toxics": [
                {
                    "attributes": {"latency": 300, "jitter": 0},
                    "name": "latency_downstream",
                    "type": "latency",
                    "stream": "downstream",
                    "toxicity": 1,
                }
            ],
        }
    )
    assert (proxy.listen_host, proxy.listen_port) == ("::1", 26001)
    assert proxy.toxics == (
        ToxicInfo(
            "latency_downstream", "latency", "downstream", 1.0, {"latency": 300, "jitter": 0}
        ),
    )
    with pytest.raises(TypeError):
        proxy.toxics[0].attributes["latency"] = 1  # type: ignore[index]
    with pytest.raises(KeyError, match="no toxic 'nope'"):
        proxy.toxic("nope")

"""What ToxiproxyControl sends and how it reads each reply, against a recording fake API.

``test_control.py`` checks the facade end to end against a real server; here each method's exact
request (method, path, body, headers) is pinned, and so is its reading of replies a real server
rarely gives: the statuses each method accepts, malformed bodies, and every transport failure.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from chaos.toxiproxy import control as control_module
from chaos.toxiproxy.control import (
    DEFAULT_TIMEOUT,
    ProxyInfo,
    ToxicInfo,
    ToxiproxyControl,
    ToxiproxyEndpoint,
    ToxiproxyError,
    ToxiproxyUnavailable,
    open_control,
    running_toxiproxy,
    toxiproxy_server,
)

_PROXY = {
    "name": "p",
    "listen": "127.0.0.1:26001",
    "upstream": "127.0.0.1:1",
    "enabled": True,
    "toxics": [],
}
_TOXIC = {
    "attributes": {"latency": 5, "jitter": 0},
    "name": "t",
    "type": "latency",
    "stream": "downstream",
    "toxicity": 1,
}


def _exactly(message: str) -> str:
    return f"^{re.escape(message)}$"


@dataclass
class Seen:
    method: str
    path: str
    body: Any
    content_type: str | None
    user_agent: str | None


@dataclass
class FakeApi:
    """Answers each request with the next canned reply (status, text) and records it."""

    url: str = ""
    replies: list[tuple[int, str]] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)

    def reply(self, status: int, body: object = None, *, text: str | None = None) -> None:
        self.replies.append((status, text if text is not None else json.dumps(body)))

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        self.seen.append(
            Seen(
                request.method,
                request.raw_path,
                json.loads(raw) if raw else None,
                request.headers.get("Content-Type"),
                request.headers.get("User-Agent"),
            )
        )
        status, text = self.replies.pop(0)
        return web.Response(status=status, text=text if status != 204 else None)


@pytest.fixture
async def api() -> AsyncIterator[FakeApi]:
    fake = FakeApi()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    fake.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield fake
    finally:
        await runner.cleanup()


@pytest.fixture
async def ctl(api: FakeApi) -> AsyncIterator[ToxiproxyControl]:
    async with ToxiproxyControl(api.url) as control:
        yield control


def _request(api: FakeApi) -> tuple[str, str, Any]:
    (seen,) = api.seen
    return seen.method, seen.path, seen.body


# -- construction ------------------------------------------------------------------------------


def test_a_control_has_its_url_timeout_and_kind() -> None:
    assert DEFAULT_TIMEOUT == 5.0
    control = ToxiproxyControl("h:1")
    assert (control.url, control.timeout, control.embedded, control.server_version) == (
        "http://h:1",
        5.0,
        False,
        None,
    )
    assert repr(control) == "ToxiproxyControl('http://h:1', timeout=5.0, external)"
    embedded = ToxiproxyControl("h:1", timeout=0.5, embedded=True)
    assert repr(embedded) == "ToxiproxyControl('http://h:1', timeout=0.5, embedded)"


@pytest.mark.parametrize("timeout", [0, -1.0])
def test_a_timeout_must_be_positive(timeout: float) -> None:
    with pytest.raises(ValueError, match=_exactly(f"timeout must be > 0 seconds, got {timeout!r}")):
        ToxiproxyControl("h:1", timeout=timeout)


def test_an_endpoint_is_a_frozen_value() -> None:
    endpoint = ToxiproxyEndpoint("http://h:1", embedded=True, version="2.12.0")
    with pytest.raises(dataclasses.FrozenInstanceError):
        endpoint.url = "x"  # type: ignore[misc]


# -- each request ------------------------------------------------------------------------------


async def test_version_is_a_plain_get_read_as_json_or_text(
    api: FakeApi, ctl: ToxiproxyControl
) -> None:
    api.reply(200, text='{"version": "2.12.0"}\n')
    assert await ctl.version() == "2.12.0"
    assert ctl.server_version == "2.12.0"
    api.reply(200, text="2.5.0\n")
    assert await ctl.version() == "2.5.0"
    assert ctl.server_version == "2.5.0"
    assert [(s.method, s.path, s.body, s.content_type) for s in api.seen] == [
        ("GET", "/version", None, None),
        ("GET", "/version", None, None),
    ]
    assert {s.user_agent for s in api.seen} == {"resilient-chaos-toxiproxy-control/0.1"}


@pytest.mark.parametrize("status", [204, 200])
async def test_reset_posts_nothing(api: FakeApi, ctl: ToxiproxyControl, status: int) -> None:
    api.reply(status, text="")
    await ctl.reset()
    assert _request(api) == ("POST", "/reset", None)


async def test_proxies_are_read_by_name(api: FakeApi, ctl: ToxiproxyControl) -> None:
    api.reply(200, {"p": _PROXY, "q": {**_PROXY, "name": "q"}})
    proxies = await ctl.proxies()
    assert list(proxies) == ["p", "q"]
    assert proxies["q"] == ProxyInfo.from_json({**_PROXY, "name": "q"})
    assert _request(api) == ("GET", "/proxies", None)


@pytest.mark.parametrize("status", [201, 200])
async def test_create_proxy_sends_every_field(
    api: FakeApi, ctl: ToxiproxyControl, status: int
) -> None:
    api.reply(status, _PROXY)
    assert await ctl.create_proxy("p", "127.0.0.1:1") == ProxyInfo.from_json(_PROXY)
    assert _request(api) == (
        "POST",
        "/proxies",
        {"name": "p", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:1", "enabled": True},
    )
    assert api.seen[0].content_type == "application/json"


async def test_create_proxy_passes_listen_and_enabled(api: FakeApi, ctl: ToxiproxyControl) -> None:
    api.reply(201, {**_PROXY, "enabled": False})
    await ctl.create_proxy("p", "u:1", listen="127.0.0.1:9", enabled=False)
    assert api.seen[0].body == {
        "name": "p",
        "listen": "127.0.0.1:9",
        "upstream": "u:1",
        "enabled": False,
    }


async def test_names_are_quoted_into_one_path_segment(api: FakeApi, ctl: ToxiproxyControl) -> None:
    api.reply(200, _PROXY)
    api.reply(200, _TOXIC)
    api.reply(204, text="")
    await ctl.get_proxy("a b%?")
    await ctl.get_toxic("a b%?", "t #1")
    await ctl.remove_toxic("p", "x:y")
    assert [(s.method, s.path) for s in api.seen] == [
        ("GET", "/proxies/a%20b%25%3F"),
        ("GET", "/proxies/a%20b%25%3F/toxics/t%20%231"),
        ("DELETE", "/proxies/p/toxics/x%3Ay"),
    ]


@pytest.mark.parametrize(
    ("fields", "body"),
    [
        ({"listen": "127.0.0.1:9"}, {"listen": "127.0.0.1:9"}),
        ({"upstream": "u:2"}, {"upstream": "u:2"}),
        ({"enabled": False}, {"enabled": False}),
        (
            {"listen": "l:1", "upstream": "u:1", "enabled": True},
            {"listen": "l:1", "upstream": "u:1", "enabled": True},
        ),
    ],
)
async def test_update_proxy_patches_only_the_fields_given(
    api: FakeApi, ctl: ToxiproxyControl, fields: dict[str, Any], body: dict[str, Any]
) -> None:
    api.reply(200, _PROXY)
    assert await ctl.update_proxy("p", **fields) == ProxyInfo.from_json(_PROXY)
    assert _request(api) == ("PATCH", "/proxies/p", body)


async def test_update_proxy_needs_a_field(api: FakeApi, ctl: ToxiproxyControl) -> None:
    message = "update_proxy needs at least one of listen, upstream, enabled"
    with pytest.raises(ValueError, match=_exactly(message)):
        await ctl.update_proxy("p")
    assert api.seen == []


async def test_enable_and_disable_patch_enabled(api: FakeApi, ctl: ToxiproxyControl) -> None:
    api.reply(200, _PROXY)
    api.reply(200, {**_PROXY, "enabled": False})
    assert (await ctl.enable("p")).enabled is True
    assert (await ctl.disable("p")).enabled is False
    assert [(s.method, s.path, s.body) for s in api.seen] == [
        ("PATCH", "/proxies/p", {"enabled": True}),
        ("PATCH", "/proxies/p", {"enabled": False}),
    ]


@pytest.mark.parametrize("status", [204, 200])
async def test_delete_proxy(api: FakeApi, ctl: ToxiproxyControl, status: int) -> None:
    api.reply(status, text="")
    await ctl.delete_proxy("p")
    assert _request(api) == ("DELETE", "/proxies/p", None)


@pytest.mark.parametrize("status", [201, 200])
async def test_populate_posts_the_entries_and_reads_the_proxies(
    api: FakeApi, ctl: ToxiproxyControl, status: int
) -> None:
    api.reply(status, {"proxies": [_PROXY]})
    entries = [{"name": "p", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:1"}]
    assert await ctl.populate(entries) == [ProxyInfo.from_json(_PROXY)]
    assert _request(api) == ("POST", "/populate", entries)


async def test_populate_of_nothing_is_proxies_null(api: FakeApi, ctl: ToxiproxyControl) -> None:
    api.reply(201, {"proxies": None})
    assert await ctl.populate([]) == []
    assert _request(api) == ("POST", "/populate", [])


async def test_toxics_are_listed(api: FakeApi, ctl: ToxiproxyControl) -> None:
    api.reply(200, [_TOXIC, {**_TOXIC, "name": "u"}])
    assert [t.name for t in await ctl.toxics("p")] == ["t", "u"]
    assert _request(api) == ("GET", "/proxies/p/toxics", None)


@pytest.mark.parametrize("status", [200, 201])
async def test_add_toxic_sends_type_stream_toxicity_and_attributes(
    api: FakeApi, ctl: ToxiproxyControl, status: int
) -> None:
    api.reply(status, _TOXIC)
    assert await ctl.add_toxic("p", "latency") == ToxicInfo.from_json(_TOXIC)
    assert _request(api) == (
        "POST",
        "/proxies/p/toxics",
        {"type": "latency", "stream": "downstream", "toxicity": 1.0, "attributes": {}},
    )


async def test_add_toxic_sends_a_name_only_when_given(api: FakeApi, ctl: ToxiproxyControl) -> None:
    api.reply(200, _TOXIC)
    await ctl.add_toxic(
        "p", "latency", name="t", stream="upstream", toxicity=0.5, attributes={"latency": 5}
    )
    assert api.seen[0].body == {
        "type": "latency",
        "stream": "upstream",
        "toxicity": 0.5,
        "attributes": {"latency": 5},
        "name": "t",
    }


@pytest.mark.parametrize(
    ("fields", "body"),
    [
        ({"attributes": {"latency": 9}}, {"attributes": {"latency": 9}}),
        ({"toxicity": 0.0}, {"toxicity": 0.0}),
        (
            {"attributes": {}, "toxicity": 1.0},
            {"attributes": {}, "toxicity": 1.0},
        ),
    ],
)
async def test_update_toxic_patches_only_the_fields_given(
    api: FakeApi, ctl: ToxiproxyControl, fields: dict[str, Any], body: dict[str, Any]
) -> None:
    api.reply(200, _TOXIC)
    assert await ctl.update_toxic("p", "t", **fields) == ToxicInfo.from_json(_TOXIC)
    assert _request(api) == ("PATCH", "/proxies/p/toxics/t", body)


async def test_update_toxic_needs_a_field(api: FakeApi, ctl: ToxiproxyControl) -> None:
    with pytest.raises(ValueError, match=_exactly("update_toxic needs attributes or toxicity")):
        await ctl.update_toxic("p", "t")
    assert api.seen == []


@pytest.mark.parametrize("status", [204, 200])
async def test_remove_toxic(api: FakeApi, ctl: ToxiproxyControl, status: int) -> None:
    api.reply(status, text="")
    await ctl.remove_toxic("p", "t")
    assert _request(api) == ("DELETE", "/proxies/p/toxics/t", None)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "proxy name must be a non-empty string, got ''"),
        (None, "proxy name must be a non-empty string, got None"),
        ("a/b", "proxy name 'a/b' contains '/': the API could never address it"),
    ],
)
async def test_a_name_the_api_cannot_address_is_refused_before_any_request(
    api: FakeApi, ctl: ToxiproxyControl, name: Any, message: str
) -> None:
    with pytest.raises(ValueError, match=_exactly(message)):
        await ctl.create_proxy(name, "u:1")
    if name is not None:  # no toxic name: the server picks one
        toxic_message = message.replace("proxy name", "toxic name")
        with pytest.raises(ValueError, match=_exactly(toxic_message)):
            await ctl.add_toxic("p", "noop", name=name)
    assert api.seen == []


# -- replies that are not what was asked -------------------------------------------------------


async def _malformed(ctl: ToxiproxyControl, call: Any) -> ToxiproxyError:
    with pytest.raises(ToxiproxyError) as caught:
        await call(ctl)
    assert type(caught.value) is ToxiproxyError
    assert caught.value.status == 200
    return caught.value


@pytest.mark.parametrize(
    ("reply", "call", "method", "path", "why"),
    [
        ([1], lambda c: c.proxies(), "GET", "/proxies", "expected an object of proxies: [1]"),
        (
            {"p": 1},
            lambda c: c.proxies(),
            "GET",
            "/proxies",
            "expected a JSON object for the proxy, got 1",
        ),
        (
            {**_PROXY, "enabled": "yes"},
            lambda c: c.get_proxy("p"),
            "GET",
            "/proxies/p",
            "proxy field 'enabled' must be a boolean, got 'yes'",
        ),
        (
            None,
            lambda c: c.create_proxy("p", "u:1"),
            "POST",
            "/proxies",
            "expected a JSON object for the proxy, got None",
        ),
        (
            {"p": 1},
            lambda c: c.update_proxy("p", enabled=True),
            "PATCH",
            "/proxies/p",
            "proxy field 'enabled' must be a boolean, got None",
        ),
        ([1], lambda c: c.populate([]), "POST", "/populate", "expected an object: [1]"),
        (
            {"proxies": {"a": 1}},
            lambda c: c.populate([]),
            "POST",
            "/populate",
            "proxies must be an array: {'a': 1}",
        ),
        (
            {"proxies": [None]},
            lambda c: c.populate([]),
            "POST",
            "/populate",
            "expected a JSON object for the proxy, got None",
        ),
        (
            {"a": 1},
            lambda c: c.toxics("p"),
            "GET",
            "/proxies/p/toxics",
            "expected an array of toxics, got {'a': 1}",
        ),
        (
            [1],
            lambda c: c.toxics("p"),
            "GET",
            "/proxies/p/toxics",
            "expected a JSON object for the toxic, got 1",
        ),
        (
            {**_TOXIC, "toxicity": "high"},
            lambda c: c.get_toxic("p", "t"),
            "GET",
            "/proxies/p/toxics/t",
            "could not convert string to float: 'high'",
        ),
        (
            {**_TOXIC, "toxicity": [1]},
            lambda c: c.add_toxic("p", "noop"),
            "POST",
            "/proxies/p/toxics",
            "float() argument must be a string or a real number, not 'list'",
        ),
        (
            {**_TOXIC, "name": 1},
            lambda c: c.update_toxic("p", "t", toxicity=1.0),
            "PATCH",
            "/proxies/p/toxics/t",
            "toxic field 'name' must be a string, got 1",
        ),
    ],
)
async def test_a_malformed_reply_is_an_error_naming_the_request_and_the_fault(
    api: FakeApi, ctl: ToxiproxyControl, reply: Any, call: Any, method: str, path: str, why: str
) -> None:
    api.reply(200 if method != "POST" or path == "/proxies/p/toxics" else 201, reply)
    error = await _malformed(ctl, call)
    assert (error.method, error.path, error.url) == (method, path, api.url)
    assert error.message == f"malformed reply: {why}"


async def test_a_reply_that_is_not_json_is_quoted_up_to_200_characters(
    api: FakeApi, ctl: ToxiproxyControl
) -> None:
    api.reply(200, text="<html>" + "x" * 300)
    error = await _malformed(ctl, lambda c: c.proxies())
    assert error.message == f"malformed reply: reply is not JSON: {('<html>' + 'x' * 194)!r}"


async def test_an_empty_reply_where_json_is_expected_is_malformed(
    api: FakeApi, ctl: ToxiproxyControl
) -> None:
    api.reply(200, text=" \n")
    error = await _malformed(ctl, lambda c: c.toxics("p"))
    assert error.message == "malformed reply: expected an array of toxics, got None"


@pytest.mark.parametrize(
    ("status", "call"),
    [
        (201, lambda c: c.proxies()),
        (200, lambda c: c.version()),
        (204, lambda c: c.get_proxy("p")),
        (201, lambda c: c.toxics("p")),
        (201, lambda c: c.update_proxy("p", enabled=True)),
        (201, lambda c: c.update_toxic("p", "t", toxicity=1.0)),
        (201, lambda c: c.get_toxic("p", "t")),
    ],
)
async def test_a_status_the_method_does_not_expect_is_an_error(
    api: FakeApi, ctl: ToxiproxyControl, status: int, call: Any
) -> None:
    if status == 200:
        api.replies.append((202, '{"version": "1"}'))
        status = 202
    else:
        api.reply(status, _PROXY)
    with pytest.raises(ToxiproxyError) as caught:
        await call(ctl)
    assert caught.value.status == status


async def test_an_error_reply_is_the_servers_error(api: FakeApi, ctl: ToxiproxyControl) -> None:
    api.reply(409, {"error": "proxy already exists", "status": 409})
    with pytest.raises(ToxiproxyError) as caught:
        await ctl.create_proxy("p", "u:1")
    error = caught.value
    assert (error.status, error.message, error.method, error.path, error.url) == (
        409,
        "proxy already exists",
        "POST",
        "/proxies",
        api.url,
    )


# -- transport failures ------------------------------------------------------------------------


async def test_a_server_that_does_not_answer_in_time_is_unavailable() -> None:
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        async with ToxiproxyControl(url, timeout=0.25) as ctl:
            with pytest.raises(ToxiproxyUnavailable) as caught:
                await ctl.reset()
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()
    error = caught.value
    assert (error.status, error.message, error.method, error.path, error.url) == (
        0,
        "no answer within 0.25 s",
        "POST",
        "/reset",
        url,
    )


async def test_a_server_that_hangs_up_is_unavailable() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        async with ToxiproxyControl(url, timeout=5) as ctl:
            with pytest.raises(ToxiproxyUnavailable) as caught:
                await ctl.proxies()
    finally:
        server.close()
        await server.wait_closed()
    assert caught.value.message == "the server closed the connection without a reply"
    assert isinstance(caught.value.__cause__, aiohttp.ServerDisconnectedError)


def _connector_error(error: OSError) -> aiohttp.ClientConnectorError:
    key = aiohttp.client_reqrep.ConnectionKey("h", 1, False, True, None, None, None)
    return aiohttp.ClientConnectorError(key, error)


@pytest.mark.parametrize(
    ("error", "described"),
    [
        (
            _connector_error(ConnectionRefusedError(111, "refused")),
            f"cannot connect: {os.strerror(111)}",
        ),
        (
            _connector_error(socket.gaierror(-2, "Name or service not known")),
            "cannot connect: Name or service not known",
        ),
        (  # errno 1, the lowest there is
            _connector_error(PermissionError(1, "not allowed")),
            f"cannot connect: {os.strerror(1)}",
        ),
        (_connector_error(OSError("odd")), "cannot connect: odd"),
        (aiohttp.ServerDisconnectedError(), "the server closed the connection without a reply"),
        (aiohttp.ClientPayloadError("cut short"), "ClientPayloadError: cut short"),
    ],
)
def test_each_transport_failure_is_described_in_one_line(
    error: aiohttp.ClientError, described: str
) -> None:
    assert control_module._describe_client_error(error) == described


# -- sessions and loops ------------------------------------------------------------------------


async def test_aclose_closes_the_session_and_a_later_call_opens_a_new_one(api: FakeApi) -> None:
    control = ToxiproxyControl(api.url)
    await control.aclose()  # nothing open yet
    api.reply(200, text='{"version": "1"}')
    await control.version()
    session = control._session
    assert session is not None
    await control.aclose()
    assert session.closed
    await control.aclose()  # twice is safe
    api.reply(200, text='{"version": "2"}')
    assert await control.version() == "2"
    assert control._session is not session
    await control.aclose()


async def test_a_session_closed_from_outside_is_replaced(api: FakeApi) -> None:
    async with ToxiproxyControl(api.url) as control:
        api.reply(200, text='{"version": "1"}')
        await control.version()
        assert control._session is not None
        await control._session.close()
        api.reply(200, text='{"version": "2"}')
        assert await control.version() == "2"


def test_a_control_used_from_a_second_loop_says_how_to_fix_it() -> None:
    control = ToxiproxyControl("127.0.0.1:1", timeout=0.5)
    first, second = asyncio.new_event_loop(), asyncio.new_event_loop()

    async def call() -> None:
        with pytest.raises(ToxiproxyUnavailable):
            await control.reset()

    try:
        first.run_until_complete(call())
        message = (
            f"{control!r} is bound to another event loop; make one control per loop "
            "(or aclose() it before using it from a new loop)"
        )
        with pytest.raises(RuntimeError, match=_exactly(message)):
            second.run_until_complete(control.reset())
        first.run_until_complete(control.aclose())
    finally:
        first.close()
        second.close()


# -- choosing the server -----------------------------------------------------------------------


async def test_open_control_proves_the_server_answers_and_closes_after(api: FakeApi) -> None:
    api.reply(200, text='{"version": "2.12.0"}')
    async with open_control(api.url, timeout=2, embedded=True) as opened:
        assert (opened.url, opened.timeout, opened.embedded) == (api.url, 2, True)
        assert opened.server_version == "2.12.0"
        session = opened._session
    assert session is not None
    assert session.closed
    assert [s.path for s in api.seen] == ["/version"]


async def test_open_control_names_where_the_url_came_from_only_when_told() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(ToxiproxyUnavailable) as plain:
        async with open_control(url, timeout=2):
            pytest.fail("the block must not run")
    assert plain.value.message == f"cannot connect: {os.strerror(111)}"
    with pytest.raises(ToxiproxyUnavailable) as named:
        async with open_control(url, timeout=2, source="the url argument"):
            pytest.fail("the block must not run")
    assert named.value.message == (
        f"cannot connect: {os.strerror(111)} (URL from the url argument; is the server running?)"
    )
    assert named.value.__cause__ is None
    assert named.value.__suppress_context__


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_an_explicit_url_is_used_as_it_is(
    api: FakeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TOXIPROXY_URL", raising=False)
    api.reply(200, text='{"version": "2.12.0"}')
    async with toxiproxy_server(api.url + "/", timeout=3) as chosen:
        assert (chosen.url, chosen.timeout, chosen.embedded) == (api.url, 3, False)
    url = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(ToxiproxyUnavailable) as caught:
        async with toxiproxy_server(url, timeout=2):
            pytest.fail("the block must not run")
    assert caught.value.message.endswith("(URL from the url argument; is the server running?)")


async def test_the_embedded_server_is_seeded_and_stopped_after_the_block(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TOXIPROXY_URL", raising=False)
    async with toxiproxy_server(seed=11, timeout=4) as chosen:
        assert (chosen.embedded, chosen.timeout, chosen.server_version) == (True, 4, "2.12.0")
        url = chosen.url
    async with ToxiproxyControl(url, timeout=2) as after:
        with pytest.raises(ToxiproxyUnavailable):
            await after.version()


def test_running_toxiproxy_names_an_unanswering_url_and_where_it_came_from(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TOXIPROXY_URL", raising=False)
    url = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(ToxiproxyUnavailable) as caught, running_toxiproxy(url, timeout=2):
        pytest.fail("the block must not run")
    assert caught.value.message == (
        f"cannot connect: {os.strerror(111)} (URL from the url argument; is the server running?)"
    )


def test_running_toxiproxy_embedded_answers_and_stops() -> None:
    with running_toxiproxy(seed=3, timeout=4) as endpoint:
        assert endpoint.embedded is True
        assert endpoint.version == "2.12.0"
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", endpoint.url)
        host, port = endpoint.url.removeprefix("http://").split(":")
    with pytest.raises(ConnectionRefusedError), socket.create_connection((host, int(port)), 2):
        pass

"""Bad input gets the exact status and message, changes nothing, and the server keeps serving."""

from __future__ import annotations

import json
import socket

import pytest

from tests.chaos.toxiproxy.conftest import Peer, Proxy, ToxiproxyApi

pytestmark = pytest.mark.real_server


def go_json(value: object) -> str:
    """``value`` as Go's ``json.Marshal`` writes it: compact, ``<``, ``>`` and ``&`` escaped."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _error(message: str, status: int) -> tuple[int, str]:
    return status, go_json({"error": message, "status": status}) + "\n"


async def _expect(
    api: ToxiproxyApi, method: str, path: str, body: object, status: int, message: str
) -> None:
    raw = body if isinstance(body, bytes) else None
    reply = await api.request(method, path, None if raw is not None else body, raw=raw)
    assert (reply.status, reply.text) == _error(message, status)
    assert reply.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert (await api.request("GET", "/version")).status == 200  # still serving


@pytest.fixture
async def proxy(toxiproxy: ToxiproxyApi, echo_peer: Peer) -> Proxy:
    return await toxiproxy.create_proxy("bad_input", echo_peer.address)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "bad request body: EOF"),
        (b'{"name": "x", "upstream":', "bad request body: unexpected EOF"),
        (b'{"name": "x", "upstream": "1.2.3.4:5"', "bad request body: unexpected EOF"),
        (
            b"{nope}",
            "bad request body: invalid character 'n' looking for beginning of object key string",
        ),
        (
            b'{"name": 1, "upstream": "a:1"}',
            "bad request body: json: cannot unmarshal number into Go struct field Proxy.name "
            "of type string",
        ),
        (
            b'{"name": "x", "upstream": "a:1", "enabled": "yes"}',
            "bad request body: json: cannot unmarshal string into Go struct field Proxy.enabled "
            "of type bool",
        ),
    ],
)
async def test_malformed_or_mistyped_proxy_body_is_400(
    toxiproxy: ToxiproxyApi, raw: bytes, message: str
) -> None:
    await _expect(toxiproxy, "POST", "/proxies", raw, 400, message)


async def test_missing_name_or_upstream_is_400(toxiproxy: ToxiproxyApi) -> None:
    await _expect(
        toxiproxy,
        "POST",
        "/proxies",
        {"upstream": "127.0.0.1:1"},
        400,
        "missing required field: name",
    )
    await _expect(
        toxiproxy,
        "POST",
        "/proxies",
        {"name": toxiproxy.name("x")},
        400,
        "missing required field: upstream",
    )


async def test_duplicate_proxy_is_409(toxiproxy: ToxiproxyApi, proxy: Proxy) -> None:
    body = {"name": proxy.name, "listen": "127.0.0.1:0", "upstream": "127.0.0.1:1"}
    await _expect(toxiproxy, "POST", "/proxies", body, 409, "proxy already exists")


async def test_listen_port_in_use_is_500_with_the_bind_message(toxiproxy: ToxiproxyApi) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        name = toxiproxy.name("clash")
        body = {"name": name, "listen": f"127.0.0.1:{port}", "upstream": "127.0.0.1:1"}
        await _expect(
            toxiproxy,
            "POST",
            "/proxies",
            body,
            500,
            f"listen tcp 127.0.0.1:{port}: bind: address already in use",
        )
    assert (await toxiproxy.request("GET", f"/proxies/{name}")).status == 404


async def test_listen_with_too_many_colons_is_500(toxiproxy: ToxiproxyApi) -> None:
    body = {"name": toxiproxy.name("colons"), "listen": "bad:addr:x", "upstream": "127.0.0.1:1"}
    await _expect(
        toxiproxy, "POST", "/proxies", body, 500, "address bad:addr:x: too many colons in address"
    )


async def test_unknown_proxy_is_404_on_every_route(toxiproxy: ToxiproxyApi) -> None:
    name = toxiproxy.name("missing")
    for method, path in [
        ("GET", f"/proxies/{name}"),
        ("PATCH", f"/proxies/{name}"),
        ("POST", f"/proxies/{name}"),
        ("DELETE", f"/proxies/{name}"),
        ("GET", f"/proxies/{name}/toxics"),
        ("POST", f"/proxies/{name}/toxics"),
        ("GET", f"/proxies/{name}/toxics/t"),
        ("PATCH", f"/proxies/{name}/toxics/t"),
        ("DELETE", f"/proxies/{name}/toxics/t"),
    ]:
        await _expect(toxiproxy, method, path, {"type": "noop"}, 404, "proxy not found")


async def test_unknown_toxic_is_404(toxiproxy: ToxiproxyApi, proxy: Proxy) -> None:
    base = f"/proxies/{proxy.name}/toxics/nothing"
    for method in ("GET", "PATCH", "POST", "DELETE"):
        await _expect(toxiproxy, method, base, {"toxicity": 1}, 404, "toxic not found")


async def test_unknown_or_missing_toxic_type_is_400(toxiproxy: ToxiproxyApi, proxy: Proxy) -> None:
    path = f"/proxies/{proxy.name}/toxics"
    await _expect(toxiproxy, "POST", path, {"type": "explode"}, 400, "invalid toxic type")
    await _expect(toxiproxy, "POST", path, {"name": "x"}, 400, "invalid toxic type")


async def test_invalid_stream_is_400_before_the_type_is_checked(
    toxiproxy: ToxiproxyApi, proxy: Proxy
) -> None:
    await _expect(
        toxiproxy,
        "POST",
        f"/proxies/{proxy.name}/toxics",
        {"type": "explode", "stream": "sideways"},
        400,
        "stream was invalid, can be either upstream or downstream",
    )


async def test_duplicate_toxic_name_is_409_across_directions(
    toxiproxy: ToxiproxyApi, proxy: Proxy
) -> None:
    await proxy.add_toxic("noop", name="same", stream="upstream")
    await _expect(
        toxiproxy,
        "POST",
        f"/proxies/{proxy.name}/toxics",
        {"type": "latency", "name": "same", "stream": "downstream"},
        409,
        "toxic already exists",
    )
    await proxy.add_toxic("latency")
    await _expect(
        toxiproxy,
        "POST",
        f"/proxies/{proxy.name}/toxics",
        {"type": "latency"},
        409,
        "toxic already exists",
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"type": "latency", "attributes": {"latency": "100"}},
            "bad request body: json: cannot unmarshal string into Go struct field "
            "LatencyToxic.attributes.latency of type int64",
        ),
        (
            {"type": "latency", "attributes": {"latency": 1.5}},
            "bad request body: json: cannot unmarshal number 1.5 into Go struct field "
            "LatencyToxic.attributes.latency of type int64",
        ),
        (
            {"type": "slicer", "attributes": {"average_size": True}},
            "bad request body: json: cannot unmarshal bool into Go struct field "
            "SlicerToxic.attributes.average_size of type int",
        ),
        (
            {"type": "noop", "toxicity": "high"},
            "bad request body: json: cannot unmarshal string into Go struct field "
            "ToxicWrapper.toxicity of type float32",
        ),
        *(
            (
                {"type": "noop", field: 1},
                "bad request body: json: cannot unmarshal number into Go struct field "
                f"ToxicWrapper.{field} of type string",
            )
            for field in ("name", "stream")
        ),
        (
            {"type": 1},
            "bad request body: json: cannot unmarshal number into Go struct field "
            "ToxicWrapper.type of type string",
        ),
    ],
)
async def test_mistyped_toxic_body_is_400(
    toxiproxy: ToxiproxyApi, proxy: Proxy, body: object, message: str
) -> None:
    await _expect(toxiproxy, "POST", f"/proxies/{proxy.name}/toxics", body, 400, message)
    assert (await toxiproxy.request("GET", f"/proxies/{proxy.name}/toxics")).json == []


async def test_malformed_toxic_body_is_400(toxiproxy: ToxiproxyApi, proxy: Proxy) -> None:
    await _expect(
        toxiproxy,
        "POST",
        f"/proxies/{proxy.name}/toxics",
        b'{"type": "latency"',
        400,
        "bad request body: unexpected EOF",
    )
    await proxy.add_toxic("latency")
    await _expect(
        toxiproxy,
        "PATCH",
        f"/proxies/{proxy.name}/toxics/latency_downstream",
        b"{",
        400,
        "bad request body: unexpected EOF",
    )


async def test_malformed_proxy_update_is_400_and_changes_nothing(
    toxiproxy: ToxiproxyApi, proxy: Proxy
) -> None:
    await _expect(
        toxiproxy,
        "PATCH",
        f"/proxies/{proxy.name}",
        {"enabled": 0},
        400,
        "bad request body: json: cannot unmarshal number into Go struct field Proxy.enabled "
        "of type bool",
    )
    assert (await toxiproxy.request("GET", f"/proxies/{proxy.name}")).json["enabled"] is True
    for field in ("listen", "upstream"):
        await _expect(
            toxiproxy,
            "PATCH",
            f"/proxies/{proxy.name}",
            {field: 1},
            400,
            f"bad request body: json: cannot unmarshal number into Go struct field Proxy.{field} "
            "of type string",
        )


async def test_an_update_to_a_listen_address_that_cannot_be_resolved_is_500(
    toxiproxy: ToxiproxyApi, proxy: Proxy
) -> None:
    await _expect(
        toxiproxy,
        "PATCH",
        f"/proxies/{proxy.name}",
        {"listen": "nosuchhost.invalid:1234"},
        500,
        "listen tcp: lookup nosuchhost.invalid: no such host",
    )
    assert (await toxiproxy.request("GET", f"/proxies/{proxy.name}")).json["listen"] == (
        proxy.listen
    )


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            1,
            "json: cannot unmarshal number into Go value of type struct "
            '{ Name string "json:\\"name\\""; ... }',
        ),
        ({"name": 1}, "json: cannot unmarshal number into Go struct field .name of type string"),
    ],
)
async def test_a_mistyped_populate_entry_is_400_naming_it_like_go(
    toxiproxy: ToxiproxyApi, entry: object, message: str
) -> None:
    reply = await toxiproxy.request("POST", "/populate", [entry])
    assert (reply.status, reply.json) == (
        400,
        {"error": f"bad request body: {message}", "status": 400, "proxies": None},
    )


_CRASHERS = [
    ("bandwidth", {"rate": -1}, "invalid attribute rate: must be >= 0, got -1"),
    ("latency", {"latency": -5}, "invalid attribute latency: must be >= 0, got -5"),
    ("latency", {"latency": 5, "jitter": -1}, "invalid attribute jitter: must be >= 0, got -1"),
    ("slow_close", {"delay": -1}, "invalid attribute delay: must be >= 0, got -1"),
    ("timeout", {"timeout": -1}, "invalid attribute timeout: must be >= 0, got -1"),
    ("reset_peer", {"timeout": -2}, "invalid attribute timeout: must be >= 0, got -2"),
    ("limit_data", {"bytes": -1}, "invalid attribute bytes: must be >= 0, got -1"),
    ("slicer", {"average_size": 0}, "invalid attribute average_size: must be >= 1, got 0"),
    (
        "slicer",
        {"average_size": 10, "size_variation": 11},
        "invalid attribute size_variation: must be <= average_size (10), got 11",
    ),
    (
        "slicer",
        {"average_size": 10, "delay": -1},
        "invalid attribute delay: must be >= 0, got -1",
    ),
]


@pytest.mark.parametrize(("toxic_type", "attributes", "message"), _CRASHERS)
async def test_crashing_attributes_are_refused_on_create(
    embedded_toxiproxy: ToxiproxyApi,
    echo_peer: Peer,
    toxic_type: str,
    attributes: dict[str, int],
    message: str,
) -> None:
    proxy = await embedded_toxiproxy.create_proxy("crash", echo_peer.address)
    path = f"/proxies/{proxy.name}/toxics"
    await _expect(
        embedded_toxiproxy,
        "POST",
        path,
        {"type": toxic_type, "attributes": attributes},
        400,
        message,
    )
    assert (await embedded_toxiproxy.request("GET", path)).json == []


@pytest.mark.parametrize(("toxic_type", "attributes", "message"), _CRASHERS)
async def test_crashing_attributes_are_refused_on_update_after_the_merge(
    embedded_toxiproxy: ToxiproxyApi,
    echo_peer: Peer,
    toxic_type: str,
    attributes: dict[str, int],
    message: str,
) -> None:
    proxy = await embedded_toxiproxy.create_proxy("crash", echo_peer.address)
    valid = {"average_size": 20} if toxic_type == "slicer" else {}
    before = await proxy.add_toxic(toxic_type, name="t", attributes=valid)
    await _expect(
        embedded_toxiproxy,
        "PATCH",
        f"/proxies/{proxy.name}/toxics/t",
        {"attributes": attributes},
        400,
        message,
    )
    after = await embedded_toxiproxy.request("GET", f"/proxies/{proxy.name}/toxics/t")
    assert after.json == before


async def test_slicer_variation_above_a_merged_average_is_refused(
    embedded_toxiproxy: ToxiproxyApi, echo_peer: Peer
) -> None:
    proxy = await embedded_toxiproxy.create_proxy("merge", echo_peer.address)
    await proxy.add_toxic("slicer", attributes={"average_size": 10, "size_variation": 5})
    await _expect(
        embedded_toxiproxy,
        "PATCH",
        f"/proxies/{proxy.name}/toxics/slicer_downstream",
        {"attributes": {"average_size": 4}},
        400,
        "invalid attribute size_variation: must be <= average_size (4), got 5",
    )


async def test_populate_body_that_is_not_an_array_is_400_with_null_proxies(
    toxiproxy: ToxiproxyApi,
) -> None:
    reply = await toxiproxy.request("POST", "/populate", {"name": "x"})
    assert reply.status == 400
    assert reply.headers["Content-Type"] == "application/json"
    assert not reply.text.endswith("\n")
    data = reply.json
    assert data["error"].startswith(
        "bad request body: json: cannot unmarshal object into Go value of type []struct"
    )
    assert (data["status"], data["proxies"]) == (400, None)


async def test_null_bodies_decode_to_nothing_like_go(toxiproxy: ToxiproxyApi) -> None:
    await _expect(toxiproxy, "POST", "/proxies", b"null", 400, "missing required field: name")
    reply = await toxiproxy.request("POST", "/populate", raw=b"null")
    assert (reply.status, reply.json) == (201, {"proxies": None})


async def test_trailing_bytes_after_the_json_value_are_ignored(
    toxiproxy: ToxiproxyApi, echo_peer: Peer
) -> None:
    name = toxiproxy.name("trailing")
    toxiproxy.created.add(name)
    body = json.dumps({"name": name, "listen": "127.0.0.1:0", "upstream": echo_peer.address})
    reply = await toxiproxy.request("POST", "/proxies", raw=(body + "}garbage").encode())
    assert reply.status == 201


async def test_a_body_of_the_wrong_json_type_names_the_go_type_it_should_have_been(
    toxiproxy: ToxiproxyApi, proxy: Proxy
) -> None:
    prefix = "bad request body: json: cannot unmarshal "
    await _expect(
        toxiproxy,
        "POST",
        "/proxies",
        b"[]",
        400,
        prefix + "array into Go value of type toxiproxy.Proxy",
    )
    await _expect(
        toxiproxy,
        "PATCH",
        f"/proxies/{proxy.name}",
        b'"x"',
        400,
        prefix + "string into Go value of type toxiproxy.Proxy",
    )
    await _expect(
        toxiproxy,
        "POST",
        f"/proxies/{proxy.name}/toxics",
        b"1",
        400,
        prefix + "number into Go value of type toxics.ToxicWrapper",
    )
    await _expect(
        toxiproxy,
        "POST",
        f"/proxies/{proxy.name}/toxics",
        {"type": "latency", "attributes": "x"},
        400,
        prefix + "string into Go struct field .attributes of type toxics.NoopToxic",
    )
    await proxy.add_toxic("latency", name="slow")
    await _expect(
        toxiproxy,
        "PATCH",
        f"/proxies/{proxy.name}/toxics/slow",
        b"[]",
        400,
        prefix + "array into Go value of type struct { Attributes ... }",
    )
    reply = await toxiproxy.request("POST", "/populate", {"name": "x"})
    assert reply.json["error"] == (
        prefix + "object into Go value of type []struct { "
        'Name string "json:\\"name\\""; Listen string "json:\\"listen\\""; '
        'Upstream string "json:\\"upstream\\""; Enabled *bool "json:\\"enabled\\"" }'
    )

"""Numbers and nesting at the edges of Go's ``encoding/json`` (issue 8, points 11 and 12).

Toxiproxy decodes ``toxicity`` into a float32 and attributes into int64/int: a number those types
cannot hold is a 400 with Go's message, whatever its spelling (``1e39``, ``1e400``, 5,000 digits).
Go's decoder allows 10,000 levels of nesting and answers ``exceeded max depth`` beyond. Whatever
the API accepts, every reply it gives afterwards is strict JSON (no ``Infinity``, no ``NaN``).
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.chaos.toxiproxy.conftest import Peer, Proxy, ToxiproxyApi
from tests.chaos.toxiproxy.test_bad_input import go_json

pytestmark = pytest.mark.real_server

_DIGITS_5000 = "9" * 5000


def _refuse_constant(name: str) -> object:
    raise ValueError(f"not JSON: {name}")


def strict_json(text: str) -> object:
    """``text`` parsed as RFC 8259 JSON: ``Infinity`` and ``NaN`` are errors."""
    return json.loads(text, parse_constant=_refuse_constant)


def _error(message: str, status: int = 400) -> str:
    return go_json({"error": message, "status": status}) + "\n"


def _float32_error(literal: str, struct: str = "ToxicWrapper") -> str:
    return _error(
        f"bad request body: json: cannot unmarshal number {literal} into Go struct field "
        f"{struct}.toxicity of type float32"
    )


@pytest.fixture
async def proxy(toxiproxy: ToxiproxyApi, echo_peer: Peer) -> Proxy:
    return await toxiproxy.create_proxy("json_limits", echo_peer.address)


@pytest.mark.parametrize("literal", ["1e39", "1e400", "-1e39", "3.5e38", _DIGITS_5000])
async def test_toxicity_beyond_float32_is_400_with_gos_message(
    toxiproxy: ToxiproxyApi, proxy: Proxy, literal: str
) -> None:
    path = f"/proxies/{proxy.name}/toxics"
    raw = f'{{"type": "noop", "toxicity": {literal}}}'.encode()
    reply = await toxiproxy.request("POST", path, raw=raw)
    assert (reply.status, reply.text) == (400, _float32_error(literal))
    await proxy.add_toxic("noop")
    reply = await toxiproxy.request(
        "PATCH", f"{path}/noop_downstream", raw=f'{{"toxicity": {literal}}}'.encode()
    )
    assert (reply.status, reply.text) == (400, _float32_error(literal, struct=""))
    toxics = await toxiproxy.request("GET", path)
    assert strict_json(toxics.text) == [
        {
            "attributes": {},
            "name": "noop_downstream",
            "type": "noop",
            "stream": "downstream",
            "toxicity": 1,
        }
    ]


@pytest.mark.parametrize(
    ("literal", "shown"),
    [
        ("3.4e38", "3.4e+38"),
        ("1e21", "1e+21"),
        ("1e20", "100000000000000000000"),
        ("0.1", "0.1"),
        ("0.123456789", "0.12345679"),
        ("0.00001", "0.00001"),
        ("1e-7", "1e-7"),
        ("1e-50", "0"),
        ("2.0", "2"),
        ("0.5", "0.5"),
    ],
)
async def test_toxicity_is_shown_as_go_shows_a_float32(
    toxiproxy: ToxiproxyApi, proxy: Proxy, literal: str, shown: str
) -> None:
    raw = f'{{"type": "noop", "toxicity": {literal}}}'.encode()
    reply = await toxiproxy.request("POST", f"/proxies/{proxy.name}/toxics", raw=raw)
    assert reply.status == 200, reply.text
    assert f'"toxicity":{shown}}}' in reply.text
    strict_json(reply.text)
    listing = await toxiproxy.request("GET", "/proxies")
    strict_json(listing.text)


async def test_a_5000_digit_attribute_is_400_naming_the_number(
    toxiproxy: ToxiproxyApi, proxy: Proxy
) -> None:
    raw = f'{{"type": "latency", "attributes": {{"latency": {_DIGITS_5000}}}}}'.encode()
    reply = await toxiproxy.request("POST", f"/proxies/{proxy.name}/toxics", raw=raw)
    assert (reply.status, reply.text) == (
        400,
        _error(
            f"bad request body: json: cannot unmarshal number {_DIGITS_5000} into Go struct "
            "field LatencyToxic.attributes.latency of type int64"
        ),
    )


async def test_a_5000_digit_number_in_an_unknown_key_is_ignored_like_go(
    toxiproxy: ToxiproxyApi, proxy: Proxy
) -> None:
    raw = f'{{"type": "noop", "name": "big", "ignored": -{_DIGITS_5000}.5e1}}'.encode()
    reply = await toxiproxy.request("POST", f"/proxies/{proxy.name}/toxics", raw=raw)
    assert reply.status == 200, reply.text


async def test_a_5000_digit_number_where_a_string_goes_is_a_plain_type_error(
    toxiproxy: ToxiproxyApi,
) -> None:
    raw = f'{{"name": {_DIGITS_5000}, "upstream": "127.0.0.1:1"}}'.encode()
    reply = await toxiproxy.request("POST", "/proxies", raw=raw)
    assert (reply.status, reply.text) == (
        400,
        _error(
            "bad request body: json: cannot unmarshal number into Go struct field Proxy.name "
            "of type string"
        ),
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("inf", "invalid character 'i' looking for beginning of value"),
        ("-inf", "invalid character 'i' in numeric literal"),
        ("Infinity", "invalid character 'I' looking for beginning of value"),
        ("-Infinity", "invalid character 'I' in numeric literal"),
        ("NaN", "invalid character 'N' looking for beginning of value"),
        ("1e", "invalid character '}' in exponent of numeric literal"),
        ("1.", "invalid character '}' after decimal point in numeric literal"),
        ("01", "invalid character '1' after object key:value pair"),
        ("tru", "invalid character '}' in literal true (expecting 'e')"),
        ("nul", "invalid character '}' in literal null (expecting 'l')"),
        ("fals", "invalid character '}' in literal false (expecting 'e')"),
        ('"\\x"', "invalid character 'x' in string escape code"),
        ('"\\u12g4"', "invalid character 'g' in \\u hexadecimal character escape"),
        ('"a\tb"', "invalid character '\\t' in string literal"),
        ('"a\x01b"', "invalid character '\\x01' in string literal"),
    ],
)
async def test_what_is_not_json_gets_gos_syntax_error(
    toxiproxy: ToxiproxyApi, proxy: Proxy, value: str, message: str
) -> None:
    raw = f'{{"type": "noop", "toxicity": {value}}}'.encode()
    reply = await toxiproxy.request("POST", f"/proxies/{proxy.name}/toxics", raw=raw)
    assert (reply.status, reply.text) == (400, _error(f"bad request body: {message}"))


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"[" * 100_000, "invalid character '[' exceeded max depth"),
        (b'{"a":' * 20_000, "invalid character '{' exceeded max depth"),
        (b'{"x": ' + b"[" * 10_000, "invalid character '[' exceeded max depth"),
        (b'{"x": ' + b"[" * 9_999, "unexpected EOF"),
        (b"[" * 5_000 + b"x", "invalid character 'x' looking for beginning of value"),
        (b"[" * 5_000 + b"1" + b"]" * 4_999 + b"}", "invalid character '}' after array element"),
    ],
)
async def test_deep_nesting_is_a_400_with_gos_message_not_a_500(
    toxiproxy: ToxiproxyApi, raw: bytes, message: str
) -> None:
    reply = await toxiproxy.request("POST", "/proxies", raw=raw)
    assert (reply.status, reply.text) == (400, _error(f"bad request body: {message}"))
    assert (await toxiproxy.request("GET", "/version")).status == 200


async def test_nesting_within_gos_limit_is_decoded(
    toxiproxy: ToxiproxyApi, echo_peer: Peer
) -> None:
    name = toxiproxy.name("deep_ok")
    toxiproxy.created.add(name)
    deep = "[" * 9_999 + "]" * 9_999
    raw = f'{{"name": "{name}", "upstream": "{echo_peer.address}", "x": {deep}}}'.encode()
    reply = await toxiproxy.request("POST", "/proxies", raw=raw)
    assert reply.status == 201, reply.text[:200]
    reply = await toxiproxy.request(
        "POST", "/proxies", raw=b'{"name": ' + b"[" * 3000 + b"]" * 3000 + b"}"
    )
    assert (reply.status, reply.text) == (
        400,
        _error(
            "bad request body: json: cannot unmarshal array into Go struct field Proxy.name "
            "of type string"
        ),
    )


_NUMBER = st.one_of(
    st.integers().map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.from_regex(r"-?(0|[1-9][0-9]{0,60})(\.[0-9]{1,20})?([eE][-+]?[0-9]{1,4})?", fullmatch=True),
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(toxicity=_NUMBER, latency=_NUMBER)
async def test_whatever_the_api_accepts_it_answers_with_strict_json(
    embedded_toxiproxy: ToxiproxyApi, echo_peer: Peer, toxicity: str, latency: str
) -> None:
    proxy = await embedded_toxiproxy.create_proxy("strict", echo_peer.address)
    try:
        raw = (
            f'{{"type": "latency", "toxicity": {toxicity}, "attributes": {{"latency": {latency}}}}}'
        ).encode()
        reply = await embedded_toxiproxy.request("POST", f"/proxies/{proxy.name}/toxics", raw=raw)
        assert reply.status in (200, 400), reply.text
        strict_json(reply.text)
        for path in ("/proxies", f"/proxies/{proxy.name}", f"/proxies/{proxy.name}/toxics"):
            strict_json((await embedded_toxiproxy.request("GET", path)).text)
    finally:
        await embedded_toxiproxy.request("DELETE", f"/proxies/{proxy.name}")

"""The control client's values, without a Toxiproxy server: errors, models and URLs.

``test_control.py`` drives these through a real server; here each rule is pinned where it is
made: the exact text of every error and refusal, the error class each reply maps to, the
fields of the models and their checks, the URL rules and where a URL came from, and the blocking
``GET /version`` against small loopback HTTP servers.
"""

from __future__ import annotations

import dataclasses
import http.server
import pickle
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from chaos.toxiproxy._url import (
    TOXIPROXY_URL_ENV,
    USER_AGENT,
    chosen_url,
    naming_source,
    normalize_toxiproxy_url,
    parse_version,
    version_blocking,
)
from chaos.toxiproxy.errors import (
    AlreadyExists,
    BadRequest,
    NotFound,
    ProxyNotFound,
    ToxicNotFound,
    ToxiproxyError,
    ToxiproxyUnavailable,
    error_from_reply,
)
from chaos.toxiproxy.models import ProxyInfo, ToxicInfo


def _exactly(message: str) -> str:
    """A ``match`` pattern for exactly ``message``."""
    return f"^{re.escape(message)}$"


# -- errors ------------------------------------------------------------------------------------


def _reply(status: int, text: str) -> ToxiproxyError:
    return error_from_reply(status, text, method="POST", path="/proxies", url="http://h:1")


@pytest.mark.parametrize(
    ("status", "text", "kind", "message"),
    [
        (400, '{"error":"missing required field: name","status":400}\n', BadRequest, None),
        (404, '{"error":"proxy not found","status":404}\n', ProxyNotFound, "proxy not found"),
        (404, '{"error":"toxic not found","status":404}\n', ToxicNotFound, "toxic not found"),
        (404, "404 page not found\n", NotFound, "404 page not found"),
        (409, '{"error":"proxy already exists","status":409}\n', AlreadyExists, None),
        (409, '{"error":"toxic already exists","status":409}\n', AlreadyExists, None),
        (500, '{"error":"listen tcp: bind","status":500}\n', ToxiproxyError, "listen tcp: bind"),
        (403, "User agent not allowed\n", ToxiproxyError, "User agent not allowed"),
        (405, "", ToxiproxyError, "HTTP 405 with an empty body"),
        (503, " \n", ToxiproxyError, "HTTP 503 with an empty body"),
        (500, "[1, 2]", ToxiproxyError, "[1, 2]"),
        (500, '{"error": 5}', ToxiproxyError, '{"error": 5}'),
        (400, '{"message": "x"}', BadRequest, '{"message": "x"}'),
    ],
)
def test_each_error_reply_is_its_typed_error_with_the_servers_message(
    status: int, text: str, kind: type[ToxiproxyError], message: str | None
) -> None:
    error = _reply(status, text)
    assert type(error) is kind
    expected = message if message is not None else text.split('"error":"')[1].split('"')[0]
    assert (error.status, error.message) == (status, expected)
    assert (error.method, error.path, error.url) == ("POST", "/proxies", "http://h:1")
    assert str(error) == f"POST http://h:1/proxies -> HTTP {status}: {expected}"


def test_the_body_is_the_parsed_reply_or_its_text() -> None:
    assert _reply(404, '{"error":"proxy not found","status":404}').body == {
        "error": "proxy not found",
        "status": 404,
    }
    assert _reply(500, '{"error":"x","status":500,"proxies":[]}').body == {
        "error": "x",
        "status": 500,
        "proxies": [],
    }
    assert _reply(404, "404 page not found\n").body == "404 page not found\n"


def test_the_error_tree() -> None:
    assert issubclass(ProxyNotFound, NotFound)
    assert issubclass(ToxicNotFound, NotFound)
    for kind in (ToxiproxyUnavailable, BadRequest, NotFound, AlreadyExists):
        assert kind.__bases__ == (ToxiproxyError,)
    assert ToxiproxyError.__bases__ == (Exception,)


def test_unavailable_says_which_server_and_what_went_wrong() -> None:
    error = ToxiproxyUnavailable(0, "cannot connect: refused", method="GET", path="/x", url="u")
    assert str(error) == "Toxiproxy at u is unavailable (GET /x): cannot connect: refused"
    assert error.body is None


@pytest.mark.parametrize(
    "error",
    [
        ToxicNotFound(404, "toxic not found", method="GET", path="/p", url="http://h:1", body=[1]),
        ToxiproxyUnavailable(0, "no answer within 1 s", method="POST", path="/reset", url="u"),
        ToxiproxyError(500, "boom", method="PATCH", path="/proxies/a", url="v", body={"b": 2}),
    ],
)
def test_every_error_pickles_with_every_field(error: ToxiproxyError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    fields = ("status", "message", "method", "path", "url", "body")
    assert [getattr(copy, name) for name in fields] == [getattr(error, name) for name in fields]
    assert str(copy) == str(error)


# -- models ------------------------------------------------------------------------------------

_TOXIC = {
    "attributes": {"latency": 300, "jitter": 0},
    "name": "latency_downstream",
    "type": "latency",
    "stream": "downstream",
    "toxicity": 0.5,
}
_PROXY = {
    "name": "echo",
    "listen": "127.0.0.1:26001",
    "upstream": "127.0.0.1:19001",
    "enabled": True,
    "Logger": {},
    "toxics": [_TOXIC],
}


def test_a_toxic_is_read_with_its_fields() -> None:
    toxic = ToxicInfo.from_json(_TOXIC)
    assert (toxic.name, toxic.type, toxic.stream, toxic.toxicity) == (
        "latency_downstream",
        "latency",
        "downstream",
        0.5,
    )
    assert dict(toxic.attributes) == {"latency": 300, "jitter": 0}


def test_a_toxics_attributes_are_a_read_only_copy() -> None:
    attributes = {"latency": 1}
    toxic = ToxicInfo.from_json({**_TOXIC, "attributes": attributes})
    attributes["latency"] = 2
    assert toxic.attributes["latency"] == 1
    with pytest.raises(TypeError):
        toxic.attributes["latency"] = 3  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        toxic.name = "other"  # type: ignore[misc]


@pytest.mark.parametrize("attributes", [None, {}])
def test_a_toxic_without_attributes_or_toxicity_has_none_and_applies_always(
    attributes: object,
) -> None:
    data = {key: value for key, value in _TOXIC.items() if key != "toxicity"}
    toxic = ToxicInfo.from_json({**data, "attributes": attributes})
    assert (dict(toxic.attributes), toxic.toxicity) == ({}, 1.0)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([1], "expected a JSON object for the toxic, got [1]"),
        ({**_TOXIC, "attributes": [1]}, "toxic attributes must be an object, got [1]"),
        ({**_TOXIC, "name": 5}, "toxic field 'name' must be a string, got 5"),
        ({**_TOXIC, "type": None}, "toxic field 'type' must be a string, got None"),
        ({**_TOXIC, "stream": b"up"}, "toxic field 'stream' must be a string, got b'up'"),
    ],
)
def test_what_is_not_a_toxic_is_refused_naming_the_field(data: object, message: str) -> None:
    with pytest.raises(ValueError, match=_exactly(message)):
        ToxicInfo.from_json(data)


def test_a_proxy_is_read_with_its_toxics_ignoring_unknown_keys() -> None:
    proxy = ProxyInfo.from_json(_PROXY)
    assert (proxy.name, proxy.listen, proxy.upstream, proxy.enabled) == (
        "echo",
        "127.0.0.1:26001",
        "127.0.0.1:19001",
        True,
    )
    assert proxy.toxics == (ToxicInfo.from_json(_TOXIC),)
    assert (proxy.listen_host, proxy.listen_port) == ("127.0.0.1", 26001)
    assert proxy.toxic("latency_downstream") is proxy.toxics[0]
    with pytest.raises(KeyError) as caught:
        proxy.toxic("slow")
    assert caught.value.args == ("proxy 'echo' has no toxic 'slow'",)
    with pytest.raises(dataclasses.FrozenInstanceError):
        proxy.enabled = False  # type: ignore[misc]


@pytest.mark.parametrize("toxics", [None, []])
def test_a_proxy_without_toxics_has_none(toxics: object) -> None:
    assert ProxyInfo.from_json({**_PROXY, "toxics": toxics, "enabled": False}).toxics == ()


@pytest.mark.parametrize(
    ("listen", "host", "port"),
    [
        ("[::1]:8474", "::1", 8474),
        ("localhost:1", "localhost", 1),
        (":80", "", 80),
        ("XBOX:2", "XBOX", 2),  # only brackets are taken off
    ],
)
def test_the_listen_address_splits_into_host_and_port(listen: str, host: str, port: int) -> None:
    proxy = ProxyInfo.from_json({**_PROXY, "listen": listen})
    assert (proxy.listen_host, proxy.listen_port) == (host, port)


@pytest.mark.parametrize("listen", ["nohost", "h:", "h:x1", "h:-1"])
def test_a_listen_address_without_a_port_is_refused_naming_it(listen: str) -> None:
    proxy = ProxyInfo.from_json({**_PROXY, "listen": listen})
    for read in (lambda: proxy.listen_host, lambda: proxy.listen_port):
        with pytest.raises(
            ValueError, match=_exactly(f"listen address {listen!r} is not host:port")
        ):
            read()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("x", "expected a JSON object for the proxy, got 'x'"),
        ({**_PROXY, "toxics": {"a": 1}}, "proxy toxics must be an array, got {'a': 1}"),
        ({**_PROXY, "toxics": 1}, "proxy toxics must be an array, got 1"),
        ({**_PROXY, "enabled": None}, "proxy field 'enabled' must be a boolean, got None"),
        ({**_PROXY, "enabled": 1}, "proxy field 'enabled' must be a boolean, got 1"),
        ({**_PROXY, "name": None}, "proxy field 'name' must be a string, got None"),
        ({**_PROXY, "listen": 1}, "proxy field 'listen' must be a string, got 1"),
        ({**_PROXY, "upstream": []}, "proxy field 'upstream' must be a string, got []"),
        ({**_PROXY, "toxics": [[]]}, "expected a JSON object for the toxic, got []"),
    ],
)
def test_what_is_not_a_proxy_is_refused_naming_the_field(data: object, message: str) -> None:
    with pytest.raises(ValueError, match=_exactly(message)):
        ProxyInfo.from_json(data)


# -- URLs --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "normalised"),
    [
        ("127.0.0.1:8474", "http://127.0.0.1:8474"),
        (" http://h:1/ ", "http://h:1"),
        ("https://h:443/base//", "https://h:443/base"),
        ("http://h:1/pathX/", "http://h:1/pathX"),
        ("HTTP://h:1", "http://h:1"),
        ("h:65535", "http://h:65535"),
    ],
)
def test_a_url_is_normalised(given: str, normalised: str) -> None:
    assert normalize_toxiproxy_url(given) == normalised


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        ("ftp://h:21", "scheme must be http or https, not 'ftp'"),
        ("http://:80", "no host"),
        ("h", "no port (expected host:port, e.g. 127.0.0.1:8474)"),
        ("h:0", "no port (expected host:port, e.g. 127.0.0.1:8474)"),
        ("http://u@h:1", "credentials, query and fragment are not allowed"),
        ("http://h:1?q", "credentials, query and fragment are not allowed"),
        ("http://h:1#f", "credentials, query and fragment are not allowed"),
        ("h:65536", "Port out of range 0-65535"),
        ("h:x", "Port could not be cast to integer value as 'x'"),
    ],
)
def test_a_bad_url_is_refused_naming_it_and_the_problem(given: str, problem: str) -> None:
    with pytest.raises(ValueError, match=_exactly(f"bad Toxiproxy URL {given!r}: {problem}")):
        normalize_toxiproxy_url(given)


def test_a_url_that_is_not_a_string_is_refused() -> None:
    with pytest.raises(ValueError, match=_exactly("Toxiproxy URL must be a string, got 8474")):
        normalize_toxiproxy_url(8474)  # type: ignore[arg-type]


def test_the_url_comes_from_the_argument_then_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert TOXIPROXY_URL_ENV == "TOXIPROXY_URL"
    monkeypatch.setenv("TOXIPROXY_URL", "env:2")
    assert chosen_url("arg:1") == ("http://arg:1", "the url argument")
    assert chosen_url(None) == ("http://env:2", "$TOXIPROXY_URL")
    monkeypatch.setenv("TOXIPROXY_URL", "  ")
    assert chosen_url(None) == (None, "")
    monkeypatch.delenv("TOXIPROXY_URL")
    assert chosen_url(None) == (None, "")
    monkeypatch.setenv("TOXIPROXY_URL", "ftp://h:1")
    message = (
        "$TOXIPROXY_URL: bad Toxiproxy URL 'ftp://h:1': scheme must be http or https, not 'ftp'"
    )
    with pytest.raises(ValueError, match=_exactly(message)):
        chosen_url(None)


def test_an_unavailable_server_is_named_with_where_its_url_came_from() -> None:
    error = ToxiproxyUnavailable(0, "cannot connect: x", method="GET", path="/version", url="u")
    named = naming_source(error, "$TOXIPROXY_URL")
    assert type(named) is ToxiproxyUnavailable
    assert (named.status, named.method, named.path, named.url) == (0, "GET", "/version", "u")
    assert named.message == "cannot connect: x (URL from $TOXIPROXY_URL; is the server running?)"


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ('{"version": "2.12.0"}\n', "2.12.0"),
        ("2.6.0\n", "2.6.0"),
        ("[1]", "[1]"),
        ('{"version": 2}', '{"version": 2}'),
        ('{"other": "1"} ', '{"other": "1"}'),
    ],
)
def test_the_version_is_read_from_json_or_plain_text(text: str, version: str) -> None:
    assert parse_version(text) == version


# -- GET /version, blocking --------------------------------------------------------------------


@contextmanager
def _http(status: int, body: bytes, seen: list[str]) -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(f"{self.path} {self.headers.get('User-Agent')}")
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_version_blocking_asks_get_version_as_the_facade() -> None:
    seen: list[str] = []
    with _http(200, b'{"version": "2.12.0"}\n', seen) as url:
        assert version_blocking(url, 5) == "2.12.0"
    assert seen == [f"/version {USER_AGENT}"]
    assert USER_AGENT == "resilient-chaos-toxiproxy-control/0.1"


def test_version_blocking_turns_an_error_reply_into_its_typed_error() -> None:
    with _http(404, b"404 page not found\n", []) as url, pytest.raises(NotFound) as caught:
        version_blocking(url, 5)
    error = caught.value
    assert (error.status, error.message, error.method, error.path, error.url) == (
        404,
        "404 page not found",
        "GET",
        "/version",
        url,
    )


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_version_blocking_names_a_refused_connection() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(ToxiproxyUnavailable) as caught:
        version_blocking(url, 5)
    error = caught.value
    assert (error.status, error.method, error.path, error.url) == (0, "GET", "/version", url)
    assert error.message == "cannot connect: Connection refused"


def _timed(call: Callable[[], object]) -> tuple[BaseException, float]:
    started = time.monotonic()
    with pytest.raises(ToxiproxyUnavailable) as caught:
        call()
    return caught.value, time.monotonic() - started


def test_version_blocking_gives_up_after_its_timeout() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        error, elapsed = _timed(lambda: version_blocking(url, 0.25))
    assert isinstance(error, ToxiproxyUnavailable)
    assert error.message == "no answer within 0.25 s"
    assert 0.2 <= elapsed < 3.0


def test_version_blocking_reads_bytes_that_are_not_utf8_as_replacement_characters() -> None:
    with _http(200, b"2.12.0\xff\n", []) as url:
        assert version_blocking(url, 5) == "2.12.0\ufffd"
    with _http(500, b"broken \xfe", []) as url, pytest.raises(ToxiproxyError) as caught:
        version_blocking(url, 5)
    assert caught.value.message == "broken \ufffd"

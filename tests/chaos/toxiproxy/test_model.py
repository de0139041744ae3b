"""A model of the Toxiproxy API, checked against the server after every step of random calls.

Hypothesis drives create/delete/enable/disable/re-point proxies, add/update/remove toxics,
/populate and /reset, plus invalid calls (missing fields, bad bodies, unknown types and
streams, duplicates, absent names). After each step the server's ``GET /proxies`` and every
proxy's toxic list must equal the model's, and every reply's status (and error message) must be
the one the model predicts. Only valid attribute values are sent, except in the one rule that
checks the embedded server's refusal of values that crash a real server.

The machine works under a name prefix of its own, so it can also run against ``$TOXIPROXY_URL``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest
import requests
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from chaos.servers import free_port
from chaos.toxiproxy.control import ToxiproxyEndpoint, running_toxiproxy

# -- the model ------------------------------------------------------------------------------

ATTRIBUTE_DEFAULTS: dict[str, dict[str, int]] = {
    "latency": {"latency": 0, "jitter": 0},
    "bandwidth": {"rate": 0},
    "slow_close": {"delay": 0},
    "timeout": {"timeout": 0},
    "reset_peer": {"timeout": 0},
    "slicer": {"average_size": 0, "size_variation": 0, "delay": 0},
    "limit_data": {"bytes": 0},
    "noop": {},
}
STREAMS = ["upstream", "downstream", "UPSTREAM", "Downstream"]


@dataclass
class Toxic:
    name: str
    type: str
    stream: str
    toxicity: float
    attributes: dict[str, int]

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "stream": self.stream,
            "toxicity": self.toxicity,
            "attributes": dict(self.attributes),
        }


@dataclass
class Proxy:
    name: str
    listen: str
    upstream: str
    enabled: bool
    toxics: list[Toxic] = field(default_factory=list)  # in the order added

    def ordered_toxics(self) -> list[Toxic]:
        """Upstream toxics first, then downstream, each in the order added."""
        ups = [t for t in self.toxics if t.stream.lower() == "upstream"]
        downs = [t for t in self.toxics if t.stream.lower() == "downstream"]
        return ups + downs

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "listen": self.listen,
            "upstream": self.upstream,
            "enabled": self.enabled,
            "toxics": [t.as_json() for t in self.ordered_toxics()],
        }


# -- strategies -----------------------------------------------------------------------------

LOCAL_NAMES = st.sampled_from(["a", "b"])
TOXIC_NAMES = st.sampled_from([None, "t1", "t2"])
UPSTREAMS = st.sampled_from(["127.0.0.1:1", "127.0.0.1:2", "localhost:3"])
TOXICITIES = st.sampled_from([None, 0.0, 0.5, 1.0])  # exact in float32
SMALL = st.integers(0, 1000)


@st.composite
def _slicer(draw: st.DrawFn) -> dict[str, int]:
    average = draw(st.integers(1, 100))
    return {
        "average_size": average,
        "size_variation": draw(st.integers(0, average - 1)),
        "delay": draw(SMALL),
    }


# Valid attributes for each type: values that neither crash nor are refused by any server.
# Unknown keys ("bogus") must be ignored by the server.
ATTRIBUTES: dict[str, st.SearchStrategy[dict[str, int]]] = {
    "latency": st.fixed_dictionaries({}, optional={"latency": SMALL, "jitter": SMALL}),
    "bandwidth": st.fixed_dictionaries({"rate": st.integers(1, 10_000)}),
    "slow_close": st.fixed_dictionaries({}, optional={"delay": SMALL}),
    "timeout": st.fixed_dictionaries({}, optional={"timeout": SMALL}),
    "reset_peer": st.fixed_dictionaries({}, optional={"timeout": SMALL}),
    "slicer": _slicer(),
    "limit_data": st.fixed_dictionaries({}, optional={"bytes": SMALL, "bogus": SMALL}),
    "noop": st.fixed_dictionaries({}, optional={"bogus": SMALL}),
}
# Updates that keep every type valid after merging (slicer: only its delay may change alone).
UPDATES: dict[str, st.SearchStrategy[dict[str, int]]] = {
    **ATTRIBUTES,
    "bandwidth": st.fixed_dictionaries({}, optional={"rate": st.integers(1, 10_000)}),
    "slicer": st.fixed_dictionaries({}, optional={"delay": SMALL}),
}
TYPED_ATTRIBUTES = st.one_of(
    *(st.tuples(st.just(kind), strategy) for kind, strategy in ATTRIBUTES.items())
)
# Values that crash or hang a real Toxiproxy; the embedded one refuses them naming the field.
HARMFUL = st.sampled_from(
    [
        ("bandwidth", {"rate": -1}, "rate"),
        ("slicer", {"average_size": 0}, "average_size"),
        ("slicer", {"average_size": 4, "size_variation": 9}, "size_variation"),
        ("latency", {"latency": -5}, "latency"),
    ]
)


INVALID_CALLS = [
    "create without a field",
    "create with a bad body",
    "populate without an upstream",
    "invalid toxic",
    "wrongly typed attribute",
    "harmful attribute",
]


# -- the machine ----------------------------------------------------------------------------


class ToxiproxyModel(RuleBasedStateMachine):
    base_url: ClassVar[str] = ""
    embedded: ClassVar[bool] = True

    def __init__(self) -> None:
        super().__init__()
        self.http = requests.Session()
        self.prefix = f"m{uuid.uuid4().hex[:6]}-"
        self.model: dict[str, Proxy] = {}

    def teardown(self) -> None:
        for name in list(self.model):
            self.http.delete(f"{self.base_url}/proxies/{name}", timeout=5)
        self.http.close()

    # -- plumbing --

    def call(
        self, method: str, path: str, body: Any = None, raw: bytes | None = None
    ) -> requests.Response:
        return self.http.request(method, self.base_url + path, json=body, data=raw, timeout=5)

    def expect_error(self, reply: requests.Response, status: int, message: str) -> None:
        assert reply.status_code == status, (status, reply.status_code, reply.text)
        body = reply.json()  # the JSON error body, whatever the Content-Type says
        assert body["status"] == status
        if message.endswith("*"):
            assert body["error"].startswith(message[:-1]), body
        else:
            assert body["error"] == message, body

    def full(self, local: str) -> str:
        return self.prefix + local

    @initialize()
    def start_with_one_enabled_proxy(self) -> None:
        self.create_proxy("a", "127.0.0.1:1", enabled=True)

    @rule(local=LOCAL_NAMES, kind=st.sampled_from(INVALID_CALLS), data=st.data())
    def invalid_call(self, local: str, kind: str, data: st.DataObject) -> None:
        """One of the calls every server must refuse, with the reply the model predicts."""
        if kind == "create without a field":
            missing = data.draw(st.sampled_from(["name", "upstream"]))
            self.create_proxy_without_a_required_field(local, missing)
        elif kind == "create with a bad body":
            raw = data.draw(st.sampled_from([b"{", b"", b'{"name": 5}', b"[1, 2]"]))
            self.create_proxy_with_a_bad_body(raw)
        elif kind == "populate without an upstream":
            self.populate_with_a_missing_upstream(local)
        elif kind == "invalid toxic":
            invalid = data.draw(
                st.sampled_from(
                    [("teleport", "sideways"), ("teleport", "upstream"), ("latency", "sideways")]
                )
            )
            self.add_invalid_toxic(local, invalid)
        elif kind == "wrongly typed attribute":
            self.add_toxic_with_a_wrongly_typed_attribute(local)
        elif self.embedded:  # harmful values: only the embedded server promises to refuse them
            self.add_harmful_toxic_is_refused_by_the_embedded_server(local, data.draw(HARMFUL))

    # -- proxies --

    @rule(local=LOCAL_NAMES, upstream=UPSTREAMS, enabled=st.booleans())
    def create_proxy(self, local: str, upstream: str, enabled: bool) -> None:
        name = self.full(local)
        listen = "127.0.0.1:0" if enabled else f"127.0.0.1:{free_port()}"
        body = {"name": name, "listen": listen, "upstream": upstream, "enabled": enabled}
        reply = self.call("POST", "/proxies", body)
        if name in self.model:
            self.expect_error(reply, 409, "proxy already exists")
            return
        assert reply.status_code == 201, reply.text
        got = reply.json()
        host, _, port = got["listen"].rpartition(":")
        assert host == "127.0.0.1"
        assert int(port) != 0
        if not enabled:
            assert got["listen"] == listen
        self.model[name] = Proxy(name, got["listen"], upstream, enabled)
        assert _comparable(got) == self.model[name].as_json()

    def create_proxy_without_a_required_field(self, local: str, missing: str) -> None:
        body = {"name": self.full(local), "listen": "127.0.0.1:0", "upstream": "127.0.0.1:1"}
        del body[missing]
        self.expect_error(
            self.call("POST", "/proxies", body), 400, f"missing required field: {missing}"
        )

    def create_proxy_with_a_bad_body(self, raw: bytes) -> None:
        self.expect_error(self.call("POST", "/proxies", raw=raw), 400, "bad request body: *")

    @rule(local=LOCAL_NAMES)
    def delete_proxy(self, local: str) -> None:
        name = self.full(local)
        reply = self.call("DELETE", f"/proxies/{name}")
        if name not in self.model:
            self.expect_error(reply, 404, "proxy not found")
            return
        assert reply.status_code == 204
        assert reply.content == b""
        del self.model[name]

    @rule(local=LOCAL_NAMES, enabled=st.booleans())
    def set_enabled(self, local: str, enabled: bool) -> None:
        self.patch_proxy(local, {"enabled": enabled})

    @rule(local=LOCAL_NAMES, upstream=UPSTREAMS)
    def repoint(self, local: str, upstream: str) -> None:
        self.patch_proxy(local, {"upstream": upstream})

    def patch_proxy(self, local: str, body: dict[str, Any]) -> None:
        name = self.full(local)
        reply = self.call("PATCH", f"/proxies/{name}", body)
        if name not in self.model:
            self.expect_error(reply, 404, "proxy not found")
            return
        assert reply.status_code == 200, reply.text
        proxy = self.model[name]
        proxy.enabled = body.get("enabled", proxy.enabled)
        proxy.upstream = body.get("upstream", proxy.upstream)
        assert _comparable(reply.json()) == proxy.as_json()

    @rule(
        picks=st.lists(
            st.tuples(LOCAL_NAMES, st.booleans(), UPSTREAMS, st.booleans()),
            max_size=3,
            unique_by=lambda pick: pick[0],
        )
    )
    def populate(self, picks: list[tuple[str, bool, str, bool]]) -> None:
        """Each pick: (name, keep it as it is if it exists, upstream, enabled)."""
        entries: list[dict[str, Any]] = []
        for local, keep, upstream, enabled in picks:
            name = self.full(local)
            existing = self.model.get(name)
            if keep and existing is not None:
                entries.append(
                    {"name": name, "listen": existing.listen, "upstream": existing.upstream}
                )
            else:
                listen = f"127.0.0.1:{free_port()}"
                entries.append(
                    {"name": name, "listen": listen, "upstream": upstream, "enabled": enabled}
                )
        reply = self.call("POST", "/populate", entries)
        assert reply.status_code == 201, reply.text
        for entry in entries:
            existing = self.model.get(entry["name"])
            unchanged = (
                existing is not None
                and existing.listen == entry["listen"]
                and existing.upstream == entry["upstream"]
            )
            if not unchanged:
                self.model[entry["name"]] = Proxy(
                    entry["name"], entry["listen"], entry["upstream"], entry.get("enabled", True)
                )
        listed = reply.json()["proxies"]
        if not entries:
            assert listed is None
        else:
            expected = [self.model[e["name"]].as_json() for e in entries]
            assert [_comparable(p) for p in listed] == expected

    def populate_with_a_missing_upstream(self, local: str) -> None:
        entries = [
            {"name": self.full(local), "listen": f"127.0.0.1:{free_port()}", "upstream": "h:1"},
            {"name": self.full("never"), "listen": "127.0.0.1:0"},
        ]
        reply = self.call("POST", "/populate", entries)
        self.expect_error(reply, 400, "missing required field: upstream at proxy 2")
        assert reply.json()["proxies"] is None  # and nothing was created or replaced

    @rule()
    def reset(self) -> None:
        reply = self.call("POST", "/reset")
        assert reply.status_code == 204
        for proxy in self.model.values():
            proxy.enabled = True
            proxy.toxics.clear()

    # -- toxics --

    @rule(
        local=LOCAL_NAMES,
        typed=TYPED_ATTRIBUTES,
        stream=st.sampled_from(["upstream", "UPSTREAM"]),
        toxic_name=TOXIC_NAMES,
    )
    def add_upstream_toxic(
        self, local: str, typed: tuple[str, dict[str, int]], stream: str, toxic_name: str | None
    ) -> None:
        self.add_toxic(local, typed, stream, toxic_name, None)

    @rule(
        local=LOCAL_NAMES,
        typed=TYPED_ATTRIBUTES,
        stream=st.sampled_from([None, *STREAMS]),
        toxic_name=TOXIC_NAMES,
        toxicity=TOXICITIES,
    )
    def add_toxic(
        self,
        local: str,
        typed: tuple[str, dict[str, int]],
        stream: str | None,
        toxic_name: str | None,
        toxicity: float | None,
    ) -> None:
        kind, attributes = typed
        name = self.full(local)
        body: dict[str, Any] = {"type": kind, "attributes": attributes}
        for key, value in (("stream", stream), ("name", toxic_name), ("toxicity", toxicity)):
            if value is not None:
                body[key] = value
        reply = self.call("POST", f"/proxies/{name}/toxics", body)
        proxy = self.model.get(name)
        if proxy is None:
            self.expect_error(reply, 404, "proxy not found")
            return
        sent_stream = stream if stream is not None else "downstream"
        final_name = toxic_name if toxic_name is not None else f"{kind}_{sent_stream}"
        if any(t.name == final_name for t in proxy.toxics):
            self.expect_error(reply, 409, "toxic already exists")
            return
        assert reply.status_code == 200, reply.text
        full_attributes = {
            key: attributes.get(key, default) for key, default in ATTRIBUTE_DEFAULTS[kind].items()
        }
        toxic = Toxic(
            final_name,
            kind,
            sent_stream,
            1.0 if toxicity is None else toxicity,
            full_attributes,
        )
        proxy.toxics.append(toxic)
        assert reply.json() == toxic.as_json()

    def add_invalid_toxic(self, local: str, invalid: tuple[str, str]) -> None:
        kind, stream = invalid
        name = self.full(local)
        reply = self.call("POST", f"/proxies/{name}/toxics", {"type": kind, "stream": stream})
        if name not in self.model:
            self.expect_error(reply, 404, "proxy not found")
        elif stream == "sideways":  # the stream is checked before the type
            self.expect_error(
                reply, 400, "stream was invalid, can be either upstream or downstream"
            )
        else:
            self.expect_error(reply, 400, "invalid toxic type")

    def add_toxic_with_a_wrongly_typed_attribute(self, local: str) -> None:
        name = self.full(local)
        body = {"type": "latency", "name": "typed", "attributes": {"latency": "slow"}}
        reply = self.call("POST", f"/proxies/{name}/toxics", body)
        if name not in self.model:
            self.expect_error(reply, 404, "proxy not found")
        elif any(t.name == "typed" for t in self.model[name].toxics):
            self.expect_error(reply, 409, "toxic already exists")
        else:
            self.expect_error(
                reply,
                400,
                "bad request body: json: cannot unmarshal string into Go struct field "
                "LatencyToxic.attributes.latency of type int64",
            )

    def add_harmful_toxic_is_refused_by_the_embedded_server(
        self, local: str, harmful: tuple[str, dict[str, int], str]
    ) -> None:
        kind, attributes, culprit = harmful
        name = self.full(local)
        body = {"type": kind, "name": "harm", "attributes": attributes}
        reply = self.call("POST", f"/proxies/{name}/toxics", body)
        if name not in self.model:
            self.expect_error(reply, 404, "proxy not found")
        elif any(t.name == "harm" for t in self.model[name].toxics):
            self.expect_error(reply, 409, "toxic already exists")
        else:
            assert reply.status_code == 400, reply.text
            assert culprit in reply.json()["error"]

    @rule(
        local=LOCAL_NAMES,
        toxic_name=st.sampled_from(["t1", "t2", "latency_downstream", "noop_upstream"]),
        toxicity=TOXICITIES,
        data=st.data(),
    )
    def update_toxic(
        self, local: str, toxic_name: str, toxicity: float | None, data: st.DataObject
    ) -> None:
        name = self.full(local)
        proxy = self.model.get(name)
        toxic = next((t for t in proxy.toxics if t.name == toxic_name), None) if proxy else None
        attributes = data.draw(UPDATES[toxic.type] if toxic else ATTRIBUTES["latency"])
        body: dict[str, Any] = {"attributes": attributes}
        if toxicity is not None:
            body["toxicity"] = toxicity
        reply = self.call("PATCH", f"/proxies/{name}/toxics/{toxic_name}", body)
        if proxy is None:
            self.expect_error(reply, 404, "proxy not found")
            return
        if toxic is None:
            self.expect_error(reply, 404, "toxic not found")
            return
        assert reply.status_code == 200, reply.text
        for key in toxic.attributes:
            toxic.attributes[key] = attributes.get(key, toxic.attributes[key])
        if toxicity is not None:
            toxic.toxicity = toxicity
        assert reply.json() == toxic.as_json()

    @rule(
        local=LOCAL_NAMES,
        toxic_name=st.sampled_from(["t1", "t2", "latency_downstream", "noop_upstream"]),
    )
    def remove_toxic(self, local: str, toxic_name: str) -> None:
        name = self.full(local)
        reply = self.call("DELETE", f"/proxies/{name}/toxics/{toxic_name}")
        proxy = self.model.get(name)
        if proxy is None:
            self.expect_error(reply, 404, "proxy not found")
            return
        if not any(t.name == toxic_name for t in proxy.toxics):
            self.expect_error(reply, 404, "toxic not found")
            return
        assert reply.status_code == 204
        proxy.toxics = [t for t in proxy.toxics if t.name != toxic_name]

    # -- what the server shows must equal the model --

    @invariant()
    def server_state_matches_the_model(self) -> None:
        reply = self.call("GET", "/proxies")
        assert reply.status_code == 200
        mine = {k: _comparable(v) for k, v in reply.json().items() if k.startswith(self.prefix)}
        assert mine == {name: proxy.as_json() for name, proxy in self.model.items()}
        for name, proxy in self.model.items():
            toxics = self.call("GET", f"/proxies/{name}/toxics")
            assert toxics.json() == [t.as_json() for t in proxy.ordered_toxics()]

    @invariant()
    def absent_names_are_not_found(self) -> None:
        ghost = self.full("ghost")
        self.expect_error(self.call("GET", f"/proxies/{ghost}"), 404, "proxy not found")
        self.expect_error(self.call("GET", f"/proxies/{ghost}/toxics"), 404, "proxy not found")
        for name in self.model:  # no toxic is ever called "absent"
            reply = self.call("GET", f"/proxies/{name}/toxics/absent")
            self.expect_error(reply, 404, "toxic not found")


def _comparable(proxy: dict[str, Any]) -> dict[str, Any]:
    """A proxy object without the ``Logger`` key that Toxiproxy 2.12 leaks."""
    return {key: value for key, value in proxy.items() if key != "Logger"}


# -- the test -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def endpoint() -> Iterator[ToxiproxyEndpoint]:
    with running_toxiproxy(seed=1) as chosen:
        yield chosen


def test_the_server_behaves_like_the_model(endpoint: ToxiproxyEndpoint) -> None:
    ToxiproxyModel.base_url = endpoint.url
    ToxiproxyModel.embedded = endpoint.embedded
    run_state_machine_as_test(
        ToxiproxyModel,
        settings=settings(
            max_examples=30,
            stateful_step_count=20,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )

"""The ``toxiproxy_proxy`` fixture's factory on its own: the names it gives, what it asks the
server for, and what its cleanup deletes (a recording stand-in for the server's control)."""

from __future__ import annotations

import re
from typing import cast

import pytest

from chaos.pytest_plugin import ProxyFactory
from chaos.toxiproxy.control import ToxiproxyControl
from chaos.toxiproxy.errors import ProxyNotFound, ToxiproxyError
from chaos.toxiproxy.models import ProxyInfo


class RecordingControl:
    """Creates every proxy asked for; deletes each, or raises what ``refusals`` says for it."""

    def __init__(self, refusals: dict[str, Exception] | None = None) -> None:
        self.created: list[tuple[str, str, str, bool]] = []
        self.deleted: list[str] = []
        self.refusals = refusals or {}

    async def create_proxy(
        self, name: str, upstream: str, *, listen: str = "", enabled: bool = False
    ) -> ProxyInfo:
        self.created.append((name, upstream, listen, enabled))
        return ProxyInfo(name, "127.0.0.1:40000", upstream, enabled, ())

    async def delete_proxy(self, name: str) -> None:
        self.deleted.append(name)
        if name in self.refusals:
            raise self.refusals[name]


def factory(test_name: str, control: RecordingControl | None = None) -> ProxyFactory:
    return ProxyFactory(cast(ToxiproxyControl, control or RecordingControl()), test_name)


def _error(status: int, message: str, name: str) -> ToxiproxyError:
    kind = ProxyNotFound if status == 404 else ToxiproxyError
    return kind(status, message, method="DELETE", path=f"/proxies/{name}", url="http://x")


async def test_a_proxy_listens_on_a_free_loopback_port_enabled_unless_told() -> None:
    control = RecordingControl()
    make = factory("test_it", control)
    proxy = await make("127.0.0.1:6379", name="mine")
    await make(upstream="127.0.0.1:6380", name="off", listen="127.0.0.2:7000", enabled=False)
    assert control.created == [
        ("mine", "127.0.0.1:6379", "127.0.0.1:0", True),
        ("off", "127.0.0.1:6380", "127.0.0.2:7000", False),
    ]
    assert proxy.name == "mine"
    assert make.created == ["mine", "off"]


async def test_names_are_the_test_name_a_count_from_1_and_six_random_hex_digits() -> None:
    make = factory("test_it[redis down]/x")
    first = await make("127.0.0.1:1")
    second = await make("127.0.0.1:2")
    assert re.fullmatch(r"test_it_redis_down_x-1-[0-9a-f]{6}", first.name), first.name
    assert re.fullmatch(r"test_it_redis_down_x-2-[0-9a-f]{6}", second.name), second.name
    assert first.name[-6:] != second.name[-6:]


async def test_a_long_test_name_is_cut_to_60_characters_and_an_empty_one_becomes_proxy() -> None:
    long = await factory("t" * 59 + "uv")("127.0.0.1:1")
    assert long.name.startswith("t" * 59 + "u-1-")
    empty = await factory("")("127.0.0.1:1")
    assert re.fullmatch(r"proxy-1-[0-9a-f]{6}", empty.name), empty.name
    kept = await factory("a.B_c-9")("127.0.0.1:1")
    assert kept.name.startswith("a.B_c-9-1-")


async def test_cleanup_deletes_every_proxy_newest_first_and_forgets_them() -> None:
    control = RecordingControl()
    make = factory("test_it", control)
    for name in ("one", "two", "three"):
        await make("127.0.0.1:1", name=name)
    await make.cleanup()
    assert control.deleted == ["three", "two", "one"]
    assert make.created == []
    await make.cleanup()
    assert control.deleted == ["three", "two", "one"]


async def test_cleanup_ignores_a_proxy_already_gone() -> None:
    control = RecordingControl({"two": _error(404, "proxy not found", "two")})
    make = factory("test_it", control)
    for name in ("one", "two", "three"):
        await make("127.0.0.1:1", name=name)
    await make.cleanup()
    assert control.deleted == ["three", "two", "one"]


async def test_a_failed_delete_is_raised_after_every_other_proxy_is_deleted() -> None:
    first = _error(500, "boom", "three")
    control = RecordingControl({"three": first, "one": _error(503, "later", "one")})
    make = factory("test_it", control)
    for name in ("one", "two", "three"):
        await make("127.0.0.1:1", name=name)
    with pytest.raises(ToxiproxyError) as raised:
        await make.cleanup()
    assert raised.value is first
    assert control.deleted == ["three", "two", "one"]
    assert make.created == []


async def test_a_single_failed_delete_is_the_one_raised() -> None:
    only = _error(500, "boom", "one")
    make = factory("test_it", RecordingControl({"one": only}))
    await make("127.0.0.1:1", name="one")
    with pytest.raises(ToxiproxyError) as raised:
        await make.cleanup()
    assert raised.value is only

"""Which upstreams lead back to their proxy (``chaos.toxiproxy._loops``), without sockets.

``test_fd_exhaustion.py`` checks the refusals through the API; here :func:`find_loop` is asked
directly: loops to itself and through other proxies (with the exact description), chains and
cycles that do not include the proxy, addresses that nothing can dial, and which dialled
address reaches which listening one (loopback, every interface, IPv6, names).
"""

from __future__ import annotations

import dataclasses

import pytest

from chaos.toxiproxy._loops import Endpoint, find_loop


def _proxy(name: str, listen: str, upstream: str) -> Endpoint:
    return Endpoint(name, listen, upstream)


async def test_an_upstream_that_is_its_own_listen_address_loops_to_itself() -> None:
    proxy = _proxy("a", "127.0.0.1:5000", "127.0.0.1:5000")
    assert await find_loop(proxy, []) == ('upstream 127.0.0.1:5000 loops back to proxy "a" itself')


async def test_a_loop_through_one_other_proxy_names_it() -> None:
    proxy = _proxy("a", "127.0.0.1:5000", "127.0.0.1:5001")
    others = [_proxy("b", "127.0.0.1:5001", "127.0.0.1:5000")]
    assert await find_loop(proxy, others) == (
        'upstream 127.0.0.1:5001 loops back to proxy "a" through proxy "b"'
    )


async def test_a_loop_through_several_proxies_names_them_in_order() -> None:
    proxy = _proxy("a", "127.0.0.1:5000", "127.0.0.1:5001")
    others = [
        _proxy("c", "127.0.0.1:5002", "127.0.0.1:5003"),
        _proxy("b", "127.0.0.1:5001", "127.0.0.1:5002"),
        _proxy("d", "127.0.0.1:5003", "127.0.0.1:5000"),
    ]
    assert await find_loop(proxy, others) == (
        'upstream 127.0.0.1:5001 loops back to proxy "a" through proxies "b", "c", "d"'
    )


async def test_a_chain_that_leaves_the_server_is_no_loop() -> None:
    proxy = _proxy("a", "127.0.0.1:5000", "127.0.0.1:5001")
    others = [
        _proxy("b", "127.0.0.1:5001", "127.0.0.1:5002"),
        _proxy("c", "127.0.0.1:5002", "127.0.0.1:6000"),
    ]
    assert await find_loop(proxy, others) is None


async def test_a_cycle_the_proxy_only_leads_into_is_not_its_loop() -> None:
    proxy = _proxy("a", "127.0.0.1:5000", "127.0.0.1:5001")
    others = [
        _proxy("b", "127.0.0.1:5001", "127.0.0.1:5002"),
        _proxy("c", "127.0.0.1:5002", "127.0.0.1:5001"),
    ]
    assert await find_loop(proxy, others) is None


async def test_the_proxy_being_replaced_is_left_out() -> None:
    proxy = _proxy("a", "127.0.0.1:5000", "127.0.0.1:5001")
    old_self = _proxy("a", "127.0.0.1:5001", "127.0.0.1:5000")  # the version being replaced
    assert await find_loop(proxy, [old_self]) is None


@pytest.mark.parametrize(
    ("listen", "upstream"),
    [
        ("127.0.0.1:0", "127.0.0.1:0"),  # port 0: not bound yet, nothing can dial it
        ("", "127.0.0.1:0"),
        ("bad:addr:x", "bad:addr:x"),  # a listen address that cannot be bound
        ("127.0.0.1:5000", "127.0.0.1"),  # an upstream without a port
        ("127.0.0.1:5000", "127.0.0.1:http"),
        ("127.0.0.1:5000", "127.0.0.1:5001"),  # another port
        ("127.0.0.1:5000", "nosuchhost.invalid:5000"),  # a name that does not resolve
        ("127.0.0.1:5000", "127.0.0.2:5000"),  # another loopback address
        ("127.0.0.1:5000", "[::1]:5000"),  # another family
        ("[::1]:5000", "127.0.0.1:5000"),
        ("0.0.0.0:5000", "192.0.2.1:5000"),  # not this host, as far as can be told
        ("127.0.0.2:5000", "127.0.0.1:5000"),
    ],
)
async def test_what_cannot_reach_the_listen_address_is_no_loop(listen: str, upstream: str) -> None:
    assert await find_loop(_proxy("a", listen, upstream), []) is None


@pytest.mark.parametrize(
    ("listen", "upstream"),
    [
        ("127.0.0.1:5000", "localhost:5000"),
        ("localhost:5000", "127.0.0.1:5000"),
        ("127.0.0.1:5000", ":5000"),  # Go dials the local system for an empty host
        (":5000", "127.0.0.1:5000"),  # an empty listen host binds loopback here
        ("0.0.0.0:5000", "127.0.0.1:5000"),  # every interface
        ("0.0.0.0:5000", "0.0.0.0:5000"),
        ("127.0.0.1:5000", "0.0.0.0:5000"),  # 0.0.0.0 dials this host's loopback
        # Linux dials 127.0.0.1 for 0.0.0.0; any loopback listener is taken as reached (a false
        # loop refuses an odd proxy, a missed one would run the server out of descriptors).
        ("127.0.0.2:5000", "0.0.0.0:5000"),
        ("[::]:5000", "[::1]:5000"),
        ("[::1]:5000", "[::1]:5000"),
        ("[::]:5000", "[::]:5000"),
    ],
)
async def test_every_way_of_dialling_the_listen_address_is_a_loop(
    listen: str, upstream: str
) -> None:
    message = await find_loop(_proxy("a", listen, upstream), [])
    assert message == f'upstream {upstream} loops back to proxy "a" itself'


async def test_a_loop_through_two_other_proxies_says_proxies() -> None:
    proxy = _proxy("a", "127.0.0.1:5000", "127.0.0.1:5001")
    others = [
        _proxy("b", "127.0.0.1:5001", "127.0.0.1:5002"),
        _proxy("c", "127.0.0.1:5002", "127.0.0.1:5000"),
    ]
    assert await find_loop(proxy, others) == (
        'upstream 127.0.0.1:5001 loops back to proxy "a" through proxies "b", "c"'
    )


@pytest.mark.parametrize("host", ["X127.0.0.1", "127.0.0.1X"])
async def test_a_name_that_only_contains_an_address_is_a_name_not_that_address(
    host: str,
) -> None:
    # Only the brackets of an IPv6 literal are taken off: anything else makes the host a name
    # (this one does not resolve, so nothing is dialled and there is no loop).
    assert await find_loop(_proxy("a", "127.0.0.1:5000", f"{host}:5000"), []) is None


def test_an_endpoint_is_an_immutable_value() -> None:
    endpoint = _proxy("a", "127.0.0.1:5000", "127.0.0.1:5001")
    with pytest.raises(dataclasses.FrozenInstanceError):
        endpoint.name = "b"  # type: ignore[misc]
    assert hash(endpoint) == hash(_proxy("a", "127.0.0.1:5000", "127.0.0.1:5001"))

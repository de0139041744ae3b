"""Refusing a proxy whose upstream leads back to itself.

A proxy that dials its own listen address accepts that connection, dials again, and so on until
the process has no file descriptors left (Toxiproxy 2.12 accepts such a proxy; with ``ulimit -n
1024`` its API then stops answering). :func:`find_loop` follows a proxy's upstream through the
server's proxies, listen address to listen address, and describes the loop it would close: to
itself directly, or through other proxies. A loop through something outside this server (another
relay) cannot be seen here; the accept loop survives it (:mod:`chaos.toxiproxy._accept`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass

from chaos.toxiproxy._proxy import ProxyError, resolve_listen, split_host_port

__all__ = ["Endpoint", "find_loop"]


@dataclass(frozen=True)
class Endpoint:
    """A proxy as the loop check sees it: its name, listen address and upstream."""

    name: str
    listen: str
    upstream: str


async def find_loop(proxy: Endpoint, others: Iterable[Endpoint]) -> str | None:
    """Why ``proxy``'s upstream leads back to ``proxy`` through ``others``, or None if it does not.

    ``others`` are the server's other proxies (one of the same name is left out: ``proxy``
    replaces it).
    """
    nodes = [proxy] + [other for other in others if other.name != proxy.name]
    listens = {node.name: await _listen_address(node.listen) for node in nodes}
    path: list[str] = []
    current = proxy
    for _ in range(len(nodes)):
        following = await _dialled(current.upstream, listens, nodes)
        if following is None or following.name in path:
            return None
        if following.name == proxy.name:
            return _describe(proxy, path)
        path.append(following.name)
        current = following
    return None


def _describe(proxy: Endpoint, path: list[str]) -> str:
    if not path:
        return f'upstream {proxy.upstream} loops back to proxy "{proxy.name}" itself'
    through = ", ".join(f'"{name}"' for name in path)
    plural = "proxies" if len(path) > 1 else "proxy"
    return (
        f'upstream {proxy.upstream} loops back to proxy "{proxy.name}" through {plural} {through}'
    )


async def _listen_address(listen: str) -> tuple[str, int] | None:
    try:
        host, port = await resolve_listen(listen)
    except ProxyError:
        return None
    return (host, port) if port else None  # port 0: not bound yet, nothing can dial it


async def _dialled(
    upstream: str, listens: dict[str, tuple[str, int] | None], nodes: list[Endpoint]
) -> Endpoint | None:
    """The proxy among ``nodes`` whose listen address ``upstream`` dials, if any."""
    try:
        host, port_text = split_host_port(upstream)
        port = int(port_text)
    except ValueError:
        return None
    candidates = [
        node for node in nodes if (address := listens[node.name]) is not None and address[1] == port
    ]
    if not candidates:
        return None  # no DNS lookup unless some proxy listens on that port
    targets = await _addresses(host, port)
    for node in candidates:
        address = listens[node.name]
        if address is not None and any(_reaches(target, address[0]) for target in targets):
            return node
    return None


async def _addresses(host: str, port: int) -> set[str]:
    if not host:
        return {"127.0.0.1"}  # Go dials the local system for an empty host
    try:
        return {str(ipaddress.ip_address(host.strip("[]")))}
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return set()  # unresolvable: the dial fails, no loop
    return {str(info[4][0]) for info in infos}


def _reaches(target: str, listen_host: str) -> bool:
    """Whether dialling ``target`` reaches a socket listening on ``listen_host``."""
    if target == listen_host:
        return True
    target_ip = ipaddress.ip_address(target)
    listen_ip = ipaddress.ip_address(listen_host)
    if target_ip.version != listen_ip.version:
        return False
    if listen_ip.is_unspecified:  # every interface: any local address reaches it
        return target_ip.is_loopback or target_ip.is_unspecified
    return target_ip.is_unspecified and listen_ip.is_loopback  # 0.0.0.0 dials this host

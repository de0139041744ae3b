"""What a Toxiproxy server returns, as values: :class:`ProxyInfo` and its :class:`ToxicInfo` s.

Both are frozen and built from the API's JSON by ``from_json``, which raises
:class:`ValueError` naming the field for anything that is not a proxy or a toxic object (the
control facade turns that into a "malformed reply" :class:`~chaos.toxiproxy.errors.ToxiproxyError`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

__all__ = ["ProxyInfo", "ToxicInfo"]


@dataclass(frozen=True)
class ToxicInfo:
    """A toxic as the server reports it. ``attributes`` is a read-only mapping."""

    name: str
    type: str
    stream: str
    toxicity: float
    attributes: Mapping[str, int]

    @classmethod
    def from_json(cls, data: object) -> ToxicInfo:
        """Build from one toxic object of the API; :class:`ValueError` if it is not one."""
        obj = _expect_object(data, "toxic")
        attributes = obj.get("attributes") or {}
        if not isinstance(attributes, dict):
            raise ValueError(f"toxic attributes must be an object, got {attributes!r}")
        return cls(
            name=_expect_str(obj, "name", "toxic"),
            type=_expect_str(obj, "type", "toxic"),
            stream=_expect_str(obj, "stream", "toxic"),
            toxicity=float(obj.get("toxicity", 1.0)),
            attributes=MappingProxyType(dict(attributes)),
        )


@dataclass(frozen=True)
class ProxyInfo:
    """A proxy as the server reports it; ``listen`` is the address actually bound while enabled."""

    name: str
    listen: str
    upstream: str
    enabled: bool
    toxics: tuple[ToxicInfo, ...]

    @property
    def listen_host(self) -> str:
        """The host part of ``listen`` (IPv6 brackets removed)."""
        return _split_host_port(self.listen)[0]

    @property
    def listen_port(self) -> int:
        """The port part of ``listen``."""
        return _split_host_port(self.listen)[1]

    def toxic(self, name: str) -> ToxicInfo:
        """The toxic called ``name``; :class:`KeyError` naming it if the proxy has none such."""
        for toxic in self.toxics:
            if toxic.name == name:
                return toxic
        raise KeyError(f"proxy {self.name!r} has no toxic {name!r}")

    @classmethod
    def from_json(cls, data: object) -> ProxyInfo:
        """Build from one proxy object of the API (unknown keys such as ``Logger`` ignored)."""
        obj = _expect_object(data, "proxy")
        toxics = obj.get("toxics") or []
        if not isinstance(toxics, list):
            raise ValueError(f"proxy toxics must be an array, got {toxics!r}")
        enabled = obj.get("enabled")
        if not isinstance(enabled, bool):
            raise ValueError(f"proxy field 'enabled' must be a boolean, got {enabled!r}")
        return cls(
            name=_expect_str(obj, "name", "proxy"),
            listen=_expect_str(obj, "listen", "proxy"),
            upstream=_expect_str(obj, "upstream", "proxy"),
            enabled=enabled,
            toxics=tuple(ToxicInfo.from_json(t) for t in toxics),
        )


def _split_host_port(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"listen address {address!r} is not host:port")
    return host.strip("[]"), int(port)


def _expect_object(data: object, what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object for the {what}, got {data!r}")
    return data


def _expect_str(obj: Mapping[str, Any], key: str, what: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise ValueError(f"{what} field {key!r} must be a string, got {value!r}")
    return value

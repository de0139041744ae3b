"""Every module of ``chaos.toxiproxy`` exports what its ``__all__`` names (star imports work)."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import chaos.toxiproxy

_MODULES = sorted(
    f"chaos.toxiproxy.{info.name}" for info in pkgutil.iter_modules(chaos.toxiproxy.__path__)
)


def test_every_module_but_the_command_declares_its_exports() -> None:
    assert "chaos.toxiproxy._toxics" in _MODULES
    assert len(_MODULES) >= 17
    undeclared = [
        name for name in _MODULES if not hasattr(importlib.import_module(name), "__all__")
    ]
    assert undeclared == ["chaos.toxiproxy.__main__"]


@pytest.mark.parametrize(
    "name", ["chaos.toxiproxy", *(name for name in _MODULES if not name.endswith("__main__"))]
)
def test_all_names_only_what_the_module_defines_and_each_once(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    assert isinstance(exported, list)
    missing = [item for item in exported if not hasattr(module, item)]
    assert missing == [], f"{name}.__all__ names what it does not define"
    assert len(set(exported)) == len(exported)
    namespace: dict[str, object] = {}
    exec(f"from {name} import *", namespace)
    assert sorted(set(namespace) - {"__builtins__"}) == sorted(exported)


def test_the_package_exports_the_server_the_control_and_their_values() -> None:
    assert sorted(chaos.toxiproxy.__all__) == [
        "AlreadyExists",
        "BackgroundToxiproxy",
        "BadRequest",
        "DEFAULT_HOST",
        "NotFound",
        "ProxyInfo",
        "ProxyNotFound",
        "TOXIPROXY_VERSION",
        "ToxicInfo",
        "ToxicNotFound",
        "ToxiproxyControl",
        "ToxiproxyEndpoint",
        "ToxiproxyError",
        "ToxiproxyServer",
        "ToxiproxyUnavailable",
        "normalize_toxiproxy_url",
        "open_control",
        "running_toxiproxy",
        "toxiproxy_server",
    ]

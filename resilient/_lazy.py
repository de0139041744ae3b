"""Public names whose module needs a heavy dependency, imported on first use.

``import resilient`` must not pay for redis-py, pybreaker or aiohttp (tens of milliseconds
each) when the program only uses, say, the local limiter. A package lists such names under the
module that defines them; :func:`lazy_exports` gives the package the module ``__getattr__``
and ``__dir__`` (PEP 562) that import that module when the name is first read, and keep the
value in the package from then on. Type checkers see the names through ``TYPE_CHECKING``
imports in the package itself.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, namespace: dict[str, Any], modules: Mapping[str, Sequence[str]]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``, whose ``namespace`` (its ``globals()``)
    gets each name of ``modules`` (defining module: its names) when the name is first read."""
    names = {name: module for module, exported in modules.items() for name in exported}

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *names})

    return __getattr__, __dir__

"""The scenario registry: one module per incident in this package, found automatically.

A scenario module exposes ``SCENARIOS``, a sequence of :class:`chaos.scenario.Scenario`.
Dropping such a module into this package registers it; nothing else changes. Other modules
(a user's own, or the engine self-test's) are loaded by name with :func:`load_scenarios`,
e.g. ``chaos run --scenarios-module tests.chaos.selftest_scenarios``.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Sequence
from types import ModuleType

from chaos.scenario import Scenario

__all__ = ["BUILTIN_MODULE", "ScenarioLoadError", "load_scenarios"]

BUILTIN_MODULE = "chaos.scenarios"
"""The package of the project's own scenarios (the default of :func:`load_scenarios`)."""


class ScenarioLoadError(Exception):
    """A scenario module could not be imported or does not declare scenarios properly."""


def load_scenarios(modules: Sequence[str] = (BUILTIN_MODULE,)) -> dict[str, Scenario]:
    """Every scenario declared by ``modules``, by name, in declaration order.

    A module with ``SCENARIOS`` contributes those; a package without it contributes the
    ``SCENARIOS`` of each of its public submodules. Raises :class:`ScenarioLoadError` naming
    the module for an import error, a malformed ``SCENARIOS`` or a name declared twice.
    """
    found: dict[str, Scenario] = {}
    for name in modules:
        for module in _modules(name):
            for scenario in _declared(module):
                if scenario.name in found:
                    raise ScenarioLoadError(
                        f"scenario {scenario.name!r} is declared twice ({module.__name__})"
                    )
                found[scenario.name] = scenario
    return found


def _modules(name: str) -> list[ModuleType]:
    module = _import(name)
    if hasattr(module, "SCENARIOS") or not hasattr(module, "__path__"):
        return [module]
    return [
        _import(f"{name}.{info.name}")
        for info in pkgutil.iter_modules(module.__path__)
        if not info.name.startswith("_")
    ]


def _import(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise ScenarioLoadError(f"cannot import scenario module {name!r}: {exc}") from exc
    except Exception as exc:
        raise ScenarioLoadError(
            f"scenario module {name!r} failed on import: {type(exc).__name__}: {exc}"
        ) from exc


def _declared(module: ModuleType) -> list[Scenario]:
    declared = getattr(module, "SCENARIOS", None)
    if declared is None:
        raise ScenarioLoadError(f"module {module.__name__!r} has no SCENARIOS")
    scenarios = list(declared)
    for item in scenarios:
        if not isinstance(item, Scenario):
            raise ScenarioLoadError(
                f"{module.__name__}.SCENARIOS holds {item!r}, not a chaos.scenario.Scenario"
            )
    return scenarios

"""The scenario registry: one module per incident in this package, found automatically, and
the scenarios that installed packages register.

A scenario module exposes ``SCENARIOS``, a sequence of :class:`chaos.scenario.Scenario`.
Dropping such a module into this package registers it; nothing else changes. Other modules
(a user's own, or the engine self-test's) are loaded by name with :func:`load_scenarios`,
e.g. ``chaos run --scenarios-module tests.chaos.selftest_scenarios``.

A package registers its scenarios for every ``chaos`` command, beside the built-in ones (or
the ``--scenarios-module`` ones), under the entry point group :data:`ENTRY_POINT_GROUP`::

    [project.entry-points."chaos.scenarios"]
    my-service = "my_service.chaos_scenarios"            # a module (or package) with SCENARIOS
    my-other = "my_service.chaos_scenarios:SCENARIOS"    # or an object: see below

An entry point naming a module contributes it as ``--scenarios-module`` would; one naming an
object contributes that object: a :class:`~chaos.scenario.Scenario`, a sequence of them, or a
callable (no arguments) returning either. Two sources declaring one scenario name is an error
naming both (never one scenario silently hiding another); so is an entry point that fails to
load, naming the entry point and its distribution.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable, Sequence
from importlib import metadata
from types import ModuleType

from chaos.scenario import Scenario

__all__ = [
    "BUILTIN_MODULE",
    "ENTRY_POINT_GROUP",
    "ScenarioLoadError",
    "discover_scenarios",
    "load_scenarios",
]

BUILTIN_MODULE = "chaos.scenarios"
"""The package of the project's own scenarios (the default of :func:`load_scenarios`)."""

ENTRY_POINT_GROUP = "chaos.scenarios"
"""The entry point group through which an installed package registers its scenarios."""


class ScenarioLoadError(Exception):
    """A scenario module could not be imported or does not declare scenarios properly."""


def load_scenarios(
    modules: Sequence[str] = (BUILTIN_MODULE,), *, entry_points: bool = False
) -> dict[str, Scenario]:
    """Every scenario declared by ``modules`` (and, with ``entry_points``, by every entry
    point of :data:`ENTRY_POINT_GROUP`), by name, in declaration order.

    A module with ``SCENARIOS`` contributes those; a package without it contributes the
    ``SCENARIOS`` of each of its public submodules. Raises :class:`ScenarioLoadError` naming
    the module (or the entry point) for an import error, a malformed ``SCENARIOS`` or a name
    declared twice, by one source or by two.
    """
    found: dict[str, tuple[Scenario, str]] = {}
    for name in modules:
        for module in _modules(name):
            _add(found, _declared(module), f"module {module.__name__!r}")
    if entry_points:
        registered = metadata.entry_points(group=ENTRY_POINT_GROUP)
        for entry_point in sorted(registered, key=lambda ep: (_dist_name(ep), ep.name)):
            _add(found, _from_entry_point(entry_point), _source(entry_point))
    return {name: scenario for name, (scenario, _) in found.items()}


def discover_scenarios(modules: Sequence[str] | None = None) -> dict[str, Scenario]:
    """What every ``chaos`` command sees: the scenarios of ``modules`` (default: the built-in
    ones) and those every installed package registers (:data:`ENTRY_POINT_GROUP`)."""
    return load_scenarios(modules or (BUILTIN_MODULE,), entry_points=True)


def _add(
    found: dict[str, tuple[Scenario, str]], scenarios: Iterable[Scenario], source: str
) -> None:
    for scenario in scenarios:
        if scenario.name not in found:
            found[scenario.name] = (scenario, source)
            continue
        first = found[scenario.name][1]
        where = f"by {source}" if first == source else f"by {first} and by {source}"
        raise ScenarioLoadError(f"scenario {scenario.name!r} is declared twice ({where})")


def _dist_name(entry_point: metadata.EntryPoint) -> str:
    return entry_point.dist.name if entry_point.dist is not None else ""


def _source(entry_point: metadata.EntryPoint) -> str:
    dist = entry_point.dist
    owner = f" of {dist.name} {dist.version}" if dist is not None else ""
    return f"entry point {entry_point.name!r} ({entry_point.value}){owner}"


def _from_entry_point(entry_point: metadata.EntryPoint) -> list[Scenario]:
    source = _source(entry_point)
    if entry_point.attr is None:  # a module (or package), as --scenarios-module takes it
        try:
            return [s for module in _modules(entry_point.module) for s in _declared(module)]
        except ScenarioLoadError as exc:
            raise ScenarioLoadError(f"{source} in group {ENTRY_POINT_GROUP!r}: {exc}") from exc
    try:
        value = entry_point.load()
        if callable(value) and not isinstance(value, Scenario):
            value = value()
    except Exception as exc:
        raise ScenarioLoadError(
            f"{source} in group {ENTRY_POINT_GROUP!r} failed to load: {type(exc).__name__}: {exc}"
        ) from exc
    items = [value] if isinstance(value, Scenario) else value
    if isinstance(items, (str, bytes)) or not isinstance(items, Iterable):
        raise ScenarioLoadError(
            f"{source} gives {value!r}, not a chaos.scenario.Scenario or a sequence of them"
        )
    scenarios = list(items)
    for item in scenarios:
        if not isinstance(item, Scenario):
            raise ScenarioLoadError(f"{source} gives {item!r}, not a chaos.scenario.Scenario")
    return scenarios


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

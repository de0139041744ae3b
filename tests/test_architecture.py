"""Imports point one way (DESIGN.md, Layout): checked on the source, so a new module cannot slip.

- ``resilient`` never imports ``chaos``;
- ``resilient.clock`` and ``resilient.events`` (and the private helpers every pattern shares:
  ``_validate``, ``_lazy``, ``_deadline``) know no pattern;
- patterns (``resilient.ratelimit``, ``resilient.breaker``, ...) import no adapter
  (``resilient.aiohttp``, ``resilient.testing``, ``resilient.metrics``);
- the backend-neutral part of ``resilient.metrics`` imports no pattern (it recognises the
  instances it watches by their class, in modules already imported) and no metrics backend:
  only ``resilient.metrics.prometheus`` and ``resilient.metrics.otel`` bring theirs;
- ``chaos.toxiproxy`` (a standalone Toxiproxy drop-in) imports neither ``resilient`` nor the engine;
- the engine (``chaos.engine``, ``chaos.scenario``, ``chaos.load``, ``chaos.report``, ``chaos.cli``
  and their private helpers) knows no pattern: only ``chaos.scenarios`` brings patterns in;
- the modules of ``chaos`` import each other without a cycle.

Module size is not checked here: a module has one job, and past about 500 lines it usually has
two (``find chaos resilient -name '*.py' | xargs wc -l | sort -n | tail`` shows the largest).
A test would only count lines; splitting is a judgement, made in review.

And every public pattern class has the one constructor shape
``Pattern(dependency..., options=DEFAULT_<PATTERN>_OPTIONS, *, collaborators..., clock, events)``.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
from pathlib import Path

import pytest

import resilient
from resilient.clock import SYSTEM_CLOCK
from resilient.events import DEFAULT_EVENTS

ROOT = Path(__file__).resolve().parent.parent


def imported_modules(path: Path, package: str | None = None) -> set[str]:
    """Every absolute module name ``path`` imports (relative imports resolved to their package)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    if package is None:
        package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = absolute_module(node, package)
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def modules_under(*parts: str) -> list[Path]:
    target = ROOT.joinpath(*parts)
    return sorted(target.rglob("*.py")) if target.is_dir() else [target.with_suffix(".py")]


def offenders(paths: list[Path], forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in paths:
        if not path.exists():
            continue
        bad = sorted(
            name
            for name in imported_modules(path)
            if any(name == f or name.startswith(f + ".") for f in forbidden)
        )
        if bad:
            found[str(path.relative_to(ROOT))] = bad
    return found


ENGINE = (
    "chaos.engine",
    "chaos._serving",
    "chaos._proxy_process",
    "chaos._results",
    "chaos._completing",
    "chaos._context",
    "chaos._fleet",
    "chaos._replica",
    "chaos._replica_plan",
    "chaos.scenario",
    "chaos.load",
    "chaos.report",
    "chaos.cli",
)
FOUNDATIONS = ("resilient.clock", "resilient.events")
METRICS_BACKENDS = ("prometheus_client", "opentelemetry")
SHARED_HELPERS = ("_validate", "_lazy", "_deadline")
ADAPTERS = ("resilient.aiohttp", "resilient.redis", "resilient.testing", "resilient.metrics")


def pattern_modules() -> tuple[str, ...]:
    names = []
    for path in (ROOT / "resilient").iterdir():
        name = path.stem if path.suffix == ".py" else path.name
        if name.startswith("_") or name in {
            "clock",
            "events",
            "errors",
            "aiohttp",
            "redis",
            "testing",
            "metrics",
        }:
            continue
        if path.suffix == ".py" or (path / "__init__.py").exists():
            names.append(f"resilient.{name}")
    return tuple(names)


@pytest.mark.parametrize(
    ("scope", "forbidden"),
    [
        (("resilient",), ("chaos",)),
        (("resilient", "clock"), pattern_modules()),
        (("resilient", "events"), pattern_modules()),
        *((("resilient", helper), pattern_modules()) for helper in SHARED_HELPERS),
        *((("resilient", pattern.split(".")[1]), ADAPTERS) for pattern in pattern_modules()),
        *(
            (("resilient", "metrics", module), (*METRICS_BACKENDS, *pattern_modules()))
            for module in ("__init__", "_scheme", "_sink")
        ),
        (("chaos", "toxiproxy"), ("resilient", *ENGINE, "chaos.scenarios")),
        *((tuple(name.split(".")), ("resilient",)) for name in ENGINE),
    ],
    ids=lambda value: ".".join(value) if isinstance(value, tuple) and len(value) < 3 else None,
)
def test_imports_point_one_way(scope: tuple[str, ...], forbidden: tuple[str, ...]) -> None:
    paths = modules_under(*scope)
    assert paths, f"{'.'.join(scope)} names no module: a rename left this rule behind"
    assert all(path.exists() for path in paths), f"{'.'.join(scope)} is not a module"
    assert offenders(paths, forbidden) == {}


def test_only_scenarios_bring_patterns_into_the_harness() -> None:
    outside = [p for p in modules_under("chaos") if "scenarios" not in p.relative_to(ROOT).parts]
    assert offenders(outside, ("resilient",)) == {}


def test_chaos_modules_import_each_other_without_a_cycle() -> None:
    """Run-time imports only: an import under ``if TYPE_CHECKING:`` never runs."""
    graph = {module: runtime_imports(path) for module, path in chaos_modules().items()}
    assert find_cycle(graph) is None


def chaos_modules() -> dict[str, Path]:
    modules = {}
    for path in modules_under("chaos"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def runtime_imports(path: Path) -> set[str]:
    """The ``chaos`` modules ``path`` imports when it runs (``from pkg import mod`` counts as
    ``pkg.mod``, since the package itself is then imported only as a parent)."""
    known = chaos_modules()
    tree = ast.parse(path.read_text(), filename=str(path))
    checking = {
        id(node)
        for branch in ast.walk(tree)
        if isinstance(branch, ast.If) and ast.unparse(branch.test).endswith("TYPE_CHECKING")
        for statement in branch.body
        for node in ast.walk(statement)
    }
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in checking:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = absolute_module(node, package)
            for alias in node.names:
                submodule = f"{module}.{alias.name}"
                found.add(submodule if submodule in known else module)
    return {name for name in found if name in known}


def absolute_module(node: ast.ImportFrom, package: str) -> str:
    if not node.level:
        return node.module or ""
    base = package.split(".")[: len(package.split(".")) - node.level + 1]
    return ".".join([*base, node.module] if node.module else base)


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (as the list of modules around it), or None."""
    done: set[str] = set()
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        if module in path:
            return [*path[path.index(module) :], module]
        if module in done:
            return None
        path.append(module)
        for target in sorted(graph.get(module, ())):
            cycle = visit(target)
            if cycle is not None:
                return cycle
        path.pop()
        done.add(module)
        return None

    for module in sorted(graph):
        cycle = visit(module)
        if cycle is not None:
            return cycle
    return None


def test_the_cycle_finder_sees_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_the_checker_sees_absolute_and_relative_imports(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("import resilient.clock\nfrom .. import scenario\nfrom ._proxy import Link\n")
    found = imported_modules(probe, package="chaos.toxiproxy")
    assert {"resilient.clock", "chaos.scenario", "chaos.toxiproxy._proxy"} <= found


def test_the_pattern_list_is_not_empty() -> None:
    assert {"resilient.ratelimit", "resilient.breaker"} <= set(pattern_modules())


# -- one constructor shape ---------------------------------------------------------------------


def public_pattern_classes() -> list[type]:
    """Every public class of ``resilient`` whose constructor takes ``clock`` and ``events``."""
    found = []
    for name in resilient.__all__:
        value = getattr(resilient, name)
        if (
            inspect.isclass(value)
            and not issubclass(value, BaseException)
            and {"clock", "events"} <= set(inspect.signature(value).parameters)
        ):
            found.append(value)
    return found


def test_every_pattern_class_is_found() -> None:
    names = {cls.__name__ for cls in public_pattern_classes()}
    assert names == {
        "AdaptiveThrottle",
        "BoundedPool",
        "Bulkhead",
        "CircuitBreaker",
        "ConfigRollout",
        "ConnectGate",
        "FailOpenGuard",
        "Failover",
        "LocalLimiter",
        "RedisLimiter",
        "ReleaseQueue",
        "RetryBudget",
        "RetryPolicy",
    }


NO_DEPENDENCY = {
    "RetryBudget": "it calls nothing: it counts what the clients of one provider report to it, "
    "and is shared by all of them (retries, hedges, failovers)",
}
"""Patterns whose constructor starts at ``options``, and why."""


@pytest.mark.parametrize("pattern", public_pattern_classes(), ids=lambda cls: cls.__name__)
def test_every_pattern_has_the_one_constructor_shape(pattern: type) -> None:
    """``Pattern(dependency..., options=DEFAULT_..., *, collaborators..., clock, events)``."""
    parameters = list(inspect.signature(pattern).parameters.values())
    names = [p.name for p in parameters]
    assert "options" in names, f"{pattern.__name__} takes no options"
    at = names.index("options")
    leading, options, rest = parameters[:at], parameters[at], parameters[at + 1 :]
    assert bool(leading) != (pattern.__name__ in NO_DEPENDENCY), (
        f"{pattern.__name__}: the dependency comes first"
    )
    assert all(p.kind is p.POSITIONAL_OR_KEYWORD and p.default is p.empty for p in leading), (
        f"{pattern.__name__}: dependencies are positional and required"
    )
    assert options.kind is options.POSITIONAL_OR_KEYWORD
    default = options.default
    assert dataclasses.is_dataclass(default)
    assert type(default).__name__.endswith("Options")
    defaults = [
        value
        for name, value in vars(
            importlib.import_module(pattern.__module__.rsplit(".", 1)[0])
        ).items()
        if name.startswith("DEFAULT_") and name.endswith("_OPTIONS")
    ]
    assert any(value is default for value in defaults), (
        f"{pattern.__name__}'s default options are not a DEFAULT_..._OPTIONS of its package"
    )
    assert all(p.kind is p.KEYWORD_ONLY for p in rest), f"{pattern.__name__}: keyword-only after"
    assert [p.name for p in rest[-2:]] == ["clock", "events"]
    assert rest[-2].default is SYSTEM_CLOCK
    assert rest[-1].default is DEFAULT_EVENTS


def test_every_options_class_is_frozen_and_names_every_default() -> None:
    from resilient._validate import rule_of

    options_classes = [
        getattr(resilient, name) for name in resilient.__all__ if name.endswith("Options")
    ]
    assert len(options_classes) >= 4
    for cls in options_classes:
        assert dataclasses.is_dataclass(cls)
        assert cls.__dataclass_params__.frozen, cls  # type: ignore[attr-defined]
        for field in dataclasses.fields(cls):
            assert field.default is not dataclasses.MISSING, f"{cls.__name__}.{field.name}"
            assert rule_of(field) is not None, f"{cls.__name__}.{field.name} has no rule"


def test_typed_event_attributes_keep_a_mappings_equality() -> None:
    """Every event's attributes class is declared ``eq=False``, so that it equals a mapping of
    the same items (``EventAttributes.__eq__``) instead of only its own class."""
    from resilient.events import EventAttributes

    importlib.import_module("resilient.ratelimit._events")
    importlib.import_module("resilient.breaker._events")
    importlib.import_module("resilient.release._events")
    importlib.import_module("resilient.pool._events")
    importlib.import_module("resilient.retry._events")
    importlib.import_module("resilient.bulkhead._events")
    found = []
    pending = list(EventAttributes.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls.__module__.startswith("resilient."):
            found.append(cls)
            assert "__eq__" not in vars(cls), f"{cls.__name__} defines its own __eq__"
    assert len(found) >= 10

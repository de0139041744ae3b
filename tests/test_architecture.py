"""Imports point one way (DESIGN.md, Layout): checked on the source, so a new module cannot slip.

- ``resilient`` never imports ``chaos``;
- ``resilient.clock`` and ``resilient.events`` (and the private helpers every pattern shares:
  ``_validate``, ``_lazy``, ``_deadline``) know no pattern;
- patterns (``resilient.ratelimit``, ``resilient.breaker``, ...) import no adapter
  (``resilient.aiohttp``, ``resilient.testing``);
- ``chaos.toxiproxy`` (a standalone Toxiproxy drop-in) imports neither ``resilient`` nor the engine;
- the engine (``chaos.scenario``, ``chaos.load``, ``chaos.report``, ``chaos.cli``) knows no pattern.

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
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
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


ENGINE = ("chaos.scenario", "chaos.load", "chaos.report", "chaos.cli")
FOUNDATIONS = ("resilient.clock", "resilient.events")
SHARED_HELPERS = ("_validate", "_lazy", "_deadline")
ADAPTERS = ("resilient.aiohttp", "resilient.testing")


def pattern_modules() -> tuple[str, ...]:
    names = []
    for path in (ROOT / "resilient").iterdir():
        name = path.stem if path.suffix == ".py" else path.name
        if name.startswith("_") or name in {"clock", "events", "errors", "aiohttp", "testing"}:
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
        (("chaos", "toxiproxy"), ("resilient", *ENGINE, "chaos.scenarios")),
        (("chaos", "scenario"), ("resilient",)),
        (("chaos", "load"), ("resilient",)),
        (("chaos", "report"), ("resilient",)),
        (("chaos", "cli"), ("resilient",)),
    ],
    ids=lambda value: ".".join(value) if isinstance(value, tuple) and len(value) < 3 else None,
)
def test_imports_point_one_way(scope: tuple[str, ...], forbidden: tuple[str, ...]) -> None:
    assert offenders(modules_under(*scope), forbidden) == {}


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
    assert names == {"CircuitBreaker", "FailOpenGuard", "LocalLimiter", "RedisLimiter"}


@pytest.mark.parametrize("pattern", public_pattern_classes(), ids=lambda cls: cls.__name__)
def test_every_pattern_has_the_one_constructor_shape(pattern: type) -> None:
    """``Pattern(dependency..., options=DEFAULT_..., *, collaborators..., clock, events)``."""
    parameters = list(inspect.signature(pattern).parameters.values())
    names = [p.name for p in parameters]
    assert "options" in names, f"{pattern.__name__} takes no options"
    at = names.index("options")
    leading, options, rest = parameters[:at], parameters[at], parameters[at + 1 :]
    assert leading, f"{pattern.__name__}: the dependency comes first"
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

"""A griffe extension for the API reference (mkdocs.yml): Sphinx roles in docstrings, checked.

The docstrings are written for readers of the source and cross-reference with Sphinx's roles
(``:class:`~resilient.errors.PoolError```, ``:meth:`decide```). For the site each role
becomes a code span (shortened after a ``~``, as Sphinx shortens it), linked to the target's
entry in the API reference where it has one (an optional cross-reference: a private constant
has no entry and stays plain code). Each role's target must exist: a name resolved from the
docstring's own scope to an object of the loaded packages, or a builtin or standard-library
name. A target that does not exist (a class renamed, a
constant removed) is logged as a warning, which fails ``mkdocs build --strict``: a docstring
cannot go on naming what is gone.
"""

from __future__ import annotations

import builtins
import functools
import importlib.util
import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(class|func|meth|mod|data|attr|exc|obj|const):`(~?)([\w.]+)(\(\))?`")
_LOGGER = griffe.get_logger("griffe_sphinx_roles")


class SphinxRoles(griffe.Extension):
    """Rewrites every role to a code span; warns about a target that does not exist."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        for obj in _walk(pkg):
            if obj.docstring is None or obj.is_alias:
                continue
            obj.docstring.value = _ROLE.sub(
                functools.partial(_render, scope=obj, modules=loader.modules_collection),
                obj.docstring.value,
            )


def _render(match: re.Match[str], scope: griffe.Object, modules: griffe.ModulesCollection) -> str:
    _, tilde, target, call = match.groups()
    shown = f"<code>{target.rsplit('.', 1)[-1] if tilde else target}{call or ''}</code>"
    path = _find(scope, target, modules)
    if path is None:
        _LOGGER.warning(
            "%s:%s: %s names %r, which does not exist",
            scope.relative_filepath,
            scope.docstring.lineno if scope.docstring else "?",
            scope.path,
            target,
        )
        return shown
    if not path:  # a builtin or the standard library: no entry here
        return shown
    return f'<autoref identifier="{path}" optional>{shown}</autoref>'


def _walk(obj: griffe.Object) -> list[griffe.Object]:
    found = [obj]
    for member in obj.members.values():
        if not member.is_alias:
            found.extend(_walk(member))  # type: ignore[arg-type]
    return found


def _find(scope: griffe.Object, target: str, collection: griffe.ModulesCollection) -> str | None:
    """The canonical path of ``target`` seen from ``scope``; "" for a builtin or a standard
    library name; None when it names nothing."""
    head, _, rest = target.partition(".")
    candidates = [target]
    for obj in (scope, *_parents(scope)):
        try:
            resolved = obj.resolve(head)
        except griffe.NameResolutionError:
            continue
        candidates.append(f"{resolved}.{rest}" if rest else resolved)
        break
    for candidate in candidates:
        try:
            found = collection.get_member(candidate)
            return str(
                found.final_target.canonical_path if found.is_alias else found.canonical_path
            )
        except (KeyError, ValueError, griffe.AliasResolutionError, griffe.CyclicAliasError):
            continue
    if hasattr(builtins, head):
        return ""
    try:
        outside = importlib.util.find_spec(head) is not None and head not in {"resilient", "chaos"}
    except (ImportError, ValueError):
        outside = False
    return "" if outside else None


def _parents(obj: griffe.Object) -> list[griffe.Object]:
    parents = []
    while obj.parent is not None:
        obj = obj.parent
        parents.append(obj)
    return parents

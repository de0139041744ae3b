"""A griffe extension for the API reference (mkdocs.yml): Sphinx roles in docstrings, checked.

The docstrings are written for readers of the source and cross-reference with Sphinx's roles
(``:class:`~resilient.errors.PoolError```, ``:meth:`decide```). For the site each role
becomes a code span (shortened after a ``~``, as Sphinx shortens it), and each role's target
must exist: a name resolved from the docstring's own scope to an object of the loaded packages,
or a builtin or standard-library name. A target that does not exist (a class renamed, a
constant removed) is logged as a warning, which fails ``mkdocs build --strict``: a docstring
cannot go on naming what is gone.
"""

from __future__ import annotations

import builtins
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
            for match in _ROLE.finditer(obj.docstring.value):
                target = match[3]
                if not _exists(obj, target, loader.modules_collection):
                    _LOGGER.warning(
                        "%s:%s: %s names %r, which does not exist",
                        obj.relative_filepath,
                        obj.docstring.lineno,
                        obj.path,
                        target,
                    )
            obj.docstring.value = _ROLE.sub(_code, obj.docstring.value)


def _code(match: re.Match[str]) -> str:
    _, tilde, target, call = match.groups()
    shown = target.rsplit(".", 1)[-1] if tilde else target
    return f"`{shown}{call or ''}`"


def _walk(obj: griffe.Object) -> list[griffe.Object]:
    found = [obj]
    for member in obj.members.values():
        if not member.is_alias:
            found.extend(_walk(member))  # type: ignore[arg-type]
    return found


def _exists(scope: griffe.Object, target: str, collection: griffe.ModulesCollection) -> bool:
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
            collection.get_member(candidate)
        except (KeyError, ValueError, griffe.AliasResolutionError, griffe.CyclicAliasError):
            continue
        return True
    if hasattr(builtins, head):
        return True
    try:
        return importlib.util.find_spec(head) is not None and head not in {"resilient", "chaos"}
    except (ImportError, ValueError):
        return False


def _parents(obj: griffe.Object) -> list[griffe.Object]:
    parents = []
    while obj.parent is not None:
        obj = obj.parent
        parents.append(obj)
    return parents

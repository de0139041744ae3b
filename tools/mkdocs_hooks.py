"""mkdocs hooks for the documentation site (mkdocs.yml ``hooks:``).

The docstrings are written for readers of the source and use Sphinx's cross-reference roles
(``:class:`~resilient.errors.PoolError```); the API reference renders them as Markdown, where
a role would show as ``:class:`` before its name. This hook turns each role into the plain code
span a reader expects, shortened after a ``~`` as Sphinx shortens it.
"""

from __future__ import annotations

import re
from typing import Any

_ROLE = re.compile(
    r":(?:py:)?(?:class|func|meth|mod|data|attr|exc|obj|const|ref):<code>(~?)([^<]*)</code>"
)


def _shorten(match: re.Match[str]) -> str:
    tilde, target = match.groups()
    return f"<code>{target.rsplit('.', 1)[-1] if tilde else target}</code>"


def on_page_content(html: str, **kwargs: Any) -> str:
    return _ROLE.sub(_shorten, html)

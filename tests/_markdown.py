"""The fenced code blocks of the project's Markdown, as the docs tests read them.

The convention (written out for authors in docs/docs-that-run.md):

- every fence names its language; ``sh``, ``text``, ``yaml``, ``toml`` and the like are not run;
- a ``python`` block is a whole program that runs as it is (``python file.py``: top-level
  ``await`` is not a program, ``asyncio.run(main())`` is), or a pytest test file (it defines
  ``test_`` functions) that passes under pytest with no configuration, so in pytest-asyncio's
  default strict mode;
- a ``python`` block that cannot run as it is (an excerpt of a larger file) has
  ``<!-- not-run: REASON -->`` on the line before its fence, with the reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON_TAGS = frozenset({"python", "py", "python3", "pycon"})

_OPEN = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
_NOT_RUN = re.compile(r"^\s*<!--\s*not-run:\s*(?P<reason>.*?)\s*-->\s*$")
_TEST_FUNCTION = re.compile(r"^(async )?def test_", re.M)


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # of the opening fence, 1-based
    language: str
    code: str
    not_run: str | None  # the stated reason, when marked

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def is_python(self) -> bool:
        return self.language in PYTHON_TAGS

    @property
    def is_pytest_file(self) -> bool:
        return bool(_TEST_FUNCTION.search(self.code))


def markdown_files() -> list[Path]:
    """Every Markdown file a user reads: the README, the examples' and the docs site's pages."""
    files = [ROOT / "README.md", *sorted((ROOT / "examples").rglob("*.md"))]
    return files + sorted((ROOT / "docs").rglob("*.md"))


def blocks(path: Path) -> list[Block]:
    lines = path.read_text().splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        opening = _OPEN.match(lines[i])
        if opening is None:
            i += 1
            continue
        fence = opening["fence"]
        language = opening["info"].strip().split(" ", 1)[0].split("{", 1)[0]
        marked = _NOT_RUN.match(lines[i - 1]) if i > 0 else None
        end = i + 1
        while end < len(lines) and lines[end].strip() != fence:
            end += 1
        code = "\n".join(line.removeprefix(opening["indent"]) for line in lines[i + 1 : end])
        found.append(
            Block(path, i + 1, language, code + "\n", marked["reason"] if marked else None)
        )
        i = end + 1
    return found


def all_blocks() -> list[Block]:
    return [block for path in markdown_files() for block in blocks(path)]

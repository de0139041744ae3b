"""tools/mutate.py does not trust what mutmut 2.5.1's cache says of a mutant it may not have
tested this run (a line whose text another line shares, or a mutant still untested)."""

from __future__ import annotations

import importlib.util
import sqlite3
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent

# The tables and columns mutmut 2.5.1 (pinned in the ``mutation`` extra) writes.
_SCHEMA = """
create table SourceFile (id integer primary key, filename text not null, hash text not null);
create table Line (id integer primary key, sourcefile integer not null, line text not null,
                   line_number integer not null);
create table Mutant (id integer primary key, line integer not null, "index" integer not null,
                     tested_against_hash text not null, status text not null);
"""


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mutate_tool", ROOT / "tools" / "mutate.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["mutate_tool"] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


def _cache(tmp_path: Path, lines: list[str], mutants: list[tuple[int, str]]) -> Path:
    """A cache of one module with ``lines``; ``mutants`` are (line number, status)."""
    path = tmp_path / ".mutmut-cache"
    with sqlite3.connect(path) as db:
        db.executescript(_SCHEMA)
        db.execute("insert into SourceFile values (1, 'm.py', 'h')")
        # another module with the same text must not make a line of m.py a twin
        db.execute("insert into SourceFile values (2, 'other.py', 'h')")
        db.execute("insert into Line values (100, 2, 'unique = 1', 0)")
        for number, text in enumerate(lines):
            db.execute("insert into Line values (?, 1, ?, ?)", (number + 1, text, number))
        for mutant_id, (number, status) in enumerate(mutants, start=1):
            db.execute(
                "insert into Mutant values (?, ?, 0, 'hash', ?)", (mutant_id, number + 1, status)
            )
    return path


def test_a_survivor_on_a_line_another_line_reads_the_same_is_tested_again(
    tmp_path: Path,
) -> None:
    cache = _cache(
        tmp_path,
        ["x = 1", "unique = 1", "x = 1"],
        [(0, "ok_killed"), (2, "bad_survived"), (1, "bad_survived"), (2, "bad_timeout")],
    )
    # mutant 2 (second "x = 1", survived) and 4 (same line, timed out) may carry the first
    # line's result; mutant 1 was killed; mutant 3's line is its module's only one of its text
    assert _tool()._untrusted_results(cache) == [2, 4]


def test_a_mutant_still_untested_after_the_run_is_tested(tmp_path: Path) -> None:
    cache = _cache(tmp_path, ["a = 1", "b = 2"], [(0, "untested"), (1, "bad_survived")])
    assert _tool()._untrusted_results(cache) == [1]


def test_killed_mutants_are_trusted_even_on_twin_lines(tmp_path: Path) -> None:
    cache = _cache(tmp_path, ["x = 1", "x = 1"], [(0, "ok_killed"), (1, "ok_suspicious")])
    assert _tool()._untrusted_results(cache) == []


def test_the_mutation_extra_pins_the_mutmut_whose_cache_the_tool_reads() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'mutation = ["mutmut==2.5.1"]' in pyproject
    assert "mutmut 2.5.1" in (ROOT / "tools" / "mutate.py").read_text()

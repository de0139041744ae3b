"""tests/mutation_equivalents.toml stays readable: a merge once left entries without their
mutant or reason, and tools/mutate.py failed only after minutes of mutation."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EQUIVALENTS = ROOT / "tests" / "mutation_equivalents.toml"


def test_every_equivalent_names_an_existing_module_a_mutant_and_a_reason() -> None:
    entries = tomllib.loads(EQUIVALENTS.read_text())["equivalent"]
    assert entries
    for entry in entries:
        assert set(entry) == {"path", "mutant", "reason"}, entry
        assert (ROOT / entry["path"]).is_file(), entry
        assert entry["mutant"].strip(), entry
        assert len(entry["reason"]) >= 20, entry


def test_no_mutant_is_explained_twice_for_one_module() -> None:
    entries = tomllib.loads(EQUIVALENTS.read_text())["equivalent"]
    seen = [(entry["path"], entry["mutant"].strip()) for entry in entries]
    assert len(seen) == len(set(seen)), sorted(key for key in seen if seen.count(key) > 1)

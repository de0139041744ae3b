"""Import cost: what ``import resilient`` adds to ``import asyncio`` alone, and what it loads.

Run: ``.venv/bin/python bench/bench_import.py`` (``--rounds N``, default 21).

Each round starts fresh interpreters with ``-X importtime`` and reads the cumulative import
time (microseconds) that Python itself reports:

- ``asyncio``: ``import asyncio`` alone;
- ``resilient after asyncio``: the ``resilient`` line of ``import asyncio; import resilient``,
  that is what importing the package adds once asyncio is loaded (target: <= 20 ms);
- ``LocalLimiter in use``: everything ``from resilient import LocalLimiter, Rate`` and one
  decision add after asyncio.

The rounds alternate the order of the programs (the machine is shared: each figure is the
median of its rounds, with the spread). It also prints which of the heavy third-party packages
each program leaves in ``sys.modules`` (target: none of redis, pybreaker, aiohttp).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

HEAVY = ("redis", "pybreaker", "aiohttp", "tenacity", "toxiproxy", "hiredis")
TARGET_MS = 20.0

PROGRAMS = {
    "asyncio": "import asyncio",
    "resilient after asyncio": "import asyncio; import resilient",
    "LocalLimiter in use": (
        "import asyncio; from resilient import LocalLimiter, Rate; "
        "LocalLimiter(Rate(1, 1.0)).decide_now('k')"
    ),
}

REPORT_HEAVY = (
    "; import json, sys; print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & %s)))"
)


def import_us(program: str, *, after_asyncio: bool) -> float:
    """Microseconds of the imports ``program`` makes after ``import asyncio`` (or, with
    ``after_asyncio`` False, of ``import asyncio`` itself), as ``-X importtime`` reports."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", program],
        capture_output=True,
        text=True,
        check=True,
    )
    total = 0
    seen_asyncio = False
    for line in done.stderr.splitlines():
        parts = line.split("|")
        if not line.startswith("import time:") or len(parts) != 3:
            continue
        cumulative, name = parts[1].strip(), parts[2][1:]  # name keeps its nesting indent
        if not cumulative.isdigit():
            continue  # the header line
        if name == "asyncio":
            if not after_asyncio:
                return float(cumulative)
            seen_asyncio = True
        elif seen_asyncio and not name.startswith(" "):  # a top-level import after asyncio
            total += int(cumulative)
    return float(total)


def heavy_modules(program: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", program + REPORT_HEAVY % (set(HEAVY),)],
        capture_output=True,
        text=True,
        check=True,
    )
    found: list[str] = json.loads(done.stdout)
    return found


def main(rounds: int) -> int:
    samples: dict[str, list[float]] = {name: [] for name in PROGRAMS}
    order = list(PROGRAMS.items())
    for _ in range(rounds):
        for name, program in order:
            samples[name].append(import_us(program, after_asyncio=name != "asyncio"))
        order.reverse()
    print(f"Python {sys.version.split()[0]}, {rounds} rounds, cumulative -X importtime, ms")
    print(f"{'program':<26} {'median':>8} {'min':>8} {'max':>8}  heavy modules loaded")
    failed = False
    for name, program in PROGRAMS.items():
        values = [v / 1000 for v in samples[name]]
        heavy = heavy_modules(program)
        print(
            f"{name:<26} {statistics.median(values):8.2f} {min(values):8.2f} "
            f"{max(values):8.2f}  {', '.join(heavy) or 'none'}"
        )
        if name != "asyncio":
            failed |= bool(heavy) or statistics.median(values) > TARGET_MS
    added = statistics.median(v / 1000 for v in samples["resilient after asyncio"])
    verdict = "PASS" if not failed else "FAIL"
    print(
        f"\nimport resilient adds {added:.2f} ms to asyncio (target <= {TARGET_MS:g} ms, "
        f"no heavy module): {verdict}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=21)
    sys.exit(main(parser.parse_args().rounds))

"""The export tables of ``resilient`` and its pattern packages: every name ``__all__`` documents
is there, is the object its defining module has, and is listed by ``dir()``; a name imported on
first use (``_lazy.py``) resolves as well as one imported eagerly.

Each package is checked in a fresh interpreter: a name once read stays in the package's
namespace, so a check in this process could pass on a name another test had already read.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PACKAGES = [
    "resilient",
    "resilient.breaker",
    "resilient.pool",
    "resilient.ratelimit",
    "resilient.release",
]

_CHECK = """
import importlib, json, sys
package = importlib.import_module(sys.argv[1])
report = {"unresolved": [], "not_its_module": [], "not_in_dir": [], "count": 0}
listed = set(dir(package))
for name in package.__all__:
    report["count"] += 1
    try:
        value = getattr(package, name)
    except Exception as error:
        report["unresolved"].append(f"{name}: {type(error).__name__}: {error}")
        continue
    home = getattr(value, "__module__", None)
    if isinstance(home, str) and home.startswith("resilient.") and hasattr(value, "__qualname__"):
        if getattr(importlib.import_module(home), value.__qualname__, None) is not value:
            report["not_its_module"].append(name)
    if name not in listed:
        report["not_in_dir"].append(name)
print(json.dumps(report))
"""


def exported(package: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", _CHECK, package],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    report: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return report


@pytest.mark.parametrize("package", PACKAGES)
def test_every_documented_name_resolves_in_a_fresh_interpreter(package: str) -> None:
    report = exported(package)
    assert report["unresolved"] == []
    assert report["not_its_module"] == []
    assert report["not_in_dir"] == []
    assert isinstance(report["count"], int)
    assert report["count"] >= 15


@pytest.mark.parametrize(
    ("package", "names"),
    [
        ("resilient", ["CircuitBreaker", "FailOpenGuard", "RedisLimiter", "ConnectGate"]),
        ("resilient.breaker", ["BreakerState", "CircuitBreaker", "Permit", "TripPolicy"]),
        ("resilient.pool", ["BoundedPool", "ConnectGate", "GateStats", "shared_gate"]),
        ("resilient.ratelimit", ["FailOpenGuard", "GuardStats", "RedisLimiterStats"]),
    ],
)
def test_the_names_imported_on_first_use_are_documented(package: str, names: list[str]) -> None:
    import importlib

    module = importlib.import_module(package)
    assert set(names) <= set(module.__all__)
    assert len(set(module.__all__)) == len(module.__all__)

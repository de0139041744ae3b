"""Import only what is used: which heavy third-party packages each public entry point loads.

Each case runs in a fresh interpreter (a module once imported stays in ``sys.modules``).
``import resilient`` and the local limiter must pay for none of redis-py, pybreaker and
aiohttp; they come in with the first use of a class that needs them. pybreaker itself imports
redis-py (for its optional Redis storage), so whatever needs pybreaker brings redis-py too.

The metrics extras (prometheus-client, OpenTelemetry) are installed here (the dev extra): no
entry point but their own sink's module imports them, so a program that does not make a sink
pays nothing for them (``resilient.metrics`` itself, and a pattern watched by a sink, neither).
redis-py 8 imports the OpenTelemetry API itself when it is installed (its observability
module): what ``import redis`` alone brings is counted with redis-py, not against the library.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys

import pytest

import resilient

HEAVY = {
    "redis",
    "pybreaker",
    "aiohttp",
    "tenacity",
    "toxiproxy",
    "hiredis",
    "numpy",
    "rich",
    "pydantic",
    "prometheus_client",
    "opentelemetry",
}

CASES = {
    "import resilient": ("import resilient", set()),
    "import resilient.clock": ("import resilient.clock", set()),
    "import resilient.events": ("import resilient.events", set()),
    "import resilient.errors": ("import resilient.errors", set()),
    "import resilient.ratelimit": ("import resilient.ratelimit", set()),
    "import resilient.breaker": ("import resilient.breaker", set()),
    "import resilient.pool": ("import resilient.pool", set()),
    "import resilient.rollout": ("import resilient.rollout", set()),
    "import resilient.failover": ("import resilient.failover", set()),
    "resilient.Failover": ("import resilient; resilient.Failover", {"pybreaker", "redis"}),
    "import resilient.retry": ("import resilient.retry", set()),
    "a RetryBudget spent": (
        "from resilient import RetryBudget; RetryBudget().try_spend()",
        set(),
    ),
    "resilient.RetryPolicy": ("import resilient; resilient.RetryPolicy", {"tenacity"}),
    "resilient.ConfigRollout": ("import resilient; resilient.ConfigRollout", set()),
    "resilient.PydanticSchema on a model": (
        "import pydantic, resilient\n"
        "class M(pydantic.BaseModel):\n    a: int\n"
        "resilient.PydanticSchema(M).parse(b'{\"a\": 1}')",
        {"pydantic"},
    ),
    "resilient.BoundedPool": ("import resilient; resilient.BoundedPool", {"pybreaker", "redis"}),
    "every options class and default": (
        "import resilient; [getattr(resilient, n) for n in resilient.__all__ "
        "if n.endswith('Options') or n.endswith('_OPTIONS')]",
        set(),
    ),
    "a LocalLimiter decision": (
        "import asyncio; from resilient import LocalLimiter, Rate; "
        "asyncio.run(LocalLimiter(Rate(1, 1.0)).decide('k'))",
        set(),
    ),
    "resilient.CircuitBreaker": (
        "import resilient; resilient.CircuitBreaker",
        {"pybreaker", "redis"},
    ),
    "resilient.FailOpenGuard": (
        "import resilient; resilient.FailOpenGuard",
        {"pybreaker", "redis"},
    ),
    "resilient.RedisLimiter": ("import resilient; resilient.RedisLimiter", {"redis"}),
    "import resilient.aiohttp": ("import resilient.aiohttp", {"aiohttp"}),
    "import resilient.metrics": ("import resilient.metrics", set()),
    "a MetricsSink watching a bulkhead": (
        "from resilient import Bulkhead; from resilient.metrics import MetricsSink; "
        "MetricsSink().watch(Bulkhead('db')).call",
        set(),
    ),
    "import resilient.metrics.prometheus": (
        "import resilient.metrics.prometheus",
        {"prometheus_client"},
    ),
    "import resilient.metrics.otel": ("import resilient.metrics.otel", {"opentelemetry"}),
}


def heavy_after(program: str) -> set[str]:
    report = "import json, sys; print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    done = subprocess.run(
        [sys.executable, "-c", f"{program}\n{report}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return set(json.loads(done.stdout.splitlines()[-1])) & HEAVY


@functools.cache
def brought_by_redis() -> set[str]:
    """What ``import redis`` brings besides itself on this installation."""
    return heavy_after("import redis") - {"redis"}


@pytest.mark.parametrize("case", list(CASES))
def test_each_entry_point_loads_only_what_it_needs(case: str) -> None:
    program, expected = CASES[case]
    if "redis" in expected:
        expected = expected | brought_by_redis()
    assert heavy_after(program) == expected


def test_only_redis_py_brings_a_metrics_backend() -> None:
    assert brought_by_redis() <= {"opentelemetry"}


def test_every_public_name_resolves() -> None:
    for name in resilient.__all__:
        assert getattr(resilient, name) is not None, name
    assert set(resilient.__all__) <= set(dir(resilient))


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        resilient.Nope  # type: ignore[attr-defined]  # noqa: B018


def test_a_name_the_package_does_not_have_is_an_attribute_error_in_pythons_words() -> None:
    import resilient
    import resilient.ratelimit

    for package in (resilient, resilient.ratelimit):
        with pytest.raises(AttributeError) as raised:
            package.no_such_name  # type: ignore[attr-defined]  # noqa: B018
        assert str(raised.value) == f"module {package.__name__!r} has no attribute 'no_such_name'"

"""The public surface of ``resilient.release``: names, events, values, and what importing it
costs."""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
import subprocess
import sys
import typing
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import resilient
import resilient.release as release
from resilient.errors import ArgumentError
from resilient.events import Severity
from resilient.release import Brake, ReleaseOptions, ReleaseState, ReleaseStats, Ticket
from resilient.release._ticket import _STATUS, DELAYED, ENDED, PARKED, QUEUED, READY, RUNNING
from resilient.release._types import Verdict

MODULES = [
    "resilient.release",
    "resilient.release._commit",
    "resilient.release._events",
    "resilient.release._hold",
    "resilient.release._ledger",
    "resilient.release._line",
    "resilient.release._options",
    "resilient.release._pacing",
    "resilient.release._pool",
    "resilient.release._queue",
    "resilient.release._scheduler",
    "resilient.release._ticket",
    "resilient.release._types",
]


@pytest.mark.parametrize("name", MODULES)
def test_every_exported_name_exists(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__all__, name
    for exported in module.__all__:
        assert hasattr(module, exported), f"{name}.{exported}"


def test_the_public_type_aliases_say_what_the_queue_takes() -> None:
    assert release.Verdict == release.Proceed | release.Replan | release.Drop
    outcomes = [getattr(kind, "__origin__", kind) for kind in typing.get_args(release.Outcome)]
    assert outcomes == [release.Done, release.Failed, release.Superseded, release.Dropped]
    assert release.StateSource == Callable[[], ReleaseState | Awaitable[ReleaseState]]
    assert (
        release.RevalidateCallback
        == Callable[[Ticket[Any], ReleaseState], Verdict | Awaitable[Verdict]]
    )


def test_the_package_exports_what_users_touch() -> None:
    assert {
        "ReleaseQueue",
        "ReleaseOptions",
        "DEFAULT_RELEASE_OPTIONS",
        "ReleaseState",
        "Ticket",
        "Proceed",
        "Replan",
        "Drop",
        "Done",
        "Failed",
        "Superseded",
        "Dropped",
        "Outcome",
        "Brake",
        "ReleaseStats",
        "QueueClosedError",
    } <= set(release.__all__)
    for name in ("ReleaseQueue", "ReleaseOptions", "QueueClosedError", "Ticket"):
        assert getattr(resilient, name) is getattr(release, name)


EVENTS = [
    ("ActionDone", "done", Severity.DEBUG, ["key", "attempts"]),
    ("ActionFailed", "failed", Severity.ERROR, ["key", "error", "attempts", "reason"]),
    ("ActionSuperseded", "superseded", Severity.INFO, ["key", "based_on", "by_based_on"]),
    ("ActionDropped", "dropped", Severity.WARNING, ["key", "reason"]),
    ("ActionRetrying", "retrying", Severity.WARNING, ["key", "attempt", "error", "delay"]),
    ("ActionReplanned", "replanned", Severity.INFO, ["key", "based_on", "version"]),
    ("QueuePaused", "paused", Severity.WARNING, ["reason", "queued"]),
    ("QueueResumed", "resumed", Severity.INFO, ["paused_for", "queued"]),
    ("QueueSlowed", "slowed", Severity.WARNING, ["unhealthy", "threshold", "factor"]),
    ("QueueHalted", "halted", Severity.ERROR, ["unhealthy", "threshold"]),
    ("QueueReleased", "released", Severity.INFO, ["unhealthy", "braked_for"]),
    ("StateUnavailable", "state_unavailable", Severity.WARNING, ["reason"]),
    ("StateRecovered", "state_recovered", Severity.INFO, ["unavailable_for"]),
    ("QueueClosed", "closed", Severity.INFO, ["left", "cancelled"]),
]


@pytest.mark.parametrize(("cls", "name", "severity", "fields"), EVENTS)
def test_every_event_has_its_name_severity_and_fields(
    cls: str, name: str, severity: Severity, fields: list[str]
) -> None:
    attributes = getattr(release, cls)
    assert name == attributes.NAME
    assert attributes.SEVERITY is severity
    assert [field.name for field in dataclasses.fields(attributes)] == fields
    constant = "RELEASE_" + name.upper()
    assert getattr(release, constant) == name


def test_every_event_comes_from_the_release_source() -> None:
    assert release.RELEASE_EVENT_SOURCE == "release"
    assert len(EVENTS) == len([n for n in release.__all__ if n.startswith("RELEASE_")]) - 1


def test_the_brake_and_the_statuses_read_as_words() -> None:
    assert [brake.value for brake in Brake] == ["off", "slowed", "halted"]
    assert [_STATUS[state] for state in (QUEUED, PARKED, DELAYED, READY, RUNNING, ENDED)] == [
        "queued",
        "parked",
        "backoff",
        "starting",
        "running",
        "ended",
    ]


def test_stats_take_no_counter_they_do_not_have() -> None:
    stats = ReleaseStats()
    with pytest.raises(AttributeError):
        stats.finished = 1  # type: ignore[attr-defined]  # a typo is an error, not a new counter


def test_stats_start_at_zero() -> None:
    stats = ReleaseStats()
    assert dataclasses.asdict(stats) == {
        "submitted": 0,
        "replanned": 0,
        "started": 0,
        "done": 0,
        "failed": 0,
        "superseded": 0,
        "dropped": 0,
        "retries": 0,
        "pauses": 0,
        "halts": 0,
    }


def test_importing_the_release_queue_imports_nothing_heavy() -> None:
    program = (
        "import json, sys, asyncio\n"
        "from resilient.release import ReleaseQueue, ReleaseState\n"
        "async def main():\n"
        "    async def run(): return 1\n"
        "    queue = ReleaseQueue(lambda: ReleaseState(1, 10))\n"
        "    await queue.submit('k', run, based_on=1)\n"
        "    await queue.close()\n"
        "asyncio.run(main())\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True, timeout=60
    )
    loaded = set(json.loads(done.stdout.splitlines()[-1]))
    assert loaded & {"redis", "pybreaker", "aiohttp", "tenacity"} == set()


# Each field: a value at its bound that is accepted, and the first refused one with its message.
BOUNDS = [
    ("batch", 1, 0, "an int >= 1"),
    ("interval", 1e-9, 0, "a finite number of seconds > 0"),
    ("max_in_flight", 1, 0, "an int >= 1"),
    ("ramp_start", 1, 0, "an int >= 1"),
    ("budget_units", 0, -1, "a number of units >= 0"),
    ("budget_units", math.inf, math.nan, "a number of units >= 0"),
    ("budget_share", 1, 1.01, "a finite number of capacity >= 0 and <= 1"),
    ("budget_share", 0, -0.01, "a finite number of capacity >= 0 and <= 1"),
    ("slow_above", 0, -0.01, "a finite number of unhealthy share >= 0 and <= 1"),
    ("slow_factor", 1, 0.99, "a finite number of times >= 1"),
    ("halt_above", 1, 1.01, "a finite number of unhealthy share >= 0 and <= 1"),
    ("max_age", 1e-9, 0, "a number of seconds > 0"),
    ("max_age", math.inf, -1, "a number of seconds > 0"),
    ("max_attempts", 1, 0, "an int >= 1"),
    ("backoff_initial", 0, -0.01, "a finite number of seconds >= 0"),
    ("backoff_max", 1e9, -0.01, "a finite number of seconds >= 0"),
    ("backoff_jitter", 1, 1.01, "a finite number of share >= 0 and <= 1"),
    ("backoff_jitter", 0, -0.01, "a finite number of share >= 0 and <= 1"),
    ("state_timeout", 1e-9, 0, "a finite number of seconds > 0"),
    ("state_timeout", 1e9, math.inf, "a finite number of seconds > 0"),
    ("revalidate_timeout", 1e-9, 0, "a finite number of seconds > 0"),
    ("revalidate_timeout", 1e9, math.inf, "a finite number of seconds > 0"),
    ("routine_events", False, 0, "a bool"),
]


@pytest.mark.parametrize(("field", "accepted", "refused", "rule"), BOUNDS)
def test_every_option_has_its_bound(
    field: str, accepted: object, refused: object, rule: str
) -> None:
    companions: dict[str, object] = {}
    if field == "slow_above":
        companions["halt_above"] = 1.0
    if field == "halt_above":
        companions["slow_above"] = 0.0
    if field == "backoff_max":
        companions["backoff_initial"] = 0.0
    options = ReleaseOptions(**{field: accepted, **companions})
    assert getattr(options, field) == accepted
    with pytest.raises(ArgumentError) as raised:
        ReleaseOptions(**{field: refused, **companions})
    assert str(raised.value) == f"ReleaseOptions.{field} must be {rule}, got {refused!r}"


def test_every_value_is_frozen_and_every_event_compares_as_a_mapping() -> None:
    import asyncio

    from resilient.events import EventAttributes
    from resilient.release import (
        Attempt,
        Done,
        Drop,
        Dropped,
        Failed,
        Proceed,
        ReleaseState,
        Replan,
        Superseded,
    )

    async def run() -> None:
        return None

    ticket = release.Ticket("k", run, 1, 0, False, 0.0)
    values = [
        ReleaseState(1, 2),
        Proceed(),
        Replan(run),
        Drop("why"),
        Done(1),
        Failed(ValueError("x"), ()),
        Superseded(ticket),
        Dropped("why"),
        Attempt(1, 0.0, 1.0, ValueError("x"), None),
    ]
    for value in values:
        field = dataclasses.fields(value)[0].name if dataclasses.fields(value) else "x"
        with pytest.raises((dataclasses.FrozenInstanceError, AttributeError, TypeError)):
            setattr(value, field, None)
        assert not hasattr(value, "__dict__"), type(value).__name__  # slotted
    assert Done(1) == Done(1)
    assert Dropped("a") != Dropped("b")
    assert hash(ReleaseState(1, 2)) == hash(ReleaseState(1, 2))
    for name, *_ in EVENTS:
        cls = getattr(release, name)
        assert issubclass(cls, EventAttributes)
        assert "__eq__" not in vars(cls), name
        assert not dataclasses.fields(cls) or cls.__dataclass_params__.frozen  # type: ignore[attr-defined]
        assert "__slots__" in vars(cls), name
    assert release.QueueClosed(1, 0) == {"left": 1, "cancelled": 0}
    assert asyncio.iscoroutinefunction(run)


class _AsyncCallable:
    async def __call__(self, suffix: str = "") -> str:
        return "called" + suffix


async def test_a_partial_of_an_async_callable_object_is_a_run() -> None:
    import functools

    from resilient.release._types import check_run

    check_run("run", functools.partial(_AsyncCallable(), "!"))  # accepted: no error
    with pytest.raises(ArgumentError, match=r"\(callable but not async\)$"):
        check_run("run", functools.partial(print, "x"))
    with pytest.raises(ArgumentError, match=r"\(not callable\)$"):
        check_run("run", 5)


def test_a_replan_takes_nothing_out_unless_told_and_names_a_bad_count() -> None:
    async def run() -> None:
        return None

    assert release.Replan(run).takes_out == 0
    with pytest.raises(ArgumentError, match=r"^Replan\.takes_out must be"):
        release.Replan(run, takes_out=-1)

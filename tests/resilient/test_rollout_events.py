"""The rollout's events as written (name, severity, fields, frozen mappings) and as emitted
(each transition's attributes), and what a status and a sample check say."""

from __future__ import annotations

import dataclasses
import math

import pytest

import resilient.rollout._events as events
from resilient.errors import ArgumentTypeError, ArgumentValueError
from resilient.events import Severity
from resilient.rollout import CohortSamples, GateResult, RolloutState, RolloutStatus, Verdict
from resilient.rollout._status import ACTIVE, checked_sample, judge, sample
from tests.resilient.rollout_world import BAD, FAST, feed, opened, routing

EVENTS = [
    ("ConfigRejected", "rejected", "WARNING", ["rollout", "problems"]),
    ("RolloutStarted", "started", "INFO", ["rollout", "candidate", "baseline", "stages"]),
    ("StageStarted", "stage_started", "INFO", ["rollout", "stage", "percent", "cohorts", "reason"]),
    ("GatesEvaluated", "evaluated", "DEBUG", ["rollout", "stage", "verdicts"]),
    ("RolloutPaused", "paused", "INFO", ["rollout", "stage", "reason"]),
    ("RolloutResumed", "resumed", "INFO", ["rollout", "stage", "reason"]),
    ("RolledBack", "rolled_back", "WARNING",
     ["rollout", "candidate", "restored", "stage", "seconds_in_stage", "reason"]),
    ("RolloutCompleted", "completed", "INFO", ["rollout", "candidate", "reason"]),
    ("KillSwitchSet", "killed", "WARNING", ["rollout", "on", "reason"]),
]  # fmt: skip


@pytest.mark.parametrize(("cls", "name", "severity", "fields"), EVENTS, ids=[e[0] for e in EVENTS])
def test_each_event_is_named_and_shaped_as_written(
    cls: str, name: str, severity: str, fields: list[str]
) -> None:
    attributes = getattr(events, cls)
    assert name == attributes.NAME
    assert attributes.SEVERITY is Severity[severity]
    assert [field.name for field in dataclasses.fields(attributes)] == fields
    constants = {value for key, value in vars(events).items() if key.startswith("ROLLOUT_")}
    assert name in constants
    one = attributes(*range(len(fields)))
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(one, fields[0], "changed")
    assert not hasattr(one, "__dict__")
    assert one == dict(zip(fields, range(len(fields)), strict=True))
    assert one != attributes(*range(1, len(fields) + 1))


def test_the_event_constants() -> None:
    assert events.ROLLOUT_EVENT_SOURCE == "rollout"
    names = [value for key, value in vars(events).items() if key.startswith("ROLLOUT_")]
    assert names == [
        "rollout", "rejected", "started", "stage_started", "evaluated", "paused", "resumed",
        "rolled_back", "completed", "killed",
    ]  # fmt: skip


async def test_a_rollout_emits_each_transition_with_its_attributes() -> None:
    rollout, clock, recorder, _ = await opened()
    await rollout.start(routing(eu="a2", us="b", asia="c"), "new eu target")
    feed(rollout, 2000)
    clock.advance(60.0)
    await rollout.evaluate()
    emitted = [(e.source, e.name, e.severity, dict(e.attributes)) for e in recorder.events]
    assert emitted[0] == (
        "rollout",
        "started",
        Severity.INFO,
        {"rollout": "config", "candidate": 2, "baseline": 1, "stages": 1},
    )
    assert emitted[1] == (
        "rollout",
        "stage_started",
        Severity.INFO,
        {
            "rollout": "config",
            "stage": 0,
            "percent": 10.0,
            "cohorts": (),
            "reason": "new eu target",
        },
    )
    source, name, severity, attributes = emitted[2]
    assert (source, name, severity) == ("rollout", "evaluated", Severity.DEBUG)
    assert [verdict[:2] for verdict in attributes["verdicts"]] == [
        ("success_ratio", "pass"),
        ("latency", "pass"),
    ]
    assert emitted[3] == (
        "rollout",
        "completed",
        Severity.INFO,
        {"rollout": "config", "candidate": 2, "reason": "stage 0 passed its gates"},
    )
    assert [e.time for e in recorder.events] == [0.0, 0.0, 60.0, 60.0]


def test_a_fresh_status() -> None:
    status = RolloutStatus()
    assert status.state is RolloutState.IDLE
    assert (status.baseline, status.candidate, status.stage, status.stage_started) == (
        None,
        None,
        -1,
        0.0,
    )
    assert (status.evaluations, status.violations, status.missing, status.errors) == (0, 0, 0, 0)
    assert (status.canary_requests, status.control_requests, status.store_errors) == (0, 0, 0)
    assert (status.last_results, status.killed, list(status.history)) == ((), False, [])
    assert status.history.maxlen == 1000
    assert [s.value for s in RolloutState] == [
        "idle", "running", "paused", "completed", "rolled_back",
    ]  # fmt: skip
    assert ACTIVE == (RolloutState.RUNNING, RolloutState.PAUSED)


async def test_the_history_keeps_the_latest_1000_transitions() -> None:
    rollout, _, _, _ = await opened()
    await rollout.start(BAD, "x")
    for i in range(600):
        await rollout.pause(f"p{i}")
        await rollout.resume(f"r{i}")
    history = rollout.status.history
    assert len(history) == 1000
    assert history[-1][1:] == ("resumed", "r599")
    assert history[0][1:] == ("paused", "p100")


@pytest.mark.parametrize(("value", "number"), [(0, 0.0), (3, 3.0), (-2.5, -2.5), (1e308, 1e308)])
def test_a_sample_is_any_finite_number(value: float, number: float) -> None:
    got = sample("x", value)
    assert got == number
    assert type(got) is float


@pytest.mark.parametrize(
    ("value", "error", "words"),
    [
        (False, ArgumentTypeError, "where must be a number, got bool"),
        ("1", ArgumentTypeError, "where must be a number, got str"),
        (None, ArgumentTypeError, "where must be a number, got NoneType"),
        (math.nan, ArgumentValueError, "where must be finite, got nan"),
        (-math.inf, ArgumentValueError, "where must be finite, got -inf"),
        (-(10**400), ArgumentValueError, f"where must be finite, got {-(10**400)!r}"),
    ],
)
def test_a_sample_that_is_no_finite_number_is_refused(
    value: object, error: type[Exception], words: str
) -> None:
    with pytest.raises(error) as caught:
        sample("where", value)
    assert str(caught.value) == words


class Nameless:
    def judge(self, canary: CohortSamples, control: CohortSamples) -> GateResult:
        raise KeyError("p99")


def test_a_broken_gate_is_an_error_named_after_it() -> None:
    side = CohortSamples(1)
    assert judge(Nameless(), side, side) == GateResult("Nameless", Verdict.ERROR, "KeyError: 'p99'")
    fine = GateResult("g", Verdict.PASS, "ok")

    class Fine:
        name = 7

        def judge(self, canary: CohortSamples, control: CohortSamples) -> GateResult:
            return fine

    assert judge(Fine(), side, side) is fine
    assert judge(object(), side, side).detail.startswith("AttributeError: ")


async def test_a_sample_check_names_the_metric_and_what_the_gates_read() -> None:
    rollout, _, _, _ = await opened()
    served = rollout.config_for("k")
    assert checked_sample(served, True, None, None, set()) == []
    assert checked_sample(served, False, 0.5, {"cpu": 2}, {"cpu"}) == [
        ("latency", 0.5),
        ("cpu", 2.0),
    ]
    with pytest.raises(ArgumentValueError) as caught:
        checked_sample(served, True, None, {"mem": 1.0}, {"cpu", "latency"})
    assert str(caught.value) == (
        "ConfigRollout.record(metrics) names 'mem', which no gate reads (read: ['cpu', 'latency'])"
    )
    message = r"^ConfigRollout\.record\(metrics\['cpu'\]\) must be finite, got inf$"
    with pytest.raises(ArgumentValueError, match=message):
        checked_sample(served, True, None, {"cpu": math.inf}, {"cpu"})
    message = r"^ConfigRollout\.record\(ok\) must be a bool, got NoneType$"
    with pytest.raises(ArgumentTypeError, match=message):
        checked_sample(served, None, None, None, set())
    assert FAST.evaluation_interval == 5.0


def test_a_gate_that_answers_no_result_and_a_served_that_is_none_are_said_exactly() -> None:
    class Lying:
        name = "lying"

        def judge(self, canary: CohortSamples, control: CohortSamples) -> object:
            return "pass"

    side = CohortSamples(1)
    assert judge(Lying(), side, side) == GateResult(
        "lying", Verdict.ERROR, "judge() returned str, not a GateResult"
    )
    with pytest.raises(ArgumentTypeError) as caught:
        checked_sample("served", True, None, None, set())
    assert str(caught.value) == "ConfigRollout.record(served) must be a Served, got str"

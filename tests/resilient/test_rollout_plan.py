"""A fleet's rollout plan on the wire: its exact encoding, and every field of a plan read from
the store checked to its bounds, a refusal naming the field."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from resilient.rollout._plan import Plan

PLAN = Plan(2, 1, 0, "running", 10.0, (), "routing:2")


def exactly(message: str) -> str:
    return f"^{re.escape(message)}$"


def wire(**changes: Any) -> bytes:
    raw = json.loads(PLAN.encode())
    raw.update(changes)
    return json.dumps(raw).encode()


def test_a_plan_is_encoded_as_sorted_json_every_instance_can_read() -> None:
    assert PLAN.encode() == (
        b'{"baseline": 1, "candidate": 2, "cohorts": [], "percent": 10.0, '
        b'"salt": "routing:2", "stage": 0, "state": "running"}'
    )
    assert Plan.decode(PLAN.encode()) == PLAN
    by_cohort = Plan(3, 2, 1, "paused", None, ("eu", "us"), "x")
    assert Plan.decode(by_cohort.encode()) == by_cohort


def test_a_stage_is_named_by_its_candidate_and_index() -> None:
    assert PLAN.stage_id == "2:0"
    assert Plan(17, 3, 4, "running", 50.0, (), "s").stage_id == "17:4"


@pytest.mark.parametrize(
    ("state", "active"),
    [("running", True), ("paused", True), ("completed", False), ("rolled_back", False)],
)
def test_running_and_paused_plans_are_active(state: str, active: bool) -> None:
    plan = Plan.decode(wire(state=state))
    assert plan.state == state
    assert plan.active is active


@pytest.mark.parametrize("name", ["candidate", "baseline", "stage"])
def test_an_integer_field_is_an_int_from_zero(name: str) -> None:
    assert getattr(Plan.decode(wire(**{name: 0})), name) == 0
    assert getattr(Plan.decode(wire(**{name: 7})), name) == 7
    for bad in [-1, True, 1.0, "1", None]:
        message = f"rollout plan field {name!r} must be an int >= 0, got {bad!r}"
        with pytest.raises(ValueError, match=exactly(message)):
            Plan.decode(wire(**{name: bad}))
    raw = json.loads(PLAN.encode())
    del raw[name]
    message = f"rollout plan field {name!r} must be an int >= 0, got None"
    with pytest.raises(ValueError, match=exactly(message)):
        Plan.decode(json.dumps(raw).encode())


@pytest.mark.parametrize("percent", [0, 0.0, 100, 100.0, 0.01, 50])
def test_a_percent_from_0_to_100_is_read_as_a_float(percent: float) -> None:
    plan = Plan.decode(wire(percent=percent))
    assert plan.percent == percent
    assert type(plan.percent) is float


@pytest.mark.parametrize("percent", [-0.0001, -1, 100.0001, 101, True, "5", [5]])
def test_a_percent_out_of_range_or_not_a_number_is_refused(percent: object) -> None:
    message = f"rollout plan field 'percent' must be in [0, 100], got {percent!r}"
    with pytest.raises(ValueError, match=exactly(message)):
        Plan.decode(wire(percent=percent))


def test_a_plan_by_cohort_has_no_percent() -> None:
    assert Plan.decode(wire(percent=None, cohorts=["eu"])).percent is None
    assert Plan.decode(wire(percent=None, cohorts=["eu"])).cohorts == ("eu",)


@pytest.mark.parametrize("state", ["idle", "RUNNING", "", None, 1])
def test_a_state_that_is_none_of_the_four_is_refused(state: object) -> None:
    message = (
        "rollout plan field 'state' must be one of "
        f"('running', 'paused', 'completed', 'rolled_back'), got {state!r}"
    )
    with pytest.raises(ValueError, match=exactly(message)):
        Plan.decode(wire(state=state))


@pytest.mark.parametrize("cohorts", ["eu", ["eu", 1], None, {"eu": 1}])
def test_cohorts_must_be_a_list_of_str(cohorts: object) -> None:
    message = f"rollout plan field 'cohorts' must be a list of str, got {cohorts!r}"
    with pytest.raises(ValueError, match=exactly(message)):
        Plan.decode(wire(cohorts=cohorts))


def test_a_salt_is_a_str_of_at_most_64_characters() -> None:
    assert Plan.decode(wire(salt="s" * 64)).salt == "s" * 64
    assert Plan.decode(wire(salt="")).salt == ""
    for bad in ["s" * 65, 64, None]:
        message = "rollout plan field 'salt' must be a str of at most 64 characters"
        with pytest.raises(ValueError, match=exactly(message)):
            Plan.decode(wire(salt=bad))


@pytest.mark.parametrize("data", [b"[]", b"3", b'"plan"', b"null"])
def test_a_plan_that_is_not_an_object_is_refused(data: bytes) -> None:
    with pytest.raises(ValueError, match=exactly("a rollout plan must be a JSON object")):
        Plan.decode(data)

"""Validation and shadow evaluation, exactly: what a rejection keeps (every field and rule, at
most 20 problems), what each kind of validator reports, and the shadow's counts and bounds."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from resilient.errors import ArgumentTypeError, ConfigRejectedError
from resilient.rollout import (
    Problem,
    PydanticSchema,
    ShadowEvaluation,
    ShadowReport,
    fleet_connection_budget,
    rule,
)
from resilient.rollout._schema import parse_and_validate
from resilient.rollout._shadow import MAX_SHADOW_COHORTS
from tests.resilient.rollout_world import GOOD, Routing

SCHEMA = PydanticSchema(Routing)


def many_regions(count: int) -> bytes:
    return json.dumps({"regions": {f"r{i:02d}": {"targets": []} for i in range(count)}}).encode()


def test_a_rejection_keeps_at_most_20_problems_of_the_schema() -> None:
    with pytest.raises(ConfigRejectedError) as caught:
        SCHEMA.parse(many_regions(25))
    problems = caught.value.problems
    assert len(problems) == 20
    assert problems[0] == ("regions.r00.targets", "too_short", problems[0][2])
    assert problems[19][0] == "regions.r19.targets"
    assert "at least 1 item" in problems[0][2]
    with pytest.raises(ConfigRejectedError) as caught:
        SCHEMA.parse(many_regions(20))
    assert len(caught.value.problems) == 20


def test_a_rejection_keeps_at_most_20_problems_of_the_validators() -> None:
    def twelve(config: Any) -> list[Problem]:
        return [Problem(f"f{i}", "r", "m") for i in range(12)]

    with pytest.raises(ConfigRejectedError) as caught:
        parse_and_validate(SCHEMA, [twelve, twelve], GOOD)
    assert len(caught.value.problems) == 20
    assert caught.value.problems[12] == ("f0", "r", "m")


def test_a_config_that_passes_every_validator_is_returned_typed() -> None:
    config = parse_and_validate(SCHEMA, [rule("x", "always", "never", lambda c: True)], GOOD)
    assert isinstance(config, Routing)
    assert config.regions["us"].targets == ["b"]
    assert parse_and_validate(SCHEMA, [], GOOD) == config


def test_a_rule_finds_one_problem_when_its_predicate_is_false() -> None:
    check = rule("healthy", "not_empty", "no healthy target listed", lambda c: bool(c.healthy))
    assert check.__name__ == "rule_not_empty"
    config = SCHEMA.parse(GOOD)
    assert tuple(check(config)) == (Problem("healthy", "not_empty", "no healthy target listed"),)
    with pytest.raises(ConfigRejectedError) as caught:
        parse_and_validate(SCHEMA, [check], GOOD)
    assert caught.value.problems == (("healthy", "not_empty", "no healthy target listed"),)
    fine = SCHEMA.parse(b'{"regions": {}, "healthy": ["a"]}')
    assert tuple(check(fine)) == ()


def test_a_rule_whose_predicate_raises_rejects_under_the_rules_name() -> None:
    check = rule("x", "explodes", "m", lambda c: 1 / 0)
    with pytest.raises(ConfigRejectedError) as caught:
        parse_and_validate(SCHEMA, [check], GOOD)
    assert caught.value.problems == (
        ("", "rule_explodes", "the validator raised ZeroDivisionError: division by zero"),
    )


def test_a_validator_without_a_name_is_named_by_its_type() -> None:
    class Inventory:
        def __call__(self, config: Any) -> list[Problem]:
            raise LookupError("no inventory")

    with pytest.raises(ConfigRejectedError) as caught:
        parse_and_validate(SCHEMA, [Inventory()], GOOD)
    assert caught.value.problems == (
        ("", "Inventory", "the validator raised LookupError: no inventory"),
    )


class Budget:
    def __init__(self, *problems: str) -> None:
        self._problems = list(problems)

    def problems(self) -> list[str]:
        return self._problems


def test_the_fleet_budget_check_names_its_field_and_every_excess() -> None:
    seen: list[Any] = []

    def measure(config: Any) -> Budget:
        seen.append(config)
        return Budget("up to 900 connections", "up to 80 connects/s")

    check = fleet_connection_budget(measure, field="pool")
    config = SCHEMA.parse(GOOD)
    assert tuple(check(config)) == (
        Problem(
            "pool",
            "fleet_connection_budget",
            "the fleet can exceed its backend: up to 900 connections; up to 80 connects/s",
        ),
    )
    assert seen == [config]
    default = fleet_connection_budget(lambda c: Budget("x"), rule_name="budget")
    assert tuple(default(config)) == (Problem("", "budget", "the fleet can exceed its backend: x"),)
    plain = fleet_connection_budget(lambda c: Budget("x"))
    assert next(iter(plain(config))).rule == "fleet_connection_budget"
    assert tuple(fleet_connection_budget(lambda c: Budget())(config)) == ()


def test_a_pydantic_schema_needs_a_model_class() -> None:
    for bad in (dict, Routing(regions={}), 3):
        message = f"PydanticSchema.model must be a pydantic BaseModel class, got {bad!r}"
        with pytest.raises(ArgumentTypeError, match=f"^{re.escape(message)}$"):
            PydanticSchema(bad)  # type: ignore[arg-type]
    assert PydanticSchema(Routing).model is Routing


def test_a_shadow_of_nothing_has_no_share() -> None:
    report = ShadowReport()
    assert (report.decisions, report.changed, report.raised, report.by_cohort) == (0, 0, 0, {})
    assert report.changed_share == 0.0
    assert ShadowReport().share_by_cohort() == {}
    assert ShadowReport(decisions=4, changed=1).changed_share == 0.25
    assert ShadowReport(by_cohort={"eu": [0, 0], "us": [4, 1]}).share_by_cohort() == {"us": 0.25}


def test_a_shadow_without_cohorts_counts_in_all_only() -> None:
    shadow = ShadowEvaluation(lambda config, request: config + request, 1, 2)
    assert [shadow(r) for r in (1, 2, 3)] == [2, 3, 4]
    assert (shadow.report.decisions, shadow.report.changed, shadow.report.raised) == (3, 3, 0)
    assert shadow.report.by_cohort == {}
    same = ShadowEvaluation(lambda config, request: request, 1, 2, cohort_of=str)
    for r in (1, 1, 2):
        same(r)
    assert (same.report.decisions, same.report.changed) == (3, 0)
    assert same.report.by_cohort == {"1": [2, 0], "2": [1, 0]}


def test_a_cohort_that_is_not_a_str_is_counted_as_other() -> None:
    shadow = ShadowEvaluation(lambda c, r: c, "a", "b", cohort_of=lambda r: r)
    shadow(7)
    shadow("eu")
    assert shadow.report.by_cohort == {"<other>": [1, 1], "eu": [1, 1]}


def test_the_cohorts_counted_one_by_one_stop_at_the_bound() -> None:
    assert MAX_SHADOW_COHORTS == 100
    shadow = ShadowEvaluation(lambda c, r: r % 2 == 0 or c, 0, 1, cohort_of=lambda r: f"c{r}")
    for i in range(MAX_SHADOW_COHORTS):
        shadow(i)
    assert "<other>" not in shadow.report.by_cohort
    shadow(0)  # a cohort already counted is still counted as itself
    assert shadow.report.by_cohort["c0"] == [2, 0]
    shadow(MAX_SHADOW_COHORTS + 1)
    assert shadow.report.by_cohort["<other>"] == [1, 1]
    assert len(shadow.report.by_cohort) == MAX_SHADOW_COHORTS + 1


def test_a_shadow_needs_callables() -> None:
    with pytest.raises(
        ArgumentTypeError, match=r"^ShadowEvaluation\.decide must be callable, got 3$"
    ):
        ShadowEvaluation(3, 1, 2)  # type: ignore[call-overload]
    with pytest.raises(
        ArgumentTypeError, match=r"^ShadowEvaluation\.cohort_of must be callable, got 'region'$"
    ):
        ShadowEvaluation(lambda c, r: c, 1, 2, cohort_of="region")  # type: ignore[arg-type]


def test_every_decision_the_candidate_raises_on_is_counted() -> None:
    shadow = ShadowEvaluation(lambda config, request: config[request], {"a": 1, "b": 2}, {"a": 1})
    assert [shadow(r) for r in ("a", "b", "b", "b")] == [1, 2, 2, 2]
    assert (shadow.report.decisions, shadow.report.changed, shadow.report.raised) == (4, 3, 3)

"""ConfigRollout in virtual time: stages, bake times, minimum samples, gates, rollback."""

from __future__ import annotations

import asyncio

import pytest

from resilient.errors import ConfigRejectedError, RolloutStateError
from resilient.rollout import (
    ROLLOUT_COMPLETED,
    ROLLOUT_REJECTED,
    ROLLOUT_ROLLED_BACK,
    ROLLOUT_STAGE_STARTED,
    ROLLOUT_STARTED,
    RolloutOptions,
    RolloutState,
    SuccessRatioGate,
    Verdict,
    by_cohorts,
    linear,
)
from tests.resilient.rollout_world import BAD, FAST, GOOD, feed, opened, routing


async def test_before_any_rollout_every_key_sees_the_current_version() -> None:
    rollout, _, _, _ = await opened()
    served = {rollout.config_for(f"user-{i}").version for i in range(100)}
    assert served == {1}
    assert rollout.config_for("x").config.regions["eu"].targets == ["a"]
    assert rollout.config_for("x").canary is False


async def test_a_canary_of_ten_percent_serves_the_candidate_to_about_ten_percent() -> None:
    rollout, _, _, _ = await opened()
    version = await rollout.start(BAD, "send eu to the new backend")
    assert version == 2
    canary = sum(rollout.config_for(f"user-{i}").canary for i in range(10_000))
    assert 850 <= canary <= 1150
    canaries = {rollout.config_for(f"user-{i}").version for i in range(10_000)}
    assert canaries == {1, 2}
    # the same key, the same answer
    assert all(rollout.config_for("user-7") == rollout.config_for("user-7") for _ in range(10))


async def test_a_stage_never_advances_before_its_bake_time() -> None:
    rollout, clock, _, _ = await opened()
    await rollout.start(routing(eu="a2", us="b", asia="c"), "new eu target")
    feed(rollout, 2000)
    for _ in range(11):  # 5, 10, ..., 55 s: plenty of samples, every gate passing
        clock.advance(5.0)
        results = await rollout.evaluate()
        assert {r.verdict for r in results} == {Verdict.PASS}
        assert rollout.status.state is RolloutState.RUNNING
        assert rollout.status.stage == 0
    clock.advance(5.0)  # 60 s: baked
    await rollout.evaluate()
    assert rollout.status.state is RolloutState.COMPLETED


async def test_a_stage_never_advances_without_its_minimum_sample() -> None:
    rollout, clock, _, store = await opened()
    await rollout.start(routing(eu="a2", us="b", asia="c"), "new eu target")
    feed(rollout, 60)  # about 6 canary requests: fewer than 20
    clock.advance(60.0)
    results = await rollout.evaluate()
    assert Verdict.MISSING in {r.verdict for r in results}
    assert rollout.status.state is RolloutState.RUNNING
    assert rollout.status.missing == 1
    assert (await store.current()).number == 1  # type: ignore[union-attr]


async def test_missing_data_past_its_budget_rolls_back_and_never_promotes() -> None:
    rollout, clock, recorder, store = await opened()
    await rollout.start(routing(eu="a2", us="b", asia="c"), "new eu target")
    clock.advance(60.0)
    for _ in range(FAST.missing_limit):
        await rollout.evaluate()
        assert rollout.status.state is RolloutState.RUNNING
    await rollout.evaluate()
    assert rollout.status.state is RolloutState.ROLLED_BACK
    [event] = [e for e in recorder.events if e.name == ROLLOUT_ROLLED_BACK]
    assert event.attributes["reason"].startswith("missing data: success_ratio: 0 canary")
    assert (await store.current()).number == 1  # type: ignore[union-attr]


async def test_missing_data_before_the_bake_time_counts_nothing() -> None:
    rollout, clock, _, _ = await opened()
    await rollout.start(routing(eu="a2", us="b", asia="c"), "new eu target")
    for _ in range(10):
        clock.advance(5.0)
        await rollout.evaluate()
    assert rollout.status.missing == 0
    assert rollout.status.state is RolloutState.RUNNING


async def test_a_failed_gate_rolls_back_within_one_evaluation_interval() -> None:
    rollout, clock, recorder, store = await opened()
    await rollout.start(BAD, "eu to a dead backend")
    runner = asyncio.create_task(rollout.run())
    await clock.run_for(1.0)
    feed(rollout, 1000, canary_ok=0.0)  # the canary fails every request from t=1
    await clock.run_for(FAST.evaluation_interval)
    assert rollout.status.state is RolloutState.ROLLED_BACK
    assert await runner is RolloutState.ROLLED_BACK
    [event] = [e for e in recorder.events if e.name == ROLLOUT_ROLLED_BACK]
    assert event.time - 1.0 <= FAST.evaluation_interval
    assert event.attributes["candidate"] == 2
    assert event.attributes["restored"] == 1
    assert event.attributes["reason"].startswith("gate failed: success_ratio: success 0.00%")
    # at once, everyone is on the baseline, and the store never saw the candidate current
    assert {rollout.config_for(f"user-{i}").version for i in range(1000)} == {1}
    assert (await store.current()).number == 1  # type: ignore[union-attr]
    assert (await store.last_good()).number == 1  # type: ignore[union-attr]
    assert [e.action for e in await store.log()][-1] == "rolled_back"


async def test_a_slower_canary_fails_the_latency_gate() -> None:
    rollout, clock, recorder, _ = await opened()
    await rollout.start(BAD, "eu to a slow backend")
    feed(rollout, 2000, canary_latency=0.5)
    clock.advance(5.0)
    results = await rollout.evaluate()
    assert [r.verdict for r in results] == [Verdict.PASS, Verdict.VIOLATION]
    assert rollout.status.state is RolloutState.ROLLED_BACK
    [event] = [e for e in recorder.events if e.name == ROLLOUT_ROLLED_BACK]
    assert "latency: median latency" in event.attributes["reason"]


async def test_a_slightly_slower_canary_within_the_tolerance_passes() -> None:
    rollout, clock, _, _ = await opened()
    await rollout.start(BAD, "eu to a slightly slower backend")
    feed(rollout, 2000, canary_latency=0.0105)
    clock.advance(60.0)
    await rollout.evaluate()
    assert rollout.status.state is RolloutState.COMPLETED


async def test_completion_makes_the_candidate_current_and_good_in_the_store() -> None:
    rollout, clock, recorder, store = await opened()
    await rollout.start(routing(eu="a2", us="b", asia="c"), "new eu target")
    feed(rollout, 2000)
    clock.advance(60.0)
    await rollout.evaluate()
    assert (await store.current()).number == 2  # type: ignore[union-attr]
    assert (await store.last_good()).number == 2  # type: ignore[union-attr]
    assert {rollout.config_for(f"user-{i}").version for i in range(100)} == {2}
    names = [e.name for e in recorder.events if e.name != "evaluated"]
    assert names == [ROLLOUT_STARTED, ROLLOUT_STAGE_STARTED, ROLLOUT_COMPLETED]


async def test_linear_stages_widen_the_canary_one_step_at_a_time() -> None:
    options = RolloutOptions(
        stages=linear(25.0, bake=10.0), gates=(SuccessRatioGate(min_samples=20),)
    )
    rollout, clock, _, _ = await opened(options)
    await rollout.start(routing(eu="a2", us="b", asia="c"), "new eu target")
    shares = []
    for _ in range(3):
        shares.append(sum(rollout.config_for(f"user-{i}").canary for i in range(4000)) / 4000)
        feed(rollout, 4000)
        clock.advance(10.0)
        await rollout.evaluate()
    assert shares == pytest.approx([0.25, 0.50, 0.75], abs=0.03)
    assert rollout.status.state is RolloutState.COMPLETED


async def test_a_rejected_config_changes_nothing_and_says_which_field() -> None:
    rollout, _, recorder, store = await opened()
    bad = b'{"regions": {"eu": {"targets": [], "timeout": -1}}}'
    with pytest.raises(ConfigRejectedError) as caught:
        await rollout.start(bad, "empty eu")
    fields = {(field, rule) for field, rule, _ in caught.value.problems}
    assert fields == {("regions.eu.targets", "too_short"), ("regions.eu.timeout", "greater_than")}
    assert "regions.eu.targets" in str(caught.value)
    assert rollout.status.state is RolloutState.IDLE
    assert (await store.current()).number == 1  # type: ignore[union-attr]
    assert [e.action for e in await store.log()][-1] == "rejected"
    [event] = [e for e in recorder.events if e.name == ROLLOUT_REJECTED]
    assert event.attributes["problems"] == caught.value.problems
    with pytest.raises(KeyError):
        await store.get(2)


async def test_a_semantic_validator_rejects_with_its_field_and_rule() -> None:
    from tests.resilient.rollout_world import every_region_keeps_a_healthy_target

    rollout, _, _, _ = await opened(validators=[every_region_keeps_a_healthy_target])
    data = b'{"regions": {"eu": {"targets": ["x"]}, "us": {"targets": ["b"]}}, "healthy": ["b"]}'
    with pytest.raises(ConfigRejectedError) as caught:
        await rollout.start(data, "eu to x")
    assert caught.value.problems == (("regions.eu.targets", "healthy_target", "no healthy target"),)


async def test_a_validator_that_raises_rejects_the_config() -> None:
    def broken(config: object) -> list[object]:
        raise RuntimeError("no inventory")

    rollout, _, _, _ = await opened()
    rollout.validators = (broken,)
    with pytest.raises(ConfigRejectedError) as caught:
        await rollout.start(GOOD, "any")
    assert caught.value.problems == (
        ("", "broken", "the validator raised RuntimeError: no inventory"),
    )
    assert rollout.status.state is RolloutState.IDLE


async def test_one_rollout_at_a_time() -> None:
    rollout, _, _, _ = await opened()
    first, second = await asyncio.gather(
        rollout.start(BAD, "one"), rollout.start(GOOD, "two"), return_exceptions=True
    )
    assert first == 2
    assert isinstance(second, RolloutStateError)
    assert "one at a time" in str(second)
    with pytest.raises(RolloutStateError, match="running; one at a time"):
        await rollout.start(GOOD, "three")


async def test_run_with_no_rollout_running_returns_its_state_at_once() -> None:
    rollout, clock, _, _ = await opened()
    assert await asyncio.wait_for(rollout.run(), timeout=5.0) is RolloutState.IDLE
    assert clock.pending == 0  # not one evaluation waited for


async def test_the_history_of_a_completed_rollout_names_each_transition() -> None:
    rollout, clock, _, _ = await opened()
    await rollout.start(routing(eu="a2", us="b", asia="c"), "new eu target")
    feed(rollout, 2000)
    clock.advance(60.0)
    await rollout.evaluate()
    assert rollout.status.state is RolloutState.COMPLETED
    assert [entry[1:] for entry in rollout.status.history] == [
        ("started", "new eu target"),
        ("stage_started", "stage 0: new eu target"),
        ("completed", "stage 0 passed its gates"),
    ]


async def test_the_status_counts_each_evaluation_and_keeps_its_last_verdicts() -> None:
    rollout, clock, _, _ = await opened()
    await rollout.start(routing(eu="a2", us="b", asia="c"), "new eu target")
    feed(rollout, 2000)
    for count in (1, 2, 3):
        clock.advance(5.0)
        results = await rollout.evaluate()
        assert rollout.status.evaluations == count
        assert rollout.status.last_results == results
    assert [result.verdict for result in results] == [Verdict.PASS, Verdict.PASS]


async def test_a_stage_started_late_still_bakes_its_whole_bake_time() -> None:
    rollout, clock, _, _ = await opened()
    clock.advance(100.0)
    await rollout.start(routing(eu="a2", us="b", asia="c"), "new eu target")
    feed(rollout, 2000)
    clock.advance(59.0)
    await rollout.evaluate()
    assert rollout.status.state is RolloutState.RUNNING
    clock.advance(1.0)
    await rollout.evaluate()
    assert rollout.status.state is RolloutState.COMPLETED


async def test_a_sample_of_another_stage_is_not_counted() -> None:
    options = RolloutOptions(
        stages=linear(50.0, bake=0.0), gates=(SuccessRatioGate(min_samples=20),)
    )
    rollout, _, _, _ = await opened(options)
    await rollout.start(routing(eu="a2", us="b", asia="c"), "new eu target")
    old = rollout.config_for("user-1")
    await rollout.promote("skip ahead")
    assert rollout.record(old, ok=False) is False
    assert rollout.status.canary_requests == rollout.status.control_requests == 0


async def test_pause_holds_the_stage_but_a_violation_still_rolls_back() -> None:
    rollout, clock, _, _ = await opened()
    await rollout.start(routing(eu="a2", us="b", asia="c"), "new eu target")
    await rollout.pause("the on-call wants to look")
    feed(rollout, 2000)
    clock.advance(120.0)
    await rollout.evaluate()
    assert rollout.status.state is RolloutState.PAUSED
    await rollout.resume("looked")
    await rollout.evaluate()
    assert rollout.status.state is RolloutState.COMPLETED

    rollout, clock, _, _ = await opened()
    await rollout.start(BAD, "eu to a dead backend")
    await rollout.pause("hold")
    feed(rollout, 2000, canary_ok=0.0)
    await rollout.evaluate()
    assert rollout.status.state is RolloutState.ROLLED_BACK


async def test_promote_skips_the_bake_time_but_never_a_violated_gate() -> None:
    options = RolloutOptions(
        stages=linear(25.0, bake=600.0),
        gates=(SuccessRatioGate(min_samples=20),),
        failure_limit=1,
    )
    rollout, _, _, _ = await opened(options)
    await rollout.start(routing(eu="a2", us="b", asia="c"), "new eu target")
    await rollout.promote("the on-call is sure")
    assert rollout.status.stage == 1
    feed(rollout, 2000, canary_ok=0.0)
    await rollout.evaluate()
    assert rollout.status.state is RolloutState.RUNNING  # one violation tolerated
    with pytest.raises(RolloutStateError, match="a gate was violated in stage 1"):
        await rollout.promote("sure?")
    assert rollout.status.stage == 1


async def test_abort_and_the_kill_switch() -> None:
    rollout, _, _, store = await opened()
    await rollout.start(BAD, "eu to a dead backend")
    await rollout.abort("wrong ticket")
    assert rollout.status.state is RolloutState.ROLLED_BACK
    assert rollout.config_for("user-1").version == 1
    with pytest.raises(RolloutStateError, match="no rollout runs"):
        await rollout.abort("again")

    await rollout.start(BAD, "again")
    await rollout.kill("incident 42")
    assert rollout.status.state is RolloutState.ROLLED_BACK
    with pytest.raises(RolloutStateError, match="kill switch is on"):
        await rollout.start(GOOD, "during the incident")
    await rollout.unkill("incident over")
    assert await rollout.start(GOOD, "after") == 4
    assert (await store.current()).number == 1  # type: ignore[union-attr]


async def test_stages_by_cohort_add_their_regions() -> None:
    options = RolloutOptions(
        stages=by_cohorts(("eu",), ("us",), bake=10.0),
        gates=(SuccessRatioGate(min_samples=20),),
    )
    rollout, clock, _, _ = await opened(options)
    await rollout.start(routing(eu="a2", us="b2", asia="c"), "new targets")
    assert [rollout.config_for("k", r).canary for r in ("eu", "us", "asia")] == [True, False, False]
    assert rollout.config_for("k").canary is False  # no cohort: the control
    for region in ("eu", "us", "asia"):
        feed(rollout, 100, cohort=region)
    clock.advance(10.0)
    await rollout.evaluate()
    assert rollout.status.stage == 1
    assert [rollout.config_for("k", r).canary for r in ("eu", "us", "asia")] == [True, True, False]

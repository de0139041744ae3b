"""A hostile caller of a rollout: bad input changes nothing for anyone else; a broken gate or
store never passes a stage; every bound holds for the worst input."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest

from resilient.errors import (
    ArgumentTypeError,
    ArgumentValueError,
    ConfigRejectedError,
    RolloutStateError,
)
from resilient.rollout import (
    MAX_SHADOW_COHORTS,
    CohortSamples,
    ConfigRollout,
    GateResult,
    MemoryConfigStore,
    MetricGate,
    PydanticSchema,
    RolloutOptions,
    RolloutState,
    ShadowEvaluation,
    Stage,
    SuccessRatioGate,
    Verdict,
    by_cohorts,
    canary,
    linear,
)
from tests.resilient.rollout_world import BAD, FAST, Routing, feed, opened


async def test_any_str_key_has_a_side_and_other_keys_are_refused() -> None:
    rollout, _, _, _ = await opened()
    await rollout.start(BAD, "x")
    for key in ["", "\udcff\udcfe", "x" * 1_000_000, "\x00"]:
        assert rollout.config_for(key).version in {1, 2}
    for key in [b"user", 7, None]:
        with pytest.raises(ArgumentTypeError, match="config_for"):
            rollout.config_for(key)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"ok": 1}, ArgumentTypeError, "record(ok) must be a bool, got int"),
        ({"ok": True, "latency": math.nan}, ArgumentValueError, "latency) must be finite"),
        ({"ok": True, "latency": math.inf}, ArgumentValueError, "latency) must be finite"),
        ({"ok": True, "latency": 2**2000}, ArgumentValueError, "latency) must be finite"),
        ({"ok": True, "latency": True}, ArgumentTypeError, "latency) must be a number"),
        ({"ok": True, "latency": "1"}, ArgumentTypeError, "latency) must be a number"),
        ({"ok": True, "metrics": {"cpu": 1.0}}, ArgumentValueError, "names 'cpu', which no gate"),
        ({"ok": True, "metrics": {"latency": math.nan}}, ArgumentValueError, "must be finite"),
    ],
)
async def test_a_bad_sample_is_refused_and_counts_nothing(
    kwargs: dict[str, Any], error: type[Exception], words: str
) -> None:
    rollout, _, _, _ = await opened()
    await rollout.start(BAD, "x")
    served = rollout.config_for("user-1")
    with pytest.raises(error) as caught:
        rollout.record(served, **kwargs)
    assert words in str(caught.value)
    assert rollout.status.canary_requests == rollout.status.control_requests == 0
    with pytest.raises(ArgumentTypeError, match="record\\(served\\) must be a Served"):
        rollout.record("served", ok=True)  # type: ignore[arg-type]


async def test_a_served_of_another_rollout_is_not_counted() -> None:
    one, _, _, _ = await opened()
    two, _, _, _ = await opened()
    await one.start(BAD, "x")
    await two.start(BAD, "x")
    assert two.record(one.config_for("user-1"), ok=False) is False
    assert two.status.canary_requests + two.status.control_requests == 0


async def test_samples_are_bounded_per_metric_and_side() -> None:
    options = RolloutOptions(
        stages=canary(10.0), gates=(MetricGate(min_samples=5),), max_samples=100
    )
    rollout, _, _, _ = await opened(options)
    await rollout.start(BAD, "x")
    feed(rollout, 50_000)
    canary_side, control_side = rollout._samples
    assert len(canary_side.metrics["latency"]) == 100
    assert len(control_side.metrics["latency"]) == 100
    assert canary_side.total + control_side.total == 50_000


class Raising:
    name = "raising"
    metrics = ()

    def judge(self, canary: CohortSamples, control: CohortSamples) -> GateResult:
        raise ZeroDivisionError("bad metric")


class Lying:
    name = "lying"
    metrics = ()

    def judge(self, canary: CohortSamples, control: CohortSamples) -> object:
        return "pass"


@pytest.mark.parametrize("gate", [Raising(), Lying()])
async def test_a_broken_gate_never_passes_a_stage_and_rolls_back_past_its_budget(gate: Any) -> None:
    options = RolloutOptions(stages=canary(10.0, bake=0.0), gates=(gate,), error_limit=2)
    rollout, clock, recorder, _ = await opened(options)
    await rollout.start(BAD, "x")
    for _ in range(2):
        clock.advance(5.0)
        [result] = await rollout.evaluate()
        assert result.verdict is Verdict.ERROR
        assert rollout.status.state is RolloutState.RUNNING
    await rollout.evaluate()
    assert rollout.status.state is RolloutState.ROLLED_BACK
    [event] = [e for e in recorder.events if e.name == "rolled_back"]
    assert event.attributes["reason"].startswith(f"gate error: {gate.name}: ")


class FlakyStore(MemoryConfigStore):
    def __init__(self) -> None:
        super().__init__()
        self.down = False

    async def _fail(self) -> None:
        if self.down:
            raise ConnectionError("store down")

    async def store(self, data: bytes, reason: str) -> Any:
        await self._fail()
        return await super().store(data, reason)

    async def activate(self, number: int, *, expected: int | None, reason: str) -> None:
        await self._fail()
        await super().activate(number, expected=expected, reason=reason)

    async def record(self, action: str, version: int | None, reason: str) -> None:
        await self._fail()
        await super().record(action, version, reason)


async def flaky_rollout() -> tuple[ConfigRollout[Routing], Any, FlakyStore]:
    from resilient.clock import VirtualClock

    store = FlakyStore()
    clock = VirtualClock()
    rollout: ConfigRollout[Routing] = ConfigRollout(
        store, FAST, schema=PydanticSchema(Routing), clock=clock
    )
    from tests.resilient.rollout_world import GOOD

    await rollout.bootstrap(GOOD)
    return rollout, clock, store


async def test_a_store_down_at_start_changes_nothing() -> None:
    rollout, _, store = await flaky_rollout()
    store.down = True
    with pytest.raises(ConnectionError):
        await rollout.start(BAD, "x")
    assert rollout.status.state is RolloutState.IDLE
    store.down = False
    assert await rollout.start(BAD, "x") == 2


async def test_a_store_down_never_delays_a_rollback() -> None:
    rollout, clock, store = await flaky_rollout()
    await rollout.start(BAD, "x")
    store.down = True
    feed(rollout, 2000, canary_ok=0.0)
    clock.advance(5.0)
    await rollout.evaluate()
    assert rollout.status.state is RolloutState.ROLLED_BACK
    assert rollout.status.store_errors == 1
    assert rollout.status.history[-1][1] == "rolled_back"
    assert rollout.config_for("user-1").version == 1


async def test_a_store_down_at_completion_holds_the_last_stage_and_tries_again() -> None:
    rollout, clock, store = await flaky_rollout()
    await rollout.start(BAD.replace(b"dead", b"a2"), "x")
    feed(rollout, 2000)
    clock.advance(60.0)
    store.down = True
    await rollout.evaluate()
    assert rollout.status.state is RolloutState.RUNNING
    assert rollout.status.store_errors == 1
    store.down = False
    await rollout.evaluate()
    assert rollout.status.state is RolloutState.COMPLETED
    assert (await store.current()).number == 2  # type: ignore[union-attr]


async def test_each_completion_the_store_refuses_is_one_more_store_error() -> None:
    rollout, clock, store = await flaky_rollout()
    await rollout.start(BAD.replace(b"dead", b"a2"), "x")
    feed(rollout, 2000)
    clock.advance(60.0)
    store.down = True
    await rollout.evaluate()
    await rollout.evaluate()
    assert rollout.status.state is RolloutState.RUNNING
    assert rollout.status.store_errors == 2
    assert rollout.status.history[-1][1:] == (
        "store_error",
        "not completed, the store failed: ConnectionError: store down",
    )


async def test_a_cancelled_start_leaves_the_rollout_free() -> None:
    rollout, _, _, store = await opened()
    gate = asyncio.Event()
    original = store.store

    async def slow(data: bytes, reason: str) -> Any:
        await gate.wait()
        return await original(data, reason)

    store.store = slow  # type: ignore[method-assign]
    task = asyncio.create_task(rollout.start(BAD, "x"))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    store.store = original  # type: ignore[method-assign]
    assert rollout.status.state is RolloutState.IDLE
    assert await rollout.start(BAD, "again") == 2


async def test_a_second_start_while_the_first_awaits_its_store_is_refused() -> None:
    rollout, _, _, store = await opened()
    gate = asyncio.Event()
    original = store.store

    async def slow(data: bytes, reason: str) -> Any:
        await gate.wait()
        return await original(data, reason)

    store.store = slow  # type: ignore[method-assign]
    first = asyncio.create_task(rollout.start(BAD, "one"))
    second = asyncio.create_task(rollout.start(BAD.replace(b"dead", b"a2"), "two"))
    await asyncio.sleep(0)
    gate.set()
    one, two = await asyncio.gather(first, second, return_exceptions=True)
    assert one == 2
    assert isinstance(two, RolloutStateError)
    assert rollout.status.candidate == 2
    with pytest.raises(KeyError):
        await store.get(3)  # the refused one stored nothing


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda: Stage(percent=True), "Stage.percent must be a finite number"),
        (lambda: Stage(percent=100), "Stage.percent must be < 100"),
        (lambda: Stage(percent=0), "Stage.percent must be a finite number of percent > 0"),
        (lambda: Stage(percent=math.nan), "Stage.percent"),
        (lambda: Stage(), "exactly one of percent and cohorts"),
        (lambda: Stage(percent=5, cohorts=("eu",)), "exactly one of percent and cohorts"),
        (lambda: Stage(cohorts=("",)), "Stage.cohorts must be a tuple of non-empty str"),
        (lambda: Stage(percent=5, bake=-1), "Stage.bake"),
        (lambda: RolloutOptions(stages=(Stage(percent=20), Stage(percent=10))), "must grow"),
        (
            lambda: RolloutOptions(stages=(Stage(percent=20), Stage(cohorts=("eu",)))),
            "all be by percent or all by cohorts",
        ),
        (
            lambda: RolloutOptions(stages=(Stage(cohorts=("eu",)), Stage(cohorts=("eu",)))),
            "must not repeat a cohort",
        ),
        (lambda: RolloutOptions(gates=(object(),)), "RolloutOptions.gates must be a tuple of"),
        (lambda: RolloutOptions(failure_limit=-1), "RolloutOptions.failure_limit"),
        (lambda: RolloutOptions(max_samples=True), "RolloutOptions.max_samples"),
        (lambda: SuccessRatioGate(alpha=0), "SuccessRatioGate.alpha"),
        (lambda: MetricGate(tolerance=0.5), "MetricGate.tolerance"),
        (lambda: linear(0), "linear(step)"),
    ],
)
def test_bad_options_are_refused_by_name(make: Any, words: str) -> None:
    with pytest.raises((ArgumentTypeError, ArgumentValueError)) as caught:
        make()
    assert words in str(caught.value)


def test_linear_presets() -> None:
    assert [s.percent for s in linear()] == [20, 40, 60, 80]
    assert [s.percent for s in linear(30)] == [30, 60, 90]
    assert [s.percent for s in linear(50)] == [50]


async def test_bad_rollout_arguments_are_refused_by_name() -> None:
    store = MemoryConfigStore()
    schema = PydanticSchema(Routing)
    with pytest.raises(ArgumentTypeError, match=r"ConfigRollout\.store"):
        ConfigRollout(object(), schema=schema)  # type: ignore[arg-type]
    with pytest.raises(ArgumentTypeError, match=r"ConfigRollout\.schema"):
        ConfigRollout(store, schema=object())  # type: ignore[arg-type]
    with pytest.raises(ArgumentTypeError, match=r"ConfigRollout\.validators"):
        ConfigRollout(store, schema=schema, validators=[3])  # type: ignore[list-item]
    with pytest.raises(ArgumentValueError, match="gates must not be empty"):
        ConfigRollout(store, RolloutOptions(gates=()), schema=schema)
    with pytest.raises(ArgumentTypeError, match=r"PydanticSchema\.model"):
        PydanticSchema(dict)
    rollout = ConfigRollout(store, schema=schema)
    with pytest.raises(RolloutStateError, match="not open"):
        rollout.config_for("k")
    with pytest.raises(RolloutStateError, match="no current version"):
        await rollout.open()
    with pytest.raises(RolloutStateError, match="not open"):
        await rollout.start(BAD, "x")


async def test_open_reads_the_current_version_of_a_store() -> None:
    rollout, _, _, store = await opened()
    again: ConfigRollout[Routing] = ConfigRollout(store, schema=PydanticSchema(Routing))
    await again.open()
    assert again.config_for("k").version == 1
    assert again.config_for("k").config == rollout.config_for("k").config


def decide(config: dict[str, str], request: dict[str, str]) -> str:
    return config[request["region"]]


def test_shadow_evaluation_acts_only_on_the_current_config() -> None:
    current = {"eu": "a", "us": "b"}
    candidate = {"eu": "dead", "us": "b"}
    shadow = ShadowEvaluation(decide, current, candidate, cohort_of=lambda r: r["region"])
    answers = [shadow({"region": region}) for region in ["eu", "us", "us", "eu"]]
    assert answers == ["a", "b", "b", "a"]
    report = shadow.report
    assert (report.decisions, report.changed, report.raised) == (4, 2, 0)
    assert report.changed_share == 0.5
    assert report.share_by_cohort() == {"eu": 1.0, "us": 0.0}


def test_shadow_counts_a_candidate_that_raises_and_never_raises_it() -> None:
    shadow = ShadowEvaluation(decide, {"eu": "a"}, {}, cohort_of=lambda r: 1 / 0)  # type: ignore[arg-type,return-value]
    assert shadow({"region": "eu"}) == "a"
    assert (shadow.report.raised, shadow.report.changed) == (1, 1)
    assert shadow.report.by_cohort == {"<other>": [1, 1]}
    with pytest.raises(KeyError):  # the current config's own error is the caller's, as before
        shadow({"region": "us"})


def test_shadow_cohorts_are_bounded() -> None:
    shadow = ShadowEvaluation(lambda c, r: r, 0, 1, cohort_of=lambda r: f"c{r}")
    for i in range(10_000):
        shadow(i)
    assert len(shadow.report.by_cohort) == MAX_SHADOW_COHORTS + 1
    assert shadow.report.by_cohort["<other>"][0] == 10_000 - MAX_SHADOW_COHORTS


async def test_a_rollouts_shadow_compares_the_candidate_with_the_current_config() -> None:
    rollout, _, _, store = await opened()

    def target(config: Routing, region: str) -> str:
        return config.regions[region].targets[0]

    shadow = rollout.shadow(BAD, target, cohort_of=lambda region: region)
    answers = [shadow(region) for region in ["eu", "us", "asia", "eu"]]
    assert answers == ["a", "b", "c", "a"]  # the current config decides
    assert shadow.report.share_by_cohort() == {"eu": 1.0, "us": 0.0, "asia": 0.0}
    assert shadow.report.changed_share == 0.5
    with pytest.raises(KeyError):
        await store.get(2)  # nothing stored
    with pytest.raises(ConfigRejectedError):
        rollout.shadow(b"{}", target)


async def test_a_cohort_that_is_no_str_is_refused() -> None:
    options = RolloutOptions(stages=by_cohorts(("eu",)), gates=(SuccessRatioGate(),))
    rollout, _, _, _ = await opened(options)
    await rollout.start(BAD, "x")
    assert rollout.config_for("k", None).canary is False
    for cohort in (["eu"], b"eu", 1):
        with pytest.raises(ArgumentTypeError, match=r"config_for\(cohort\) must be a str or None"):
            rollout.config_for("k", cohort)  # type: ignore[arg-type]


async def test_two_evaluations_at_once_pass_one_stage_only() -> None:
    class SlowSamples(MemoryConfigStore):
        async def samples(self, *args: Any) -> Any:
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            return await super().samples(*args)

    options = RolloutOptions(
        stages=linear(25.0, bake=0.0), gates=(SuccessRatioGate(min_samples=5),)
    )
    rollout: ConfigRollout[Routing] = ConfigRollout(
        SlowSamples(), options, schema=PydanticSchema(Routing)
    )
    from tests.resilient.rollout_world import GOOD

    await rollout.bootstrap(GOOD)
    await rollout.start(BAD.replace(b"dead", b"a2"), "x")
    feed(rollout, 400)
    await asyncio.gather(rollout.evaluate(), rollout.evaluate(), rollout.evaluate())
    assert rollout.status.stage == 1  # one pass, not three


def test_a_metric_gate_direction_must_be_a_bool() -> None:
    with pytest.raises(ArgumentTypeError, match=r"MetricGate\.higher_is_worse must be a bool"):
        MetricGate(higher_is_worse="no")  # type: ignore[arg-type]


async def test_a_redis_client_that_decodes_responses_is_refused() -> None:
    import redis.asyncio as aredis

    from resilient.rollout import RedisConfigStore

    client = aredis.Redis(decode_responses=True)
    with pytest.raises(ArgumentValueError, match="must not decode responses"):
        RedisConfigStore(client, "x")
    await client.aclose()

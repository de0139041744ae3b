"""ConfigRollout at the exact edges of its bounds (failure_limit, error_limit, the canary's
first bucket out), its counts, and what each transition says and logs (virtual time)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from resilient.clock import VirtualClock
from resilient.errors import (
    ArgumentTypeError,
    ArgumentValueError,
    ConfigRejectedError,
    RolloutStateError,
)
from resilient.events import EventBus
from resilient.rollout import (
    CohortSamples,
    ConfigRollout,
    GateResult,
    MemoryConfigStore,
    PydanticSchema,
    RolloutOptions,
    RolloutState,
    SuccessRatioGate,
    Verdict,
    all_at_once,
    canary,
    latency_gate,
    linear,
)
from tests.resilient.rollout_world import BAD, FAST, GOOD, Routing, feed, opened, routing

NEW = routing(eu="a2", us="b", asia="c")


class Failing(MemoryConfigStore):
    """A memory store whose named methods raise ConnectionError."""

    def __init__(self) -> None:
        super().__init__()
        self.down: set[str] = set()

    def _check(self, name: str) -> None:
        if name in self.down:
            raise ConnectionError(f"{name} down")

    async def activate(self, number: int, *, expected: int | None, reason: str) -> None:
        self._check("activate")
        await super().activate(number, expected=expected, reason=reason)

    async def mark_good(self, number: int, reason: str) -> None:
        self._check("mark_good")
        await super().mark_good(number, reason)

    async def record(self, action: str, version: int | None, reason: str) -> None:
        self._check("record")
        await super().record(action, version, reason)


async def failing(
    options: RolloutOptions = FAST,
) -> tuple[ConfigRollout[Routing], VirtualClock, Failing]:
    store = Failing()
    clock = VirtualClock()
    rollout: ConfigRollout[Routing] = ConfigRollout(
        store, options, schema=PydanticSchema(Routing), clock=clock
    )
    await rollout.bootstrap(GOOD)
    return rollout, clock, store


async def log_of(store: Any) -> list[tuple[str, int | None, str]]:
    return [(e.action, e.version, e.reason) for e in await store.log()]


class Verdicts:
    """A gate answering what it is told."""

    name = "told"
    metrics = ()

    def __init__(self) -> None:
        self.verdict = Verdict.PASS

    def judge(self, canary: CohortSamples, control: CohortSamples) -> GateResult:
        return GateResult("told", self.verdict, f"said {self.verdict.value}")


async def told(**options: Any) -> tuple[ConfigRollout[Routing], VirtualClock, Verdicts, Any]:
    gate = Verdicts()
    rollout, clock, recorder, _ = await opened(
        RolloutOptions(stages=canary(10.0, bake=60.0), gates=(gate,), **options)
    )
    clock.advance(4.0)  # the stage starts at 4 s
    await rollout.start(BAD, "x")
    return rollout, clock, gate, recorder


async def test_failure_limit_violations_are_tolerated_and_one_more_rolls_back() -> None:
    rollout, clock, gate, recorder = await told(failure_limit=2)
    gate.verdict = Verdict.VIOLATION
    for count in (1, 2):
        await rollout.evaluate()
        assert rollout.status.violations == count
        assert rollout.status.state is RolloutState.RUNNING
    clock.advance(9.0)
    await rollout.evaluate()
    assert rollout.status.state is RolloutState.ROLLED_BACK
    [event] = recorder.named("rolled_back")
    assert dict(event.attributes) == {
        "rollout": "config",
        "candidate": 2,
        "restored": 1,
        "stage": 0,
        "seconds_in_stage": 9.0,
        "reason": "gate failed: told: said violation",
    }


async def test_error_limit_errors_are_tolerated_and_one_more_rolls_back() -> None:
    rollout, _, gate, recorder = await told(error_limit=1)
    gate.verdict = Verdict.ERROR
    await rollout.evaluate()
    assert (rollout.status.errors, rollout.status.state) == (1, RolloutState.RUNNING)
    await rollout.evaluate()
    assert rollout.status.state is RolloutState.ROLLED_BACK
    assert recorder.named("rolled_back")[0].attributes["reason"] == "gate error: told: said error"


async def test_missing_limit_is_exact_and_the_reason_names_every_missing_gate() -> None:
    gates = (SuccessRatioGate(min_samples=5), latency_gate())
    rollout, clock, recorder, _ = await opened(
        RolloutOptions(stages=canary(10.0, bake=10.0), gates=gates, missing_limit=0)
    )
    await rollout.start(BAD, "x")
    clock.advance(10.0)
    await rollout.evaluate()
    assert rollout.status.state is RolloutState.ROLLED_BACK
    assert recorder.named("rolled_back")[0].attributes["reason"] == (
        "missing data: success_ratio: 0 canary and 0 control requests, 5 needed on each side; "
        "latency: 0 canary and 0 control samples of latency, 50 needed on each side"
    )


async def test_every_violated_gate_is_named_in_the_reason() -> None:
    rollout, _, recorder, _ = await opened()
    await rollout.start(BAD, "x")
    feed(rollout, 3000, canary_ok=0.0, canary_latency=1.0)
    await rollout.evaluate()
    reason = recorder.named("rolled_back")[0].attributes["reason"]
    assert reason.startswith("gate failed: success_ratio: success 0.00% in the canary")
    assert "; latency: median latency " in reason


async def test_a_passing_stage_is_promoted_only_once_baked_and_running() -> None:
    options = RolloutOptions(stages=linear(25.0, bake=10.0), gates=(Verdicts(),))
    rollout, clock, recorder, store = await opened(options)
    await rollout.start(NEW, "x")
    clock.advance(10.0)
    await rollout.evaluate()
    assert rollout.status.stage == 1
    assert recorder.named("stage_started")[-1].attributes["reason"] == "stage 0 passed its gates"
    assert (await log_of(store))[-1] == ("stage_started", 2, "stage 1: stage 0 passed its gates")
    assert rollout.status.stage_started == 10.0
    await rollout.pause("hold")
    clock.advance(10.0)
    await rollout.evaluate()
    assert (rollout.status.stage, rollout.status.state) == (1, RolloutState.PAUSED)
    await rollout.promote("now")  # a paused rollout promoted runs again
    assert (rollout.status.stage, rollout.status.state) == (2, RolloutState.RUNNING)
    assert recorder.named("stage_started")[-1].attributes["reason"] == "promoted: now"


async def test_a_new_stage_starts_its_counts_from_zero() -> None:
    options = RolloutOptions(
        stages=linear(25.0, bake=10.0), gates=(SuccessRatioGate(min_samples=20),), missing_limit=5
    )
    rollout, clock, _, _ = await opened(options)
    await rollout.start(NEW, "x")
    feed(rollout, 10)
    clock.advance(10.0)
    await rollout.evaluate()
    status = rollout.status
    assert (status.evaluations, status.missing) == (1, 1)
    assert status.canary_requests + status.control_requests == 10
    await rollout.promote("on")
    assert (status.evaluations, status.violations, status.missing, status.errors) == (0, 0, 0, 0)
    assert (status.canary_requests, status.control_requests) == (0, 0)
    assert rollout._samples[0].capacity == options.max_samples


async def test_the_first_bucket_out_of_the_canary_is_the_controls() -> None:
    rollout, _, _, _ = await opened()
    await rollout.start(BAD, "x")  # salt "config:2": user-5918 is in bucket 999, user-8296 in 1000
    assert rollout.config_for("user-5918").canary is True
    assert rollout.config_for("user-8296").canary is False


async def test_record_counts_each_side_and_only_what_a_gate_reads() -> None:
    rollout, _, _, _ = await opened(
        RolloutOptions(stages=canary(10.0), gates=(SuccessRatioGate(min_samples=20),))
    )
    await rollout.start(BAD, "x")
    canary_served, control_served = rollout.config_for("user-5918"), rollout.config_for("user-8296")
    assert rollout.record(canary_served, ok=True, latency=0.5) is True
    assert rollout.record(canary_served, ok=False) is True
    assert rollout.record(control_served, ok=True) is True
    canary_side, control_side = rollout._samples
    assert (canary_side.successes, canary_side.total) == (1, 2)
    assert (control_side.successes, control_side.total) == (1, 1)
    assert canary_side.metrics == {}  # no gate reads latency
    assert (rollout.status.canary_requests, rollout.status.control_requests) == (2, 1)
    await rollout.abort("stop")
    assert rollout.record(rollout.config_for("user-5918"), ok=True) is False
    assert rollout.status.canary_requests == 2


async def test_a_rollback_a_completion_races_with_says_why() -> None:
    rollout, _, recorder, store = await opened()
    await rollout.start(NEW, "x")
    third = await store.store(GOOD, "someone else")
    await store.activate(third.number, expected=1, reason="someone else")
    await rollout.promote("done")
    assert rollout.status.state is RolloutState.ROLLED_BACK
    assert recorder.named("rolled_back")[0].attributes["reason"] == (
        "not completed: version 2 not activated: the current version is 3, not 1"
    )


async def test_store_failures_at_completion_are_counted_and_said() -> None:
    rollout, _, store = await failing()
    await rollout.start(NEW, "x")
    store.down = {"activate"}
    await rollout.promote("go")
    assert rollout.status.state is RolloutState.RUNNING
    assert rollout.status.history[-1][1:] == (
        "store_error",
        "not completed, the store failed: ConnectionError: activate down",
    )
    store.down = {"mark_good"}
    await rollout.promote("again")
    assert rollout.status.state is RolloutState.COMPLETED
    assert rollout.status.store_errors == 2
    assert rollout.status.history[-1][1:] == (
        "store_error",
        "not marked good: ConnectionError: mark_good down",
    )
    assert (await store.current()).number == 2  # type: ignore[union-attr]
    assert (await store.last_good()).number == 1  # type: ignore[union-attr]
    store.down = set()
    await rollout.kill("incident")  # the last known good is 1: made current again
    assert (await store.current()).number == 1  # type: ignore[union-attr]
    assert rollout.status.baseline == 1
    assert rollout.config_for("k").version == 1
    assert (await log_of(store))[-2:] == [
        ("activated", 1, "kill switch: incident"),
        ("killed", 1, "incident"),
    ]


async def test_a_log_the_store_misses_is_counted() -> None:
    rollout, _, store = await failing()
    store.down = {"record"}
    await rollout.start(BAD, "x")
    assert rollout.status.store_errors == 2  # started, stage_started
    assert rollout.status.state is RolloutState.RUNNING


async def test_each_transition_is_logged_with_its_reason() -> None:
    rollout, _, recorder, store = await opened()
    assert await log_of(store) == [
        ("stored", 1, "first version"),
        ("activated", 1, "first version"),
        ("marked_good", 1, "first version"),
    ]
    with pytest.raises(Exception, match="regions"):
        await rollout.start(b'{"regions": 3}', "broken")
    assert (await log_of(store))[-1][:2] == ("rejected", None)
    assert (await log_of(store))[-1][2].startswith("broken: ")
    assert rollout.status.history[-1][1] == "rejected"
    await rollout.start(BAD, "go")
    await rollout.pause("look")
    await rollout.resume("looked")
    await rollout.abort("stop")
    await rollout.kill("incident")
    await rollout.unkill("over")
    assert (await log_of(store))[-8:] == [
        ("stored", 2, "go"),
        ("started", 2, "go"),
        ("stage_started", 2, "stage 0: go"),
        ("paused", 2, "look"),
        ("resumed", 2, "looked"),
        ("rolled_back", 2, "aborted: stop"),
        ("killed", 1, "incident"),
        ("unkilled", 1, "over"),
    ]
    assert [(t, r) for _, t, r in rollout.status.history][-8:] == [
        ("rejected", rollout.status.history[-8][2]),
        ("started", "go"),
        ("stage_started", "stage 0: go"),
        ("paused", "look"),
        ("resumed", "looked"),
        ("rolled_back", "aborted: stop"),
        ("killed", "incident"),
        ("unkilled", "over"),
    ]
    said = [(e.name, dict(e.attributes)) for e in recorder.events][-5:]
    assert said == [
        ("paused", {"rollout": "config", "stage": 0, "reason": "look"}),
        ("resumed", {"rollout": "config", "stage": 0, "reason": "looked"}),
        (
            "rolled_back",
            {
                "rollout": "config",
                "candidate": 2,
                "restored": 1,
                "stage": 0,
                "seconds_in_stage": 0.0,
                "reason": "aborted: stop",
            },
        ),
        ("killed", {"rollout": "config", "on": True, "reason": "incident"}),
        ("killed", {"rollout": "config", "on": False, "reason": "over"}),
    ]
    assert rollout.status.killed is False


async def test_the_kill_switch_during_a_rollout_rolls_it_back() -> None:
    rollout, _, recorder, store = await opened()
    await rollout.start(BAD, "x")
    await rollout.kill("incident")
    assert rollout.status.killed is True
    assert recorder.named("rolled_back")[0].attributes["reason"] == "kill switch: incident"
    assert (await store.current()).number == 1  # type: ignore[union-attr]


async def test_what_each_refusal_says() -> None:
    rollout, _, _, _ = await opened(name="routing")
    with pytest.raises(RolloutStateError) as caught:
        await rollout.pause("p")
    assert str(caught.value) == "ConfigRollout('routing').pause(): no rollout runs (it is idle)"
    with pytest.raises(RolloutStateError, match=r"^ConfigRollout\('routing'\)\.promote\(\): no "):
        await rollout.promote("p")
    with pytest.raises(RolloutStateError) as caught:
        await rollout.resume("r")
    assert str(caught.value) == "ConfigRollout('routing').resume(): it is idle, not paused"
    await rollout.start(BAD, "x")
    await rollout.pause("p")
    with pytest.raises(RolloutStateError) as caught:
        await rollout.start(GOOD, "y")
    assert str(caught.value) == "ConfigRollout('routing'): a rollout is paused; one at a time"
    await rollout.abort("a")
    await rollout.kill("k")
    with pytest.raises(RolloutStateError) as caught:
        await rollout.start(GOOD, "y")
    assert str(caught.value) == "ConfigRollout('routing'): the kill switch is on"
    with pytest.raises(ArgumentTypeError, match=r"^ConfigRollout\.start\(data\) must be bytes"):
        await rollout.start("text", "y")  # type: ignore[arg-type]
    with pytest.raises(ArgumentValueError, match=r"^ConfigRollout\.start\(reason\)"):
        await rollout.start(GOOD, "")
    with pytest.raises(ArgumentTypeError, match=r"^ConfigRollout\.shadow\(data\) must be bytes"):
        rollout.shadow("text", lambda c, r: r)  # type: ignore[arg-type]
    with pytest.raises(ArgumentTypeError, match=r"^ConfigRollout\.bootstrap\(data\) must be"):
        await rollout.bootstrap("text")  # type: ignore[arg-type]


async def test_what_a_rollout_that_is_not_open_says() -> None:
    store = MemoryConfigStore()
    rollout: ConfigRollout[Routing] = ConfigRollout(
        store, FAST, schema=PydanticSchema(Routing), name="r"
    )
    with pytest.raises(RolloutStateError) as caught:
        rollout.config_for("k")
    assert str(caught.value) == "ConfigRollout('r') is not open: await open() first"
    with pytest.raises(RolloutStateError, match=r"^ConfigRollout\('r'\) is not open: await open"):
        rollout.shadow(GOOD, lambda c, r: r)
    with pytest.raises(RolloutStateError, match=r"^ConfigRollout\('r'\) is not open: await open"):
        await rollout.start(GOOD, "x")
    with pytest.raises(RolloutStateError) as caught:
        await rollout.open()
    assert str(caught.value).startswith("ConfigRollout('r').open(): the store has no current")


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"store": 3}, ArgumentTypeError, "ConfigRollout.store must be a ConfigStore"),
        ({"options": 3}, ArgumentTypeError, "ConfigRollout.options must be a RolloutOptions"),
        (
            {"validators": (print, 3)},
            ArgumentTypeError,
            "ConfigRollout.validators must be callables",
        ),
        ({"name": ""}, ArgumentValueError, "ConfigRollout.name must be a non-empty"),
        ({"clock": 3}, ArgumentTypeError, "ConfigRollout.clock must be a Clock"),
        ({"events": 3}, ArgumentTypeError, "ConfigRollout.events must be an EventBus"),
        (
            {"options": RolloutOptions(gates=())},
            ArgumentValueError,
            "ConfigRollout.options.gates must not be empty when there are stages",
        ),
    ],
)
def test_bad_arguments_are_refused_by_name(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    arguments: dict[str, Any] = {"store": MemoryConfigStore(), "schema": PydanticSchema(Routing)}
    arguments.update(kwargs)
    with pytest.raises(error) as caught:
        ConfigRollout(**arguments)
    assert str(caught.value).startswith(message)
    with pytest.raises(ArgumentTypeError) as caught:
        ConfigRollout(MemoryConfigStore(), schema=3)  # type: ignore[arg-type]
    assert str(caught.value) == "ConfigRollout.schema must have a parse(data) method, got 3"


async def test_all_at_once_needs_no_gate_and_completes_at_start() -> None:
    clock = VirtualClock()
    store = MemoryConfigStore()
    rollout: ConfigRollout[Routing] = ConfigRollout(
        store,
        RolloutOptions(stages=all_at_once(), gates=()),
        schema=PydanticSchema(Routing),
        clock=clock,
        events=EventBus(),
    )
    await rollout.bootstrap(GOOD)
    assert await rollout.start(NEW, "now") == 2
    assert rollout.status.state is RolloutState.COMPLETED
    assert await rollout.run() is RolloutState.COMPLETED
    assert (await store.current()).number == 2  # type: ignore[union-attr]


async def test_run_evaluates_every_evaluation_interval_until_done() -> None:
    rollout, clock, recorder, _ = await opened()
    await rollout.start(NEW, "x")
    feed(rollout, 2000)
    runner = asyncio.create_task(rollout.run())
    await clock.run_for(59.0)
    assert [e.time for e in recorder.named("evaluated")] == [5.0 * i for i in range(1, 12)]
    await clock.run_for(1.0)
    assert await runner is RolloutState.COMPLETED


async def test_a_rejected_candidate_is_said_and_kept_nowhere() -> None:
    rollout, clock, recorder, _ = await opened()
    clock.advance(3.0)
    with pytest.raises(ConfigRejectedError) as caught:
        await rollout.start(b'{"regions": {"eu": {"targets": []}}}', "empty")
    [event] = recorder.named("rejected")
    assert dict(event.attributes) == {"rollout": "config", "problems": caught.value.problems}
    assert rollout.status.history[-1] == (3.0, "rejected", str(caught.value))

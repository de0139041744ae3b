"""A fleet's plan, exactly: what the leader publishes at each transition, what a follower
serves and says when it follows it, and what a store failing on the way costs (virtual time)."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

import pytest

from resilient.clock import VirtualClock
from resilient.errors import RolloutStateError
from resilient.events import EventBus, EventRecorder
from resilient.rollout import (
    ConfigRollout,
    FileConfigStore,
    GateResult,
    MemoryConfigStore,
    PydanticSchema,
    RolloutOptions,
    RolloutState,
    SuccessRatioGate,
    Verdict,
    by_cohorts,
    linear,
)
from resilient.rollout._cohort import bucket_of, salt_of
from resilient.rollout._plan import Plan
from tests.resilient.rollout_world import BAD, FAST, GOOD, Routing, feed, routing

KEYS = [f"user-{i}" for i in range(500)]
FROM_PLAN = "from the fleet's plan"


class Fleet:
    def __init__(self, store: Any, options: RolloutOptions, size: int, name: str) -> None:
        self.store = store
        self.clock = VirtualClock()
        self.recorder = EventRecorder()
        bus = EventBus()
        bus.subscribe(self.recorder)
        self.members: list[ConfigRollout[Routing]] = [
            ConfigRollout(
                store,
                options,
                schema=PydanticSchema(Routing),
                clock=self.clock,
                events=bus,
                name=name,
            )
            for _ in range(size)
        ]

    async def plan(self) -> Plan:
        raw = await self.store.plan()
        assert raw is not None
        return Plan.decode(raw)

    def events(self, name: str) -> list[dict[str, Any]]:
        return [dict(e.attributes) for e in self.recorder.events if e.name == name]


async def fleet(
    store: Any = None, options: RolloutOptions = FAST, size: int = 2, name: str = "routing"
) -> Fleet:
    made = Fleet(MemoryConfigStore() if store is None else store, options, size, name)
    await made.members[0].bootstrap(GOOD)
    for member in made.members[1:]:
        await member.open()
    return made


def sides(member: ConfigRollout[Routing], cohort: str | None = None) -> list[bool]:
    return [member.config_for(key, cohort).canary for key in KEYS]


async def test_the_plan_says_what_the_leader_serves_at_each_transition() -> None:
    made = await fleet()
    leader = made.members[0]
    await leader.start(BAD, "x")
    assert await made.plan() == Plan(2, 1, 0, "running", 10.0, (), "routing:2")
    await leader.pause("look")
    await leader.evaluate()
    assert (await made.plan()).state == "running"  # pausing publishes nothing by itself
    await leader.abort("no")
    assert await made.plan() == Plan(2, 1, 0, "rolled_back", None, (), "routing:2")
    await leader.start(routing(eu="a2", us="b", asia="c"), "y")
    assert await made.plan() == Plan(3, 1, 0, "running", 10.0, (), "routing:3")
    await leader.promote("sure")
    assert await made.plan() == Plan(3, 3, 0, "completed", None, (), "routing:3")


async def test_a_plan_of_linear_stages_widens_its_percent() -> None:
    options = RolloutOptions(stages=linear(25.0, bake=5.0), gates=(SuccessRatioGate(),))
    made = await fleet(options=options)
    leader, follower = made.members
    await leader.start(BAD, "x")
    await leader.promote("on")
    assert await made.plan() == Plan(2, 1, 1, "running", 50.0, (), "routing:2")
    await follower.sync()
    assert follower.status.stage == 1
    assert sides(follower) == sides(leader)
    assert 200 <= sum(sides(follower)) <= 300
    assert made.events("stage_started")[-1] == {
        "rollout": "routing",
        "stage": 1,
        "percent": 50.0,
        "cohorts": (),
        "reason": FROM_PLAN,
    }
    assert follower.status.history[-1][1:] == ("stage_started", f"stage 1, {FROM_PLAN}")


async def test_a_plan_by_cohort_names_its_cohorts_and_no_percent() -> None:
    options = RolloutOptions(
        stages=by_cohorts(("us", "eu"), ("asia",), bake=5.0), gates=(SuccessRatioGate(),)
    )
    made = await fleet(options=options)
    leader, follower = made.members
    await leader.start(BAD, "x")
    assert await made.plan() == Plan(2, 1, 0, "running", None, ("eu", "us"), "routing:2")
    await leader.promote("on")
    assert (await made.plan()).cohorts == ("asia", "eu", "us")
    await follower.sync()
    assert [follower.config_for("k", c).canary for c in ("eu", "asia", "af")] == [True, True, False]
    assert made.events("stage_started")[-1]["cohorts"] == ("asia", "eu", "us")


async def test_the_salt_is_the_last_64_characters_of_name_and_version() -> None:
    name = "n" * 70
    made = await fleet(name=name)
    leader, follower = made.members
    await leader.start(BAD, "x")
    assert (await made.plan()).salt == ("n" * 70 + ":2")[-64:]
    await follower.sync()
    assert sides(follower) == sides(leader)


async def test_a_follower_says_each_change_of_the_plan() -> None:
    made = await fleet(size=3)
    leader, follower, late = made.members
    made.clock.advance(3.0)
    await leader.start(BAD, "x")
    await follower.sync()
    assert follower.status.stage_started == 3.0
    assert made.events("stage_started")[-1] == {
        "rollout": "routing",
        "stage": 0,
        "percent": 10.0,
        "cohorts": (),
        "reason": FROM_PLAN,
    }
    made.clock.advance(7.0)
    await leader.abort("no")
    await follower.sync()
    assert follower.status.state is RolloutState.ROLLED_BACK
    assert made.events("rolled_back")[-1] == {
        "rollout": "routing",
        "candidate": 2,
        "restored": 1,
        "stage": 0,
        "seconds_in_stage": 7.0,
        "reason": FROM_PLAN,
    }
    assert follower.status.history[-1][1:] == ("rolled_back", FROM_PLAN)
    assert not any(sides(follower))
    await late.sync()  # it never saw the rollout: nothing to say
    assert late.status.state is RolloutState.IDLE
    assert len(made.events("rolled_back")) == 2


async def test_an_idle_follower_keeps_serving_the_same_config() -> None:
    made = await fleet()
    follower = made.members[1]
    served = follower.config_for("k")
    await follower.sync()
    assert follower.config_for("k") is served  # nothing parsed again while nothing changes


async def test_a_follower_whose_plan_is_gone_goes_idle() -> None:
    made = await fleet()
    leader, follower = made.members
    await leader.start(BAD, "x")
    await follower.sync()
    made.store._plan = None
    await follower.sync()
    assert follower.status.state is RolloutState.IDLE
    assert follower.status.history[-1][1:] == ("idle", FROM_PLAN)
    assert not any(sides(follower))
    assert made.events("rolled_back") == []
    assert made.events("completed") == []


async def test_a_follower_that_missed_a_completion_takes_the_new_baseline() -> None:
    made = await fleet(size=3)
    leader, follower, late = made.members
    await leader.start(routing(eu="a2", us="b", asia="c"), "x")
    await follower.sync()
    await leader.promote("ok")
    await follower.sync()
    assert follower.status.state is RolloutState.COMPLETED
    assert made.events("completed")[-1] == {
        "rollout": "routing",
        "candidate": 2,
        "reason": FROM_PLAN,
    }
    assert follower.status.history[-1][1:] == ("completed", FROM_PLAN)
    assert follower.status.baseline == 2
    await leader.start(BAD, "next")
    await late.sync()  # from version 1 straight to the rollout of 3 over 2
    assert late.status.baseline == 2
    assert late.config_for("k").config.regions["eu"].targets in (["a2"], ["dead"])
    assert [late.config_for(k).version for k in KEYS] == [
        leader.config_for(k).version for k in KEYS
    ]
    assert {late.config_for(k).version for k in KEYS} == {2, 3}


async def test_one_rollout_at_a_time_in_the_fleet_word_for_word() -> None:
    made = await fleet()
    leader, follower = made.members
    await leader.start(BAD, "one")
    await leader.pause("hold")
    await leader.abort("no")
    await leader.start(BAD, "two")
    await leader.pause("hold")
    await leader.promote("skip")  # promote runs the rollout again, and publishes
    assert (await made.plan()).state == "completed"
    await leader.start(BAD, "three")
    with pytest.raises(RolloutStateError) as caught:
        await follower.start(GOOD, "four")
    assert str(caught.value) == (
        "ConfigRollout('routing'): a rollout of version 4 is running in the fleet; one at a time"
    )
    await made.store.publish_plan(b"not a plan")
    assert await follower.start(GOOD, "five") == 5  # a plan that is none runs nothing


async def test_a_paused_plan_also_refuses_another_rollout() -> None:
    made = await fleet()
    leader, follower = made.members
    await leader.start(BAD, "one")
    await made.store.publish_plan(Plan(2, 1, 0, "paused", 10.0, (), "routing:2").encode())
    with pytest.raises(
        RolloutStateError, match=r"version 2 is paused in the fleet; one at a time$"
    ):
        await follower.start(GOOD, "two")


async def test_only_a_plan_of_its_own_candidate_overrules_the_leader() -> None:
    made = await fleet()
    leader = made.members[0]
    await leader.start(BAD, "x")
    await made.store.publish_plan(Plan(9, 1, 0, "rolled_back", None, (), "s").encode())
    assert len(await leader.evaluate()) == 2
    assert leader.status.state is RolloutState.RUNNING
    await made.store.publish_plan(Plan(2, 1, 0, "running", 10.0, (), "routing:2").encode())
    assert len(await leader.evaluate()) == 2
    await made.store.publish_plan(b"garbage")
    assert len(await leader.evaluate()) == 2
    assert leader.status.state is RolloutState.RUNNING
    await made.store.publish_plan(Plan(2, 1, 0, "completed", None, (), "routing:2").encode())
    assert await leader.evaluate() == ()
    assert leader.status.state is RolloutState.ROLLED_BACK


async def test_a_plan_naming_no_percent_and_no_cohort_gives_the_candidate_to_no_key() -> None:
    made = await fleet()
    leader, follower = made.members
    await leader.start(BAD, "x")
    await made.store.publish_plan(Plan(2, 1, 0, "running", None, (), "routing:2").encode())
    await follower.sync()
    assert follower.status.state is RolloutState.RUNNING
    seed = salt_of("routing:2")
    first_bucket = next(k for k in map(str, itertools.count()) if bucket_of(seed, k) == 0)
    assert follower.config_for(first_bucket).canary is False
    assert not any(sides(follower))


async def test_a_follower_serves_the_completed_version_with_an_int_epoch() -> None:
    made = await fleet()
    leader, follower = made.members
    await leader.start(BAD, "x")
    await follower.sync()
    await leader.promote("on")
    await follower.sync()
    served = follower.config_for("k")
    assert (served.version, served.canary) == (2, False)
    assert type(served.epoch) is int  # as its type says, after a stage too


class Flaky(MemoryConfigStore):
    def __init__(self) -> None:
        super().__init__()
        self.down: set[str] = set()
        self.during: Any = None

    async def add_samples(self, *args: Any) -> None:
        if self.during is not None:
            self.during()
        if "add_samples" in self.down:
            raise ConnectionError("down")
        await super().add_samples(*args)

    async def samples(self, *args: Any) -> Any:
        if "samples" in self.down:
            raise ConnectionError("no samples")
        return await super().samples(*args)

    async def publish_plan(self, plan: bytes) -> None:
        if "publish_plan" in self.down:
            raise ConnectionError("no plan")
        await super().publish_plan(plan)


async def test_samples_a_store_missed_are_sent_with_the_next_ones() -> None:
    store = Flaky()
    made = await fleet(store)
    leader, follower = made.members
    await leader.start(BAD, "x")
    await follower.sync()
    counted = feed(follower, 100)
    store.down.add("add_samples")
    store.during = lambda: feed(follower, 50)  # requests recorded while the store is called
    await follower.sync()
    assert follower.status.store_errors == 1
    assert follower.status.history[-1][1] == "store_error"
    assert follower.status.history[-1][2] == "not synchronised: ConnectionError: down"
    store.down.clear()
    store.during = None
    await follower.sync()
    await leader.evaluate()
    assert leader.status.canary_requests + leader.status.control_requests == 150
    assert leader.status.canary_requests == counted[0] + sum(
        follower.config_for(f"user-{i}").canary for i in range(50)
    )


async def test_samples_the_store_cannot_give_are_a_gate_error() -> None:
    store = Flaky()
    made = await fleet(store)
    leader = made.members[0]
    await leader.start(BAD, "x")
    feed(leader, 100)
    store.down.add("samples")
    results = await leader.evaluate()
    assert results == (
        GateResult("samples", Verdict.ERROR, "the store failed: ConnectionError: no samples"),
    )
    assert leader.status.errors == 1
    assert leader.status.state is RolloutState.RUNNING
    store.down.clear()
    await leader.evaluate()
    assert leader.status.canary_requests + leader.status.control_requests == 100


async def test_a_plan_the_store_missed_is_published_at_the_next_evaluation() -> None:
    store = Flaky()
    made = await fleet(store)
    leader = made.members[0]
    store.down.add("publish_plan")
    await leader.start(BAD, "x")
    assert await store.plan() is None
    assert leader.status.store_errors == 1
    assert leader.status.history[-2][1:] == (
        "store_error",
        "plan not published: ConnectionError: no plan",
    )
    store.down.clear()
    await leader.evaluate()
    assert await made.plan() == Plan(2, 1, 0, "running", 10.0, (), "routing:2")
    await leader.evaluate()
    assert leader.status.store_errors == 1


async def test_a_rollout_on_a_store_that_shares_nothing_publishes_nothing(tmp_path: Path) -> None:
    clock = VirtualClock()
    store = FileConfigStore(tmp_path, clock=clock)
    rollout: ConfigRollout[Routing] = ConfigRollout(
        store, FAST, schema=PydanticSchema(Routing), clock=clock
    )
    await rollout.bootstrap(GOOD)
    await rollout.start(BAD, "x")
    feed(rollout, 1000)
    clock.advance(60.0)
    await rollout.evaluate()
    assert rollout.status.state is RolloutState.COMPLETED
    assert rollout.status.store_errors == 0
    assert rollout.status.canary_requests + rollout.status.control_requests == 1000


async def test_follow_syncs_every_sync_interval() -> None:
    options = RolloutOptions(stages=FAST.stages, gates=FAST.gates, sync_interval=2.0)
    made = await fleet(options=options)
    leader, follower = made.members
    task = asyncio.create_task(follower.follow())
    await made.clock.run_for(0.5)
    await leader.start(BAD, "x")
    await made.clock.run_for(1.4)
    assert follower.status.state is RolloutState.IDLE
    await made.clock.run_for(0.1)
    assert follower.status.state is RolloutState.RUNNING
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_each_plan_the_store_misses_is_one_more_store_error() -> None:
    store = Flaky()
    made = await fleet(store)
    leader = made.members[0]
    store.down.add("publish_plan")
    await leader.start(BAD, "x")
    await leader.evaluate()  # published again, missed again
    assert leader.status.store_errors == 2
    assert [entry[1] for entry in leader.status.history].count("store_error") == 2


async def test_a_follower_in_no_stage_sends_no_samples() -> None:
    store = Flaky()
    made = await fleet(store)
    follower = made.members[1]
    sent: list[int] = []
    store.during = lambda: sent.append(1)
    await follower.sync()  # no plan yet: nothing to send, nowhere to send it
    assert sent == []
    assert follower.status.store_errors == 0


async def test_a_leaders_sync_leaves_its_own_running_rollout_as_it_is() -> None:
    # The leader's own state is the plan: a pause (which publishes nothing) is not undone
    # by the plan in the store, which still says "running".
    made = await fleet()
    leader = made.members[0]
    await leader.start(BAD, "x")
    await leader.pause("look first")
    await leader.sync()
    assert leader.status.state is RolloutState.PAUSED
    assert (await made.plan()).state == "running"

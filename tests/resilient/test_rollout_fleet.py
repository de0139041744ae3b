"""A rollout across a fleet: the leader's plan and every instance's samples go through the
store; followers serve each key as the leader does, and a rollback reaches them all."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aredis

from chaos.servers import RedisServer
from resilient.clock import VirtualClock
from resilient.errors import RolloutStateError
from resilient.events import EventBus, EventRecorder
from resilient.rollout import (
    ConfigRollout,
    FileConfigStore,
    MemoryConfigStore,
    PydanticSchema,
    RedisConfigStore,
    RolloutState,
)
from tests.resilient.rollout_world import BAD, FAST, GOOD, Routing, feed, routing

KEYS = [f"user-{i}" for i in range(2000)]


recorder = EventRecorder()


async def fleet(store: Any, size: int = 4) -> tuple[list[ConfigRollout[Routing]], VirtualClock]:
    clock = VirtualClock()
    bus = EventBus()
    recorder.events.clear()
    bus.subscribe(recorder)
    members: list[ConfigRollout[Routing]] = [
        ConfigRollout(store, FAST, schema=PydanticSchema(Routing), clock=clock, events=bus)
        for _ in range(size)
    ]
    await members[0].bootstrap(GOOD)
    for member in members[1:]:
        await member.open()
    return members, clock


def sides(member: ConfigRollout[Routing]) -> list[int]:
    return [member.config_for(key).version for key in KEYS]


async def test_followers_serve_each_key_as_the_leader_does() -> None:
    (leader, *followers), _ = await fleet(MemoryConfigStore())
    await leader.start(BAD, "eu to the new backend")
    for follower in followers:
        assert set(sides(follower)) == {1}  # not synchronised yet
        await follower.sync()
        assert follower.status.state is RolloutState.RUNNING
        assert follower.status.candidate == 2
        assert sides(follower) == sides(leader)
    assert set(sides(leader)) == {1, 2}


async def test_the_followers_samples_roll_the_fleet_back() -> None:
    (leader, *followers), clock = await fleet(MemoryConfigStore())
    await leader.start(BAD, "eu to a dead backend")
    for follower in followers:
        await follower.sync()
        feed(follower, 500, canary_ok=0.0)  # only the followers see the failures
        await follower.sync()  # their samples go to the store
    assert leader.status.canary_requests == 0
    clock.advance(5.0)
    await leader.evaluate()
    assert leader.status.state is RolloutState.ROLLED_BACK
    assert leader.status.canary_requests > 100
    for follower in followers:
        await follower.sync()
        assert follower.status.state is RolloutState.ROLLED_BACK
        assert set(sides(follower)) == {1}
    names = [event.name for event in recorder.events]
    assert names.count("stage_started") == 4  # the leader's, and each follower's
    assert names.count("rolled_back") == 4


async def test_a_completed_rollout_becomes_every_followers_baseline() -> None:
    (leader, *followers), clock = await fleet(MemoryConfigStore())
    await leader.start(routing(eu="a2", us="b", asia="c"), "new eu target")
    for follower in followers:
        await follower.sync()
        feed(follower, 600)
        await follower.sync()
    clock.advance(60.0)
    await leader.evaluate()
    assert leader.status.state is RolloutState.COMPLETED
    for follower in followers:
        await follower.sync()
        assert follower.status.state is RolloutState.COMPLETED
        assert set(sides(follower)) == {2}
        assert follower.config_for("k").config.regions["eu"].targets == ["a2"]


async def test_one_rollout_at_a_time_in_the_fleet() -> None:
    (leader, follower, *_), _ = await fleet(MemoryConfigStore())
    await leader.start(BAD, "one")
    with pytest.raises(RolloutStateError, match="a rollout of version 2 is running in the fleet"):
        await follower.start(GOOD, "two")
    assert follower.status.state is RolloutState.IDLE


async def test_only_the_leader_evaluates() -> None:
    (leader, follower, *_), clock = await fleet(MemoryConfigStore())
    await leader.start(BAD, "x")
    await follower.sync()
    clock.advance(60.0)
    assert await follower.evaluate() == ()
    assert follower.status.state is RolloutState.RUNNING


async def test_a_follower_can_abort_for_the_fleet() -> None:
    (leader, follower, *_), _ = await fleet(MemoryConfigStore())
    await leader.start(BAD, "x")
    await follower.sync()
    await follower.abort("the on-call saw errors")
    assert follower.status.state is RolloutState.ROLLED_BACK
    assert await leader.evaluate() == ()
    assert leader.status.state is RolloutState.ROLLED_BACK
    assert leader.status.history[-1][2] == "rolled back by another instance of the fleet"
    assert set(sides(leader)) == {1}


async def test_a_followers_kill_switch_rolls_the_fleet_back() -> None:
    (leader, follower, other, _), _ = await fleet(MemoryConfigStore())
    await leader.start(BAD, "x")
    await follower.sync()
    await other.sync()
    await follower.kill("the on-call pulled the switch")
    assert follower.status.state is RolloutState.ROLLED_BACK
    assert await leader.evaluate() == ()
    assert leader.status.state is RolloutState.ROLLED_BACK
    assert set(sides(leader)) == {1}
    await other.sync()
    assert other.status.state is RolloutState.ROLLED_BACK
    assert set(sides(other)) == {1}


async def test_a_plan_that_is_none_changes_nothing() -> None:
    store = MemoryConfigStore()
    (leader, follower, *_), _ = await fleet(store)
    await leader.start(BAD, "x")
    await follower.sync()
    before = sides(follower)
    for garbage in [b"[]", b"{", b'{"state": "running"}', b'{"candidate": -1}']:
        await store.publish_plan(garbage)
        await follower.sync()
        assert sides(follower) == before
    assert follower.status.store_errors == 4


async def test_follow_needs_a_store_that_shares_rollouts(tmp_path: Path) -> None:
    rollout: ConfigRollout[Routing] = ConfigRollout(
        FileConfigStore(tmp_path), FAST, schema=PydanticSchema(Routing)
    )
    with pytest.raises(RolloutStateError, match="FileConfigStore does not share rollouts"):
        await rollout.follow()


class FlakyPlans(MemoryConfigStore):
    down = False

    async def publish_plan(self, plan: bytes) -> None:
        if self.down:
            raise ConnectionError("down")
        await super().publish_plan(plan)


async def test_a_rollback_the_store_missed_is_published_again() -> None:
    store = FlakyPlans()
    (leader, follower, *_), clock = await fleet(store)
    await leader.start(BAD, "x")
    await follower.sync()
    feed(leader, 2000, canary_ok=0.0)
    store.down = True
    runner = asyncio.create_task(leader.run())
    await clock.run_for(FAST.evaluation_interval)
    assert leader.status.state is RolloutState.ROLLED_BACK
    assert not runner.done()  # it keeps trying to tell the fleet
    await follower.sync()
    assert follower.status.state is RolloutState.RUNNING
    store.down = False
    await clock.run_for(FAST.evaluation_interval)
    assert await asyncio.wait_for(runner, 1) is RolloutState.ROLLED_BACK
    await follower.sync()
    assert follower.status.state is RolloutState.ROLLED_BACK


async def test_a_fleet_on_redis_rolls_back_together(redis_server: RedisServer) -> None:
    name = f"fleet-{uuid.uuid4().hex}"
    clients = [aredis.Redis.from_url(redis_server.url) for _ in range(3)]
    try:
        stores = [RedisConfigStore(client, name) for client in clients]
        members: list[ConfigRollout[Routing]] = [
            ConfigRollout(store, FAST, schema=PydanticSchema(Routing), name="routing")
            for store in stores
        ]
        await members[0].bootstrap(GOOD)
        for member in members[1:]:
            await member.open()
        leader, *followers = members
        await leader.start(BAD, "eu to a dead backend")
        for follower in followers:
            await follower.sync()
            assert sides(follower) == sides(leader)
            feed(follower, 500, canary_ok=0.0)
            await follower.sync()
        await leader.evaluate()
        assert leader.status.state is RolloutState.ROLLED_BACK
        assert "success 0.00% in the canary" in leader.status.history[-1][2]
        for follower in followers:
            await follower.sync()
            assert set(sides(follower)) == {1}
        assert (await stores[1].current()).number == 1  # type: ignore[union-attr]
    finally:
        for client in clients:
            await client.aclose()

"""Adaptive limit (issue 12): under a latency increase the limit falls and queued work is shed,
not timed out; after recovery it climbs back.

Open-loop load in virtual time: 400 calls a second against a dependency that answers in 50 ms
(20 in flight), then in 500 ms (200 would be needed), then in 50 ms again.
"""

from __future__ import annotations

import pytest

from resilient.bulkhead import (
    AIMDLimit,
    AIMDLimitOptions,
    Bulkhead,
    BulkheadOptions,
    Gradient2Limit,
    Gradient2LimitOptions,
    Limit,
)
from resilient.clock import VirtualClock
from resilient.events import EventBus, EventRecorder
from tests.resilient.bulkhead_world import Dependency, Load

RATE = 400.0
HEALTHY = 0.05
SLOW = 0.5
MAX_WAIT = 0.5


@pytest.mark.parametrize(
    "limit",
    [
        Gradient2Limit(Gradient2LimitOptions(initial_limit=20, min_limit=1)),
        AIMDLimit(AIMDLimitOptions(initial_limit=20, min_limit=1, timeout=0.25)),
    ],
    ids=["gradient2", "aimd"],
)
async def test_the_limit_falls_under_latency_sheds_queued_work_and_climbs_back(
    virtual_clock: VirtualClock,
    event_recorder: EventRecorder,
    recording_bus: EventBus,
    limit: Limit,
) -> None:
    bulkhead = Bulkhead(
        "model-api",
        BulkheadOptions(max_waiting=50, max_wait=MAX_WAIT),
        limit=limit,
        clock=virtual_clock,
        events=recording_bus,
    )
    dependency = Dependency(virtual_clock, latency=HEALTHY)
    load = Load(bulkhead, dependency)

    await load.run(10.0, RATE)
    healthy = bulkhead.stats
    assert healthy.shed == 0
    assert healthy.limit >= 20

    dependency.latency = SLOW
    await load.run(20.0, RATE)
    slow = bulkhead.stats
    assert slow.limit <= healthy.limit // 2  # the limit fell
    assert slow.shed > 0  # and what queued was shed
    shed = load.outcomes.copy()
    del shed["ok"]
    assert set(shed) <= {"BulkheadFullError", "BulkheadDeadlineError"}  # never a timeout
    assert max(load.waits) <= MAX_WAIT + 1e-9  # every caller had its answer in time
    reasons = {event.attributes["reason"] for event in event_recorder.named("shed")}
    assert reasons <= {"full", "deadline"}
    assert reasons

    dependency.latency = HEALTHY
    await load.run(20.0, RATE)  # Gradient2 climbs 0.8 a second: from 10 to 20 in 12 s
    climbed = bulkhead.stats
    assert climbed.limit >= 20  # it climbed back
    await load.run(20.0, RATE)
    await load.drain()
    recovered = bulkhead.stats
    assert recovered.shed == climbed.shed  # and sheds no more
    assert recovered.limit >= climbed.limit
    assert (recovered.in_flight, recovered.waiting) == (0, 0)
    assert sum(load.outcomes.values()) == recovered.admitted + recovered.shed
    changes = [event.attributes["limit"] for event in event_recorder.named("limit_changed")]
    assert min(changes) <= slow.limit
    assert changes[-1] == recovered.limit

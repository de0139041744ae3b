"""ConfigRollout in exact words: what each refusal says is what an operator reads in a log or
a traceback, so each names the rollout, the call and the way out."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from resilient.errors import ArgumentTypeError, RolloutStateError
from resilient.rollout import (
    ConfigRollout,
    MemoryConfigStore,
    PydanticSchema,
    RolloutOptions,
    SuccessRatioGate,
    by_cohorts,
    linear,
)
from tests.resilient.rollout_world import BAD, GOOD, Routing, feed, opened


async def test_opening_an_empty_store_says_to_bootstrap_it() -> None:
    rollout = ConfigRollout(MemoryConfigStore(), schema=PydanticSchema(Routing), name="routing")
    with pytest.raises(RolloutStateError) as caught:
        await rollout.open()
    assert str(caught.value) == (
        "ConfigRollout('routing').open(): the store has no current version "
        "(store a first one with ConfigRollout.bootstrap)"
    )


async def test_a_cohort_that_is_no_str_is_refused_naming_its_type() -> None:
    options = RolloutOptions(stages=by_cohorts(("eu",)), gates=(SuccessRatioGate(),))
    rollout, _, _, _ = await opened(options)
    await rollout.start(BAD, "x")
    with pytest.raises(ArgumentTypeError) as caught:
        rollout.config_for("k", ["eu"])  # type: ignore[arg-type]
    assert str(caught.value) == "ConfigRollout.config_for(cohort) must be a str or None, got list"


async def test_a_start_while_another_is_starting_says_so() -> None:
    rollout, _, _, store = await opened(name="routing")
    gate = asyncio.Event()
    original = store.store

    async def slow(data: bytes, reason: str) -> Any:
        await gate.wait()
        return await original(data, reason)

    store.store = slow  # type: ignore[method-assign]
    first = asyncio.create_task(rollout.start(BAD, "one"))
    await asyncio.sleep(0)
    with pytest.raises(RolloutStateError) as caught:
        await rollout.start(GOOD, "two")
    gate.set()
    assert await first == 2
    assert str(caught.value) == "ConfigRollout('routing'): a rollout is starting; one at a time"


async def test_promoting_a_stage_a_gate_failed_in_says_which_stage() -> None:
    options = RolloutOptions(
        stages=linear(25.0, bake=600.0),
        gates=(SuccessRatioGate(min_samples=20),),
        failure_limit=1,
    )
    rollout, _, _, _ = await opened(options, name="routing")
    await rollout.start(BAD, "x")
    await rollout.promote("sure")
    feed(rollout, 2000, canary_ok=0.0)
    await rollout.evaluate()
    with pytest.raises(RolloutStateError) as caught:
        await rollout.promote("sure?")
    assert str(caught.value) == (
        "ConfigRollout('routing').promote(): a gate was violated in stage 1"
    )


async def test_aborting_with_no_rollout_running_says_so() -> None:
    rollout, _, _, _ = await opened(name="routing")
    with pytest.raises(RolloutStateError) as caught:
        await rollout.abort("a")
    assert str(caught.value) == "ConfigRollout('routing').abort(): no rollout runs (it is idle)"

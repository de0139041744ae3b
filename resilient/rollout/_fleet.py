"""A rollout across a fleet: the leader publishes its plan and reads every instance's samples
through a :class:`~resilient.rollout.SharedRolloutStore`; every other instance follows the
plan (:meth:`~resilient.rollout.ConfigRollout.follow`) and sends its samples.

These functions are the fleet half of :class:`~resilient.rollout.ConfigRollout` (kept apart so
that each module has one job); they read and set its private state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from resilient.errors import RolloutStateError
from resilient.rollout._cohort import BUCKETS, salt_of
from resilient.rollout._events import RolledBack, RolloutCompleted, StageStarted
from resilient.rollout._gates import CohortSamples, GateResult, Verdict
from resilient.rollout._plan import Plan
from resilient.rollout._status import ACTIVE, RolloutState
from resilient.rollout._store import merge_samples

_FROM_PLAN = "from the fleet's plan"

if TYPE_CHECKING:
    from resilient.rollout._rollout import ConfigRollout

__all__ = [
    "flush",
    "follow_plan",
    "gather",
    "overruled",
    "plan_of",
    "publish",
    "refuse_a_running_rollout",
]


def plan_of(rollout: ConfigRollout[Any]) -> Plan:
    stage = max(rollout.status.stage, 0)
    percent = None
    if rollout._stage_id is not None and not rollout._cohorts:
        percent = rollout._threshold * 100 / BUCKETS
    return Plan(
        rollout.status.candidate or 0,
        rollout.status.baseline or 0,
        stage,
        rollout.status.state.value,
        percent,
        tuple(sorted(rollout._cohorts)),
        rollout._salt,
    )


async def publish(rollout: ConfigRollout[Any]) -> None:
    """Tell the fleet (a leader only): the plan is published again at each evaluation
    until the store takes it, so a rollback reaches every instance."""
    if rollout._shared is None or not rollout._leading:
        return
    try:
        await rollout._shared.publish_plan(plan_of(rollout).encode())
    except Exception as error:
        rollout._unpublished = True
        rollout.status.store_errors += 1
        rollout._note("store_error", f"plan not published: {type(error).__name__}: {error}")
    else:
        rollout._unpublished = False


async def flush(rollout: ConfigRollout[Any]) -> None:
    """Send this instance's samples of its stage to the store (kept if it fails)."""
    if rollout._shared is None or rollout._stage_id is None:
        return
    sent = rollout._samples
    rollout._samples = (CohortSamples(sent[0].capacity), CohortSamples(sent[1].capacity))
    try:
        await rollout._shared.add_samples(rollout._stage_id, sent[0], sent[1], sent[0].capacity)
    except BaseException:
        merge_samples(sent[0], rollout._samples[0])
        merge_samples(sent[1], rollout._samples[1])
        rollout._samples = sent
        raise


async def gather(rollout: ConfigRollout[Any]) -> tuple[CohortSamples, CohortSamples] | GateResult:
    """This stage's samples: this instance's, or the whole fleet's through the store."""
    if rollout._shared is None or rollout._stage_id is None:
        return rollout._samples
    try:
        await flush(rollout)
        metrics = tuple(sorted(rollout._metrics))
        canary, control = await rollout._shared.samples(
            rollout._stage_id, metrics, rollout.options.max_samples
        )
    except Exception as error:  # a metric error: counted against error_limit
        return GateResult(
            "samples", Verdict.ERROR, f"the store failed: {type(error).__name__}: {error}"
        )
    rollout.status.canary_requests, rollout.status.control_requests = canary.total, control.total
    return canary, control


async def overruled(rollout: ConfigRollout[Any]) -> bool:
    """True when another instance rolled the leader's rollout back (an operator's abort or
    kill switch there): the fleet's plan names this candidate, no longer active."""
    assert rollout._shared is not None
    try:
        raw = await rollout._shared.plan()
        plan = None if raw is None else Plan.decode(raw)
    except Exception:  # the store's trouble is counted where samples are read
        return False
    return plan is not None and plan.candidate == rollout.status.candidate and not plan.active


async def refuse_a_running_rollout(rollout: ConfigRollout[Any]) -> None:
    assert rollout._shared is not None
    raw = await rollout._shared.plan()
    if raw is None:
        return
    try:
        plan = Plan.decode(raw)
    except ValueError:
        return  # not a plan: nothing runs (follow() reports it as a store error)
    if plan.active:
        raise RolloutStateError(
            f"ConfigRollout({rollout.name!r}): a rollout of version {plan.candidate} is "
            f"{plan.state} in the fleet; one at a time"
        )


async def follow_plan(rollout: ConfigRollout[Any]) -> None:
    """Serve what the fleet's plan says (see :meth:`ConfigRollout.follow`)."""
    shared = rollout._shared
    assert shared is not None
    if rollout._leading and rollout.status.state in ACTIVE:
        return  # the leader's own state is the plan
    await flush(rollout)
    raw = await shared.plan()
    plan = None if raw is None else Plan.decode(raw)
    status = rollout.status
    if plan is not None and plan.active:
        if plan.stage_id != rollout._stage_id:
            if plan.baseline != status.baseline:
                baseline = await rollout.store.get(plan.baseline)
                rollout._set_baseline(baseline, rollout.schema.parse(baseline.data))
            candidate = await rollout.store.get(plan.candidate)
            rollout._candidate = candidate
            rollout._candidate_config = rollout.schema.parse(candidate.data)
            rollout._salt = plan.salt
            rollout._seed = salt_of(plan.salt)
            status.candidate = plan.candidate
            rollout._serve(plan.stage, plan.percent, frozenset(plan.cohorts))
            rollout._note("stage_started", f"stage {plan.stage}, {_FROM_PLAN}")
            rollout._emit(
                StageStarted(rollout.name, plan.stage, plan.percent, plan.cohorts, _FROM_PLAN)
            )
        status.state = RolloutState(plan.state)
        return
    if status.state in ACTIVE:
        rollout._stop_serving_candidate()
        status.state = RolloutState(plan.state) if plan is not None else RolloutState.IDLE
        rollout._note(status.state.value, _FROM_PLAN)
        number = status.candidate or 0
        if status.state is RolloutState.ROLLED_BACK:
            seconds = rollout._clock.monotonic() - status.stage_started
            rollout._emit(
                RolledBack(rollout.name, number, status.baseline, status.stage, seconds, _FROM_PLAN)
            )
        elif status.state is RolloutState.COMPLETED:
            rollout._emit(RolloutCompleted(rollout.name, number, _FROM_PLAN))
    current = await rollout.store.current()
    if current is not None and current.number != status.baseline:
        rollout._set_baseline(current, rollout.schema.parse(current.data))

"""Random sequences of start, samples, time, pause, resume, promote, abort and the kill switch
keep a rollout within its invariants (a Hypothesis state machine, in virtual time)."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from resilient.errors import RolloutStateError
from resilient.rollout import RolloutOptions, RolloutState, SuccessRatioGate, Verdict, linear
from tests.resilient.rollout_world import BAD, feed, opened, routing

OPTIONS = RolloutOptions(
    stages=linear(25.0, bake=30.0),
    gates=(SuccessRatioGate(min_samples=20),),
    evaluation_interval=5.0,
    missing_limit=2,
)
ACTIVE = (RolloutState.RUNNING, RolloutState.PAUSED)


class RolloutMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.rollout, self.clock, self.recorder, self.store = self.run(opened(OPTIONS))
        self.candidates = 0

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    def teardown(self) -> None:
        self.loop.close()

    @rule(bad=st.booleans())
    def start(self, bad: bool) -> None:
        state, killed = self.rollout.status.state, self.rollout.status.killed
        try:
            self.run(self.rollout.start(BAD if bad else routing(eu="a2", us="b", asia="c"), "r"))
        except RolloutStateError:
            assert state in ACTIVE or killed
            return
        assert state not in ACTIVE
        assert not killed

    @rule(count=st.integers(0, 400), canary_ok=st.sampled_from([0.0, 0.5, 1.0]))
    def samples(self, count: int, canary_ok: float) -> None:
        feed(self.rollout, count, canary_ok=canary_ok)

    @rule(seconds=st.sampled_from([1.0, 5.0, 30.0]))
    def evaluate(self, seconds: float) -> None:
        status = self.rollout.status
        stage, state = status.stage, status.state
        elapsed = self.clock.monotonic() + seconds - status.stage_started
        self.clock.advance(seconds)
        results = self.run(self.rollout.evaluate())
        event(f"evaluated into {status.state.value}")
        if state not in ACTIVE:
            assert results == ()
            return
        verdicts = {r.verdict for r in results}
        moved = status.stage > stage or status.state is RolloutState.COMPLETED
        if moved:  # a stage passed by an evaluation: baked, every gate passing, not paused
            assert verdicts == {Verdict.PASS}
            assert elapsed >= OPTIONS.stages[stage].bake
            assert state is RolloutState.RUNNING
        if Verdict.VIOLATION in verdicts:
            assert status.state is RolloutState.ROLLED_BACK
        if Verdict.MISSING in verdicts:
            assert not moved

    @rule()
    def pause(self) -> None:
        state = self.rollout.status.state
        try:
            self.run(self.rollout.pause("look"))
        except RolloutStateError:
            assert state not in ACTIVE
            return
        assert self.rollout.status.state is RolloutState.PAUSED

    @rule()
    def resume(self) -> None:
        paused = self.rollout.status.state is RolloutState.PAUSED
        try:
            self.run(self.rollout.resume("go"))
        except RolloutStateError:
            assert not paused
            return
        assert paused

    @rule()
    def promote(self) -> None:
        status = self.rollout.status
        stage, state, violated = status.stage, status.state, status.violations
        try:
            self.run(self.rollout.promote("operator"))
        except RolloutStateError:
            assert state not in ACTIVE or violated
            return
        assert status.stage == stage + 1 or status.state is RolloutState.COMPLETED

    @rule()
    def abort(self) -> None:
        state = self.rollout.status.state
        try:
            self.run(self.rollout.abort("operator"))
        except RolloutStateError:
            assert state not in ACTIVE
            return
        assert self.rollout.status.state is RolloutState.ROLLED_BACK

    @rule()
    def kill(self) -> None:
        self.run(self.rollout.kill("incident"))
        assert self.rollout.status.state not in ACTIVE

    @rule()
    def unkill(self) -> None:
        self.run(self.rollout.unkill("over"))

    @invariant()
    def serves_only_the_baseline_and_the_candidate(self) -> None:
        status = self.rollout.status
        versions = {self.rollout.config_for(f"user-{i}").version for i in range(50)}
        if status.state in ACTIVE:
            assert versions <= {status.baseline, status.candidate}
        else:
            assert versions == {status.baseline}

    @invariant()
    def the_store_current_is_the_baseline(self) -> None:
        current = self.run(self.store.current())
        assert current.number == self.rollout.status.baseline
        good = self.run(self.store.last_good())
        assert good.number == current.number

    @invariant()
    def a_rolled_back_candidate_is_never_current(self) -> None:
        rolled_back = {
            e.attributes["candidate"] for e in self.recorder.events if e.name == "rolled_back"
        }
        completed = {
            e.attributes["candidate"] for e in self.recorder.events if e.name == "completed"
        }
        assert not rolled_back & completed
        assert self.rollout.status.baseline not in rolled_back


RolloutMachine.TestCase.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)
TestRolloutMachine = RolloutMachine.TestCase

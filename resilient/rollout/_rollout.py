"""ConfigRollout: a candidate configuration through canary stages, judged against a control
cohort, rolled back by itself when it does worse.

The guarantees:

- Nothing changes before validation passes; a rejected candidate is recorded with its reason.
- A stage is passed only when its bake time is over *and* every gate passed with its minimum
  sample on both sides, in one evaluation: missing data never promotes.
- A violated gate (beyond ``failure_limit``) rolls back at that evaluation: within one
  ``evaluation_interval`` of the samples that show it. A rollback takes effect in this process
  before anything is awaited (``config_for`` answers the baseline at once), then is written to
  the store.
- One rollout at a time; every transition is an event and a log entry, with its reason.
- The store's current version changes only when a rollout completes (compare-and-set against
  the version it started from) or the kill switch restores the last known good one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Generic, TypeVar

from resilient._validate import Instance, Text, check
from resilient.clock import SYSTEM_CLOCK, Clock
from resilient.errors import (
    ArgumentTypeError,
    ArgumentValueError,
    ConfigConflictError,
    ConfigRejectedError,
    RolloutStateError,
)
from resilient.events import DEFAULT_EVENTS, Emitter, EventBus
from resilient.rollout._cohort import bucket_of, salt_of, threshold
from resilient.rollout._events import (
    ROLLOUT_EVENT_SOURCE,
    ConfigRejected,
    GatesEvaluated,
    KillSwitchSet,
    RolledBack,
    RolloutCompleted,
    RolloutPaused,
    RolloutResumed,
    RolloutStarted,
    StageStarted,
)
from resilient.rollout._fleet import (
    follow_plan,
    gather,
    overruled,
    publish,
    refuse_a_running_rollout,
)
from resilient.rollout._gates import CohortSamples, GateResult, Verdict
from resilient.rollout._options import DEFAULT_ROLLOUT_OPTIONS, RolloutOptions, Stage
from resilient.rollout._schema import ConfigSchema, Validator, check_schema, parse_and_validate
from resilient.rollout._shadow import ShadowEvaluation
from resilient.rollout._status import (
    ACTIVE,
    RolloutState,
    RolloutStatus,
    Served,
    checked_sample,
    judge,
    new_epoch,
    over_budget,
)
from resilient.rollout._store import (
    ConfigStore,
    ConfigVersion,
    SharedRolloutStore,
    check_config_bytes,
)

__all__ = ["ConfigRollout", "RolloutState", "RolloutStatus", "Served"]

C = TypeVar("C")
I = TypeVar("I")  # noqa: E741
D = TypeVar("D")


class ConfigRollout(Generic[C]):
    """Safe rollout of the configuration kept in ``store``, parsed by ``schema`` and checked by
    ``validators``. Call :meth:`open` once, then answer every request with :meth:`config_for`
    and report its outcome with :meth:`record`; :meth:`start` a candidate and :meth:`run` the
    evaluations (or call :meth:`evaluate` on your own schedule). Use one from one event loop.
    """

    def __init__(
        self,
        store: ConfigStore,
        options: RolloutOptions = DEFAULT_ROLLOUT_OPTIONS,
        *,
        schema: ConfigSchema[C],
        validators: Sequence[Validator] = (),
        name: str = "config",
        clock: Clock = SYSTEM_CLOCK,
        events: EventBus = DEFAULT_EVENTS,
    ) -> None:
        self.store: ConfigStore = check(
            "ConfigRollout.store", store, Instance(ConfigStore, "a ConfigStore")
        )
        self.options: RolloutOptions = check(
            "ConfigRollout.options", options, Instance(RolloutOptions, "a RolloutOptions")
        )
        check_schema("ConfigRollout", schema, validators)
        self.name: str = check("ConfigRollout.name", name, Text(non_empty=True))
        check("ConfigRollout.clock", clock, Instance(Clock, "a Clock"))
        check("ConfigRollout.events", events, Instance(EventBus, "an EventBus"))
        if self.options.stages and not self.options.gates:
            raise ArgumentValueError(
                "ConfigRollout.options.gates must not be empty when there are stages"
            )
        self.schema = schema
        self.validators = tuple(validators)
        self.status = RolloutStatus()
        self._clock = clock
        self._emit = Emitter(ROLLOUT_EVENT_SOURCE, events, clock)
        self._metrics = {metric for gate in self.options.gates for metric in gate.metrics}
        self._baseline: Served[C] | None = None
        self._canary: Served[C] | None = None
        self._control: Served[C] | None = None
        self._candidate: ConfigVersion | None = None
        self._candidate_config: C | None = None
        self._salt = ""
        self._seed = 0
        self._threshold = 0
        self._cohorts: frozenset[str] = frozenset()
        self._epoch = new_epoch()
        self._samples = (CohortSamples(1), CohortSamples(1))
        self._busy = False
        self._shared = store if isinstance(store, SharedRolloutStore) else None
        self._stage_id: str | None = None
        self._leading = False
        self._unpublished = False

    # -- reading ---------------------------------------------------------------------------

    async def open(self) -> None:
        """Load the store's current version (validated as any candidate): ``config_for``
        answers from then on. A store with no current version is an error."""
        current = await self.store.current()
        if current is None:
            raise RolloutStateError(
                f"ConfigRollout({self.name!r}).open(): the store has no current version "
                "(store a first one with ConfigRollout.bootstrap)"
            )
        self._set_baseline(current, parse_and_validate(self.schema, self.validators, current.data))

    async def bootstrap(self, data: bytes, reason: str = "first version") -> None:
        """Store ``data`` as the first version, current and good (validated first): for an
        empty store only."""
        data = check_config_bytes("ConfigRollout.bootstrap(data)", data)
        config = self._validate(data)
        version = await self.store.store(data, reason)
        await self.store.activate(version.number, expected=None, reason=reason)
        await self.store.mark_good(version.number, reason)
        self._set_baseline(version, config)

    def _set_baseline(self, version: ConfigVersion, config: C) -> None:
        self._baseline = Served(version.number, config, False, self._epoch)
        self.status.baseline = version.number

    def config_for(self, key: str, cohort: str | None = None) -> Served[C]:
        """What the request of ``key`` (a user, a tenant: a str) sees; ``cohort`` is its named
        cohort (a region, a cell) when the stages are by cohort. Constant time, no I/O.

        Every request of a side shares one configuration object: treat it as read-only (a
        frozen pydantic model, tuples rather than lists), or one request's change is every
        other's."""
        if self._canary is None or self._control is None:
            if self._baseline is None:
                raise RolloutStateError(
                    f"ConfigRollout({self.name!r}) is not open: await open() first"
                )
            return self._baseline
        if self._cohorts:
            if type(cohort) is not str and cohort is not None:
                raise ArgumentTypeError(
                    f"ConfigRollout.config_for(cohort) must be a str or None, "
                    f"got {type(cohort).__name__}"
                )
            return self._canary if cohort in self._cohorts else self._control
        return self._canary if bucket_of(self._seed, key) < self._threshold else self._control

    def record(
        self,
        served: Served[C],
        *,
        ok: bool,
        latency: float | None = None,
        metrics: Mapping[str, float] | None = None,
    ) -> bool:
        """Count the outcome of a request ``served`` by :meth:`config_for`: ``ok`` (it
        succeeded), its ``latency`` in seconds and any other ``metrics`` a gate reads. False
        when it is not counted: served in another stage, or no rollout runs. Bad input raises
        and counts nothing."""
        values = checked_sample(served, ok, latency, metrics, self._metrics)
        if served.epoch != self._epoch or self.status.state not in ACTIVE:
            return False
        side = self._samples[0] if served.canary else self._samples[1]
        side.total += 1
        side.successes += ok
        for metric, value in values:
            if metric in self._metrics:
                side.values(metric).append(value)
        if served.canary:
            self.status.canary_requests += 1
        else:
            self.status.control_requests += 1
        return True

    # -- transitions -----------------------------------------------------------------------

    def _validate(self, data: bytes) -> C:
        try:
            return parse_and_validate(self.schema, self.validators, data)
        except ConfigRejectedError as error:
            self._emit(ConfigRejected(self.name, error.problems))
            self._note("rejected", str(error))
            raise

    def _note(self, transition: str, reason: str) -> None:
        self.status.history.append((self._clock.monotonic(), transition, reason))

    async def _log(self, action: str, version: int | None, reason: str) -> None:
        try:
            await self.store.record(action, version, reason)
        except Exception:  # the transition happened; the store's log missed it (see history)
            self.status.store_errors += 1

    def shadow(
        self,
        data: bytes,
        decide: Callable[[C, I], D],
        *,
        cohort_of: Callable[[I], str] | None = None,
    ) -> ShadowEvaluation[C, I, D]:
        """A :class:`~resilient.rollout.ShadowEvaluation` of candidate ``data`` (validated
        first: :class:`~resilient.errors.ConfigRejectedError`) against the current
        configuration: call it where the service decides, read its ``report`` before
        :meth:`start`. Nothing is stored."""
        if self._baseline is None:
            raise RolloutStateError(f"ConfigRollout({self.name!r}) is not open: await open() first")
        candidate = self._validate(check_config_bytes("ConfigRollout.shadow(data)", data))
        return ShadowEvaluation(decide, self._baseline.config, candidate, cohort_of=cohort_of)

    async def start(self, data: bytes, reason: str) -> int:
        """Validate ``data``, store it, and begin its rollout (or, with no stages, make it
        current at once). Returns its version number. Raises
        :class:`~resilient.errors.ConfigRejectedError` (nothing changed) or
        :class:`~resilient.errors.RolloutStateError` (a rollout runs, the kill switch is on,
        or the rollout is not open)."""
        data = check_config_bytes("ConfigRollout.start(data)", data)
        reason = check("ConfigRollout.start(reason)", reason, Text(non_empty=True))
        if self._busy or self.status.state in ACTIVE:
            raise RolloutStateError(
                f"ConfigRollout({self.name!r}): a rollout is "
                f"{'starting' if self._busy else self.status.state.value}; one at a time"
            )
        if self.status.killed:
            raise RolloutStateError(f"ConfigRollout({self.name!r}): the kill switch is on")
        if self._baseline is None:
            raise RolloutStateError(f"ConfigRollout({self.name!r}) is not open: await open() first")
        self._busy = True
        try:
            if self._shared is not None:
                await refuse_a_running_rollout(self)
            try:
                config = self._validate(data)
            except ConfigRejectedError as error:
                await self._log("rejected", None, f"{reason}: {error}")
                raise
            version = await self.store.store(data, reason)
        finally:
            self._busy = False
        self._candidate, self._candidate_config = version, config
        self._leading = True
        self.status.candidate = version.number
        self.status.state = RolloutState.RUNNING
        self._salt = f"{self.name}:{version.number}"[-64:]
        self._seed = salt_of(self._salt)
        self._emit(
            RolloutStarted(
                self.name, version.number, self.status.baseline, len(self.options.stages)
            )
        )
        self._note("started", reason)
        await self._log("started", version.number, reason)
        await self._enter(0, reason)
        return version.number

    async def follow(self) -> None:
        """For every instance of a fleet but the one that starts rollouts: every
        ``sync_interval``, send this instance's samples and serve what the fleet's plan says
        (a new stage, a rollback, a completed version). Runs until cancelled."""
        if self._shared is None:
            raise RolloutStateError(
                f"ConfigRollout({self.name!r}).follow(): {type(self.store).__name__} does not "
                "share rollouts between processes (RedisConfigStore does)"
            )
        while True:
            await self.sync()
            await self._clock.sleep(self.options.sync_interval)

    async def sync(self) -> None:
        """One step of :meth:`follow`. A store that fails, or a plan that is none, changes
        nothing here (counted in ``status.store_errors``)."""
        try:
            await follow_plan(self)
        except Exception as error:
            self.status.store_errors += 1
            self._note("store_error", f"not synchronised: {type(error).__name__}: {error}")

    async def _enter(self, index: int, reason: str) -> None:
        if index >= len(self.options.stages):
            await self._complete(reason)
            return
        stage: Stage = self.options.stages[index]
        assert self._candidate is not None
        cohorts = self._cohorts | frozenset(stage.cohorts) if index else frozenset(stage.cohorts)
        self._serve(index, stage.percent, cohorts)
        await publish(self)
        self._emit(
            StageStarted(self.name, index, stage.percent, tuple(sorted(self._cohorts)), reason)
        )
        self._note("stage_started", f"stage {index}: {reason}")
        await self._log("stage_started", self._candidate.number, f"stage {index}: {reason}")

    def _serve(self, index: int, percent: float | None, cohorts: frozenset[str]) -> None:
        """Serve stage ``index``: its canary holds ``percent`` of keys, or ``cohorts``."""
        assert self._candidate is not None
        assert self._baseline is not None
        self._epoch = new_epoch()
        self._threshold = 0 if percent is None else threshold(percent)
        self._cohorts = cohorts
        self._samples = (
            CohortSamples(self.options.max_samples),
            CohortSamples(self.options.max_samples),
        )
        self._canary = Served(self._candidate.number, self._candidate_config, True, self._epoch)  # type: ignore[arg-type]
        self._control = Served(self._baseline.version, self._baseline.config, False, self._epoch)
        self._stage_id = f"{self._candidate.number}:{index}"
        status = self.status
        status.stage, status.stage_started = index, self._clock.monotonic()
        status.evaluations = status.violations = status.missing = status.errors = 0
        status.canary_requests = status.control_requests = 0

    def _stop_serving_candidate(self) -> None:
        self._canary = self._control = None
        self._cohorts = frozenset()
        self._epoch = new_epoch()
        self._stage_id = None

    async def _complete(self, reason: str) -> None:
        assert self._candidate is not None
        assert self._baseline is not None
        candidate = self._candidate
        try:
            await self.store.activate(
                candidate.number, expected=self._baseline.version, reason=reason
            )
        except ConfigConflictError as error:
            await self._roll_back(f"not completed: {error}")
            return
        except Exception as error:  # the store is down: hold the last stage, try again next time
            self.status.store_errors += 1
            self._note(
                "store_error", f"not completed, the store failed: {type(error).__name__}: {error}"
            )
            return
        self._set_baseline(candidate, self._candidate_config)  # type: ignore[arg-type]
        self._stop_serving_candidate()
        self.status.state = RolloutState.COMPLETED
        self._emit(RolloutCompleted(self.name, candidate.number, reason))
        self._note("completed", reason)
        await publish(self)
        try:
            await self.store.mark_good(candidate.number, reason)
        except Exception as error:
            self.status.store_errors += 1
            self._note("store_error", f"not marked good: {type(error).__name__}: {error}")

    async def _roll_back(self, reason: str) -> None:
        assert self._candidate is not None
        self._stop_serving_candidate()
        self.status.state = RolloutState.ROLLED_BACK
        seconds = self._clock.monotonic() - self.status.stage_started
        restored = self.status.baseline
        self._emit(
            RolledBack(
                self.name, self._candidate.number, restored, self.status.stage, seconds, reason
            )
        )
        self._note("rolled_back", reason)
        await publish(self)
        await self._log("rolled_back", self._candidate.number, reason)

    async def evaluate(self) -> tuple[GateResult, ...]:
        """Run every gate once on this stage's samples, and act: roll back past a budget,
        promote when the bake time is over and every gate passed. Returns the verdicts (none
        when no rollout runs)."""
        status = self.status
        if self._unpublished:
            await publish(self)
        if status.state not in ACTIVE or (self._shared is not None and not self._leading):
            return ()
        epoch = self._epoch
        if self._shared is not None and await overruled(self):
            await self._roll_back("rolled back by another instance of the fleet")
            return ()
        gathered = await gather(self)
        if self._epoch != epoch or status.state not in ACTIVE:
            return ()  # another evaluation, an operator or a rollback moved on meanwhile
        if isinstance(gathered, GateResult):
            results: tuple[GateResult, ...] = (gathered,)
        else:
            results = tuple(judge(gate, *gathered) for gate in self.options.gates)
        status.evaluations += 1
        status.last_results = results
        self._emit(
            GatesEvaluated(
                self.name, status.stage, tuple((r.gate, r.verdict.value, r.detail) for r in results)
            )
        )
        stage = self.options.stages[status.stage]
        baked = self._clock.monotonic() - status.stage_started >= stage.bake
        reason = over_budget(results, status, self.options, baked=baked)
        if reason is not None:
            await self._roll_back(reason)
            return results
        verdicts = {result.verdict for result in results}
        if verdicts == {Verdict.PASS} and baked and status.state is RolloutState.RUNNING:
            await self._enter(status.stage + 1, f"stage {status.stage} passed its gates")
        return results

    async def run(self) -> RolloutState:
        """Evaluate every ``evaluation_interval`` until the rollout completes or rolls back."""
        while self.status.state in ACTIVE or self._unpublished:
            await self._clock.sleep(self.options.evaluation_interval)
            await self.evaluate()
        return self.status.state

    def _require_active(self, action: str) -> None:
        if self.status.state not in ACTIVE:
            raise RolloutStateError(
                f"ConfigRollout({self.name!r}).{action}(): no rollout runs "
                f"(it is {self.status.state.value})"
            )

    async def pause(self, reason: str) -> None:
        """Hold the current stage: nothing is promoted until :meth:`resume`."""
        self._require_active("pause")
        self.status.state = RolloutState.PAUSED
        self._emit(RolloutPaused(self.name, self.status.stage, reason))
        self._note("paused", reason)
        await self._log("paused", self.status.candidate, reason)

    async def resume(self, reason: str) -> None:
        if self.status.state is not RolloutState.PAUSED:
            raise RolloutStateError(
                f"ConfigRollout({self.name!r}).resume(): "
                f"it is {self.status.state.value}, not paused"
            )
        self.status.state = RolloutState.RUNNING
        self._emit(RolloutResumed(self.name, self.status.stage, reason))
        self._note("resumed", reason)
        await self._log("resumed", self.status.candidate, reason)

    async def promote(self, reason: str) -> None:
        """An operator's decision: pass the current stage now, without its bake time or
        sample, unless a gate was violated in it (a failed stage is never passed)."""
        self._require_active("promote")
        if self.status.violations:
            raise RolloutStateError(
                f"ConfigRollout({self.name!r}).promote(): "
                f"a gate was violated in stage {self.status.stage}"
            )
        self.status.state = RolloutState.RUNNING
        await self._enter(self.status.stage + 1, f"promoted: {reason}")

    async def abort(self, reason: str) -> None:
        """Roll back now: everyone on the baseline."""
        self._require_active("abort")
        self._leading = self._leading or self._shared is not None
        await self._roll_back(f"aborted: {reason}")

    async def kill(self, reason: str) -> None:
        """The kill switch: any rollout rolls back, everyone gets the last known good version
        (made current in the store if it is not), and no rollout starts until :meth:`unkill`."""
        self.status.killed = True
        self._leading = self._leading or self._shared is not None
        if self.status.state in ACTIVE:
            await self._roll_back(f"kill switch: {reason}")
        self._emit(KillSwitchSet(self.name, True, reason))
        self._note("killed", reason)
        good = await self.store.last_good()
        if good is not None and good.number != self.status.baseline:
            await self.store.activate(
                good.number, expected=self.status.baseline, reason=f"kill switch: {reason}"
            )
            self._set_baseline(good, parse_and_validate(self.schema, (), good.data))
        await self._log("killed", self.status.baseline, reason)

    async def unkill(self, reason: str) -> None:
        self.status.killed = False
        self._emit(KillSwitchSet(self.name, False, reason))
        self._note("unkilled", reason)
        await self._log("unkilled", self.status.baseline, reason)

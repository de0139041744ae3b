"""Verdicts: an arm's SLO results judged against its role, and whether the harness trusts them.

- a guarded arm is ``mitigated`` when no SLO of the hypothesis is shown broken, ``failed``
  when one is shown broken by a measurement the harness trusts;
- a naive arm is ``reproduced`` when it is shown to break every SLO named in ``breaks`` and to
  show every check of the incident's ``signature``, else ``not-reproduced``;
- ``error`` when the harness could not measure (an SLO's ``problem``: too few samples) or could
  not trust its measurement (``untrusted``, below). It is never a pass and never a failed
  guard, since ``chaos run`` gates CI on the difference. An untrusted arm may be measured
  again (``chaos run --retries``); one that could not run at all is an ``error`` set by the
  engine.

What "trusted" means
--------------------
A verdict is only as good as the measurement under it, and the machine the harness runs on is
shared and noisy: other processes take the cores, collections and page faults stall a process
for milliseconds. The harness trusts a measurement when the machine's interference cannot have
decided it. Four things are checked, each where it can distort a verdict:

1. **The timeline was kept.** The load process starts every request at its planned offset and
   the engine applies every fault at its own; both can be late when the machine is busy. A
   request is counted in the window its *planned* offset falls in, so lateness only matters
   when it carries requests, or a fault, into a different phase of the incident. The arm is
   untrusted when the load's scheduling lag p99, or any fault's delay, exceeds
   :func:`max_timeline_slip`: :data:`MAX_SLIP_SHARE` of the shortest window among the SLOs its
   verdict depends on (never less than :data:`~chaos.load.MAX_TRUSTED_LAG`, the 5 ms the load
   generator is built to keep). Latency SLOs are guarded besides, below, since their values
   include lag.
2. **Gauges were sampled.** A gauge is read every ``gauge_interval`` on the engine's loop, which
   a stall delays like any other. A gauge SLO that holds with a gap of more than
   :data:`~chaos.scenario.MAX_GAUGE_GAP` intervals in its window is ``inconclusive`` (what the
   gap hid is unknown); one sample beyond the bound proves it broken whatever is missing.
3. **A value over its bound is more than noise.** An :class:`~chaos.scenario.AddedLatency`
   over its bound fails only when a permutation test on its window's own requests finds the
   excess unlikely by chance (:mod:`chaos.scenario._noise`); a
   :class:`~chaos.scenario.LatencyPercentile` measured from the planned start fails only when
   it fails from the actual start too (else only the generator's lateness broke it). Otherwise
   the SLO is ``inconclusive``.
4. **The environment was as the scenario assumes.** Between faults the dependencies are meant to
   be healthy, but a starved proxy or server is slow with no fault applied. A scenario states
   such assumptions as premises (:mod:`chaos.scenario._premise`), measured on each arm (e.g.
   calls to the dependency that timed out where it was declared healthy); an SLO that failed
   while a premise it relies on did not hold is ``inconclusive``.

An inconclusive SLO makes the arm untrusted only when the verdict depends on it: for a guarded
arm, when no other SLO is shown broken; for a naive arm, when it is in ``breaks`` or the
signature. A value under its bound passes as measured: noise can hide an excess of about its
own size, which the report shows (every SLO's value and bound), but it cannot invent a failure.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from chaos.load import MAX_TRUSTED_LAG
from chaos.scenario._premise import apply_premises

if TYPE_CHECKING:
    from chaos.scenario._arms import Role
    from chaos.scenario._measure import RunData, SLOResult
    from chaos.scenario._scenario import Scenario
    from chaos.scenario._slo import SLO
    from chaos.scenario._timeline import Window

__all__ = [
    "MAX_SLIP_SHARE",
    "Judgement",
    "Verdict",
    "judge_guarded",
    "judge_naive",
    "max_timeline_slip",
]

Verdict = Literal["reproduced", "not-reproduced", "mitigated", "failed", "error"]

MAX_SLIP_SHARE = 0.05
"""How late (p99 of the load's requests, or any fault) the timeline may run, as a share of the
shortest window the verdict depends on: at 5 %, a fault's phase is shifted by 5 % of that
window at most, and the requests carried past a window's end are far fewer (most are not late
at all). A scenario's bounds must leave that margin: rate-limiter-outage's closest, the 90 %
share of 429s its naive arm must show in each fault, measures 99.3 % and more."""


@dataclass(frozen=True)
class Judgement:
    """An arm judged: its verdict, every SLO's result, and why it is ``error`` if it is.

    ``problems`` name SLOs the harness could not measure (a rerun would not help);
    ``untrusted`` says why the measurement cannot be trusted (a rerun may help). Either makes
    the verdict ``error``. ``premises`` are the scenario's premises, measured on the arm;
    ``timeline_kept`` says whether the load and the faults kept their timeline (an attempt
    whose timeline slipped measured another experiment, and is not pooled with later ones).
    """

    verdict: Verdict
    slos: tuple[SLOResult, ...]
    signature: tuple[SLOResult, ...] = ()
    problems: tuple[str, ...] = ()
    untrusted: tuple[str, ...] = ()
    premises: tuple[SLOResult, ...] = ()
    timeline_kept: bool = True


def judge_guarded(scenario: Scenario, run: RunData) -> Judgement:
    """``mitigated`` when no hypothesis SLO is shown broken, ``failed`` when one is, by a
    trusted measurement; no signature checks."""
    premises = _premises(scenario, run)
    results = _measured(scenario, scenario.hypothesis, run, premises)
    problems, untrusted = _problems(results), _timeline_slips(scenario, run, "guarded")
    if problems or untrusted:
        return Judgement("error", results, (), problems, untrusted, premises, not untrusted)
    if any(_broken(r) for r in results):
        return Judgement("failed", results, premises=premises)
    doubts = _doubts(results)
    verdict: Verdict = "error" if doubts else "mitigated"
    return Judgement(verdict, results, untrusted=doubts, premises=premises)


def judge_naive(scenario: Scenario, run: RunData) -> Judgement:
    """``reproduced`` when every SLO in ``breaks`` is shown broken and every signature check
    shown to hold, by a trusted measurement."""
    premises = _premises(scenario, run)
    results = _measured(scenario, scenario.hypothesis, run, premises)
    signature = _measured(scenario, scenario.signature, run, premises)
    problems = _problems((*results, *signature))
    untrusted = _timeline_slips(scenario, run, "naive")
    if problems or untrusted:
        return Judgement("error", results, signature, problems, untrusted, premises, not untrusted)
    decisive = [r for r in results if r.name in scenario.breaks]
    if any(r.passed and not r.inconclusive for r in decisive) or any(_broken(r) for r in signature):
        return Judgement("not-reproduced", results, signature, premises=premises)
    doubts = _doubts((*decisive, *signature))
    if doubts:
        return Judgement("error", results, signature, untrusted=doubts, premises=premises)
    return Judgement("reproduced", results, signature, premises=premises)


def max_timeline_slip(scenario: Scenario, role: Role = "guarded") -> float:
    """Seconds the load (lag p99) and the faults may run late before an arm of ``role`` is
    untrusted: :data:`MAX_SLIP_SHARE` of the shortest window among the SLOs its verdict
    depends on (a guarded arm: the hypothesis; a naive arm: ``breaks`` and the signature),
    and never less than :data:`~chaos.load.MAX_TRUSTED_LAG`."""
    if role == "guarded":
        decisive = list(scenario.hypothesis)
    else:
        decisive = [slo for slo in scenario.hypothesis if slo.name in scenario.breaks]
        decisive += scenario.signature
    spans = [
        scenario.duration if slo.window is None else _span(scenario.window(slo.window))
        for slo in decisive
    ]
    return max(MAX_TRUSTED_LAG, MAX_SLIP_SHARE * min(spans, default=scenario.duration))


def _span(window: Window) -> float:
    return window.end - window.start


def _premises(scenario: Scenario, run: RunData) -> tuple[SLOResult, ...]:
    return tuple(premise.check.evaluate(run) for premise in scenario.premises)


def _measured(
    scenario: Scenario, slos: Iterable[SLO], run: RunData, premises: tuple[SLOResult, ...]
) -> tuple[SLOResult, ...]:
    results = tuple(slo.evaluate(run) for slo in slos)
    return apply_premises(results, scenario.premises, premises)


def _broken(result: SLOResult) -> bool:
    return not result.passed and not result.inconclusive and result.problem is None


def _problems(results: Iterable[SLOResult]) -> tuple[str, ...]:
    return tuple(f"SLO {r.name!r}: {r.problem}" for r in results if r.problem)


def _doubts(results: Iterable[SLOResult]) -> tuple[str, ...]:
    return tuple(f"SLO {r.name!r}: {r.inconclusive}" for r in results if r.inconclusive)


def _timeline_slips(scenario: Scenario, run: RunData, role: Role) -> tuple[str, ...]:
    limit = max_timeline_slip(scenario, role)
    found = []
    lag = run.load.lag_p99()
    if lag > limit:
        found.append(
            f"the load ran late: scheduling lag p99 {lag * 1000:.1f} ms > "
            f"{limit * 1000:.1f} ms (the machine was too busy to keep the schedule)"
        )
    late = max(run.fault_delays, default=0.0)
    if late > limit:
        found.append(
            f"a fault was applied {late * 1000:.1f} ms late > {limit * 1000:.1f} ms "
            "(the engine's loop was held up)"
        )
    return tuple(found)

"""What the scenario tests read of an arm's result: each SLO's value, and why it got its
verdict (for an assertion's message)."""

from __future__ import annotations

from chaos.engine import ArmResult

__all__ = ["RETRIES", "explain", "judged_pair", "slo_values"]


def slo_values(arm: ArmResult) -> dict[str, float | None]:
    """The value of every SLO, signature entry and premise of ``arm``, by name."""
    return {slo.name: slo.value for slo in (*arm.slos, *arm.signature, *arm.premises)}


def explain(arm: ArmResult) -> str:
    """Why an arm got its verdict: its error, trust, earlier attempts, every SLO and premise
    with value and bound, and its notes."""
    lines = [f"{arm.name}: {arm.verdict} (error: {arm.error}, trustworthy: {arm.trustworthy})"]
    for number, attempt in enumerate(arm.attempts, start=1):
        lines.append(f"  attempt {number}: {attempt.verdict}: {attempt.error}")
    for slo in (*arm.slos, *arm.signature, *arm.premises):
        mark = "INCONCLUSIVE" if slo.inconclusive else "PASS" if slo.passed else "FAIL"
        lines.append(f"  {mark} {slo.name}: {slo.value} {slo.op} {slo.bound}")
    lines += [f"  note: {note}" for note in arm.notes]
    return "\n".join(lines)


RETRIES = 4
"""Attempts beyond the first for an arm whose measurement the harness cannot trust (a busy
machine), as ``chaos run`` gives by default."""


async def judged_pair(name: str, scale: float) -> tuple[ArmResult, ArmResult]:
    """Scenario ``name`` run at ``scale`` (seed 1) on the embedded proxy, which it leaves as it
    found it; its naive arm reproduced the incident and its guarded arm mitigated it, on the
    same schedule. Returns ``(naive, guarded)``."""
    import numpy as np

    from chaos._proxy_process import run_toxiproxy
    from chaos.engine import run_scenario
    from chaos.scenarios import load_scenarios

    scenario = load_scenarios()[name]
    async with run_toxiproxy(None, seed=1) as control:
        before = set(await control.proxies())
        result = await run_scenario(scenario, control, seed=1, scale=scale, retries=RETRIES)
        assert set(await control.proxies()) == before
    naive, guarded = result.arms
    assert (naive.name, naive.verdict, naive.error) == ("naive", "reproduced", None), explain(naive)
    assert (guarded.name, guarded.verdict, guarded.error) == ("guarded", "mitigated", None), (
        explain(guarded)
    )
    assert naive.load is not None
    assert guarded.load is not None
    assert np.array_equal(naive.load.scheduled, guarded.load.scheduled)
    return naive, guarded

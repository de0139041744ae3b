"""What the scenario tests read of an arm's result: each SLO's value, and why it got its
verdict (for an assertion's message)."""

from __future__ import annotations

from chaos.engine import ArmResult

__all__ = ["explain", "slo_values"]


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

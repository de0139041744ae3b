"""GCRA (generic cell rate algorithm) in integer microseconds: the one formula every limiter uses.

The Redis Lua script mirrors :func:`gcra` line for line, so a :class:`LocalLimiter` and a
:class:`RedisLimiter` fed the same arrivals at the same times give the same decisions.
State per key is one integer: the theoretical arrival time (TAT) in microseconds.

The largest request a rate ever allows is ``burst + 1`` units (at full allowance, the TAT may
run ``burst`` emissions ahead of now, and the request's own first unit is due now). A larger
request is denied with ``retry_after_us`` :data:`NEVER` and changes nothing: waiting would not
help, and a limiter says so instead of naming a time after which it would still be denied.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["NEVER", "GcraResult", "gcra", "largest_cost"]

NEVER = -1
"""``retry_after_us`` of a request no wait can make allowed (its cost exceeds ``burst + 1``)."""


class GcraResult(NamedTuple):
    allowed: bool
    new_tat_us: int
    remaining: int
    retry_after_us: int
    reset_after_us: int


def gcra(
    tat_us: int | None, now_us: int, emission_us: int, tolerance_us: int, cost: int
) -> GcraResult:
    """Decide one request of ``cost`` units at ``now_us`` for a key whose TAT is ``tat_us``.

    ``tat_us`` is None for a key never seen (or expired). When denied, the TAT is unchanged.
    ``cost`` 0 only reads the state. Arithmetic is integer-only so every implementation agrees.
    """
    tat = now_us if tat_us is None or tat_us < now_us else tat_us
    increment = emission_us * cost
    new_tat = tat + increment
    allow_at = new_tat - tolerance_us - emission_us
    if allow_at <= now_us:
        remaining = (now_us - allow_at) // emission_us
        return GcraResult(True, new_tat, remaining, 0, new_tat - now_us)
    remaining = max(0, (now_us - (tat - tolerance_us - emission_us)) // emission_us)
    if increment - emission_us > tolerance_us:
        return GcraResult(False, tat, remaining, NEVER, tat - now_us)
    return GcraResult(False, tat, remaining, allow_at - now_us, tat - now_us)


def largest_cost(emission_us: int, tolerance_us: int) -> int:
    """The largest cost a rate with these parameters ever allows: ``burst + 1``."""
    return tolerance_us // emission_us + 1

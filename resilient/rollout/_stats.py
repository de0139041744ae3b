"""The two tests a rollout's health gates use to compare a canary cohort with its control.

- :func:`fisher_less`: is the canary's success ratio lower than the control's? Fisher's exact
  test, one-sided (the p-value of ``scipy.stats.fisher_exact(table, alternative="less")``).
- :func:`mann_whitney_greater`: are the canary's values (latencies, any metric where higher is
  worse) larger than the control's? The Mann-Whitney U test, one-sided, normal approximation
  with the tie and continuity corrections (``scipy.stats.mannwhitneyu(canary, control,
  alternative="greater", method="asymptotic")``), as Kayenta's classifier uses it.

SciPy is not a dependency of the library (it is 40 MB for two functions of a few lines); the
tests check both against SciPy on random and edge-case samples.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["fisher_less", "mann_whitney_greater"]

_NEGLIGIBLE = 1e-17
"""A tail term this small relative to the sum so far ends the sum: the terms of a
hypergeometric tail only shrink away from the mode, so nothing later can reach a float's
precision."""


def _log_choose(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def fisher_less(
    canary_successes: int, canary_total: int, control_successes: int, control_total: int
) -> float:
    """The one-sided p-value that the canary's success ratio is lower than the control's:
    the probability, given both cohorts' sizes and the total number of successes, of the
    canary having at most ``canary_successes`` of them (hypergeometric)."""
    total = canary_total + control_total
    successes = canary_successes + control_successes
    low = max(0, successes - control_total)
    high = min(successes, canary_total)
    mode = (canary_total + 1) * (successes + 1) // (total + 2)
    log_norm = _log_choose(total, canary_total)

    def term(k: int) -> float:
        return math.exp(
            _log_choose(successes, k) + _log_choose(total - successes, canary_total - k) - log_norm
        )

    def tail(start: int, stop: int, step: int) -> float:
        acc = 0.0
        for k in range(start, stop, step):
            value = term(k)
            acc += value
            if value < _NEGLIGIBLE * acc:
                break
        return acc

    if canary_successes <= mode:
        # The lower tail, summed from its largest term (at canary_successes) down.
        return min(1.0, tail(canary_successes, low - 1, -1))
    # Past the mode, the lower tail is 1 less the upper one (summed from its largest term).
    return max(0.0, 1.0 - tail(canary_successes + 1, high + 1, 1))


def _average_ranks(values: Sequence[float]) -> tuple[list[float], float]:
    """Ranks (1-based, ties given their average) and the tie term ``sum(t**3 - t)``."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    ties = 0.0
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        rank = (i + j) / 2 + 1
        for index in order[i : j + 1]:
            ranks[index] = rank
        size = j - i + 1
        ties += size**3 - size
        i = j + 1
    return ranks, ties


def mann_whitney_greater(canary: Sequence[float], control: Sequence[float]) -> float:
    """The one-sided p-value that the canary's values tend to be larger than the control's
    (1.0 when either side is empty or every value is the same: no evidence)."""
    n1 = len(canary)
    n2 = len(control)
    if n1 == 0 or n2 == 0:
        return 1.0
    n = n1 + n2
    ranks, ties = _average_ranks([*canary, *control])
    u1 = sum(ranks[:n1]) - n1 * (n1 + 1) / 2
    variance = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1)))
    if variance <= 0:
        return 1.0
    z = (u1 - n1 * n2 / 2 - 0.5) / math.sqrt(variance)
    return 0.5 * math.erfc(z / math.sqrt(2))

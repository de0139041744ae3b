"""Whether a difference of two percentiles is more than the noise of the window it came from.

:class:`~chaos.scenario.AddedLatency` compares the tail of the guarded requests of a window with
the tail of the control requests of the same window. A stall of the machine (another process on
the core, a collection, a page fault) delays every request in flight alike, whatever its
group, and at a 99th percentile of a few hundred requests, a handful of stalled requests decide
the value: which group happened to hold one or two more of them moves the difference by
milliseconds, with no guard involved.

:func:`excess_p_value` tells that apart from a guard's own latency with a permutation test on
the window's own requests. Suppose the guard added exactly ``bound`` to every guarded request:
then the guarded service times minus ``bound`` and the control service times would be two
samples of one distribution, and which request is in which group would be chance. Relabelling
the pooled requests at random (:data:`PERMUTATIONS` times, seeded, so a run is judged the same
way every time) shows how far above ``bound`` the difference of the two percentiles goes by
chance alone; the p-value is the share of relabellings whose difference is at least the one
observed. A small p-value (at most :data:`SIGNIFICANCE`) means the excess over ``bound`` is the
guard's, beyond what the window's noise produces; a large one means the window's noise could
produce it with no excess at all, and the measurement cannot say whether the bound was broken.

Since the load interleaves the groups on one schedule, a stall splits its requests between
the groups more evenly than a random relabelling does: the test overstates the noise, so it
errs toward "cannot say" (a rerun) rather than toward blaming a guard.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["PERMUTATIONS", "SIGNIFICANCE", "excess_p_value"]

PERMUTATIONS = 2000
"""Random relabellings per test (the smallest p-value it can give is 1/2001)."""

SIGNIFICANCE = 0.001
"""The largest p-value at which an excess over the bound counts as the guard's: with the eight
added-latency SLOs of a scenario each at its bound, noise alone fails an arm at most once in
125 runs (and far less often when, as usual, the true value is well under the bound)."""

_SEED = 20260602
"""The relabellings' seed: the same requests are always judged the same way."""


def excess_p_value(
    measured: npt.NDArray[np.float64],
    control: npt.NDArray[np.float64],
    *,
    q: float,
    bound: float,
    permutations: int = PERMUTATIONS,
) -> float:
    """The chance that noise alone puts ``p(q)(measured) - p(q)(control)`` this far above
    ``bound`` if the guard added exactly ``bound`` (see the module docstring).

    Percentiles are nearest-rank; NaN (a request never sent) counts as infinitely slow.
    Returns a value in ``(0, 1]``; both groups must be non-empty.
    """
    if not len(measured) or not len(control):
        raise ValueError("both groups need at least one request")
    shifted = _finite_or_inf(measured) - bound
    base = _finite_or_inf(control)
    observed = _difference(shifted[np.newaxis, :], base[np.newaxis, :], q)[0]
    if np.isnan(observed):  # both tails never sent: nothing tells the groups apart
        return 1.0
    pool = np.concatenate([shifted, base])
    rng = np.random.default_rng(_SEED)
    relabelled = rng.permuted(np.tile(pool, (permutations, 1)), axis=1)
    n = len(shifted)
    differences = _difference(relabelled[:, :n], relabelled[:, n:], q)
    with np.errstate(invalid="ignore"):
        as_large = int(np.count_nonzero(differences >= observed))
    return (1 + as_large) / (1 + permutations)


def _difference(
    first: npt.NDArray[np.float64], second: npt.NDArray[np.float64], q: float
) -> npt.NDArray[np.float64]:
    """Row by row, nearest-rank ``p(q)`` of ``first`` minus that of ``second``."""
    a = np.percentile(first, q, axis=1, method="inverted_cdf")
    b = np.percentile(second, q, axis=1, method="inverted_cdf")
    with np.errstate(invalid="ignore"):
        return np.asarray(a - b, dtype=np.float64)


def _finite_or_inf(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return np.where(np.isnan(values), np.inf, values).astype(np.float64)

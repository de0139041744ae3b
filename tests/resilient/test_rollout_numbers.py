"""The gates' two tests and the cohort hash, pinned exactly: fixed cases against SciPy (fast and
deterministic, where test_rollout_stats.py samples at random), the p-values' range, and the
buckets every release of the library must give (instances of a fleet on two releases must put
each key on the same side)."""

from __future__ import annotations

import random

import pytest
import scipy.stats

from resilient.errors import ArgumentTypeError
from resilient.rollout._cohort import BUCKETS, bucket_of, salt_of, threshold
from resilient.rollout._stats import fisher_less, mann_whitney_greater


def fisher_cases() -> list[tuple[int, int, int, int]]:
    rng = random.Random(11)
    cases = [(0, 0, 3, 9), (5, 5, 0, 5), (0, 7, 7, 7), (3, 3, 3, 3), (1, 1, 2, 3), (0, 1, 0, 1)]
    for _ in range(150):
        n1, n2 = rng.randint(0, 120), rng.randint(1, 120)
        cases.append((rng.randint(0, n1), n1, rng.randint(0, n2), n2))
    for n1, n2 in [(2000, 3000), (10_000, 10_000)]:  # long tails: the early stop of the sum
        for share in (0.9, 0.95, 0.99):
            cases.append((int(n1 * share), n1, int(n2 * 0.97), n2))
    return cases


@pytest.mark.parametrize(("s1", "n1", "s2", "n2"), fisher_cases())
def test_fisher_is_scipys_on_fixed_cases(s1: int, n1: int, s2: int, n2: int) -> None:
    theirs = scipy.stats.fisher_exact([[s1, n1 - s1], [s2, n2 - s2]], alternative="less").pvalue
    ours = fisher_less(s1, n1, s2, n2)
    assert ours == pytest.approx(theirs, rel=1e-9, abs=1e-300)
    assert 0.0 <= ours <= 1.0


def test_a_p_value_summed_past_one_by_rounding_is_one() -> None:
    # the whole distribution summed: its terms add to 1 + a few ulps, which is no p-value
    assert fisher_less(1, 1, 2, 3) == 1.0
    assert fisher_less(1, 1, 0, 1) == 1.0
    assert fisher_less(40, 40, 0, 40) == 1.0


def test_fisher_in_the_far_lower_tail_is_tiny_not_zero() -> None:
    # a canary failing everything against a healthy control: far below any alpha, yet exact
    ours = fisher_less(0, 200, 200, 200)
    theirs = scipy.stats.fisher_exact([[0, 200], [200, 0]], alternative="less").pvalue
    assert 0.0 < ours == pytest.approx(theirs, rel=1e-9)
    # the upper side: a canary far better than its control has a p-value of almost 1
    assert fisher_less(200, 200, 0, 200) == 1.0
    assert 1.0 - fisher_less(199, 200, 1, 200) < 1e-100


def mann_whitney_cases() -> list[tuple[list[float], list[float]]]:
    rng = random.Random(5)
    cases: list[tuple[list[float], list[float]]] = [
        ([1.0, 2.0], [3.0]),
        ([3.0], [1.0, 2.0]),
        ([1.0, 1.0, 2.0], [1.0, 2.0, 2.0, 2.0]),
        ([0.1, 0.2, 0.2, 0.3, 0.3, 0.3], [0.1, 0.1, 0.2]),
        ([5.0, 5.0, 5.0], [4.0, 5.0]),
    ]
    for _ in range(60):
        pool = [0.1, 0.2, 0.3, 0.4] if rng.random() < 0.5 else [rng.random() for _ in range(50)]
        cases.append(
            (
                [rng.choice(pool) for _ in range(rng.randint(1, 40))],
                [rng.choice(pool) for _ in range(rng.randint(1, 40))],
            )
        )
    return [case for case in cases if len(set(case[0] + case[1])) > 1]


@pytest.mark.parametrize(("canary", "control"), mann_whitney_cases())
def test_mann_whitney_is_scipys_on_fixed_cases(canary: list[float], control: list[float]) -> None:
    theirs = scipy.stats.mannwhitneyu(
        canary, control, alternative="greater", method="asymptotic"
    ).pvalue
    assert mann_whitney_greater(canary, control) == pytest.approx(theirs, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize(
    ("canary", "control"),
    [([1.0], [1.0]), ([2.5, 2.5, 2.5], [2.5, 2.5, 2.5, 2.5]), ([0.0] * 40, [0.0] * 3)],
)
def test_mann_whitney_with_every_value_the_same_is_no_evidence(
    canary: list[float], control: list[float]
) -> None:
    assert mann_whitney_greater(canary, control) == 1.0


def test_mann_whitney_with_one_side_empty_is_no_evidence() -> None:
    assert mann_whitney_greater([], [1.0, 2.0]) == 1.0
    assert mann_whitney_greater([1.0, 2.0], []) == 1.0
    assert mann_whitney_greater([], []) == 1.0


PINNED = {
    "user-1": 3452,
    "user-2": 8535,
    "": 2648,
    "\udcff": 739,
    "\u00e9": 640,
}
"""Buckets under the salt ``routing:2``: a change to the hash moves keys between sides, which
two instances of a fleet on different releases must never disagree on."""


def test_buckets_are_the_same_in_every_release() -> None:
    salt = salt_of("routing:2")
    assert salt == 4031331041
    assert {key: bucket_of(salt, key) for key in PINNED} == PINNED
    assert salt_of("\udcff") == 3394095495  # a lone surrogate in a salt is passed through


def test_every_bucket_is_in_range() -> None:
    salt = salt_of("r")
    buckets = [bucket_of(salt, f"k{i}") for i in range(20_000)]
    assert min(buckets) >= 0
    assert max(buckets) < BUCKETS
    assert max(buckets) >= BUCKETS - 10  # the whole range is used
    assert min(buckets) < 10


@pytest.mark.parametrize(
    ("percent", "first_outside"),
    [(0.01, 1), (0.004, 0), (0.006, 1), (10, 1000), (12.345, 1234), (99.99, 9999), (50, 5000)],
)
def test_a_canary_of_a_percent_holds_that_many_buckets(percent: float, first_outside: int) -> None:
    assert BUCKETS == 10_000
    assert threshold(percent) == first_outside


def test_a_str_subclass_key_is_hashed_as_its_text() -> None:
    class Key(str):
        pass

    salt = salt_of("routing:2")
    assert bucket_of(salt, Key("user-1")) == PINNED["user-1"]
    message = r"^ConfigRollout\.config_for\(key\) must be a str, got int$"
    with pytest.raises(ArgumentTypeError, match=message):
        bucket_of(salt, 3)  # type: ignore[arg-type]

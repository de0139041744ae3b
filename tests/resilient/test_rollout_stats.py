"""The gates' two tests agree with SciPy's, and a stable cohort assignment."""

from __future__ import annotations

import random
import subprocess
import sys

import pytest
import scipy.stats
from hypothesis import given
from hypothesis import strategies as st

from resilient.errors import ArgumentTypeError
from resilient.rollout._cohort import BUCKETS, bucket_of, salt_of, threshold
from resilient.rollout._stats import fisher_less, mann_whitney_greater


@given(
    st.integers(0, 400).flatmap(
        lambda n1: st.tuples(st.just(n1), st.integers(0, n1), st.integers(1, 400))
    ),
    st.floats(0, 1),
)
def test_fisher_matches_scipy(sizes: tuple[int, int, int], share: float) -> None:
    n1, s1, n2 = sizes
    s2 = round(n2 * share)
    ours = fisher_less(s1, n1, s2, n2)
    theirs = scipy.stats.fisher_exact([[s1, n1 - s1], [s2, n2 - s2]], alternative="less").pvalue
    assert ours == pytest.approx(theirs, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize(
    ("s1", "n1", "s2", "n2"),
    [(9_900, 10_000, 99_900, 100_000), (0, 100_000, 100_000, 100_000), (5, 5, 0, 5), (0, 0, 3, 9)],
)
def test_fisher_at_the_edges_and_at_scale(s1: int, n1: int, s2: int, n2: int) -> None:
    theirs = scipy.stats.fisher_exact([[s1, n1 - s1], [s2, n2 - s2]], alternative="less").pvalue
    assert fisher_less(s1, n1, s2, n2) == pytest.approx(theirs, rel=1e-9, abs=1e-300)


@given(
    st.lists(st.sampled_from([0.1, 0.2, 0.3]) | st.floats(0, 10), min_size=1, max_size=60),
    st.lists(st.sampled_from([0.1, 0.2, 0.3]) | st.floats(0, 10), min_size=1, max_size=60),
)
def test_mann_whitney_matches_scipy(canary: list[float], control: list[float]) -> None:
    ours = mann_whitney_greater(canary, control)
    if len(set(canary + control)) == 1:
        assert ours == 1.0  # no evidence either way (SciPy says nan)
        return
    theirs = scipy.stats.mannwhitneyu(
        canary, control, alternative="greater", method="asymptotic"
    ).pvalue
    assert ours == pytest.approx(theirs, rel=1e-9, abs=1e-12)


def test_mann_whitney_with_an_empty_side_is_no_evidence() -> None:
    assert mann_whitney_greater([], [1.0]) == 1.0
    assert mann_whitney_greater([1.0], []) == 1.0


def test_mann_whitney_sees_a_shift() -> None:
    rng = random.Random(3)
    control = [rng.expovariate(100) for _ in range(300)]
    assert mann_whitney_greater([x * 1.5 for x in control], control) < 1e-4
    assert mann_whitney_greater(control, [x * 1.5 for x in control]) > 0.99


def test_a_key_has_the_same_bucket_in_every_process() -> None:
    keys = ["user-1", "user-\udcff", "\u00e9", ""]
    ours = [bucket_of(salt_of("routing:2"), key) for key in keys]
    code = (
        "from resilient.rollout._cohort import bucket_of, salt_of;"
        f"print([bucket_of(salt_of('routing:2'), k) for k in {keys!r}])"
    )
    theirs = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert theirs.strip() == str(ours)


def test_buckets_spread_evenly_and_salts_differ() -> None:
    counts = [0] * 10
    for i in range(20_000):
        counts[bucket_of(salt_of("s"), f"user-{i}") * 10 // BUCKETS] += 1
    assert max(counts) - min(counts) < 300
    same = sum(
        (bucket_of(salt_of("a"), f"user-{i}") < 1000)
        == (bucket_of(salt_of("b"), f"user-{i}") < 1000)
        for i in range(5000)
    )
    assert same < 5000 * 0.9  # another rollout picks other users first


@given(st.text(), st.floats(0.01, 99.99), st.floats(0.01, 99.99))
def test_a_wider_canary_only_adds_keys(key: str, low: float, high: float) -> None:
    low, high = sorted((low, high))
    bucket = bucket_of(salt_of("r"), key)
    if bucket < threshold(low):
        assert bucket < threshold(high)


def test_a_key_that_is_not_a_str_is_refused_by_name() -> None:
    with pytest.raises(ArgumentTypeError, match=r"config_for\(key\) must be a str, got bytes"):
        bucket_of(salt_of("r"), b"user-1")  # type: ignore[arg-type]

    class Sneaky(str):
        def encode(self, *args: object, **kwargs: object) -> bytes:  # type: ignore[override]
            raise RuntimeError("no")

    assert bucket_of(salt_of("r"), Sneaky("user-1")) == bucket_of(salt_of("r"), "user-1")

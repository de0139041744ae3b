"""The JSON document of a run (``build_report``, ``timeline_buckets``, ``write_json``), built
from small hand-made runs: every figure, its unit, its rounding, and what it counts."""

from __future__ import annotations

import numpy as np

from chaos.report._json import timeline_buckets
from tests.chaos.test_scenario import load_result


def test_evenly_spaced_requests_fill_every_bucket_alike_whatever_the_bucket_width() -> None:
    # 100 requests a second for 2 s; 0.1 s is no binary fraction: 1.0 // 0.1 is 9.0 in floating
    # point, which put the request at 1.0 s in the bucket before its own
    scheduled = np.arange(200) / 100
    load = load_result(list(scheduled), ["ok"] * 200, [0.001] * 200, duration=2.0)
    for bucket, each in ((0.1, 10), (0.2, 20), (0.05, 5)):
        buckets = timeline_buckets(load, bucket)
        assert [b["requests"] for b in buckets] == [each] * round(2.0 / bucket), bucket

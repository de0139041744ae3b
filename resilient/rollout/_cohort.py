"""Which keys are in a canary: a stable hash, the same in every process and every run.

A key's bucket is BLAKE2b of its UTF-8 bytes (lone surrogates passed through, so any ``str``
has one), keyed by a salt naming the rollout and its candidate, reduced to one of
:data:`BUCKETS`. A key is in a canary of ``percent`` when its bucket is below ``percent`` of
them: the same keys in every process (Python's own ``hash`` is salted per process), and a wider
percentage only ever adds keys. Each rollout's salt differs, so the same users are not always
the first to get a new configuration.
"""

from __future__ import annotations

import hashlib

from resilient.errors import ArgumentTypeError

__all__ = ["BUCKETS", "bucket_of", "threshold"]

BUCKETS = 10_000
"""Buckets of keys: a percentage is honoured to 0.01 point."""


def bucket_of(salt: bytes, key: str) -> int:
    """``key``'s bucket in ``[0, BUCKETS)`` under ``salt`` (at most 64 bytes)."""
    if type(key) is not str:
        if not isinstance(key, str):
            raise ArgumentTypeError(
                f"ConfigRollout.config_for(key) must be a str, got {type(key).__name__}"
            )
        key = str.__str__(key)
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8, key=salt).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def threshold(percent: float) -> int:
    """The first bucket outside a canary of ``percent``."""
    return round(percent * BUCKETS / 100)

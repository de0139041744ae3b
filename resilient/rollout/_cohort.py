"""Which keys are in a canary: a stable hash, the same in every process and every run.

A key's bucket is the CRC-32 of its UTF-8 bytes (lone surrogates passed through, so any ``str``
has one), started from the CRC-32 of a salt naming the rollout and its candidate, spread by a
Fibonacci multiplication and reduced to one of :data:`BUCKETS`. A key is in a canary of
``percent`` when its bucket is below ``percent`` of them: the same keys in every process
(Python's own ``hash`` is salted per process), and a wider percentage only ever adds keys.
Each rollout's salt differs, so the same users are not always the first to get a new
configuration.

Why CRC-32 and not a cryptographic hash: ``config_for`` is on every request's path, and its
target is under 1 us. Measured (``bench/bench_rollout.py``, and the timings beside it in the
issue note): BLAKE2b keyed by the salt costs 1.27 us a key, CRC-32 with the multiplication
0.25 us, and ``config_for`` with BLAKE2b took 2.2 us. A bucket needs to spread keys evenly and
stay stable, not to resist an adversary: a client that chooses its key chooses its side either
way. The tests check the spread over sequential keys and that two salts pick different keys.
"""

from __future__ import annotations

import zlib

from resilient.errors import ArgumentTypeError

__all__ = ["BUCKETS", "bucket_of", "salt_of", "threshold"]

BUCKETS = 10_000
"""Buckets of keys: a percentage is honoured to 0.01 point."""

_GOLDEN = 0x9E3779B1
"""2**32 divided by the golden ratio, odd: multiplying by it spreads the CRC's bits into the
high ones, where the reduction to a bucket reads them (Knuth's multiplicative hashing)."""


def salt_of(text: str) -> int:
    """The CRC-32 a salt starts every key's CRC from."""
    return zlib.crc32(text.encode("utf-8", "surrogatepass"))


def bucket_of(salt: int, key: str) -> int:
    """``key``'s bucket in ``[0, BUCKETS)`` under ``salt`` (see :func:`salt_of`)."""
    if type(key) is not str:
        if not isinstance(key, str):
            raise ArgumentTypeError(
                f"ConfigRollout.config_for(key) must be a str, got {type(key).__name__}"
            )
        key = str.__str__(key)
    mixed = (zlib.crc32(key.encode("utf-8", "surrogatepass"), salt) * _GOLDEN) & 0xFFFFFFFF
    return mixed * BUCKETS >> 32


def threshold(percent: float) -> int:
    """The first bucket outside a canary of ``percent``."""
    return round(percent * BUCKETS / 100)

"""Gauge helpers for scenarios' arms (:meth:`chaos.scenario.ArmContext.gauge`)."""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["per_sample"]


def per_sample(total: Callable[[], int]) -> Callable[[], float]:
    """A gauge of how much the counter ``total`` grew since the previous sample (the first
    sample counts from the moment the gauge was made)."""
    last = [total()]

    def grown() -> float:
        now = total()
        grown, last[0] = now - last[0], now
        return float(grown)

    return grown

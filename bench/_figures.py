"""What every benchmark reports of one contender: a figure per round, the median of its rounds,
and their spread (the machine is shared: one round is never the answer)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

__all__ = ["Figure"]


@dataclass
class Figure:
    name: str
    rounds: list[float]
    """One figure per round (microseconds per operation, unless the benchmark says)."""

    @property
    def median(self) -> float:
        return statistics.median(self.rounds)

    @property
    def spread(self) -> str:
        """Lowest to highest round."""
        return f"{min(self.rounds):.2f}-{max(self.rounds):.2f}"

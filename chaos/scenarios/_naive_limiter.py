"""The incident's rate limiter (scenario ``rate-limiter-outage``'s naive arm): a store error is
a denial. Kept apart from the scenario so that the scenario module reads as its declaration.
"""

from __future__ import annotations

import asyncio

from resilient.ratelimit import Decision, DecisionSource, Limiter, Rate

__all__ = ["ErrorsCountAsLimited"]


class ErrorsCountAsLimited:
    """The incident's limiter: asks Redis within ``timeout`` and counts any failure as a denial.

    A limiter error (timeout, connection reset, refused connection) comes back as
    ``Decision(allowed=False)``, indistinguishable from a real over-limit answer, so the
    middleware sends 429: "the limiter does not know" became "over the limit".
    """

    def __init__(self, limiter: Limiter, *, timeout: float) -> None:
        self.limiter = limiter
        self.timeout = timeout
        self.errors = 0
        self.failing = False

    async def decide(self, key: str, *, cost: int = 1, rate: Rate | None = None) -> Decision:
        try:
            async with asyncio.timeout(self.timeout):
                decision = await self.limiter.decide(key, cost=cost, rate=rate)
        except Exception:
            self.errors += 1
            self.failing = True
            return Decision(False, 0, 1.0, 1.0, DecisionSource.PRIMARY, "")
        self.failing = False
        return decision

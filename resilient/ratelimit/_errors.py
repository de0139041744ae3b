"""The error a rate limiter raises when it cannot answer (never a denial)."""

from __future__ import annotations

__all__ = ["LimiterUnavailable"]


class LimiterUnavailable(ConnectionError):
    """A limiter could not decide: its store is down, slow, or answered garbage.

    Raised by a limiter on a fault (a guard degrades on it, being a :class:`ConnectionError`,
    so an :class:`OSError`), and by a :class:`~resilient.ratelimit.FailOpenGuard` in its opt-in
    fail-closed mode. It never means "over the limit": an HTTP front answers 503, not 429.
    ``__cause__`` holds the underlying error when there is one.
    """

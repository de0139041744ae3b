"""Which failures are the dependency's own (worth another attempt), and how long it asked the
caller to wait (``Retry-After``).

Both read an exception and nothing else, import nothing heavy (aiohttp is looked at only when
the program has already imported it) and never raise: an exception whose attributes or headers
are strange is judged as one that says nothing.
"""

from __future__ import annotations

import email.utils
import math
import sys
import time
from collections.abc import Callable

from resilient.errors import ResilientError

__all__ = ["RETRYABLE_STATUSES", "retry_after_of", "transient_error"]

RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
"""HTTP statuses that say "the server could not serve this now", not "this request is wrong":
the AWS SDKs' transient statuses (500, 502, 503, 504) and throttling (429), and 408 (request
timeout), which the OpenAI and Anthropic Python SDKs retry too."""


def transient_error(error: BaseException) -> bool:
    """The default of :attr:`~resilient.retry.RetryOptions.retry_on`: True for a fault of the
    dependency that another attempt may not meet.

    - an :class:`OSError` (refused, reset, timed out, unreachable: asyncio's and aiohttp's
      ``ClientOSError`` among them);
    - aiohttp's ``ClientConnectionError`` (a server that disconnected or timed out) and a
      ``ClientResponseError`` whose status is in :data:`RETRYABLE_STATUSES`;
    - never an error of this library (a breaker's or a gate's refusal says the caller should
      not call now, not that the dependency failed: name it in ``retry_on`` to retry it).
    """
    if isinstance(error, ResilientError):
        return False
    aiohttp = sys.modules.get("aiohttp")
    if aiohttp is not None:
        if isinstance(error, aiohttp.ClientResponseError):
            return error.status in RETRYABLE_STATUSES
        if isinstance(error, aiohttp.ClientConnectionError):
            return True
    return isinstance(error, OSError)


def retry_after_of(
    error: BaseException, wall_clock: Callable[[], float] = time.time
) -> float | None:
    """Seconds ``error`` asks the caller to wait before trying again, or None when it says
    nothing (or nothing that is a number of seconds >= 0).

    In this order: an attribute ``retry_after`` (seconds, as
    :class:`~resilient.errors.CircuitOpenError` and
    :class:`~resilient.errors.ConnectRefusedError` carry it); the response headers the error
    carries (``error.headers``, as aiohttp's ``ClientResponseError``, or
    ``error.response.headers``, as the errors of httpx-based SDKs): ``retry-after-ms``
    (milliseconds, sent by OpenAI's API), then ``Retry-After`` (seconds, or an HTTP date,
    read against ``wall_clock``).
    """
    seconds = _seconds(getattr_or_none(error, "retry_after"))
    if seconds is not None:
        return seconds
    headers = getattr_or_none(error, "headers")
    if headers is None:
        headers = getattr_or_none(getattr_or_none(error, "response"), "headers")
    if headers is None:
        return None
    milliseconds = _seconds(_number(_header(headers, "retry-after-ms")))
    if milliseconds is not None:
        return milliseconds / 1000
    text = _header(headers, "Retry-After")
    if text is None:
        return None
    seconds = _seconds(_number(text))
    if seconds is not None:
        return seconds
    return _until_date(text, wall_clock)


def getattr_or_none(value: object, name: str) -> object:
    """``value.name``, or None when it is missing or cannot be read."""
    try:
        return getattr(value, name, None)
    except Exception:
        return None


def _header(headers: object, name: str) -> str | None:
    try:
        value = headers.get(name)  # type: ignore[attr-defined]
    except Exception:
        return None
    return value if isinstance(value, str) else None


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(text.strip())
    except ValueError:
        return None


def _seconds(value: object) -> float | None:
    """``value`` as seconds to wait: a finite number >= 0 (never a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        seconds = float(value)
    except (OverflowError, ValueError):
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _until_date(text: str, wall_clock: Callable[[], float]) -> float | None:
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        return None  # RFC 9110 dates are in GMT; one without a zone is not such a date
    return max(0.0, when.timestamp() - wall_clock())

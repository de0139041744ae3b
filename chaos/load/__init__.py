"""Open-loop load: requests start on a schedule fixed in advance, never waiting for earlier ones.

A slow service cannot slow the load down, so it cannot hide its own failures (no coordinated
omission). Every request records when it was *scheduled*, when it actually started, when it
finished, its HTTP status and its outcome class; latency is measured from the scheduled time,
service time from the actual start. Starting a request late is the generator's own fault: that
scheduling lag is recorded per request, and a run whose lag p99 exceeds :data:`MAX_TRUSTED_LAG`
is not trustworthy.

In-flight requests are bounded by :attr:`Load.max_in_flight`; a request due while the bound is
reached is recorded with the outcome ``overflow``, never dropped silently.

Two ways to run the same :class:`Load`:

- :func:`run_load` in the current event loop (tests, small rates);
- :class:`LoadProcess` in a child process with its own event loop, so the generator and the
  service under test do not share one interpreter lock (what the engine uses).

Both build the whole request sequence before the first request from one seeded
:class:`random.Random`: the same seed gives the same schedule and the same requests.

The package, one module per job: ``_load`` (the declaration, its requests and schedule),
``_result`` (what a run recorded), ``_recorder`` (running a load in this loop), ``_process``
(in a child process: ``_child``, speaking ``_framing``).
"""

from __future__ import annotations

from chaos.load._load import (
    DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_TIMEOUT,
    OUTCOME_CLASSIFY_ERROR,
    OUTCOME_CONN_ERROR,
    OUTCOME_OVERFLOW,
    OUTCOME_TIMEOUT,
    Classifier,
    Load,
    LoadError,
    Reply,
    RequestFactory,
    RequestSpec,
    default_classify,
    root_request,
    schedule,
)
from chaos.load._process import LoadProcess
from chaos.load._recorder import run_load
from chaos.load._result import MAX_TRUSTED_LAG, LoadProgress, LoadResult

__all__ = [
    "DEFAULT_MAX_IN_FLIGHT",
    "DEFAULT_TIMEOUT",
    "MAX_TRUSTED_LAG",
    "OUTCOME_CLASSIFY_ERROR",
    "OUTCOME_CONN_ERROR",
    "OUTCOME_OVERFLOW",
    "OUTCOME_TIMEOUT",
    "Classifier",
    "Load",
    "LoadError",
    "LoadProcess",
    "LoadProgress",
    "LoadResult",
    "Reply",
    "RequestFactory",
    "RequestSpec",
    "default_classify",
    "root_request",
    "run_load",
    "schedule",
]

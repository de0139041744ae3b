"""aiohttp adapters: rate-limit every request of a ``web.Application`` with any limiter, and
pass every new client connection through a connect gate.

:func:`rate_limit_middleware` asks a :class:`~resilient.ratelimit.Limiter` (typically a
:class:`~resilient.ratelimit.FailOpenGuard`) about each request and answers ``429 Too Many
Requests`` only for a real over-limit decision (``decision.allowed`` false), with
``Retry-After`` and ``RateLimit-Limit`` / ``RateLimit-Remaining`` / ``RateLimit-Reset``.
A degraded decision that allows (fallback, pass-through) goes through like any other; a limiter
that cannot answer at all (:class:`~resilient.ratelimit.LimiterUnavailable`, e.g. a guard in
its opt-in fail-closed mode) gets ``503 Service Unavailable``, never 429: a limiter that does
not know does not claim anyone is over the limit.

The decision, with its ``source`` and ``reason``, is stored on the request under
:data:`DECISION_KEY` for the handler (absent on exempt routes)::

    app = web.Application(middlewares=[rate_limit_middleware(guard, key=header_key("X-Api-Key"))])

    async def handler(request: web.Request) -> web.Response:
        decision = request.get(DECISION_KEY)

:class:`GatedConnector` is an ``aiohttp.TCPConnector`` whose every new connection passes the
:class:`~resilient.pool.ConnectGate` of its destination (``host:port``, shared by every
connector and pool of the event loop, :func:`~resilient.pool.shared_gate`)::

    session = aiohttp.ClientSession(connector=GatedConnector(limit=20))

Everything else is aiohttp's own: its pool, its limits, its keep-alive, its errors.

This module imports no Redis client: it needs only the limiter protocol.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from resilient.clock import SYSTEM_CLOCK, Clock
from resilient.errors import ConfigurationError, LimiterUnavailable
from resilient.events import DEFAULT_EVENTS, EventBus
from resilient.pool._options import DEFAULT_GATE_OPTIONS, GateOptions, check_gate_arguments
from resilient.ratelimit._types import Decision, Limiter, Rate

if TYPE_CHECKING:
    from aiohttp.client_proto import ResponseHandler

    from resilient.pool._gate import ConnectGate

__all__ = [
    "DECISION_KEY",
    "GatedConnector",
    "KeyFunction",
    "header_key",
    "rate_limit_middleware",
    "remote_address",
]

DECISION_KEY: web.RequestKey[Decision] = web.RequestKey("resilient.ratelimit.decision", Decision)
"""Where the middleware stores the request's :class:`Decision`: ``request[DECISION_KEY]``."""

KeyFunction = Callable[[web.Request], str]
"""Maps a request to the key it is limited under."""


def remote_address(request: web.Request) -> str:
    """The client's address as aiohttp sees it (``"unknown"`` when there is none)."""
    return request.remote or "unknown"


def header_key(name: str, *, default: KeyFunction = remote_address) -> KeyFunction:
    """A key function: the value of header ``name``, or ``default(request)`` when it is absent."""

    def key(request: web.Request) -> str:
        value = request.headers.get(name)
        return value if value else default(request)

    return key


def rate_limit_middleware(
    limiter: Limiter,
    *,
    key: KeyFunction = remote_address,
    exempt: Iterable[str] | Callable[[web.Request], bool] = (),
    cost: int | Callable[[web.Request], int] = 1,
    rate: Rate | None = None,
) -> Middleware:
    """A middleware that limits each request under ``key(request)``.

    ``exempt``: paths (matched against the request path and the route's canonical path, e.g.
    ``"/users/{id}"``) or a predicate; exempt requests are not counted. ``cost``: units per
    request, or a function of the request. ``rate``: the rate passed to every decision (default:
    the limiter's own per-key rate). ``RateLimit-Limit`` reports ``rate.limit`` (or the limiter's
    ``rate_for(key)``, when it has one; the header is left out when the limit is unknown).
    """
    is_exempt = _exemption(exempt)
    cost_of = cost if callable(cost) else _constant(_checked_cost(cost))

    @web.middleware
    async def rate_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
        if is_exempt(request):
            return await handler(request)
        request_key = key(request)
        try:
            decision = await limiter.decide(request_key, cost=cost_of(request), rate=rate)
        except LimiterUnavailable:
            return web.Response(status=503, text="Service Unavailable: rate limiter unavailable")
        if not decision.allowed:
            return _too_many_requests(decision, rate or _rate_for(limiter, request_key))
        request[DECISION_KEY] = decision
        return await handler(request)

    return rate_limit


def _too_many_requests(decision: Decision, rate: Rate | None) -> web.Response:
    """429 with the headers a client needs to come back at the right time; no
    ``Retry-After`` for a request no wait can make allowed (its cost exceeds what the rate
    ever allows), whose body says so instead."""
    headers = {
        "RateLimit-Remaining": str(max(0, decision.remaining)),
        "RateLimit-Reset": str(max(0, math.ceil(decision.reset_after))),
    }
    if rate is not None:
        headers["RateLimit-Limit"] = str(rate.limit)
    if math.isinf(decision.retry_after):
        return web.Response(
            status=429, text=f"Too Many Requests: {decision.reason}", headers=headers
        )
    headers["Retry-After"] = str(max(1, math.ceil(decision.retry_after)))
    return web.Response(status=429, text="Too Many Requests", headers=headers)


def _rate_for(limiter: Limiter, key: str) -> Rate | None:
    rate_for = getattr(limiter, "rate_for", None)
    if rate_for is None:
        return None
    found = rate_for(key)
    return found if isinstance(found, Rate) else None


def _exemption(
    exempt: Iterable[str] | Callable[[web.Request], bool],
) -> Callable[[web.Request], bool]:
    if callable(exempt):
        return exempt
    paths = frozenset(exempt)
    for path in paths:
        if not isinstance(path, str) or not path.startswith("/"):
            raise ValueError(
                f"rate_limit_middleware.exempt paths must start with '/', got {path!r}"
            )

    def is_exempt(request: web.Request) -> bool:
        if not paths:
            return False
        if request.path in paths:
            return True
        resource = request.match_info.route.resource
        return resource is not None and resource.canonical in paths

    return is_exempt


def _checked_cost(cost: int) -> int:
    if isinstance(cost, bool) or not isinstance(cost, int) or cost < 0:
        raise ValueError(f"rate_limit_middleware.cost must be an int >= 0, got {cost!r}")
    return cost


def _constant(value: int) -> Callable[[web.Request], int]:
    return lambda request: value


_CREATE_CONNECTION = ("self", "req", "traces", "timeout")
"""The parameters of ``aiohttp.TCPConnector._create_connection``, which :class:`GatedConnector`
overrides: aiohttp has no public hook that sees both the start and the outcome of a connect
(its trace signals have no "connection failed"), and the gate must hear both or it leaks a slot.
The override is checked at import against this signature, so an aiohttp that changes it fails
loudly (:class:`~resilient.errors.ConfigurationError`) instead of bypassing the gate; the
``aiohttp`` requirement is pinned below 4 in ``pyproject.toml``."""


def _check_aiohttp() -> None:
    found = tuple(inspect.signature(aiohttp.TCPConnector._create_connection).parameters)
    if found != _CREATE_CONNECTION:
        raise ConfigurationError(
            f"GatedConnector overrides aiohttp.TCPConnector._create_connection{_CREATE_CONNECTION}"
            f", but aiohttp {aiohttp.__version__} has {found}: this aiohttp is not supported"
        )


_check_aiohttp()


class GatedConnector(aiohttp.TCPConnector):
    """An ``aiohttp.TCPConnector`` whose new connections each pass their destination's
    :class:`~resilient.pool.ConnectGate` (one per ``host:port`` and event loop). A refused
    connect raises ``aiohttp.ClientOSError`` out of the request, as aiohttp's own connect
    errors are (aiohttp wraps every ``OSError`` of a connect), with the
    :class:`~resilient.errors.ConnectRefusedError` as its ``__cause__``. The gate waits at
    most the request's ``ClientTimeout.total`` (none when it is None or 0, as aiohttp reads
    it). ``**kwargs`` are ``TCPConnector``'s."""

    def __init__(
        self,
        gate_options: GateOptions = DEFAULT_GATE_OPTIONS,
        *,
        clock: Clock = SYSTEM_CLOCK,
        events: EventBus = DEFAULT_EVENTS,
        **kwargs: Any,
    ) -> None:
        check_gate_arguments("GatedConnector", gate_options, clock, events)
        super().__init__(**kwargs)
        self.gate_options = gate_options
        self._gate_clock = clock
        self._gate_events = events
        self._gates: dict[str, ConnectGate] = {}
        """The gates this connector used, held: a gate nobody holds is forgotten."""

    async def _create_connection(
        self, req: aiohttp.ClientRequest, traces: list[Any], timeout: aiohttp.ClientTimeout
    ) -> ResponseHandler:
        from resilient.pool._gate import shared_gate

        destination = f"{req.host}:{req.port}"
        gate = self._gates.get(destination)
        if gate is None:
            gate = self._gates[destination] = shared_gate(
                destination, self.gate_options, clock=self._gate_clock, events=self._gate_events
            )
        create = super()._create_connection

        async def connect() -> ResponseHandler:
            return await create(req, traces, timeout)

        total = timeout.total  # aiohttp reads a total of 0 (or less) as no timeout
        return await gate.connect(
            connect, timeout=total if total is not None and total > 0 else None
        )

"""A redis-py adapter: every new connection of a ``redis.asyncio`` pool passes a connect gate.

redis-py's pools cap nothing by default and reconnect as fast as callers ask (issue 10). A
pool made by :func:`gated_connection_pool` opens every socket through the
:class:`~resilient.pool.ConnectGate` of its destination (``host:port``, shared by every pool and
connector of the event loop, :func:`~resilient.pool.shared_gate`)::

    pool = gated_connection_pool("redis://cache:6379/0", max_connections=20)
    client = redis.asyncio.Redis(connection_pool=pool)

Everything else is redis-py's own: commands, retries, errors (a refused connect raises
:class:`~resilient.errors.ConnectRefusedError`, a ``ConnectionError`` as redis-py's are not:
catch both, or ``OSError``, which covers redis-py's connect errors too).
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

import redis
import redis.asyncio as aredis

from resilient.clock import SYSTEM_CLOCK, Clock
from resilient.errors import ArgumentValueError, ConfigurationError
from resilient.events import DEFAULT_EVENTS, EventBus
from resilient.pool._options import DEFAULT_GATE_OPTIONS, GateOptions, check_gate_arguments

if TYPE_CHECKING:
    from resilient.pool._gate import ConnectGate

__all__ = ["GatedConnection", "gated_connection_pool"]


def _check_redis() -> None:
    """:class:`GatedConnection` overrides ``Connection._connect``, the one method that opens
    the socket: the public ``connect()`` is not on every path (redis-py 8 sends a command
    through ``connect_check_health`` without it), and gating anything above ``_connect`` would
    miss reconnects. An argument-less coroutine in every redis-py the project supports
    (``redis>=5.3,<9`` in ``pyproject.toml``), checked here so that a change fails loudly."""
    method = getattr(aredis.Connection, "_connect", None)
    if (
        method is None
        or not inspect.iscoroutinefunction(method)
        or tuple(inspect.signature(method).parameters) != ("self",)
    ):
        raise ConfigurationError(
            "GatedConnection overrides redis.asyncio.Connection._connect(self), which "
            f"redis-py {redis.__version__} does not have as a coroutine method"
        )


_check_redis()


class GatedConnection(aredis.Connection):
    """A ``redis.asyncio.Connection`` whose every socket connect passes the gate of its
    ``host:port``, waiting for it at most ``socket_connect_timeout``. The gate's settings come
    as connection keyword arguments, so that a ``ConnectionPool`` passes them on (see
    :func:`gated_connection_pool`)."""

    def __init__(
        self,
        *,
        gate_options: GateOptions = DEFAULT_GATE_OPTIONS,
        gate_clock: Clock = SYSTEM_CLOCK,
        gate_events: EventBus = DEFAULT_EVENTS,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.gate_options = gate_options
        self._gate_clock = gate_clock
        self._gate_events = gate_events
        self._gate: ConnectGate | None = None
        """Its gate, held: a gate nobody holds is forgotten (the pool keeps its connections)."""

    async def _connect(self) -> None:
        from resilient.pool._gate import shared_gate

        gate = self._gate
        if gate is None:
            gate = self._gate = shared_gate(
                f"{self.host}:{self.port}",
                self.gate_options,
                clock=self._gate_clock,
                events=self._gate_events,
            )
        await gate.connect(super()._connect, timeout=self.socket_connect_timeout)


def gated_connection_pool(
    url: str,
    gate_options: GateOptions = DEFAULT_GATE_OPTIONS,
    *,
    clock: Clock = SYSTEM_CLOCK,
    events: EventBus = DEFAULT_EVENTS,
    **kwargs: Any,
) -> aredis.ConnectionPool:
    """``redis.asyncio.ConnectionPool.from_url(url, **kwargs)`` whose connections are
    :class:`GatedConnection`. TCP only (``redis://``): a ``rediss://`` or ``unix://`` URL is
    refused, not silently left ungated."""
    if not isinstance(url, str) or not url.startswith("redis://"):
        raise ArgumentValueError(
            f"gated_connection_pool(url) must be a redis:// URL (TCP), got {url!r:.100}"
        )
    check_gate_arguments("gated_connection_pool", gate_options, clock, events)
    return aredis.ConnectionPool.from_url(
        url,
        connection_class=GatedConnection,
        gate_options=gate_options,
        gate_clock=clock,
        gate_events=events,
        **kwargs,
    )

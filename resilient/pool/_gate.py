"""The connect gate: every new connection to a destination passes it.

A :class:`ConnectGate` lets a connect attempt start only when all of these hold, checked in
this order each time the caller at the head of its line looks:

1. the destination's breaker lets a call through (it opens after ``failure_threshold``
   failures in a row, attempts and churned connections alike, and lets one probe through
   after its ``reset_timeout``);
2. fewer than ``max_connecting`` attempts are in progress;
3. the backoff after the last failure has passed (gRPC's: ``backoff_initial`` times
   ``backoff_multiplier`` per failure in a row, at most ``backoff_max``, +-``backoff_jitter``);
4. the connect rate allows one more attempt (GCRA, as the rate limiters).

Callers wait in line, first come first served: nobody overtakes a caller already waiting. A
caller whose deadline comes before the gate could let it through is refused at once with
:class:`~resilient.errors.ConnectRefusedError` (no point waiting for what cannot come in
time), one whose deadline passes while it waits is refused then, and the error says what it
waited on. Only the destination's faults count as failures (``GateOptions.failures``, and an
attempt past its ``connect_timeout`` whatever ``failures`` names); a caller's own error or
cancellation counts as nothing, and so does an error resilient raised (:func:`is_fault`).

A connection that is lost soon after it was opened is a failure too (:meth:`ConnectGate.lost`,
within ``churn_window``): a service that reconnects in a loop trips the gate as a destination
that refuses connections does. For the same reason a connect that succeeds after failures is
not yet a recovery: the failures, the backoff and the breaker's count stand until a connection
made since has outlived the churn window without a loss.

One gate serves every pool of the process that targets its destination:
:func:`shared_gate` returns it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
import random
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from resilient._deadline import Deadlines
from resilient._validate import Instance, Number, Text, check, shown
from resilient.breaker import CircuitBreaker, Permit
from resilient.clock import SYSTEM_CLOCK, Clock
from resilient.errors import (
    ArgumentTypeError,
    ConfigurationError,
    ConnectRefusedError,
    ResilientError,
)
from resilient.events import DEFAULT_EVENTS, Emitter, EventBus
from resilient.pool._events import (
    GATE_EVENT_SOURCE,
    ConnectFailed,
    ConnectionChurned,
    ConnectRefused,
    DestinationRecovered,
)
from resilient.pool._options import DEFAULT_GATE_OPTIONS, GATE_BREAKER_OPTIONS, GateOptions
from resilient.ratelimit._gcra import gcra

__all__ = ["ConnectGate", "GateStats", "is_fault", "shared_gate"]

C = TypeVar("C")

_DESTINATION = Text()
_TIMEOUT = Number(min=0, unit="seconds")
_TIME = Number(finite=True, unit="seconds")
_LOOK_AGAIN = 0.1
"""Seconds between looks of the head of the line at a breaker whose half-open probe a caller
the gate does not see holds (a breaker shared with the requests to the destination): no attempt
of the gate's ends to wake the line when that probe ends."""


@dataclass(slots=True)
class GateStats:
    """Counters of one :class:`ConnectGate` since it was made."""

    attempts: int = 0
    """Connect attempts started."""
    connects: int = 0
    """Attempts that succeeded."""
    failures: int = 0
    """Attempts that failed with a fault of the destination (or timed out)."""
    churned: int = 0
    """Connections lost within ``churn_window`` of their opening (each also a failure of the
    destination, not counted in ``failures``)."""
    gated: int = 0
    """Callers that had to wait before their attempt could start."""
    refused: int = 0
    """Callers refused with :class:`~resilient.errors.ConnectRefusedError`."""


class _Waiter:
    __slots__ = ("wakeup",)

    def __init__(self) -> None:
        self.wakeup: asyncio.Future[None] | None = None


class ConnectGate:
    """The gate of new connections to ``destination`` (a name: ``host:port``, a URL), shared
    by every pool of the process that targets it (see the module doc).

    ``breaker`` (optional) is the destination's :class:`~resilient.breaker.CircuitBreaker`,
    which may be shared with the requests to it (while one of them holds its half-open probe,
    the head of the line looks again every 0.1 s); by default the gate makes one with
    :data:`GATE_BREAKER_OPTIONS`. Use one gate from one event loop.
    """

    def __init__(
        self,
        destination: str,
        options: GateOptions = DEFAULT_GATE_OPTIONS,
        *,
        breaker: CircuitBreaker | None = None,
        clock: Clock = SYSTEM_CLOCK,
        events: EventBus = DEFAULT_EVENTS,
    ) -> None:
        self.destination: str = check("ConnectGate.destination", destination, _DESTINATION)
        self.options: GateOptions = check(
            "ConnectGate.options", options, Instance(GateOptions, "a GateOptions")
        )
        check("ConnectGate.clock", clock, Instance(Clock, "a Clock"))
        check("ConnectGate.events", events, Instance(EventBus, "an EventBus"))
        if breaker is None:
            breaker = CircuitBreaker(
                f"connect {destination}", GATE_BREAKER_OPTIONS, clock=clock, events=events
            )
        self.breaker: CircuitBreaker = check(
            "ConnectGate.breaker", breaker, Instance(CircuitBreaker, "a CircuitBreaker or None")
        )
        self.stats = GateStats()
        self._clock = clock
        self._emit = Emitter(GATE_EVENT_SOURCE, events, clock)
        self._deadlines = Deadlines(clock, name=f"ConnectGate({destination!r})")
        self._random = random.Random()
        self._line: collections.deque[_Waiter] = collections.deque()
        self._connecting = 0
        self._closed = False
        self._failures = 0
        self._not_before = -math.inf
        self._proving_since: float | None = None
        """When a connect succeeded after failures; the destination has recovered once no
        connection opened since is lost within ``churn_window``."""
        self._tat_us: int | None = None
        self._drained: asyncio.Future[None] | None = None
        """Set by :meth:`aclose` while it waits for the attempts in progress to end."""
        rate = options.connect_rate
        self._emission_us = rate.emission_us
        self._tolerance_us = rate.tolerance_us

    @property
    def connecting(self) -> int:
        """Connect attempts in progress."""
        return self._connecting

    @property
    def waiting(self) -> int:
        """Callers waiting for their attempt to start."""
        return len(self._line)

    @property
    def failures(self) -> int:
        """Failures of the destination in a row (0 once a connection outlived the churn
        window after them)."""
        self._settle_proof(self._clock.monotonic())
        return self._failures

    @property
    def backoff_left(self) -> float:
        """Seconds until the backoff after the last failure has passed (0 when it has)."""
        return max(0.0, self._not_before - self._clock.monotonic())

    async def connect(
        self, open_connection: Callable[[], Awaitable[C]], *, timeout: float | None = None
    ) -> C:
        """Await ``open_connection()`` once the gate lets an attempt start, and return what it
        returns; raise what it raises.

        ``timeout`` bounds the wait for the gate (None: no bound); the attempt itself is
        bounded by ``connect_timeout`` (then :class:`TimeoutError`). Raises
        :class:`~resilient.errors.ConnectRefusedError` when no attempt could start within
        ``timeout``, at once when the gate knows it cannot.
        """
        if not callable(open_connection):
            raise ArgumentTypeError(
                "ConnectGate.connect(open_connection) must be an async callable, "
                f"got {shown(open_connection)}"
            )
        if timeout is not None:
            timeout = check("ConnectGate.connect(timeout)", timeout, _TIMEOUT)
        if self._closed:
            raise self._refused("gate closed", None)
        now = self._clock.monotonic()
        deadline = math.inf if timeout is None else now + timeout
        permit = None if self._line else self._admit(now)
        if permit is None:
            self.stats.gated += 1
            permit = await self._wait_turn(deadline)
        return await self._attempt(open_connection, permit)

    def lost(self, opened_at: float) -> bool:
        """A connection this gate let open (at ``opened_at`` on the gate's clock) was lost:
        it broke, or the peer closed it. Within ``churn_window`` of its opening this counts as
        a failure of the destination, and True is returned.

        Call it only for losses the destination caused, not for closes by the caller's own
        policy (idle, lifetime, a smaller pool)."""
        opened_at = check("ConnectGate.lost(opened_at)", opened_at, _TIME)
        now = self._clock.monotonic()
        lived = max(0.0, now - opened_at)
        if lived >= self.options.churn_window:
            return False
        self.stats.churned += 1
        backoff = self._failed(now)  # which ends any proof of recovery
        permit = self.breaker.try_acquire()
        if permit is not None:
            permit.failed(ConnectionResetError(f"connection lost after {lived:.3f}s"))
        self._emit(ConnectionChurned(self.destination, lived, self._failures, backoff))
        return True

    async def aclose(self) -> None:
        """Refuse every waiting caller and every later one (``"gate closed"``), wait for the
        attempts in progress (each ends within its ``connect_timeout``, which closing does not
        take away) and stop the gate's timer task. Without the refusal of later callers, a
        pool warming up behind a hanging destination started a new attempt before the last
        one ended, and the close waited for ever (found by test_pool_programs)."""
        self._closed = True
        for waiter in self._line:
            wakeup = waiter.wakeup
            if wakeup is not None and not wakeup.done():
                wakeup.set_exception(ConnectRefusedError(self.destination, "gate closed", None))
        if self._connecting:
            drained = self._drained
            if drained is None or drained.done():
                drained = self._drained = asyncio.get_running_loop().create_future()
            await asyncio.shield(drained)
        await self._deadlines.aclose()

    def __repr__(self) -> str:
        return (
            f"ConnectGate({self.destination!r}, connecting={self._connecting}, "
            f"waiting={len(self._line)}, failures={self._failures})"
        )

    # -- admission -----------------------------------------------------------------------------

    def _blocked(self, now: float) -> tuple[str, float | None] | None:
        """Why no attempt may start now, and in how many seconds one could (None: when an
        attempt in progress ends); None when one may."""
        self._settle_proof(now)
        breaker = self.breaker
        if not breaker.allows_call():
            retry = breaker.retry_after
            return "circuit open", (retry if retry > 0 else None)
        if self._connecting >= self.options.max_connecting:
            return f"{self._connecting} connect attempts in progress", None
        if now < self._not_before:
            return f"backoff after {self._failures} failures", self._not_before - now
        verdict = gcra(self._tat_us, _us(now), self._emission_us, self._tolerance_us, 1)
        if not verdict.allowed:
            return f"connect rate {self.options.connect_rate}", verdict.retry_after_us / 1e6
        return None

    def _admit(self, now: float) -> Permit | None:
        """Start an attempt now if nothing blocks it: a permit of the breaker, a slot, and a
        unit of the rate are taken together."""
        if self._blocked(now) is not None:
            return None
        permit = self.breaker.try_acquire()
        if permit is None:
            return None
        verdict = gcra(self._tat_us, _us(now), self._emission_us, self._tolerance_us, 1)
        self._tat_us = verdict.new_tat_us
        self._connecting += 1
        self.stats.attempts += 1
        return permit

    async def _wait_turn(self, deadline: float) -> Permit:
        """Wait in line, then at its head until an attempt may start; refused at once when
        the gate knows that cannot happen by ``deadline``."""
        me = _Waiter()
        line = self._line
        line.append(me)
        try:
            while True:
                if self._closed:
                    raise self._refused("gate closed", None)
                now = self._clock.monotonic()
                reason = "waiting behind earlier callers"
                wait: float | None = None
                if line[0] is me:
                    permit = self._admit(now)
                    if permit is not None:
                        return permit
                    blocked = self._blocked(now)
                    if blocked is not None:  # else the breaker refused a probe just taken
                        reason, wait = blocked
                if wait is not None and now + wait > deadline:
                    raise self._refused(reason, wait)
                if now >= deadline:
                    raise self._refused(reason, None)
                until = deadline if wait is None else now + wait
                if wait is None and not self._connecting and line[0] is me:
                    until = min(until, now + _LOOK_AGAIN)  # nothing of the gate's will wake it
                await self._sleep(me, until - now)
        finally:
            head = line[0] is me
            line.remove(me)
            if head:
                self._wake_head()

    async def _sleep(self, me: _Waiter, seconds: float) -> None:
        """Until woken (an attempt ended, the caller ahead left) or ``seconds`` passed."""
        wakeup: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        me.wakeup = wakeup
        try:
            if math.isinf(seconds):
                await wakeup
            else:
                with contextlib.suppress(TimeoutError):
                    async with self._deadlines.within(seconds):
                        await wakeup
        finally:
            me.wakeup = None

    def _wake_head(self) -> None:
        if self._line:
            wakeup = self._line[0].wakeup
            if wakeup is not None and not wakeup.done():
                wakeup.set_result(None)

    def _refused(self, reason: str, retry_after: float | None) -> ConnectRefusedError:
        self.stats.refused += 1
        self._emit(ConnectRefused(self.destination, reason))
        return ConnectRefusedError(self.destination, reason, retry_after)

    # -- the attempt ---------------------------------------------------------------------------

    async def _attempt(self, open_connection: Callable[[], Awaitable[C]], permit: Permit) -> C:
        options = self.options
        limit = max(options.connect_timeout, self._nominal_backoff())
        scope = self._deadlines.within(limit)
        try:
            try:
                async with scope:
                    connection = await open_connection()
            except BaseException as error:
                timed_out = scope.expired and isinstance(error, TimeoutError)
                if not (timed_out or is_fault(error, options.failures)):
                    permit.released()  # the caller's own error or cancellation: no outcome
                    raise
                permit.failed(error)
                self.stats.failures += 1
                now = self._clock.monotonic()
                backoff = self._failed(now)
                failed = ConnectFailed(self.destination, _described(error), self._failures, backoff)
                self._emit(failed)
                raise
        finally:
            self._connecting -= 1
            self._wake_head()
            drained = self._drained
            if not self._connecting and drained is not None and not drained.done():
                drained.set_result(None)
        self.stats.connects += 1
        if self._failures and self.options.churn_window > 0:
            # Not a recovery yet: in a reconnect loop every connect succeeds. The connection
            # must outlive the churn window first (_settle_proof); until then the failures,
            # the backoff and the breaker's count stand.
            permit.released()
            if self._proving_since is None:
                self._proving_since = self._clock.monotonic()
        else:
            permit.succeeded()
            if self._failures:
                self._recovered()
        return connection

    def _settle_proof(self, now: float) -> None:
        """The connection made after failures outlived the churn window: the destination has
        recovered (the breaker hears of the success now)."""
        since = self._proving_since
        if since is None or now - since < self.options.churn_window:
            return
        self._proving_since = None
        permit = self.breaker.try_acquire()
        if permit is not None:
            permit.succeeded()
        self._recovered()

    def _recovered(self) -> None:
        self._emit(DestinationRecovered(self.destination, self._failures))
        self._failures = 0
        self._not_before = -math.inf

    def _nominal_backoff(self) -> float:
        """The backoff after one more failure, before jitter (at most ``backoff_max``, also
        once the growth would overflow a float: 1.6 ** 1511 does)."""
        options = self.options
        if self._failures == 0 or not options.backoff_initial:
            return options.backoff_initial
        try:
            grown = options.backoff_initial * options.backoff_multiplier**self._failures
        except OverflowError:
            return options.backoff_max
        return min(options.backoff_max, grown)

    def _failed(self, now: float) -> float:
        """Count a failure of the destination; no attempt starts for the backoff it returns."""
        options = self.options
        nominal = self._nominal_backoff()
        self._failures += 1
        self._proving_since = None
        jitter = options.backoff_jitter * (2 * self._random.random() - 1)
        backoff = nominal * (1 + jitter)
        self._not_before = max(self._not_before, now + backoff)
        return backoff


def is_fault(error: BaseException, failures: tuple[type[BaseException], ...]) -> bool:
    """Whether ``error`` is a fault of the destination: one of ``failures``, and no error
    resilient raised. A pool's timeout or a gate's refusal is an ``OSError`` too (a
    ``TimeoutError``, a ``ConnectionError``), but it says the process queued, not that the
    destination failed: raised by a connect or in a block that waits on another pool or gate,
    it must not trip this destination's breaker."""
    return isinstance(error, failures) and not isinstance(error, ResilientError)


def _us(seconds: float) -> int:
    return int(seconds * 1_000_000)


def _described(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


_SHARED: weakref.WeakValueDictionary[tuple[asyncio.AbstractEventLoop, str], ConnectGate] = (
    weakref.WeakValueDictionary()
)
"""Each loop's gate of each destination, while something holds it (a pool, a connector, a
connection): a gate nobody holds is forgotten, and with it its loop, which a registry keyed
by the loop alone would keep alive for ever (the gate's timer task refers to its loop)."""


def shared_gate(
    destination: str,
    options: GateOptions = DEFAULT_GATE_OPTIONS,
    *,
    clock: Clock = SYSTEM_CLOCK,
    events: EventBus = DEFAULT_EVENTS,
) -> ConnectGate:
    """The one gate of this event loop for ``destination``, made on first use with these
    arguments, and the same one for as long as anything holds it (a pool, a connector, a
    connection: hold the gate you are given). Asking again with other options raises
    :class:`~resilient.errors.ConfigurationError`: two pools that disagree on how to treat one
    destination are a configuration error, not something to settle silently."""
    key = (asyncio.get_running_loop(), destination)
    gate = _SHARED.get(key)
    if gate is None:
        gate = _SHARED[key] = ConnectGate(destination, options, clock=clock, events=events)
    elif gate.options != options:
        raise ConfigurationError(
            f"shared_gate({destination!r}): its gate was made with {gate.options}, "
            f"asked again with {options}"
        )
    return gate

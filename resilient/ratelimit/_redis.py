"""A global rate limit shared through Redis: GCRA in one Lua script per decision.

Every decision is one ``EVALSHA`` of :data:`GCRA_SCRIPT` (``_script.py``), which mirrors
:func:`resilient.ratelimit._gcra.gcra` line for line (integer microseconds), on exactly one key
(``prefix + key``, passed in ``KEYS``, so the script is Redis Cluster safe). The key holds the
theoretical arrival time and expires when the key is back to its full allowance, so idle keys
vanish by themselves.

Time comes from the Redis server (``TIME`` inside the script) by default, so instances whose
clocks disagree still share one limit. ``RedisLimiterOptions.time_source="clock"`` sends the
injected clock's time instead, as ``int(clock.monotonic() * 1_000_000)`` microseconds exactly
as :class:`~resilient.ratelimit.LocalLimiter` reads it (virtual time in tests; every instance
sharing the keys must then share that clock).

Concurrent callers in one process are coalesced: each caller queues its command and waits; one
flusher task sends everything queued as one pipeline (non-transactional) as soon as the previous
round trip has finished. A lone caller is sent at once, so sequential decisions cost one round
trip each, with no timer anywhere on the path.

Needs Redis >= 5.0 (scripts replicate their effects, so a script may read ``TIME`` and then
write) and redis-py >= 5.3.

Faults are raised, never turned into denials: a connection error, a timeout, an error reply or a
reply that is not what the script returns raises :class:`RedisLimiterUnavailable` (a
:class:`~resilient.ratelimit.LimiterUnavailable`), for a guard to degrade on.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import redis.asyncio as aredis
from redis.asyncio.connection import AbstractConnection

from resilient._validate import Instance, Integer, check
from resilient.clock import SYSTEM_CLOCK, Clock
from resilient.errors import (
    ArgumentTypeError,
    ArgumentValueError,
    ConfigurationError,
    RedisLimiterUnavailable,
)
from resilient.events import DEFAULT_EVENTS, Emitter, EventBus
from resilient.ratelimit._events import (
    REDIS_EVENT_SOURCE,
    RedisClientUnsupported,
    RedisRoundTripFailed,
    RedisScriptReloaded,
)
from resilient.ratelimit._gcra import NEVER
from resilient.ratelimit._options import DEFAULT_REDIS_LIMITER_OPTIONS, RedisLimiterOptions
from resilient.ratelimit._resp import (
    COST_ARGS,
    Reply,
    array_head,
    bulk,
    is_noscript,
    open_streams,
    read_replies,
)
from resilient.ratelimit._script import GCRA_SCRIPT, MAX_EXACT_US, SCRIPT_SHA, stored_key
from resilient.ratelimit._types import (
    Decision,
    DecisionSource,
    Rate,
    RateLookup,
    never_decision,
    new_decision,
    note_store_silence,
    rate_for_key,
)

__all__ = ["GCRA_SCRIPT", "RedisLimiter", "RedisLimiterStats"]

_PRIMARY = DecisionSource.PRIMARY

_MAX_CACHED_RATES = 1024
"""Packed arguments are cached per distinct rate, up to this many (then the cache restarts)."""


@dataclass(slots=True)
class RedisLimiterStats:
    """Counters of one :class:`RedisLimiter` since it was made."""

    decisions: int = 0
    """Decisions answered by Redis."""
    round_trips: int = 0
    """Pipelines sent (one per batch; a script reload adds one)."""
    script_loads: int = 0
    """``SCRIPT LOAD`` calls: one at the first connection, one per ``NOSCRIPT`` after that."""
    failures: int = 0
    """Decisions that raised :class:`RedisLimiterUnavailable`."""


class RedisLimiter:
    """GCRA rate limits kept in Redis, shared by every instance that uses the same keys.

    ``redis_or_url``: a ``redis.asyncio.Redis`` client, or a URL for
    ``redis.asyncio.Redis.from_url`` (``redis://:password@host:port/db``, ``rediss://`` for TLS,
    ``unix://``). A client made from a URL belongs to the limiter and :meth:`aclose` closes it.
    A client passed in belongs to the caller: the limiter borrows one connection from its pool
    for its lifetime and :meth:`aclose` gives it back; the caller closes the client.

    ``rate`` is the default rate; ``rates`` gives per-key rates (a mapping, or a function that
    returns a key's rate or None for the default), and ``decide(rate=...)`` overrides both for
    one call. Keys are stored as ``options.prefix + key`` (UTF-8).

    Use it from one event loop; close it with :meth:`aclose` (or ``async with``).
    """

    never_waits: ClassVar[bool] = False
    """Every decision waits for a round trip to Redis."""

    def __init__(
        self,
        redis_or_url: aredis.Redis | str,
        rate: Rate,
        options: RedisLimiterOptions = DEFAULT_REDIS_LIMITER_OPTIONS,
        *,
        rates: RateLookup | None = None,
        clock: Clock = SYSTEM_CLOCK,
        events: EventBus = DEFAULT_EVENTS,
    ) -> None:
        check("RedisLimiter.rate", rate, Instance(Rate, "a Rate"))
        check(
            "RedisLimiter.options", options, Instance(RedisLimiterOptions, "a RedisLimiterOptions")
        )
        if rates is not None and not (isinstance(rates, Mapping) or callable(rates)):
            raise ArgumentTypeError(
                f"RedisLimiter.rates must be a mapping or a callable, got {rates!r}"
            )
        if isinstance(redis_or_url, str):
            self._client: aredis.Redis = aredis.Redis.from_url(redis_or_url)
            self._owns_client = True
        elif isinstance(redis_or_url, aredis.Redis):
            self._client = redis_or_url
            self._owns_client = False
        else:
            raise ArgumentTypeError(
                "RedisLimiter.redis_or_url must be a redis.asyncio.Redis or a URL, "
                f"got {redis_or_url!r}"
            )
        self.rate = rate
        self.options = options
        self.stats = RedisLimiterStats()
        self._rates = rates
        self._clock = clock
        self._emit = Emitter(REDIS_EVENT_SOURCE, events, clock)
        self._prefix = options.prefix.encode("utf-8", "surrogatepass")
        self._clock_time = options.time_source == "clock"
        self._margin_arg = bulk(b"%d" % math.ceil(options.key_ttl_margin * 1000))
        self._head = array_head(9 if self._clock_time else 8, SCRIPT_SHA)
        self._rate_args: dict[Rate, tuple[bytes, int]] = {}
        self._pending: list[_Request] = []
        self._wakeup: asyncio.Future[None] | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connection: AbstractConnection | None = None
        self._in_flight_since: float | None = None
        self._closed = False

    @property
    def pending(self) -> int:
        """Decisions queued for the next round trip whose callers still wait."""
        return sum(1 for request in self._pending if not request.future.done())

    def rate_for(self, key: str) -> Rate:
        """The rate ``key`` is limited to when ``decide`` is not given one."""
        return rate_for_key(self._rates, self.rate, key)

    async def decide(self, key: str, *, cost: int = 1, rate: Rate | None = None) -> Decision:
        """Decide one request of ``cost`` units for ``key`` (source PRIMARY).

        Raises :class:`RedisLimiterUnavailable` when Redis cannot answer; never answers
        "limited" because of a fault. A caller cancelled while waiting leaves nothing behind:
        its request is dropped if not yet sent, its reply ignored if already sent (Redis then
        has counted it, as it would have for a caller that gave up on a slow answer).
        """
        if self._closed:
            raise RedisLimiterUnavailable("RedisLimiter is closed")
        if type(key) is not str:
            raise ArgumentTypeError(f"RedisLimiter.decide(key) must be a str, got {key!r:.100}")
        if rate is None:
            rate = self.rate_for(key)
        command, largest = self._command(key, cost, rate)
        loop = asyncio.get_running_loop()
        self._notify_flusher(loop)
        future: asyncio.Future[Reply] = loop.create_future()
        request = _Request(command, future)
        self._pending.append(request)
        try:
            allowed, remaining, retry_after_us, reset_after_us = await future
        except asyncio.CancelledError as cancelled:
            self._forget(request)
            note_store_silence(cancelled, self._silent_for())  # for a guard's budget
            raise
        if retry_after_us == NEVER:
            return never_decision(remaining, reset_after_us / 1e6, cost, largest)
        return new_decision(
            allowed == 1, remaining, retry_after_us / 1e6, reset_after_us / 1e6, _PRIMARY, ""
        )

    async def aclose(self) -> None:
        """Stop the flusher (waiting callers get :class:`RedisLimiterUnavailable`), give the
        borrowed connection back, and close the client if the limiter made it from a URL."""
        self._closed = True
        flusher, self._flusher = self._flusher, None
        if flusher is not None and not flusher.done():
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher
        self._fail_all(self._pending, "RedisLimiter is closed")
        self._pending = []
        connection, self._connection = self._connection, None
        if connection is not None:
            await self._client.connection_pool.release(connection)
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> RedisLimiter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return (
            f"RedisLimiter(rate={self.rate}, prefix={self.options.prefix!r}, "
            f"time_source={self.options.time_source!r})"
        )

    # -- the caller's side ----------------------------------------------------------------------

    def _command(self, key: str, cost: int, rate: Rate) -> tuple[bytes, int]:
        """The packed ``EVALSHA`` of one decision, validated before anything is queued, and
        the largest cost the rate allows."""
        rate_args = self._rate_args.get(rate)
        if rate_args is None:
            rate_args = self._cache_rate(rate)
        packed_rate, largest = rate_args
        if type(cost) is not int or not 0 <= cost <= largest:
            check("RedisLimiter.decide(cost)", cost, _COST)
            cost = largest + 1  # never allowed, whatever it is: the script says so exactly
        packed_key = self._prefix + stored_key(key)
        cost_arg = COST_ARGS[cost] if cost < len(COST_ARGS) else bulk(b"%d" % cost)
        command = b"%s$%d\r\n%s\r\n%s%s%s" % (
            self._head,
            len(packed_key),
            packed_key,
            packed_rate,
            cost_arg,
            self._margin_arg,
        )
        if self._clock_time:
            now_us = int(self._clock.monotonic() * 1_000_000)
            if not 0 <= now_us < MAX_EXACT_US:
                raise ArgumentValueError(
                    f"RedisLimiter.clock time must be in [0, 2^52) us, got {now_us} us"
                )
            command += bulk(b"%d" % now_us)
        return command, largest

    def _cache_rate(self, rate: Rate) -> tuple[bytes, int]:
        if not isinstance(rate, Rate):
            raise ArgumentTypeError(f"RedisLimiter.decide(rate) must be a Rate, got {rate!r}")
        if len(self._rate_args) >= _MAX_CACHED_RATES:
            self._rate_args.clear()
        emission_us, tolerance_us = rate.emission_us, rate.tolerance_us
        packed = bulk(b"%d" % emission_us) + bulk(b"%d" % tolerance_us)
        self._rate_args[rate] = (packed, rate.largest_cost)
        return packed, rate.largest_cost

    def _notify_flusher(self, loop: asyncio.AbstractEventLoop) -> None:
        flusher = self._flusher
        if flusher is None or flusher.done():
            if self._loop is not None and self._loop is not loop:
                raise RuntimeError("a RedisLimiter serves the one event loop it first ran in")
            self._loop = loop
            self._flusher = loop.create_task(self._flush_forever(), name=f"{self!r}.flusher")
            return
        if self._loop is not loop:
            raise RuntimeError("a RedisLimiter serves the one event loop it first ran in")
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    def _silent_for(self) -> float:
        """Seconds since the round trip now in flight was sent (0 when none is)."""
        since = self._in_flight_since
        return 0.0 if since is None else max(0.0, self._clock.monotonic() - since)

    def _forget(self, request: _Request) -> None:
        """Drop a cancelled caller's request (if not yet sent) and mark its outcome seen."""
        with contextlib.suppress(ValueError):
            self._pending.remove(request)
        future = request.future
        if future.done() and not future.cancelled():
            future.exception()

    # -- the flusher's side ---------------------------------------------------------------------

    async def _flush_forever(self) -> None:
        """Send whatever is queued, one pipeline per round trip, until the limiter closes."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                if not self._pending:
                    self._wakeup = loop.create_future()
                    await self._wakeup
                    self._wakeup = None
                batch = self._take_batch()
                if batch:
                    await self._send(batch)
                    # Let the callers just answered run before the next round trip starts, so
                    # that their work is not counted as Redis's silence (_silent_for).
                    await asyncio.sleep(0)
        except asyncio.CancelledError:
            self._fail_all(self._pending, "RedisLimiter is closed")
            self._pending = []
            raise

    def _take_batch(self) -> list[_Request]:
        pending = self._pending
        live = [request for request in pending if not request.future.done()]
        limit = self.options.max_batch
        if len(live) <= limit:
            self._pending = []
            return live
        self._pending = live[limit:]
        return live[:limit]

    async def _send(self, batch: list[_Request]) -> None:
        """One pipelined round trip for ``batch``; every caller gets a reply or a fault."""
        try:
            replies = await self._timed_round_trip([request.command for request in batch])
        except asyncio.CancelledError:
            self._fail_all(batch, "RedisLimiter is closed")
            await self._drop_connection()
            raise
        except ConfigurationError as error:
            # Not an outage: this redis-py is not one the limiter supports. Loud, every time.
            for request in batch:
                if not request.future.done():
                    self.stats.failures += 1
                    request.future.set_exception(error)
            await self._drop_connection()
            self._emit(RedisClientUnsupported(str(error)))
            return
        except Exception as error:
            reason = _describe(error)
            self._fail_all(batch, f"Redis round trip failed: {reason}", cause=error)
            await self._drop_connection()
            self._emit(RedisRoundTripFailed(reason, len(batch)))
            return
        stats = self.stats
        for request, reply in zip(batch, replies, strict=True):
            future = request.future
            if isinstance(reply, Exception):
                stats.failures += 1
                if not future.done():
                    refused = RedisLimiterUnavailable(f"Redis refused the decision: {reply}")
                    refused.__cause__ = reply
                    future.set_exception(refused)
            else:
                stats.decisions += 1
                if not future.done():
                    future.set_result(reply)

    async def _timed_round_trip(self, commands: list[bytes]) -> list[Reply | Exception]:
        """:meth:`_round_trip` within ``round_trip_timeout``, noting when it was sent (a caller
        cancelled meanwhile tells how long Redis has been silent: :meth:`_silent_for`)."""
        self._in_flight_since = self._clock.monotonic()
        try:
            async with asyncio.timeout(self.options.round_trip_timeout):
                return await self._round_trip(commands)
        finally:
            self._in_flight_since = None

    async def _round_trip(self, commands: list[bytes]) -> list[Reply | Exception]:
        reader, writer = await self._streams()
        self.stats.round_trips += 1
        writer.write(b"".join(commands))
        await writer.drain()
        replies = await read_replies(reader, len(commands))
        missing = [i for i, reply in enumerate(replies) if is_noscript(reply)]
        if missing:
            connection = self._connection
            assert connection is not None
            await self._load_script(connection, reloaded=True)
            self.stats.round_trips += 1
            writer.write(b"".join(commands[i] for i in missing))
            await writer.drain()
            for i, reply in zip(missing, await read_replies(reader, len(missing)), strict=True):
                replies[i] = reply
        return replies

    async def _streams(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """The borrowed connection's streams, connecting (and loading the script) if needed.

        redis-py does the handshake (TLS, AUTH, SELECT, HELLO); the decisions then go over its
        streams directly (``_resp.py`` says why, with the figures).
        """
        connection = self._connection
        if connection is None:
            pool = self._client.connection_pool
            connection = await pool.get_connection()  # type: ignore[no-untyped-call]
            self._connection = connection
            await self._load_script(connection, reloaded=False)
        elif not connection.is_connected:
            await connection.connect()  # type: ignore[no-untyped-call]
        return open_streams(connection)

    async def _load_script(self, connection: AbstractConnection, *, reloaded: bool) -> None:
        self.stats.script_loads += 1
        await connection.send_command("SCRIPT", "LOAD", GCRA_SCRIPT, check_health=False)
        sha = await connection.read_response()
        if isinstance(sha, str):
            sha = sha.encode()
        if sha != SCRIPT_SHA:
            raise RedisLimiterUnavailable(f"SCRIPT LOAD answered {sha!r}, not the script's SHA1")
        if reloaded:
            self._emit(RedisScriptReloaded("NOSCRIPT"))

    async def _drop_connection(self) -> None:
        """Close the connection after a failed round trip: its state is unknown. It reconnects
        on the next send (and the script is reloaded on ``NOSCRIPT`` if Redis restarted)."""
        connection = self._connection
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.disconnect(nowait=True)

    def _fail_all(self, requests: list[_Request], message: str, cause: Any = None) -> None:
        for request in requests:
            if not request.future.done():
                self.stats.failures += 1
                error = RedisLimiterUnavailable(message)
                error.__cause__ = cause
                request.future.set_exception(error)


_COST = Integer(min=0)


class _Request(NamedTuple):
    command: bytes
    future: asyncio.Future[Reply]


def _describe(error: BaseException) -> str:
    if isinstance(error, TimeoutError) and not str(error):
        return "timeout"
    return f"{type(error).__name__}: {error}"

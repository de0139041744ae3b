"""Circuit breakers of many processes sharing their state through Redis, without a Redis round
trip per call and without blocking the event loop.

Each process decides locally: a call never waits for Redis. A transition (opened, closed,
isolated) is *published*: one Lua call sets the key ``<prefix><name>`` to it, numbered by a
per-breaker version, and publishes it on the channel ``<prefix>transitions``. Every other
process subscribed there *follows* it (the reason says ``followed: ...``), and a process that
starts, or comes back after Redis was down, reads the keys of its breakers first. An open
circuit carries the seconds until probes, measured on Redis's clock, so a process that reads
it late waits only what is left (a half-open state is not published: each process probes on
its own timer, so a fleet sends at most ``half_open_max_calls`` probes per process).

Redis down never blocks or fails a call: publication is a write to a dictionary (the latest
transition of each breaker, so the memory is one entry per breaker), and two background tasks
(one publishes, one listens) do the round trips with a timeout. When Redis cannot be reached,
each breaker emits ``sync_lost`` and keeps deciding locally; its latest transition is
published, and the others' are read, once Redis answers (``sync_restored``). The last
transition published wins: versions order them, a follower applies only a newer one.

What comes from Redis is judged before it is used: a payload that is not one of ours (bad
JSON, an unknown state, a negative or non-finite delay) is logged and ignored, and a delay is
never longer than the follower's own ``reset_timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import uuid
from typing import TYPE_CHECKING, Any

import redis.asyncio as aredis
from redis.exceptions import RedisError

from resilient._validate import Instance, check
from resilient.breaker._events import BreakerSyncLost, BreakerSyncRestored
from resilient.breaker._options import DEFAULT_BREAKER_SYNC_OPTIONS, BreakerSyncOptions
from resilient.breaker._permit import ISOLATED, OPEN, BreakerState
from resilient.clock import SYSTEM_CLOCK, Clock

if TYPE_CHECKING:
    from resilient.breaker._breaker import CircuitBreaker

__all__ = ["BreakerSync"]

_log = logging.getLogger("resilient.breaker")

_PUBLISH = """
local version = redis.call('INCR', KEYS[2])
local now = redis.call('TIME')
local payload = version .. ' ' .. now[1] .. '.' .. string.format('%06d', now[2]) .. ' ' .. ARGV[1]
redis.call('SET', KEYS[1], payload)
redis.call('PUBLISH', ARGV[2], payload)
return version
"""
"""Number, stamp, store and announce one transition, atomically: ``<version> <time> <json>``."""

_READ = """
local now = redis.call('TIME')
return {now[1] .. '.' .. string.format('%06d', now[2]), redis.call('MGET', unpack(KEYS))}
"""
"""Redis's clock and the last transition of each breaker, in one round trip."""

_FOLLOWED = {"open": OPEN, "closed": BreakerState.CLOSED, "isolated": ISOLATED}

_DOWN = (RedisError, OSError, asyncio.TimeoutError)


class BreakerSync:
    """Shares the transitions of the :class:`~resilient.breaker.CircuitBreaker`\\ s given it
    (``CircuitBreaker(..., sync=sync)``) with every process using the same Redis and prefix.

    ``redis`` is a URL or a ``redis.asyncio.Redis`` client (one this object does not close).
    The background tasks start with the first breaker made inside a running event loop (or
    :meth:`start`); :meth:`aclose` stops them. Use one from one event loop.
    """

    def __init__(
        self,
        redis: str | aredis.Redis,
        options: BreakerSyncOptions = DEFAULT_BREAKER_SYNC_OPTIONS,
        *,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        check("BreakerSync.redis", redis, Instance((str, aredis.Redis), "a URL or a Redis client"))
        self.options = check(
            "BreakerSync.options", options, Instance(BreakerSyncOptions, "a BreakerSyncOptions")
        )
        self._owned = isinstance(redis, str)
        self._redis: aredis.Redis = (
            aredis.Redis.from_url(
                redis,
                socket_timeout=options.round_trip_timeout,
                socket_connect_timeout=options.round_trip_timeout,
            )
            if isinstance(redis, str)
            else redis
        )
        self._clock = clock
        self.instance = uuid.uuid4().hex
        """This process's name in what it publishes (its own messages are not followed)."""
        self.channel = f"{options.prefix}transitions"
        self._breakers: dict[str, CircuitBreaker] = {}
        self._pending: dict[str, str] = {}
        self._seen: dict[str, int] = {}
        self._unread: set[str] = set()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._down_since: float | None = None
        self._publish = self._redis.register_script(_PUBLISH)
        self._read = self._redis.register_script(_READ)
        self._closed = False

    @property
    def down(self) -> bool:
        """Whether Redis could not be reached at the last attempt (the breakers decide
        locally)."""
        return self._down_since is not None

    def attach(self, breaker: CircuitBreaker) -> None:
        """Share ``breaker``'s transitions (called by the breaker it is given to)."""
        if breaker.name in self._breakers:
            raise ValueError(f"BreakerSync already shares a breaker named {breaker.name!r}")
        self._breakers[breaker.name] = breaker
        self._unread.add(breaker.name)
        self._start_if_running()

    def publish(
        self, breaker: CircuitBreaker, state: BreakerState, reason: str, open_for: float
    ) -> None:
        """Queue ``breaker``'s transition for publication (never waits: see the module doc)."""
        payload = {
            "breaker": breaker.name,
            "state": state.value,
            "reason": reason,
            "open_for": open_for if math.isfinite(open_for) else None,
            "origin": self.instance,
        }
        self._pending[breaker.name] = json.dumps(payload)
        self._wake.set()
        self._start_if_running()

    async def start(self) -> None:
        """Start the background tasks now (they also start with the first breaker attached
        or transition published inside a running event loop)."""
        self._start_if_running()

    async def aclose(self) -> None:
        """Stop the background tasks (unpublished transitions are dropped) and close the
        client if this object made it."""
        self._closed = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._owned:
            await self._redis.aclose()

    async def __aenter__(self) -> BreakerSync:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _start_if_running(self) -> None:
        if self._tasks or self._closed:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # started by the first attach or publication inside a loop
        self._tasks = [loop.create_task(self._publisher()), loop.create_task(self._listener())]

    # The two tasks -------------------------------------------------------------------------

    async def _publisher(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                while self._pending:
                    name, payload = next(iter(self._pending.items()))
                    version = await asyncio.wait_for(
                        self._publish(
                            keys=[self._key(name), f"{self._key(name)}:version"],
                            args=[payload, self.channel],
                        ),
                        self.options.round_trip_timeout,
                    )
                    if self._pending.get(name) is payload:
                        del self._pending[name]
                    self._seen[name] = max(self._seen.get(name, 0), int(version))
            except _DOWN as error:
                self._lost(error)
                await self._clock.sleep(self.options.retry_interval)
                self._wake.set()
            else:
                self._restored()

    async def _listener(self) -> None:
        while True:
            pubsub = self._redis.pubsub()
            try:
                await asyncio.wait_for(
                    pubsub.subscribe(self.channel), self.options.round_trip_timeout
                )
                self._unread.update(self._breakers)
                await self._catch_up()
                self._restored()
                while True:
                    if self._unread:
                        await self._catch_up()
                    message = await pubsub.get_message(
                        ignore_subscribe_messages=True, timeout=self.options.retry_interval
                    )
                    if message is not None and message.get("type") == "message":
                        self._apply(message["data"], None)
            except _DOWN as error:
                self._lost(error)
                await self._clock.sleep(self.options.retry_interval)
            finally:
                with contextlib.suppress(*_DOWN):
                    closing = pubsub.aclose()  # type: ignore[no-untyped-call]
                    await asyncio.wait_for(closing, self.options.round_trip_timeout)

    async def _catch_up(self) -> None:
        names = sorted(self._unread)
        if not names:
            return
        now, values = await asyncio.wait_for(
            self._read(keys=[self._key(name) for name in names]), self.options.round_trip_timeout
        )
        self._unread.difference_update(names)
        for value in values:
            if value is not None:
                self._apply(value, _number(now))

    # What comes from Redis -----------------------------------------------------------------

    def _apply(self, data: Any, now: float | None) -> None:
        """Follow one published transition (``now``: Redis's clock when it was read back,
        None for a message just published)."""
        try:
            text = data.decode() if isinstance(data, bytes) else str(data)
            version_text, stamp, body = text.split(" ", 2)
            version, at = int(version_text), _number(stamp)
            payload = json.loads(body)
            name, state = payload["breaker"], _FOLLOWED[payload["state"]]
            reason, origin, open_for = payload["reason"], payload["origin"], payload["open_for"]
            if not isinstance(reason, str) or not isinstance(origin, str):
                raise TypeError("reason and origin must be strings")
            if state is OPEN:
                open_for = _number(open_for)
                if open_for < 0:
                    raise ValueError(f"open_for must be >= 0, got {open_for!r}")
        except (ValueError, TypeError, KeyError, UnicodeDecodeError) as error:
            _log.warning(
                "breaker sync: ignored a transition that is not one of ours: %r (%s)", data, error
            )
            return
        breaker = self._breakers.get(name)
        if breaker is None or version <= self._seen.get(name, 0):
            return
        self._seen[name] = version
        if origin == self.instance:
            return
        if state is OPEN:
            waited = max(0.0, now - at) if now is not None else 0.0
            open_for = min(max(0.0, open_for - waited), breaker.options.reset_timeout)
        breaker._follow(state, reason, open_for if state is OPEN else 0.0)

    def _lost(self, error: BaseException) -> None:
        if self._down_since is not None:
            return
        self._down_since = self._clock.monotonic()
        what = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        for breaker in self._breakers.values():
            breaker._emit(BreakerSyncLost(breaker.name, what))

    def _restored(self) -> None:
        if self._down_since is None:
            return
        down_for = self._clock.monotonic() - self._down_since
        self._down_since = None
        for breaker in self._breakers.values():
            breaker._emit(BreakerSyncRestored(breaker.name, down_for))

    def _key(self, name: str) -> str:
        return f"{self.options.prefix}{name}"

    def __repr__(self) -> str:
        return f"BreakerSync(breakers={sorted(self._breakers)}, down={self.down})"


def _number(value: Any) -> float:
    """A finite float from what Redis or a payload holds (bytes, str or a number)."""
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise TypeError(f"not a number: {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"not a finite number: {value!r}")
    return number

"""Could RedisLimiter use redis-py's public API instead of its private fast path? Measured.

``RedisLimiter`` (resilient/ratelimit/_redis.py) borrows one redis-py connection and writes
hand-packed RESP to redis-py's private ``connection._reader`` / ``connection._writer``, parsing
the replies with its own regex codec. This benchmark puts prototypes that speak the same GCRA
script (``GCRA_SCRIPT``, same KEYS/ARGV: prefix+key; emission_us, tolerance_us, cost,
ttl_margin_ms) through public redis-py API only beside it, and judges every limiter against the
targets of bench_ratelimit.py:

- sequential ``decide``: <= 1.15x a raw ``client.evalsha(sha, 0)`` of ``return 1`` (the same
  parser)
- 64 concurrent tasks: >= 2x the decisions/s of the best ``limits.aio`` strategy (fixed or
  moving window; coredis storage, and redis-py storage with the same parser)

Limiters (each decision returns a ``Decision`` built the same way as RedisLimiter's; every
prototype bounds each round trip with ``asyncio.timeout`` as RedisLimiter does):

- ``RedisLimiter``: today's limiter, unchanged (its replies never go through redis-py's parser).
- ``public-call``: one ``await client.evalsha(sha, 1, key, ...)`` per decision; on NOSCRIPT,
  ``client.script_load`` and retry once.
- ``public-pipeline``: RedisLimiter's coalescing (callers queue futures, one flusher task sends
  everything queued as soon as the previous round trip is done, a lone caller at once, no
  timer); each batch is one ``client.pipeline(transaction=False)`` with ``pipe.evalsha`` per
  decision and ``await pipe.execute(raise_on_error=False)``.
- ``public-pipeline-1direct``: the same, but a batch of one goes through ``client.evalsha``.
- ``public-connection``: the same coalescing over one connection borrowed from the pool
  (``connection_pool.get_connection`` / ``release``), using the connection's public methods
  ``pack_commands``, ``send_packed_command`` and ``read_response``.
- ``public-connection-inline``: public-connection, except that a lone caller (nothing in
  flight, nothing queued) makes its round trip in its own task instead of handing it to the
  flusher task; callers arriving meanwhile queue and go out as one batch. A variant of the
  design, to price the hop to the flusher.

Peers: the raw ``EVALSHA`` above and ``limits.aio`` fixed/moving window, as bench_ratelimit.py.
Two bare references, sequential only, split the cost: ``bare client.evalsha(GCRA)`` is
public-call's ``EVALSHA`` with nothing around it, and ``bare connection EVALSHA(GCRA)`` is one
``pack_commands`` + ``send_packed_command`` + ``read_response`` on a borrowed connection, in the
caller's own task: the floor of any limiter built on those methods.

Parsers. redis-py uses hiredis whenever it is importable. To measure both parsers in one process
and in the same interleaved rounds, every redis-py client here is made with an explicit
``parser_class`` (a keyword ``Redis.from_url`` passes down to each ``Connection``):
``redis._parsers._AsyncHiredisParser`` for "hiredis", ``redis._parsers._AsyncRESP3Parser`` for
"python" (redis-py swaps in its RESP2 twin when protocol 2 is used). The classes are private
names; this is a benchmark knob, not something the library would do.

Run (from the repository root)::

    python3 -m venv .venv && .venv/bin/pip install -e '.[dev,bench]'
    .venv/bin/python bench/bench_redis_paths.py             # no hiredis: python parser only
    python3 -m venv .venv-hiredis && .venv-hiredis/bin/pip install -e '.[dev,bench]' hiredis
    .venv-hiredis/bin/python bench/bench_redis_paths.py     # both parsers, one interleaved run

``--parser python|hiredis|both`` picks parsers (default: both when hiredis is importable),
``--quick`` is a smoke run, ``--no-socket-timeout`` makes every redis-py client with
``socket_timeout=None`` (redis-py 8 defaults to 5 s, and then wraps each reply it reads in an
asyncio timeout: once per command of a pipeline). It starts its own redis-server on 127.0.0.1
(see chaos.servers).

Every figure is the median over rounds with its spread (min..max). Ratios: "med" is the ratio
of the medians, "best" the ratio of the best rounds (bench_ratelimit.py's rule), "per round"
the median (min..max) of the per-round ratios (contender and reference measured in the same
round). A target is PASS when both "med" and "best" meet it, FAIL when neither does, "mixed"
otherwise. The run also prints how much CPU other processes used meanwhile (a shared machine).

A last table splits the sequential cost: medians of per-round differences between contenders
(script and reply vs ``return 1``, ``client.evalsha``'s machinery, the limiter wrapper, the hop
to the flusher task, a one-command pipeline, redis-py's connection methods vs the hand codec),
and the 64-task cost per decision of each coalescing prototype over RedisLimiter's.

Before measuring, a correctness check runs every limiter against ``Rate(10, 60, burst=5)``: 10
sequential decisions must allow exactly 6 (with the same ``remaining`` sequence as
RedisLimiter), 20 concurrent ones on a fresh key exactly 6, and decisions must still be answered
after a ``SCRIPT FLUSH`` (the NOSCRIPT reload path), alone and in a batch. The exit status is 1
when that check fails; target verdicts are findings, not failures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import hashlib
import math
import os
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import redis
import redis.asyncio as aredis
from redis._parsers import _AsyncHiredisParser, _AsyncRESP3Parser
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import NoScriptError, RedisError, ResponseError
from redis.utils import HIREDIS_AVAILABLE

from chaos.servers import RedisServer
from resilient.ratelimit import (
    DEFAULT_REDIS_LIMITER_OPTIONS,
    Decision,
    DecisionSource,
    Rate,
    RedisLimiter,
    RedisLimiterOptions,
    RedisLimiterUnavailable,
)
from resilient.ratelimit._redis import GCRA_SCRIPT
from resilient.ratelimit._types import new_decision

TASKS = 64
"""Concurrent tasks of the throughput comparison."""

UNLIMITED = Rate(10**9, 1.0, burst=10**6)
"""A rate no benchmark loop reaches, so every contender does its full work and allows."""

SEQUENTIAL_TARGET = 1.15
CONCURRENT_TARGET = 2.0

PARSERS: dict[str, type[Any]] = {"python": _AsyncRESP3Parser, "hiredis": _AsyncHiredisParser}

SHA = hashlib.sha1(GCRA_SCRIPT.encode()).hexdigest().encode()

Op = Callable[[], Awaitable[Any]]


@dataclass
class Sizes:
    ops: int
    """Sequential calls per contender per round."""
    calls: int
    """Calls per contender per round with TASKS tasks (rounded down to a multiple of TASKS)."""
    rounds: int


SIZES = {
    "full": Sizes(ops=500, calls=4096, rounds=31),
    "quick": Sizes(ops=200, calls=1024, rounds=5),
}
"""Many short rounds rather than a few long ones: on a shared machine the load changes within
seconds, and short rounds keep each contender close in time to its reference."""


# -- the prototypes ------------------------------------------------------------------------------


def _decision(reply: Any) -> Decision:
    """The script's reply as a Decision, as RedisLimiter builds it; a bad reply is a fault."""
    try:
        allowed, remaining, retry_after_us, reset_after_us = reply
    except (TypeError, ValueError):
        raise RedisLimiterUnavailable(f"not a GCRA reply: {reply!r:.80}") from None
    if allowed != 1 and allowed != 0:
        raise RedisLimiterUnavailable(f"allowed flag {allowed!r} in a GCRA reply")
    return new_decision(
        allowed == 1,
        remaining,
        retry_after_us / 1e6,
        reset_after_us / 1e6,
        DecisionSource.PRIMARY,
        "",
    )


_COSTS = tuple(b"%d" % cost for cost in range(64))
_MAX_EXACT_US = 2**52


class _Prototype:
    """What every prototype shares: the script's arguments, cached per rate, as bytes."""

    def __init__(
        self,
        client: aredis.Redis,
        rate: Rate,
        *,
        prefix: str,
        options: RedisLimiterOptions = DEFAULT_REDIS_LIMITER_OPTIONS,
    ) -> None:
        self._client = client
        self.rate = rate
        self._prefix = prefix
        self._timeout = options.round_trip_timeout
        self._margin = b"%d" % math.ceil(options.key_ttl_margin * 1000)
        self._rate_args: dict[Rate, tuple[bytes, bytes, int]] = {}

    def _args(self, key: str, cost: int, rate: Rate | None) -> tuple[Any, ...]:
        """KEYS[1] and ARGV of one decision (after EVALSHA sha 1)."""
        if rate is None:
            rate = self.rate
        rate_args = self._rate_args.get(rate)
        if rate_args is None:
            emission, tolerance = rate.emission_us, rate.tolerance_us
            rate_args = (
                b"%d" % emission,
                b"%d" % tolerance,
                (_MAX_EXACT_US - tolerance) // emission,
            )
            self._rate_args[rate] = rate_args
        emission_arg, tolerance_arg, max_cost = rate_args
        if type(cost) is not int or not 0 <= cost <= max_cost:
            raise ValueError(f"cost must be an int in [0, {max_cost}], got {cost!r}")
        cost_arg = _COSTS[cost] if cost < 64 else b"%d" % cost
        return (self._prefix + key, emission_arg, tolerance_arg, cost_arg, self._margin)

    async def aclose(self) -> None:
        pass


class PublicCallLimiter(_Prototype):
    """One ``client.evalsha`` per decision: redis-py does the pooling, packing and parsing."""

    async def decide(self, key: str, *, cost: int = 1, rate: Rate | None = None) -> Decision:
        args = self._args(key, cost, rate)
        client = self._client
        try:
            async with asyncio.timeout(self._timeout):
                try:
                    reply = await client.evalsha(SHA, 1, *args)
                except NoScriptError:
                    await client.script_load(GCRA_SCRIPT)
                    reply = await client.evalsha(SHA, 1, *args)
        except (RedisError, OSError, TimeoutError) as error:
            raise RedisLimiterUnavailable(f"Redis call failed: {error!r}") from error
        return _decision(reply)


_Request = tuple[tuple[Any, ...], "asyncio.Future[Any]"]


class _Coalescing(_Prototype):
    """RedisLimiter's coalescing: callers queue, one flusher sends each batch in one round trip
    as soon as the previous one is done; a lone caller is sent at once, with no timer."""

    def __init__(self, client: aredis.Redis, rate: Rate, *, prefix: str) -> None:
        super().__init__(client, rate, prefix=prefix)
        self._max_batch = DEFAULT_REDIS_LIMITER_OPTIONS.max_batch
        self._pending: list[_Request] = []
        self._wakeup: asyncio.Future[None] | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._busy = False
        """A round trip is in flight (only public-connection-inline lets a caller make one)."""
        self.batches = 0
        self.batched = 0

    async def decide(self, key: str, *, cost: int = 1, rate: Rate | None = None) -> Decision:
        args = self._args(key, cost, rate)
        loop = asyncio.get_running_loop()
        flusher = self._flusher
        if flusher is None or flusher.done():
            self._flusher = loop.create_task(self._flush_forever())
        else:
            self._wake()
        future: asyncio.Future[Any] = loop.create_future()
        request = (args, future)
        self._pending.append(request)
        try:
            reply = await future
        except asyncio.CancelledError:
            with contextlib.suppress(ValueError):
                self._pending.remove(request)
            raise
        return _decision(reply)

    def _wake(self) -> None:
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    async def aclose(self) -> None:
        flusher, self._flusher = self._flusher, None
        if flusher is not None:
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher

    async def _flush_forever(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                while not self._pending or self._busy:
                    self._wakeup = loop.create_future()
                    await self._wakeup
                    self._wakeup = None
                live = [request for request in self._pending if not request[1].done()]
                batch, self._pending = live[: self._max_batch], live[self._max_batch :]
                if batch:
                    self._busy = True
                    try:
                        await self._send(batch)
                    finally:
                        self._busy = False
        except asyncio.CancelledError:
            _fail(self._pending, "closed")
            self._pending = []
            raise

    async def _send(self, batch: list[_Request]) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                replies = await self._round_trip([args for args, _ in batch])
        except asyncio.CancelledError:
            _fail(batch, "closed")
            raise
        except Exception as error:
            _fail(batch, f"Redis round trip failed: {error!r}", error)
            await self._after_failure()
            return
        self.batches += 1
        self.batched += len(batch)
        for (_, future), reply in zip(batch, replies, strict=True):
            if future.done():
                continue
            if isinstance(reply, Exception):
                refused = RedisLimiterUnavailable(f"Redis refused the decision: {reply}")
                refused.__cause__ = reply
                future.set_exception(refused)
            else:
                future.set_result(reply)

    async def _round_trip(self, batch: list[tuple[Any, ...]]) -> list[Any]:
        raise NotImplementedError

    async def _after_failure(self) -> None:
        pass


def _fail(requests: list[_Request], message: str, cause: BaseException | None = None) -> None:
    for _, future in requests:
        if not future.done():
            error = RedisLimiterUnavailable(message)
            error.__cause__ = cause
            future.set_exception(error)


class PublicPipelineLimiter(_Coalescing):
    """Coalescing; each batch is one non-transactional ``client.pipeline``. With
    ``direct_single``, a batch of one is a plain ``client.evalsha`` instead."""

    def __init__(
        self, client: aredis.Redis, rate: Rate, *, prefix: str, direct_single: bool
    ) -> None:
        super().__init__(client, rate, prefix=prefix)
        self._direct_single = direct_single

    async def _round_trip(self, batch: list[tuple[Any, ...]]) -> list[Any]:
        client = self._client
        if self._direct_single and len(batch) == 1:
            try:
                try:
                    return [await client.evalsha(SHA, 1, *batch[0])]
                except NoScriptError:
                    await client.script_load(GCRA_SCRIPT)
                    return [await client.evalsha(SHA, 1, *batch[0])]
            except ResponseError as error:
                return [error]
        replies = await self._pipeline(batch)
        missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if missing:
            await client.script_load(GCRA_SCRIPT)
            retried = await self._pipeline([batch[i] for i in missing])
            for i, reply in zip(missing, retried, strict=True):
                replies[i] = reply
        return replies

    async def _pipeline(self, batch: list[tuple[Any, ...]]) -> list[Any]:
        pipe = self._client.pipeline(transaction=False)
        for args in batch:
            # redis-py's ClusterPipeline refuses pipe.evalsha (a blocked name); the same
            # command as pipe.execute_command("EVALSHA", ...) works on Redis and RedisCluster.
            pipe.evalsha(SHA, 1, *args)
        return await pipe.execute(raise_on_error=False)


class PublicConnectionLimiter(_Coalescing):
    """Coalescing over one borrowed connection's public ``pack_commands`` /
    ``send_packed_command`` / ``read_response`` (redis-py's parser reads the replies)."""

    def __init__(self, client: aredis.Redis, rate: Rate, *, prefix: str) -> None:
        super().__init__(client, rate, prefix=prefix)
        self._connection: AbstractConnection | None = None

    async def _round_trip(self, batch: list[tuple[Any, ...]]) -> list[Any]:
        connection = self._connection
        if connection is None:
            connection = await self._client.connection_pool.get_connection()
            self._connection = connection
        replies = await self._exchange(connection, batch)
        missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if missing:
            await connection.send_command("SCRIPT", "LOAD", GCRA_SCRIPT, check_health=False)
            await connection.read_response()
            retried = await self._exchange(connection, [batch[i] for i in missing])
            for i, reply in zip(missing, retried, strict=True):
                replies[i] = reply
        return replies

    @staticmethod
    async def _exchange(connection: AbstractConnection, batch: list[tuple[Any, ...]]) -> list[Any]:
        packed = connection.pack_commands([(b"EVALSHA", SHA, 1, *args) for args in batch])
        await connection.send_packed_command(packed, check_health=False)
        replies: list[Any] = []
        for _ in batch:
            try:
                replies.append(await connection.read_response())
            except ResponseError as error:  # the reply was read whole: the stream is in step
                replies.append(error)
        return replies

    async def _after_failure(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await self._connection.disconnect(nowait=True)

    async def aclose(self) -> None:
        await super().aclose()
        connection, self._connection = self._connection, None
        if connection is not None:
            await self._client.connection_pool.release(connection)


class PublicConnectionInlineLimiter(PublicConnectionLimiter):
    """public-connection, except that a lone caller (no round trip in flight, nothing queued)
    makes its round trip in its own task, with no hop to the flusher task; callers arriving
    meanwhile queue and go out together as soon as it is done. Not today's design: a variant
    to see what the flusher hop costs a sequential caller."""

    async def decide(self, key: str, *, cost: int = 1, rate: Rate | None = None) -> Decision:
        if self._busy or self._pending:
            return await super().decide(key, cost=cost, rate=rate)
        args = self._args(key, cost, rate)
        self._busy = True
        try:
            async with asyncio.timeout(self._timeout):
                (reply,) = await self._round_trip([args])
        except Exception as error:  # a cancelled read already dropped the connection
            await self._after_failure()
            raise RedisLimiterUnavailable(f"Redis round trip failed: {error!r}") from error
        finally:
            self._busy = False
            if self._pending:
                self._wake()
        self.batches += 1
        self.batched += 1
        if isinstance(reply, Exception):
            raise RedisLimiterUnavailable(f"Redis refused the decision: {reply}") from reply
        return _decision(reply)


LIMITER_KINDS = (
    "RedisLimiter",
    "public-call",
    "public-pipeline",
    "public-pipeline-1direct",
    "public-connection",
    "public-connection-inline",
)


def make_limiter(kind: str, client: aredis.Redis, rate: Rate, prefix: str) -> Any:
    if kind == "RedisLimiter":
        return RedisLimiter(client, rate, RedisLimiterOptions(prefix=prefix))
    if kind == "public-call":
        return PublicCallLimiter(client, rate, prefix=prefix)
    if kind == "public-pipeline":
        return PublicPipelineLimiter(client, rate, prefix=prefix, direct_single=False)
    if kind == "public-pipeline-1direct":
        return PublicPipelineLimiter(client, rate, prefix=prefix, direct_single=True)
    if kind == "public-connection":
        return PublicConnectionLimiter(client, rate, prefix=prefix)
    if kind == "public-connection-inline":
        return PublicConnectionInlineLimiter(client, rate, prefix=prefix)
    raise ValueError(kind)


CLIENT_OPTIONS: dict[str, Any] = {}
"""Extra keywords for every redis-py client (``--no-socket-timeout`` adds socket_timeout=None)."""


def new_client(url: str, parser: str) -> aredis.Redis:
    return aredis.Redis.from_url(
        url, max_connections=TASKS + 4, parser_class=PARSERS[parser], **CLIENT_OPTIONS
    )


async def parser_in_use(client: aredis.Redis) -> str:
    """The parser class of a live connection of ``client`` (a private attribute: a check)."""
    pool = client.connection_pool
    connection = await pool.get_connection()
    try:
        return type(getattr(connection, "_parser", None)).__name__
    finally:
        await pool.release(connection)


# -- correctness ---------------------------------------------------------------------------------


async def check_correctness(url: str, parsers: list[str]) -> bool:
    """Every limiter on Rate(10, 60, burst=5): same allowances as RedisLimiter, NOSCRIPT safe."""
    rate = Rate(10, 60.0, burst=5)
    admin = aredis.Redis.from_url(url)
    ok = True
    reference: list[int] | None = None
    print(f"Correctness, rate {rate}: expect 6 allowed of 10 sequential, 6 of 20 concurrent")
    try:
        for parser in parsers:
            for kind in LIMITER_KINDS:
                client = new_client(url, parser)
                limiter = make_limiter(kind, client, rate, f"check:{uuid.uuid4().hex}:")
                try:
                    sequence = [await limiter.decide("seq") for _ in range(10)]
                    allowed = [decision.allowed for decision in sequence]
                    remaining = [decision.remaining for decision in sequence]
                    burst = await asyncio.gather(*(limiter.decide("burst") for _ in range(20)))
                    burst_allowed = sum(decision.allowed for decision in burst)
                    retry_after = sequence[6].retry_after
                    await admin.script_flush()
                    alone = await limiter.decide("after-flush-alone")
                    await admin.script_flush()
                    batch = await asyncio.gather(
                        *(limiter.decide(f"after-flush-{i}") for i in range(8))
                    )
                    survived = alone.allowed and all(decision.allowed for decision in batch)
                except Exception as error:
                    print(f"  {kind} [{parser}]: FAILED with {error!r}")
                    ok = False
                    continue
                finally:
                    await limiter.aclose()
                    await client.aclose()
                if reference is None:
                    reference = remaining
                good = (
                    allowed == [True] * 6 + [False] * 4
                    and burst_allowed == 6
                    and remaining == reference
                    and 5.9 < retry_after <= 6.0
                    and survived
                )
                ok = ok and good
                print(
                    f"  {kind + ' [' + parser + ']':34} sequential {sum(allowed)}/10 allowed, "
                    f"remaining {remaining}, first retry_after {retry_after:.4f} s; "
                    f"concurrent {burst_allowed}/20; after SCRIPT FLUSH "
                    f"{'answered' if survived else 'WRONG'}: {'OK' if good else 'MISMATCH'}"
                )
    finally:
        await admin.aclose()
    print()
    return ok


# -- measuring -----------------------------------------------------------------------------------


@dataclass
class Contender:
    name: str
    parser: str
    """"python", "hiredis", or "any" (coredis, which has its own parser)."""
    role: str
    """"limiter" (judged), "raw" (the sequential reference), "peer" (limits.aio), or "ref" (a
    bare call without any limiter around it, sequential only: for the cost breakdown)."""
    op: Op
    limiter: Any = None
    client: aredis.Redis | None = None

    @property
    def label(self) -> str:
        return f"{self.name} [{self.parser}]"


@dataclass
class Results:
    sequential: dict[str, list[float]] = field(default_factory=dict)
    """Per contender label: microseconds per call, one value per round."""
    concurrent: dict[str, list[float]] = field(default_factory=dict)
    """Per contender label: decisions per second with TASKS tasks, one value per round."""
    batch_sizes: dict[str, float] = field(default_factory=dict)


async def sequential_rounds(
    contenders: list[Contender], ops: int, rounds: int
) -> dict[str, list[float]]:
    """Microseconds per sequential call per round; the contenders take turns within every
    round, in reversed order every other round."""
    for contender in contenders:  # warm up: connections, caches, script loads
        for _ in range(min(ops, 200)):
            await contender.op()
    samples: dict[str, list[float]] = {contender.label: [] for contender in contenders}
    order = list(contenders)
    for _ in range(rounds):
        for contender in order:
            op = contender.op
            gc.collect()
            start = time.perf_counter()
            for _ in range(ops):
                await op()
            samples[contender.label].append((time.perf_counter() - start) / ops * 1e6)
        order.reverse()
    return samples


async def concurrent_rounds(
    contenders: list[Contender], calls: int, rounds: int
) -> dict[str, list[float]]:
    """Calls per second with TASKS tasks calling at once (wall time / calls), interleaved the
    same way."""
    per_task = max(1, calls // TASKS)

    async def run(op: Op) -> float:
        async def worker() -> None:
            for _ in range(per_task):
                await op()

        gc.collect()
        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(TASKS)))
        return per_task * TASKS / (time.perf_counter() - start)

    for contender in contenders:
        await run(contender.op)
    samples: dict[str, list[float]] = {contender.label: [] for contender in contenders}
    order = list(contenders)
    for _ in range(rounds):
        for contender in order:
            samples[contender.label].append(await run(contender.op))
        order.reverse()
    return samples


_BARE_ARGS = (
    b"%d" % UNLIMITED.emission_us,
    b"%d" % UNLIMITED.tolerance_us,
    b"1",
    b"0",
)
"""ARGV of a decision at UNLIMITED, for the bare references."""


async def _bare_exchange(connection: AbstractConnection, args: tuple[Any, ...]) -> Any:
    """One EVALSHA of the GCRA script on a borrowed connection, packed per call, no wrapper:
    the floor of any design built on the connection's public methods."""
    await connection.send_packed_command(
        connection.pack_commands([(b"EVALSHA", SHA, 1, *args)]), check_health=False
    )
    return await connection.read_response()


def _limits_hit(strategy: Any, item: Any, *, key: str) -> Op:
    async def hit() -> bool:
        return bool(await strategy.hit(item, "bench", key))

    return hit


async def build_contenders(
    url: str, parsers: list[str], closers: list[Callable[[], Awaitable[Any]]]
) -> list[Contender]:
    from limits import RateLimitItemPerSecond
    from limits.aio.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter
    from limits.storage import storage_from_string

    contenders: list[Contender] = []
    storage_url = url.replace("redis://", "async+redis://")
    item = RateLimitItemPerSecond(10**9)
    run = uuid.uuid4().hex
    for parser in parsers:
        client = new_client(url, parser)
        closers.append(client.aclose)
        sha = await client.script_load("return 1")
        await client.script_load(GCRA_SCRIPT)
        contenders.append(
            Contender("raw EVALSHA", parser, "raw", partial(client.evalsha, sha, 0), None, client)
        )
        args = (f"bench:{run}:{parser}:bare:key", *_BARE_ARGS)
        contenders.append(
            Contender(
                "bare client.evalsha(GCRA)", parser, "ref", partial(client.evalsha, SHA, 1, *args)
            )
        )
        bare_client = new_client(url, parser)
        connection = await bare_client.connection_pool.get_connection()
        closers.append(bare_client.aclose)
        closers.append(partial(bare_client.connection_pool.release, connection))
        contenders.append(
            Contender(
                "bare connection EVALSHA(GCRA)",
                parser,
                "ref",
                partial(_bare_exchange, connection, args),
            )
        )
        for kind in LIMITER_KINDS:
            client = new_client(url, parser)
            limiter = make_limiter(kind, client, UNLIMITED, f"bench:{run}:{parser}:{kind}:")
            closers.append(client.aclose)
            closers.append(limiter.aclose)  # runs first: closers are called in reverse
            contenders.append(
                Contender(kind, parser, "limiter", partial(limiter.decide, "key"), limiter)
            )
        storage = storage_from_string(
            storage_url, implementation="redispy", parser_class=PARSERS[parser], **CLIENT_OPTIONS
        )
        for name, strategy in (
            ("limits.aio fixed window (redis-py)", FixedWindowRateLimiter(storage)),
            ("limits.aio moving window (redis-py)", MovingWindowRateLimiter(storage)),
        ):
            op = _limits_hit(strategy, item, key=f"{name}:{parser}")
            contenders.append(Contender(name, parser, "peer", op))
    coredis_storage = storage_from_string(storage_url)
    for name, strategy in (
        ("limits.aio fixed window (coredis)", FixedWindowRateLimiter(coredis_storage)),
        ("limits.aio moving window (coredis)", MovingWindowRateLimiter(coredis_storage)),
    ):
        contenders.append(Contender(name, "any", "peer", _limits_hit(strategy, item, key=name)))
    return contenders


# -- output --------------------------------------------------------------------------------------


def _spread(values: list[float], fmt: str) -> str:
    return f"{format(min(values), fmt)}..{format(max(values), fmt)}"


def _verdict(median_ok: bool, best_ok: bool) -> str:
    if median_ok and best_ok:
        return "PASS"
    if not median_ok and not best_ok:
        return "FAIL"
    return "mixed (best " + ("PASS" if best_ok else "FAIL") + ")"


def _print_table(header: tuple[str, ...], lines: list[tuple[str, ...]], right: set[int]) -> None:
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header))]
    for index, line in enumerate([header, *lines]):
        cells = [
            cell.rjust(width) if column in right else cell.ljust(width)
            for column, (cell, width) in enumerate(zip(line, widths, strict=True))
        ]
        print("  ".join(cells).rstrip())
        if index == 0:
            print("  ".join("-" * width for width in widths))


def report(contenders: list[Contender], parsers: list[str], results: Results) -> None:
    print(
        f"Sequential: microseconds per decision, median and min..max of {_rounds(results)} "
        f"rounds; ratio to raw EVALSHA of the same parser (target <= {SEQUENTIAL_TARGET:.2f}x)"
    )
    header = ("contender", "median us", "min..max", "ratio med", "best", "per round", "target")
    lines: list[tuple[str, ...]] = []
    for parser in parsers:
        raw = results.sequential[f"raw EVALSHA [{parser}]"]
        for contender in contenders:
            if contender.parser not in (parser, "any"):
                continue
            if contender.parser == "any" and parser != parsers[0]:
                continue
            us = results.sequential[contender.label]
            per_round = [ours / theirs for ours, theirs in zip(us, raw, strict=True)]
            ratio_med = statistics.median(us) / statistics.median(raw)
            ratio_best = min(us) / min(raw)
            verdict = ""
            if contender.role == "limiter":
                verdict = _verdict(ratio_med <= SEQUENTIAL_TARGET, ratio_best <= SEQUENTIAL_TARGET)
            lines.append(
                (
                    contender.label,
                    f"{statistics.median(us):.1f}",
                    _spread(us, ".1f"),
                    f"{ratio_med:.3f}x",
                    f"{ratio_best:.3f}x",
                    f"{statistics.median(per_round):.2f} ({_spread(per_round, '.2f')})",
                    verdict,
                )
            )
        lines.append(("",) * len(header))
    _print_table(header, lines[:-1], right={1, 2, 3, 4, 5})

    print(
        f"\n{TASKS} concurrent tasks: decisions per second, median and min..max of "
        f"{_rounds(results)} rounds; ratio to the best limits.aio usable with that parser "
        f"(coredis or redis-py storage, by median; target >= {CONCURRENT_TARGET:.2f}x)"
    )
    header = ("contender", "median /s", "min..max", "us/op", "ratio med", "best", "per round")
    header += ("target", "batch")
    lines = []
    for parser in parsers:
        peers = [
            contender
            for contender in contenders
            if contender.role == "peer" and contender.parser in (parser, "any")
        ]
        best_peer = max(
            peers, key=lambda contender: statistics.median(results.concurrent[contender.label])
        )
        peer_rates = results.concurrent[best_peer.label]
        for contender in contenders:
            if contender.parser not in (parser, "any") or contender.role == "ref":
                continue
            if contender.parser == "any" and parser != parsers[0]:
                continue
            rates = results.concurrent[contender.label]
            per_round = [ours / theirs for ours, theirs in zip(rates, peer_rates, strict=True)]
            ratio_med = statistics.median(rates) / statistics.median(peer_rates)
            ratio_best = max(rates) / max(peer_rates)
            verdict = ""
            if contender.role == "limiter":
                verdict = _verdict(ratio_med >= CONCURRENT_TARGET, ratio_best >= CONCURRENT_TARGET)
            batch = results.batch_sizes.get(contender.label)
            lines.append(
                (
                    contender.label + (" <- best limits" if contender is best_peer else ""),
                    f"{statistics.median(rates):,.0f}",
                    _spread(rates, ",.0f"),
                    f"{1e6 / statistics.median(rates):.1f}",
                    f"{ratio_med:.2f}x",
                    f"{ratio_best:.2f}x",
                    f"{statistics.median(per_round):.2f} ({_spread(per_round, '.2f')})",
                    verdict,
                    "" if batch is None else f"{batch:.1f}",
                )
            )
        lines.append(("",) * len(header))
    _print_table(header, lines[:-1], right={1, 2, 3, 4, 5, 6, 8})
    print(
        "\nus/op = 1e6 / median rate. batch = mean decisions per round trip of a coalescing "
        "limiter over its 64-task rounds."
    )


BREAKDOWN = (
    (
        "GCRA script, 4-int reply, 5 args vs `return 1`",
        "bare client.evalsha(GCRA)",
        "raw EVALSHA",
    ),
    (
        "client.evalsha machinery (pool, retry, callbacks)",
        "bare client.evalsha(GCRA)",
        "bare connection EVALSHA(GCRA)",
    ),
    ("limiter wrapper (timeout, args, Decision)", "public-call", "bare client.evalsha(GCRA)"),
    ("hop to the flusher task + queue", "public-connection", "public-connection-inline"),
    ("pipeline for a batch of one vs evalsha", "public-pipeline", "public-pipeline-1direct"),
    (
        "pack_commands/read_response vs hand codec",
        "public-connection",
        "RedisLimiter",
    ),
    (
        "inline limiter over the bare connection",
        "public-connection-inline",
        "bare connection EVALSHA(GCRA)",
    ),
)
"""Sequential cost differences worth seeing: (what, contender, minus contender)."""


def breakdown(parsers: list[str], results: Results) -> None:
    print(
        "\nSequential cost breakdown: microseconds, median of the per-round differences (min..max)"
    )
    header = ("what", "difference", *parsers)
    lines = []
    for what, ours, theirs in BREAKDOWN:
        cells = []
        for parser in parsers:
            mine = results.sequential[f"{ours} [{parser}]"]
            other = results.sequential[f"{theirs} [{parser}]"]
            differences = [a - b for a, b in zip(mine, other, strict=True)]
            cells.append(f"{statistics.median(differences):+.1f} ({_spread(differences, '+.1f')})")
        lines.append((what, f"{ours} - {theirs}", *cells))
    for name in ("public-pipeline", "public-connection", "public-connection-inline"):
        cells = []
        for parser in parsers:
            theirs = statistics.median(results.concurrent[f"RedisLimiter [{parser}]"])
            mine = statistics.median(results.concurrent[f"{name} [{parser}]"])
            cells.append(f"{1e6 / mine - 1e6 / theirs:+.1f}")
        lines.append((f"{TASKS} tasks, us/op (medians)", f"{name} - RedisLimiter", *cells))
    _print_table(header, lines, right=set(range(2, 2 + len(parsers))))


def _rounds(results: Results) -> int:
    return len(next(iter(results.sequential.values())))


def _batch_counts(limiter: Any) -> tuple[int, int]:
    """(round trips, decisions) a coalescing limiter has made so far; (0, 0) for the others."""
    if isinstance(limiter, _Coalescing):
        return limiter.batches, limiter.batched
    if isinstance(limiter, RedisLimiter):
        return limiter.stats.round_trips, limiter.stats.decisions
    return 0, 0


class CpuMeter:
    """CPU seconds the rest of the machine used while we measured (Linux /proc; else None):
    all busy CPU time, minus this process's and the redis-server's."""

    def __init__(self, server_pid: int | None) -> None:
        self._server_pid = server_pid
        self._start = self._sample()
        self._wall = time.perf_counter()

    def _sample(self) -> tuple[float, float, float] | None:
        try:
            with open("/proc/stat") as stat:
                fields = [int(value) for value in stat.readline().split()[1:9]]  # no guest
            tick = os.sysconf("SC_CLK_TCK")
            busy = (sum(fields) - fields[3] - fields[4]) / tick  # all but idle and iowait
            server = 0.0
            if self._server_pid is not None:
                with open(f"/proc/{self._server_pid}/stat") as stat:
                    parts = stat.read().rsplit(")", 1)[1].split()
                server = (int(parts[11]) + int(parts[12])) / tick
            own = os.times()
            return busy, own.user + own.system, server
        except (OSError, ValueError, IndexError):
            return None

    def report(self) -> str:
        end, start = self._sample(), self._start
        wall = time.perf_counter() - self._wall
        if end is None or start is None:
            return f"{wall:.0f} s"
        busy, own, server = (b - a for a, b in zip(start, end, strict=True))
        others = max(0.0, busy - own - server)
        return (
            f"{wall:.0f} s wall; CPU: this process {own:.0f} s, redis-server {server:.0f} s, "
            f"other processes {others:.0f} s ({others / wall:.2f} of {os.cpu_count()} cores)"
        )


# -- main ----------------------------------------------------------------------------------------


async def main(sizes: Sizes, parsers: list[str]) -> int:
    server = RedisServer()
    await asyncio.to_thread(server.start)
    closers: list[Callable[[], Awaitable[Any]]] = []
    try:
        admin = aredis.Redis.from_url(server.url)
        info = await admin.info("server")
        await admin.aclose()
        hiredis_version = "not installed"
        with contextlib.suppress(ImportError):
            import hiredis

            hiredis_version = hiredis.__version__
        print(
            f"Python {sys.version.split()[0]}, redis-py {redis.__version__}, hiredis "
            f"{hiredis_version}, redis-server {info['redis_version']} on 127.0.0.1, "
            f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}"
        )
        timeout = CLIENT_OPTIONS.get("socket_timeout", "redis-py's default")
        print(f"redis-py clients: socket_timeout {timeout}")
        print(
            f"sizes: {sizes.ops} sequential calls and {max(1, sizes.calls // TASKS) * TASKS} "
            f"calls over {TASKS} tasks per contender per round, {sizes.rounds} rounds\n"
        )
        if not await check_correctness(server.url, parsers):
            print("correctness check FAILED: no measurement")
            return 1
        contenders = await build_contenders(server.url, parsers, closers)
        for parser in parsers:
            raw = next(c for c in contenders if c.parser == parser and c.role == "raw")
            assert raw.client is not None
            print(f"parser '{parser}': connections use {await parser_in_use(raw.client)}")
        results = Results()
        meter = CpuMeter(getattr(getattr(server, "_process", None), "pid", None))
        results.sequential = await sequential_rounds(contenders, sizes.ops, sizes.rounds)
        before = {contender.label: _batch_counts(contender.limiter) for contender in contenders}
        results.concurrent = await concurrent_rounds(
            [contender for contender in contenders if contender.role != "ref"],
            sizes.calls,
            sizes.rounds,
        )
        for contender in contenders:
            trips, decisions = _batch_counts(contender.limiter)
            trips -= before[contender.label][0]
            decisions -= before[contender.label][1]
            if trips:
                results.batch_sizes[contender.label] = decisions / trips
        print(f"measured in {meter.report()}; load average now {os.getloadavg()[0]:.2f}\n")
        report(contenders, parsers, results)
        breakdown(parsers, results)
    finally:
        for close in reversed(closers):
            with contextlib.suppress(Exception):
                await close()
        await asyncio.to_thread(server.close)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument(
        "--parser",
        choices=("python", "hiredis", "both"),
        default="both" if HIREDIS_AVAILABLE else "python",
        help="which redis-py parser(s) to measure (default: both when hiredis is importable)",
    )
    parser.add_argument(
        "--no-socket-timeout",
        action="store_true",
        help="make every redis-py client with socket_timeout=None (redis-py 8's default is 5 s, "
        "which wraps every reply read in an asyncio timeout)",
    )
    parser.add_argument("--rounds", type=int, help="override the number of rounds")
    parser.add_argument("--ops", type=int, help="override sequential calls per round")
    parser.add_argument("--calls", type=int, help="override 64-task calls per round")
    arguments = parser.parse_args()
    chosen = ["python", "hiredis"] if arguments.parser == "both" else [arguments.parser]
    if "hiredis" in chosen and not HIREDIS_AVAILABLE:
        parser.error("hiredis is not importable here: pip install hiredis")
    sizes = SIZES["quick" if arguments.quick else "full"]
    sizes = Sizes(
        ops=arguments.ops or sizes.ops,
        calls=arguments.calls or sizes.calls,
        rounds=arguments.rounds or sizes.rounds,
    )
    if arguments.no_socket_timeout:
        CLIENT_OPTIONS["socket_timeout"] = None
    sys.exit(asyncio.run(main(sizes, chosen)))

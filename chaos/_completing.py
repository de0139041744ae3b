"""Steps that acquire or release a process or a port, run to their end despite cancellation.

A cancelled ``await`` abandons the coroutine it awaited at that instant. For most steps that is
what a caller wants; for a step that acquires something (``loop.create_server`` binds a port,
then yields once before returning the server) or releases it (a child process being stopped in
a worker thread), abandoning it half-way loses the thing: nobody holds the server to close it,
or the stop goes on unobserved. :func:`run_to_end` lets such a step finish, hands what it
acquired to ``release`` if the caller was cancelled meanwhile, and only then raises the
cancellation. Every such step is bounded in time by its own timeout, so the wait is too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

__all__ = ["run_to_end"]

_T = TypeVar("_T")


async def run_to_end(step: Awaitable[_T], *, release: Callable[[_T], object] | None = None) -> _T:
    """Await ``step`` to its end even if the caller is cancelled meanwhile.

    Not cancelled: returns the step's result (or raises its error). Cancelled while the step
    ran: waits for the step to finish, passes its result to ``release`` (when given; it must
    not block), then raises :class:`asyncio.CancelledError`; the caller's own ``finally``
    blocks then release whatever else they hold.
    """
    task = asyncio.ensure_future(step)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.cancelled():
                raise
            cancelled = True
    if not cancelled:
        return task.result()
    if release is not None and task.exception() is None:
        release(task.result())
    raise asyncio.CancelledError

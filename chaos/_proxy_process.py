"""The Toxiproxy server of a ``chaos run``: external if named, else embedded in its own process.

An embedded server in a thread of the harness would share one interpreter lock with the
service under test, so relaying the dependency's traffic (and applying toxics) would slow the
service down by itself. ``chaos run`` therefore starts the embedded server as a child process
(``python -m chaos.toxiproxy -host 127.0.0.1 -port 0``), like a real ``toxiproxy-server``, and
stops it at the end.

An external server (``--toxiproxy`` or ``$TOXIPROXY_URL``) must answer ``GET /version`` as
Toxiproxy does; one that does not (another web server on that port) is refused in one line
naming the URL and where it came from (:class:`NotToxiproxy`), never with the page it sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import os
import re
import sys
from collections import deque
from collections.abc import AsyncIterator

from chaos.toxiproxy._url import chosen_url
from chaos.toxiproxy.control import ToxiproxyControl, open_control
from chaos.toxiproxy.errors import ToxiproxyError, ToxiproxyUnavailable

__all__ = ["NotToxiproxy", "run_toxiproxy"]


class NotToxiproxy(ValueError):
    """The URL names a server that answers, but not as Toxiproxy does (one line, no page)."""


_READY_PREFIX = "toxiproxy: listening on "
_START_TIMEOUT = 30.0


@contextlib.asynccontextmanager
async def run_toxiproxy(url: str | None, *, seed: int) -> AsyncIterator[ToxiproxyControl]:
    """A control of the server to use: ``url``, else ``$TOXIPROXY_URL``, else a child process.

    Raises ``ValueError`` for a malformed URL, :class:`ToxiproxyUnavailable` when the server
    does not answer, :class:`NotToxiproxy` when it answers but is not Toxiproxy, and
    ``RuntimeError`` when the embedded one does not start.
    """
    chosen, source = chosen_url(url)
    if chosen is not None:
        source = "--toxiproxy" if url is not None else source
        async with contextlib.AsyncExitStack() as stack:
            control = await stack.enter_async_context(_external(chosen, source))
            yield control
        return
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "chaos.toxiproxy", "-host", "127.0.0.1", "-port", "0",
        "-seed", str(seed),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
    )  # fmt: skip
    assert process.stderr is not None
    stderr_tail: deque[str] = deque(maxlen=20)
    drains = [asyncio.create_task(_drain(process.stderr, stderr_tail))]
    try:
        embedded_url = await _wait_listening(process, stderr_tail)
        assert process.stdout is not None
        drains.append(asyncio.create_task(_drain(process.stdout, deque(maxlen=1))))
        async with open_control(embedded_url, embedded=True) as control:
            yield control
    finally:
        for drain in drains:
            drain.cancel()
        if process.returncode is None:
            process.terminate()
            try:
                async with asyncio.timeout(5):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()


@contextlib.asynccontextmanager
async def _external(url: str, source: str) -> AsyncIterator[ToxiproxyControl]:
    """:func:`open_control` of an external server, refused as :class:`NotToxiproxy` when what
    answers there is not Toxiproxy (an error status, or a version that is not one)."""
    async with contextlib.AsyncExitStack() as stack:
        try:
            control = await stack.enter_async_context(open_control(url, source=source))
        except ToxiproxyUnavailable:
            raise
        except ToxiproxyError as exc:
            why = f"GET /version answered HTTP {exc.status}{_gist(exc.message)}"
            raise NotToxiproxy(_not_toxiproxy(url, source, why)) from None
        version = control.server_version or ""
        if not _VERSION.match(version):
            why = f"GET /version answered{_gist(version)}, not a version"
            raise NotToxiproxy(_not_toxiproxy(url, source, why))
        yield control


_VERSION = re.compile(r"v?\d+\.\d+")
"""What the start of a Toxiproxy version looks like (``2.12.0``, ``v2.1.4``)."""


def _not_toxiproxy(url: str, source: str, why: str) -> str:
    return f"the server at {url} (URL from {source}) is not a Toxiproxy server: {why}"


def _gist(text: str, limit: int = 60) -> str:
    """A reply body as a few words: tags dropped, whitespace folded, cut at ``limit``."""
    words = " ".join(html.unescape(re.sub(r"<[^>]*>", " ", text)).split())
    if not words:
        return ""
    return f" ({words[:limit]}{'...' if len(words) > limit else ''})"


async def _drain(stream: asyncio.StreamReader, tail: deque[str]) -> None:
    """Read ``stream`` to its end (so the child never blocks on a full pipe), keep its tail."""
    while line := await stream.readline():
        tail.append(line.decode(errors="replace").rstrip())


async def _wait_listening(process: asyncio.subprocess.Process, stderr_tail: deque[str]) -> str:
    assert process.stdout is not None
    try:
        async with asyncio.timeout(_START_TIMEOUT):
            while line := (await process.stdout.readline()).decode(errors="replace"):
                if line.startswith(_READY_PREFIX):
                    return line[len(_READY_PREFIX) :].strip()
    except TimeoutError:
        raise RuntimeError(
            f"the embedded Toxiproxy did not start within {_START_TIMEOUT:.0f} s"
        ) from None
    await process.wait()
    await asyncio.sleep(0.05)  # let the stderr drain catch the last lines
    last = stderr_tail[-1] if stderr_tail else "no message"
    raise RuntimeError(f"the embedded Toxiproxy exited (code {process.returncode}): {last}")

"""Running a load in a child process, so the generator and the service under test do not share
one interpreter lock.

:class:`LoadProcess` drives ``python -m chaos.load._child`` over its stdin and stdout with the
messages of :mod:`chaos.load._framing`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import sys
from collections.abc import Mapping, Sequence

from chaos.load import _framing
from chaos.load._load import Load, LoadError
from chaos.load._result import LoadProgress, LoadResult

__all__ = ["LoadProcess"]


class LoadProcess:
    """Runs a :class:`Load` in a child process with its own event loop (uvloop when installed).

    The child is a fresh ``python -m chaos.load._child`` (the caller's ``sys.path`` passed on),
    so nothing of the parent, its threads or its ``__main__``, is copied or re-run.
    ``await start()`` returns once the child has built its schedule and is ready; ``begin(t0)``
    tells it when the first request is due (a ``time.monotonic()`` value, system-wide on Linux,
    so both processes agree on it); :attr:`progress` is the latest live snapshot;
    ``await result()`` waits for the end. ``await close()`` ends the child if still running.
    """

    def __init__(
        self,
        load: Load,
        base_url: str | Sequence[str],
        *,
        seed: int,
        targets: Mapping[str, str] | None = None,
    ) -> None:
        _check_picklable(load)
        self._load = load
        self._base_url = base_url if isinstance(base_url, str) else tuple(base_url)
        self._seed = seed
        self._targets = dict(targets or {})
        self._process: asyncio.subprocess.Process | None = None
        self._stderr: asyncio.Task[bytes] | None = None
        self.progress = LoadProgress(0.0, load.duration, 0, 0, {})

    async def start(self, timeout: float = 60.0) -> None:
        """Spawn the child and wait until it is ready to start on a signal."""
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "chaos.load._child",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        assert self._process.stderr is not None
        self._stderr = asyncio.create_task(self._process.stderr.read())
        self._send(("plan", self._load, self._base_url, self._seed, self._targets))
        message = await self._receive(timeout)
        if message != ("ready",):
            raise LoadError(f"load process did not get ready: {message!r}")

    def begin(self, t0: float) -> None:
        """Let the child start: its first request is due at monotonic time ``t0``."""
        self._send(("begin", t0))

    async def result(self) -> LoadResult:
        """Wait for the end of the run; live progress updates :attr:`progress` meanwhile."""
        silence = self._load.timeout + 30.0
        while True:
            message = await self._receive(silence)
            match message:
                case ("progress", LoadProgress() as progress):
                    self.progress = progress
                case ("result", LoadResult() as result):
                    return result
                case ("error", str(text)):
                    raise LoadError(f"load process failed: {text}")
                case _:
                    raise LoadError(f"unexpected message from the load process: {message!r}")

    def _send(self, message: object) -> None:
        assert self._process is not None
        assert self._process.stdin is not None
        self._process.stdin.write(_framing.frame(message))

    async def _receive(self, timeout: float) -> object:
        assert self._process is not None
        assert self._process.stdout is not None
        try:
            async with asyncio.timeout(timeout):
                return await _framing.read_frame(self._process.stdout)
        except TimeoutError:
            raise LoadError(f"load process silent for {timeout:.0f} s") from None
        except asyncio.IncompleteReadError:
            raise LoadError(f"load process exited: {await self._stderr_tail()}") from None

    async def _stderr_tail(self) -> str:
        assert self._process is not None
        assert self._stderr is not None
        code = await self._process.wait()
        text = (await self._stderr).decode(errors="replace").strip()
        last = text.splitlines()[-1] if text else "no message"
        return f"exit code {code}: {last}"

    async def close(self) -> None:
        """End the child (if still running) and reap it."""
        process = self._process
        if process is None:
            return
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        await process.wait()
        if self._stderr is not None:
            with contextlib.suppress(Exception):
                await self._stderr


def _check_picklable(load: Load) -> None:
    for name in ("request", "classify"):
        function = getattr(load, name)
        try:
            pickle.dumps(function)
        except Exception:
            raise LoadError(
                f"Load.{name} ({function!r}) must be a module-level function: it is sent to "
                "the load process by reference"
            ) from None

"""An example's ``service.py`` run as a user runs it: in its own process, on a free port."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

from chaos.servers import free_port

__all__ = ["example_service"]


@contextlib.asynccontextmanager
async def example_service(example: Path, *args: str, ready_path: str = "") -> AsyncIterator[str]:
    """``python service.py ARGS --port P``; yields its base URL once ``GET ready_path``
    answers (within 10 s, else the test fails with the service's stderr), and stops the
    process (and so everything it started) on exit."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(example), *args, "--port", str(port),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}/"
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(200):
                if process.returncode is not None:
                    assert process.stderr is not None
                    error = (await process.stderr.read()).decode(errors="replace")
                    raise AssertionError(f"{example.name} exited: {error}")
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(base + ready_path) as response:
                        await response.read()
                        break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError(f"{example.name} did not answer within 10 s")
        yield base
    finally:
        if process.returncode is None:
            process.terminate()
        try:
            async with asyncio.timeout(10):
                await process.communicate()
        except TimeoutError:
            process.kill()
            await process.wait()

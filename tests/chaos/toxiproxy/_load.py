"""Traffic for the soak test, in a process of its own at a lower CPU priority.

Run as ``python -m tests.chaos.toxiproxy._load NICE``: it starts an echo server and prints
``echo PORT``, then reads one JSON line ``{"ports": [...], "clients": N, "seconds": S}`` and runs
N clients per proxy port for S seconds (each writes a block, reads what comes back, reconnects
when closed or reset), and prints a JSON line of counters. Niced, it cannot take the CPU from the
server whose responsiveness the soak measures.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time

BLOCK = 8 * 1024
PAUSE = 0.02


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


async def _client(port: int, deadline: float, counters: dict[str, int]) -> None:
    block = bytes(range(256)) * (BLOCK // 256)
    while time.monotonic() < deadline:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 2)
        except (OSError, TimeoutError):
            await asyncio.sleep(0.05)
            continue
        counters["connections"] += 1
        try:
            while time.monotonic() < deadline:
                writer.write(block)
                await asyncio.wait_for(writer.drain(), 0.5)
                with contextlib.suppress(TimeoutError):
                    data = await asyncio.wait_for(reader.read(1 << 20), PAUSE)
                    if not data:
                        break
                    counters["bytes"] += len(data)
        except (OSError, TimeoutError):
            pass  # reset, closed, or held by the toxic: start again
        finally:
            writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), 0.5)


async def _main() -> None:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    print(f"echo {server.sockets[0].getsockname()[1]}", flush=True)
    loop = asyncio.get_running_loop()
    plan = json.loads(await loop.run_in_executor(None, sys.stdin.readline))
    deadline = time.monotonic() + float(plan["seconds"])
    counters = {"connections": 0, "bytes": 0}
    await asyncio.gather(
        *(
            _client(int(port), deadline, counters)
            for port in plan["ports"]
            for _ in range(int(plan["clients"]))
        )
    )
    server.close()
    print(json.dumps(counters), flush=True)


if __name__ == "__main__":
    os.nice(int(sys.argv[1]))
    asyncio.run(_main())

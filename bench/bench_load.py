"""The open-loop load generator against a trivial aiohttp handler: how fast, how punctual.

    python bench/bench_load.py [--seconds S] [--max-rate R]

The handler runs in this process; the generator runs in its own process (as in a scenario),
so the two do not share one interpreter lock. Rates step up from ``--start`` by ``--step``
until a rate is not sustained (no run out of ``--tries`` with every request ``ok`` and
scheduling lag p99 <= 5 ms) or ``--max-rate`` is passed, so the number of runs is bounded.
Every run is printed. Prints one row per rate: achieved
rate, lag p50/p99/max, latency p50/p99 (ms), and whether the run is trustworthy; then whether
the target (2,000 req/s) was sustained and the highest rate sustained. The machine's load
average is printed first: other processes on the same two cores move these figures.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
from aiohttp import web

from chaos.load import MAX_TRUSTED_LAG, Load, LoadProcess, LoadResult

TARGET_RATE = 2000.0


async def _hello(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _measure(url: str, rate: float, seconds: float, seed: int) -> LoadResult:
    load = Load(rate=rate, duration=seconds, timeout=5.0)
    process = LoadProcess(load, url, seed=seed)
    try:
        await process.start()
        process.begin(time.monotonic() + 0.2)
        return await process.result()
    finally:
        await process.close()


def _row(rate: float, result: LoadResult) -> tuple[str, ...]:
    lag = result.lag * 1000
    latency = result.latency[~np.isnan(result.latency)] * 1000
    ok = result.counts().get("ok", 0)
    achieved = ok / result.duration
    return (
        f"{rate:7.0f}",
        f"{achieved:8.0f}",
        f"{ok / max(len(result.scheduled), 1):6.1%}",
        f"{np.percentile(lag, 50):6.2f}",
        f"{np.percentile(lag, 99):6.2f}",
        f"{lag.max():7.2f}",
        f"{np.percentile(latency, 50):7.2f}",
        f"{np.percentile(latency, 99):7.2f}",
        "yes" if result.trustworthy else "NO",
    )


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per rate (5)")
    parser.add_argument("--start", type=float, default=1000.0, help="first rate (1000)")
    parser.add_argument("--step", type=float, default=500.0, help="rate step (500)")
    parser.add_argument("--max-rate", type=float, default=6000.0, help="highest rate tried")
    parser.add_argument(
        "--tries", type=int, default=2, help="runs per rate; one sustained run counts (2)"
    )
    args = parser.parse_args()

    app = web.Application()
    app.router.add_get("/", _hello)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    url = f"http://{host}:{port}/"
    header = ("rate", "achieved", "ok", "lag50", "lag99", "lagmax", "lat50", "lat99", "trusted")
    load1, load5, _ = os.getloadavg()
    print(f"open-loop load vs a trivial aiohttp handler, {args.seconds:g} s per rate (ms)")
    print(f"machine: {os.cpu_count()} cores, load average {load1:.2f} (1 min) {load5:.2f} (5 min)")
    print(" ".join(f"{h:>8}" for h in header))
    best = 0.0
    target_ok = False
    try:
        rate = args.start
        seed = 1
        while rate <= args.max_rate:
            sustained = False
            for _ in range(max(1, args.tries)):
                result = await _measure(url, rate, args.seconds, seed)
                print(" ".join(f"{c:>8}" for c in _row(rate, result)), flush=True)
                seed += 1
                if result.trustworthy and result.counts().get("ok", 0) == len(result.scheduled):
                    sustained = True
                    break
            if not sustained:
                break
            best = rate
            target_ok = best >= TARGET_RATE
            rate += args.step
    finally:
        await runner.cleanup()
    print()
    verdict = "PASS" if target_ok else "FAIL"
    print(
        f"target {TARGET_RATE:.0f} req/s with lag p99 <= {MAX_TRUSTED_LAG * 1000:.0f} ms: {verdict}"
    )
    print(f"highest rate sustained (all ok, lag p99 <= 5 ms): {best:.0f} req/s")
    return 0 if target_ok else 1


if __name__ == "__main__":
    import uvloop

    sys.exit(uvloop.run(main()))

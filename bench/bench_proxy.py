"""Benchmark: the embedded Toxiproxy server against direct loopback, in one command.

    .venv/bin/python bench/bench_proxy.py [--mib 256] [--round-trips 10000]

The proxy runs in a child process (so its event loop shares nothing with the load); the load
(a sender, a sink, an echo server and a client) uses plain blocking sockets in threads of this
process. Rows:

* throughput of a ``--mib`` transfer, direct and through the proxy with no toxics
  (target: proxy >= 30% of direct), plus one row with a ``noop`` toxic on the link; the machine
  may be shared, so direct and proxy runs are interleaved and the best of ``--repeats`` kept;
* round trips of 100 bytes, sequential (target: added p50 <= 3x the direct p50);
* RSS growth of the proxy process while ``--mib`` flows to a slow reader (target: < 16 MiB);
* the same with the proxy on uvloop, when uvloop is installed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

CHUNK = 256 * 1024
SLOW_READ = 64 * 1024  # the slow reader takes 64 KiB per millisecond at most (~64 MB/s)
MESSAGE = b"x" * 100
THROUGHPUT_TARGET = 0.30
LATENCY_TARGET = 3.0
MEMORY_TARGET_MIB = 16.0


@dataclass
class ProxyProcess:
    """The proxy server in a child process, and its API URL."""

    process: subprocess.Popen[str]
    url: str

    def api(self, method: str, path: str, body: object = None) -> object:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read().decode()
        return json.loads(text) if text else None

    def proxy(self, name: str, upstream_port: int) -> int:
        reply = self.api(
            "POST",
            "/proxies",
            {"name": name, "listen": "127.0.0.1:0", "upstream": f"127.0.0.1:{upstream_port}"},
        )
        assert isinstance(reply, dict)
        return int(str(reply["listen"]).rsplit(":", 1)[1])

    def rss_mib(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")


@contextlib.contextmanager
def proxy_process(uvloop: bool) -> Iterator[ProxyProcess]:
    command = [sys.executable, __file__, "--serve"] + (["--uvloop"] if uvloop else [])
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("toxiproxy: listening on "):
            raise RuntimeError(f"proxy child did not start: {line!r}")
        yield ProxyProcess(process, line.split()[-1])
    finally:
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def serve(use_uvloop: bool) -> None:
    """Child mode: run the server until stdin closes."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from chaos.toxiproxy import ToxiproxyServer

    async def main() -> None:
        async with ToxiproxyServer() as server:
            print(f"toxiproxy: listening on {server.url}", flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

    if use_uvloop:
        import uvloop  # type: ignore[import-not-found,unused-ignore]

        uvloop.run(main())
    else:
        asyncio.run(main())


# -- loopback peers (blocking sockets in threads) ----------------------------------------------


def _listener() -> socket.socket:
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    return server


def _start_thread(target: Callable[[], None]) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


class Sink:
    """Accepts one connection at a time and counts the bytes until EOF (optionally slowly)."""

    def __init__(self, slow: bool = False) -> None:
        self.server = _listener()
        self.port = self.server.getsockname()[1]
        self.slow = slow
        self.received = 0
        self.done = threading.Event()
        _start_thread(self._run)

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            buffer = bytearray(SLOW_READ if self.slow else CHUNK)
            with conn:
                while True:
                    count = conn.recv_into(buffer)
                    if not count:
                        break
                    self.received += count
                    if self.slow:
                        time.sleep(0.001)
            self.done.set()

    def close(self) -> None:
        self.server.close()


class Echo:
    def __init__(self) -> None:
        self.server = _listener()
        self.port = self.server.getsockname()[1]
        _start_thread(self._run)

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    def close(self) -> None:
        self.server.close()


def send(port: int, total: int) -> float:
    """Seconds to push ``total`` bytes to ``port`` and have the sink see them all."""
    payload = b"\0" * CHUNK
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as conn:
        sent = 0
        while sent < total:
            conn.sendall(payload)
            sent += len(payload)
    return time.perf_counter() - started


def throughput(port: int, sink: Sink, total: int) -> float:
    """MiB/s of a ``total``-byte transfer through ``port`` into ``sink``."""
    sink.done.clear()
    sink.received = 0
    started = time.perf_counter()
    send(port, total)
    if not sink.done.wait(120):
        raise RuntimeError("sink did not finish")
    elapsed = time.perf_counter() - started
    if sink.received != total:
        raise RuntimeError(f"sink got {sink.received} bytes of {total}")
    return total / elapsed / 2**20


def round_trips(direct_port: int, proxy_port: int, count: int) -> tuple[list[float], list[float]]:
    """Microseconds of ``count`` sequential 100-byte round trips, (direct, through the proxy).

    The two are measured in alternating blocks of 500, so a noisy neighbour weighs on both alike.
    """
    direct: list[float] = []
    proxied: list[float] = []
    with (
        socket.create_connection(("127.0.0.1", direct_port)) as direct_conn,
        socket.create_connection(("127.0.0.1", proxy_port)) as proxy_conn,
    ):
        for conn in (direct_conn, proxy_conn):
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            _timed_round_trips(conn, min(200, count))  # warm up
        while len(proxied) < count:
            block = min(500, count - len(proxied))
            direct.extend(_timed_round_trips(direct_conn, block))
            proxied.extend(_timed_round_trips(proxy_conn, block))
    return direct, proxied


def _timed_round_trips(conn: socket.socket, count: int) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        conn.sendall(MESSAGE)
        _recv_exactly(conn, len(MESSAGE))
        samples.append((time.perf_counter() - started) * 1e6)
    return samples


def _recv_exactly(conn: socket.socket, size: int) -> None:
    got = 0
    while got < size:
        chunk = conn.recv(size - got)
        if not chunk:
            raise RuntimeError("connection closed")
        got += len(chunk)


def slow_reader_memory(
    proxy: ProxyProcess, total: int, name: str, toxic: dict[str, object] | None = None
) -> tuple[float, float]:
    """(max RSS growth of the proxy in MiB, seconds) while ``total`` bytes go to a slow reader."""
    sink = Sink(slow=True)
    port = proxy.proxy(name, sink.port)
    if toxic is not None:
        proxy.api("POST", f"/proxies/{name}/toxics", toxic)
    baseline = proxy.rss_mib()
    peak = baseline
    finished = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not finished.is_set():
            peak = max(peak, proxy.rss_mib())
            time.sleep(0.02)

    sampler = _start_thread(sample)
    started = time.perf_counter()
    send(port, total)
    sink.done.wait(300)
    elapsed = time.perf_counter() - started
    finished.set()
    sampler.join()
    sink.close()
    return peak - baseline, elapsed


# -- the run -----------------------------------------------------------------------------------


@dataclass
class Row:
    name: str
    value: str
    ratio: str
    verdict: str


def run(total: int, count: int, repeats: int) -> list[Row]:
    """Every row; throughputs are the best of ``repeats`` runs, interleaved direct/proxy."""
    rows: list[Row] = []
    sink, echo = Sink(), Echo()
    throughput(sink.port, sink, total)  # warm up
    variants = [("asyncio", False)]
    try:
        import uvloop  # type: ignore[import-not-found,unused-ignore]  # noqa: F401

        variants.append(("uvloop", True))
    except ImportError:
        rows.append(Row("uvloop", "not installed", "", ""))
    measured: list[tuple[str, float, float, float, list[float], list[float], float, float]] = []
    toxic_growth = (0.0, 0.0)
    for label, use_uvloop in variants:
        with proxy_process(use_uvloop) as proxy:
            tp_port = proxy.proxy("throughput", sink.port)
            proxy_samples = []
            direct_samples = []
            for _ in range(repeats):
                proxy_samples.append(throughput(tp_port, sink, total))
                direct_samples.append(throughput(sink.port, sink, total))
            proxy.api("POST", "/proxies/throughput/toxics", {"type": "noop"})
            noop_tp = throughput(tp_port, sink, max(total // 4, CHUNK))
            direct_rt, rt = round_trips(echo.port, proxy.proxy("echo", echo.port), count)
            growth, seconds = slow_reader_memory(proxy, total, "slow")
            measured.append(
                (
                    label,
                    max(direct_samples),
                    max(proxy_samples),
                    noop_tp,
                    direct_rt,
                    rt,
                    growth,
                    seconds,
                )
            )
            if not use_uvloop:
                latency_toxic: dict[str, object] = {
                    "type": "latency",
                    "stream": "upstream",
                    "attributes": {"latency": 5},
                }
                toxic_growth = slow_reader_memory(proxy, total // 4, "slow_latency", latency_toxic)
    for label, direct_tp, tp, noop_tp, direct_rt, rt, growth, seconds in measured:
        rows.append(
            Row(f"throughput direct (paired with {label})", f"{direct_tp:8.0f} MiB/s", "1.00", "")
        )
        ratio = tp / direct_tp
        rows.append(
            Row(
                f"throughput proxy ({label}, best)",
                f"{tp:8.0f} MiB/s",
                f"{ratio:.2f}",
                _verdict(ratio >= THROUGHPUT_TARGET, f">= {THROUGHPUT_TARGET:.2f}"),
            )
        )
        rows.append(
            Row(
                f"throughput proxy + noop toxic ({label})",
                f"{noop_tp:8.0f} MiB/s",
                f"{noop_tp / direct_tp:.2f}",
                "(info)",
            )
        )
        p50 = statistics.median(rt)
        direct_p50 = statistics.median(direct_rt)
        rows.append(
            Row(
                f"round trip direct p50/p99 (paired with {label})",
                f"{direct_p50:6.1f} / {_p99(direct_rt):6.1f} us",
                "1.00",
                "",
            )
        )
        added = (p50 - direct_p50) / direct_p50
        rows.append(
            Row(
                f"round trip proxy p50/p99 ({label})",
                f"{p50:6.1f} / {_p99(rt):6.1f} us",
                f"{p50 / direct_p50:.2f}",
                _verdict(added <= LATENCY_TARGET, f"added {added:.2f}x <= {LATENCY_TARGET}x"),
            )
        )
        rows.append(
            Row(
                f"slow reader RSS growth ({label})",
                f"{growth:6.1f} MiB in {seconds:.1f} s",
                "",
                _verdict(growth < MEMORY_TARGET_MIB, f"< {MEMORY_TARGET_MIB:.0f} MiB"),
            )
        )
        if label == "asyncio":
            rows.append(
                Row(
                    "slow reader RSS growth, latency toxic (asyncio)",
                    f"{toxic_growth[0]:6.1f} MiB in {toxic_growth[1]:.1f} s",
                    "",
                    _verdict(toxic_growth[0] < MEMORY_TARGET_MIB, f"< {MEMORY_TARGET_MIB:.0f} MiB"),
                )
            )
    sink.close()
    echo.close()
    return rows


def _p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100)[98]


def _verdict(ok: bool, target: str) -> str:
    return f"{'PASS' if ok else 'FAIL'} ({target})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256, help="MiB per transfer")
    parser.add_argument("--round-trips", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3, help="throughput runs (best kept)")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--uvloop", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.uvloop)
        return 0
    print(
        f"bench_proxy: {args.mib} MiB transfers, {args.round_trips} round trips, "
        f"{os.cpu_count()} CPUs"
    )
    rows = run(args.mib * 2**20, args.round_trips, args.repeats)
    width = max(len(row.name) for row in rows)
    print(f"{'measure':<{width}}  {'value':<26}  {'vs direct':>9}  verdict")
    for row in rows:
        print(f"{row.name:<{width}}  {row.value:<26}  {row.ratio:>9}  {row.verdict}")
    failed = any(row.verdict.startswith("FAIL") for row in rows)
    print("bench_proxy:", "FAIL" if failed else "PASS")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

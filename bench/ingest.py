"""Ingest throughput and latency of `tsunagu serve`, end to end over HTTP.

    python bench/ingest.py [--events N] [--connections 32] [--processes 2] [--quick]

What it measures
----------------
A real `tsunagu serve` subprocess (uvicorn, one process, uvloop + httptools) on a free
127.0.0.1 port, with a fresh data directory and workspace, driven by load processes:

* Phase A, "batch": `POST /v1/batch`, 100 retail events a request (page, view, cart, buy,
  identify; ~20,000 people, members who log in on web and app so identity resolution
  merges devices; ~650 bytes an event), until --events events have been answered 200
  (or --batch-seconds pass), after a short warm-up that is not measured.
* Phase B, "single": `POST /v1/track`, one event a request, for --single-seconds.

A 200 from tsunagu means the events are fsynced in the SQLite log and applied to the
identity engine, so events/s is durable, resolved events per second. For each phase:
events/s, requests/s, latency p50/p90/p99/p99.9/max (ms, per request, from the client's
write to the last byte of the answer), non-200 answers and connection errors, CPU seconds
used by the server and by the load processes, and CPU used by everything else on the
machine (other work sharing the cores makes the figures noisy: see `other_cpu_s`).

The server's RSS is sampled every 100 ms (psutil) for the peak; VmHWM, the kernel's own
high-water mark, is reported too. After the load, GET /api/v1/workspace must report
`events_accepted_since_start` equal to the number of events answered 200 (every messageId
is unique, so nothing is a duplicate): a cheap end-to-end correctness check.

How the load is made cheap
--------------------------
The load shares the machine with the server, so it must cost little per request.
bench/_load.py builds all request bytes before the clock starts; per request it only
overwrites a 9-digit counter inside each messageId (fixed offsets, constant
Content-Length), writes the bytes on a keep-alive asyncio stream (uvloop when importable)
and parses the status line and Content-Length of the answer. --processes processes x
(--connections / --processes) connections, one request in flight per connection.

Output: one JSON object on stdout; progress on stderr. Each phase also has a `timeline`
(events/s, server and other CPU cores, RSS per 1-10 s window). --quick runs a few-second
smoke version. --profile FILE runs `py-spy record` (if installed) on the server during the
batch phase and adds the sample share per server thread and the top functions by own and
inclusive time to the JSON; --profile-gil samples only the thread holding the GIL.

The server is the `tsunagu` the current interpreter imports: to measure another checkout,
put its src first, e.g. `PYTHONPATH=/tmp/other/src python bench/ingest.py`
(`server_source` in the JSON says which code ran).
"""

from __future__ import annotations

import argparse
import array
import bisect
import contextlib
import json
import multiprocessing as mp
import os
import platform
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _load import PhaseResult, PhaseSpec, WorkerConfig, worker_main

HOST = "127.0.0.1"
MB = 1024 * 1024


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- the server ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def tsunagu_command() -> list[str]:
    exe = shutil.which("tsunagu")
    return [exe] if exe else [sys.executable, "-m", "tsunagu"]


def create_workspace(data_dir: Path) -> dict[str, str]:
    out = subprocess.run(
        [*tsunagu_command(), "workspace", "create", "bench", "--data-dir", str(data_dir), "--json"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    creds: dict[str, str] = json.loads(out.strip().splitlines()[-1])
    return creds


def server_source() -> dict[str, Any]:
    """Which tsunagu code the server runs: its path, and the git commit and dirty files there."""
    out = subprocess.run(
        [sys.executable, "-c", "import tsunagu; print(tsunagu.__file__, tsunagu.__version__)"],
        capture_output=True,
        text=True,
    ).stdout.split()
    if len(out) < 2:
        return {}
    package = Path(out[0]).parent
    info: dict[str, Any] = {"package": str(package), "version": out[1]}
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        git = ["git", "-C", str(package)]
        info["git_head"] = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            [*git, "status", "--porcelain", "--", "."], capture_output=True, text=True, check=True
        ).stdout.splitlines()
        info["uncommitted_files"] = [line[3:] for line in dirty]
    return info


def http_get(url: str, token: str | None = None, timeout: float = 10.0) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


class Server:
    """`tsunagu serve` as a subprocess in its own session (a Ctrl-C on the bench reaches only us)."""

    def __init__(self, data_dir: Path, port: int, log_path: Path, extra: list[str] | None = None) -> None:
        self.url = f"http://{HOST}:{port}"
        self.log_path = log_path
        self._log_file = log_path.open("wb")
        self.proc = subprocess.Popen(
            [*tsunagu_command(), "serve", "--host", HOST, "--port", str(port), "--data-dir", str(data_dir)]
            + (extra or []),
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.ps = psutil.Process(self.proc.pid)

    def wait_healthy(self, timeout: float = 60.0) -> float:
        started = time.perf_counter()
        while time.perf_counter() - started < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tsunagu serve exited with {self.proc.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(OSError):
                if http_get(self.url + "/health", timeout=1.0)[0] == 200:
                    return time.perf_counter() - started
            time.sleep(0.05)
        raise RuntimeError(f"tsunagu serve did not answer /health within {timeout:.0f}s:\n{self.log_tail()}")

    def processes(self) -> list[psutil.Process]:
        try:
            return [self.ps, *self.ps.children(recursive=True)]
        except psutil.Error:
            return []

    def cpu_s(self) -> float:
        total = 0.0
        for p in self.processes():
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                total += t.user + t.system
        return total

    def rss(self) -> int:
        total = 0
        for p in self.processes():
            with contextlib.suppress(psutil.Error):
                total += p.memory_info().rss
        return total

    def vm_hwm(self) -> int | None:
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        return None

    def log_tail(self, lines: int = 40) -> str:
        if not self._log_file.closed:
            self._log_file.flush()
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self, timeout: float = 30.0) -> dict[str, Any]:
        """SIGINT (uvicorn's graceful shutdown: the pipeline flushes and checkpoints), then SIGKILL."""
        started = time.perf_counter()
        killed = False
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                killed = True
                self.proc.kill()
                self.proc.wait()
        if not self._log_file.closed:
            self._log_file.close()
        return {"exit_code": self.proc.returncode, "stop_s": round(time.perf_counter() - started, 2), "killed": killed}


class Sampler(threading.Thread):
    """Every `interval` seconds: the server's RSS (overall and per-phase peak), and
    (time, server CPU seconds, machine busy CPU seconds, RSS) for the phase timelines."""

    def __init__(self, server: Server, interval: float = 0.1) -> None:
        super().__init__(name="sampler", daemon=True)
        self.server = server
        self.interval = interval
        self.peak = 0
        self.phase_peak = 0
        self.samples = 0
        self.ticks: list[tuple[float, float, float, int]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            rss = self.server.rss()
            if rss:
                self.samples += 1
                self.peak = max(self.peak, rss)
                self.phase_peak = max(self.phase_peak, rss)
            self.ticks.append((time.perf_counter(), self.server.cpu_s(), machine_busy_s(), rss))

    def new_phase(self) -> None:
        self.phase_peak = self.server.rss()

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive():
            self.join()


# -- the load processes -------------------------------------------------------------------


@dataclass
class Workers:
    procs: list[mp.process.BaseProcess]
    pipes: list[Connection]
    info: list[dict[str, Any]]

    @classmethod
    def start(cls, configs: list[WorkerConfig]) -> Workers:
        ctx = mp.get_context("spawn")
        procs: list[mp.process.BaseProcess] = []
        pipes: list[Connection] = []
        for cfg in configs:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=worker_main, args=(cfg, child), name=f"load-{cfg.index}", daemon=True)
            proc.start()
            child.close()
            procs.append(proc)
            pipes.append(parent)
        info = []
        for pipe in pipes:
            kind, payload = pipe.recv()
            assert kind == "ready", kind
            info.append(payload)
        return cls(procs, pipes, info)

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.pid is not None]

    def stop(self) -> None:
        if not any(p.is_alive() for p in self.procs):
            return
        for pipe in self.pipes:
            with contextlib.suppress(OSError):
                pipe.send(None)
        for proc in self.procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
                proc.join()


# -- measuring a phase ---------------------------------------------------------------------


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (q in 0..100)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, round(q / 100 * len(sorted_values) + 0.5 - 1e-9))
    return sorted_values[min(len(sorted_values), rank) - 1]


def machine_busy_s() -> float:
    t = psutil.cpu_times()
    return float(t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0))


def split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def run_phase(
    name: str,
    kind: str,
    workers: Workers,
    server: Server,
    sampler: Sampler,
    *,
    requests: int | None,
    duration_s: float,
) -> dict[str, Any]:
    n = len(workers.pipes)
    shares = split(requests, n) if requests is not None else [None] * n
    start_at = time.perf_counter() + 0.5  # time for every worker to open its connections
    specs = [PhaseSpec(name, kind, share, duration_s, start_at) for share in shares]
    for pipe, spec in zip(workers.pipes, specs, strict=True):
        pipe.send(spec)
    time.sleep(max(0.0, start_at - time.perf_counter()))
    sampler.new_phase()
    server_cpu0, busy0 = server.cpu_s(), machine_busy_s()
    results: dict[int, PhaseResult] = {}
    waiting = list(workers.pipes)
    last = (time.perf_counter(), server_cpu0, busy0)
    while waiting:
        for ready in wait(waiting, timeout=10.0):
            assert isinstance(ready, Connection)
            kind_, payload = ready.recv()
            assert kind_ == "result", kind_
            results[workers.pipes.index(ready)] = payload
            waiting.remove(ready)
        now = (time.perf_counter(), server.cpu_s(), machine_busy_s())
        if waiting and now[0] - last[0] >= 9.5:
            dt = now[0] - last[0]
            log(
                f"  {name}: {now[0] - start_at:4.0f}s, server {(now[1] - last[1]) / dt:.2f} cores, "
                f"machine {(now[2] - last[2]) / dt:.2f} cores busy, server RSS {server.rss() / MB:,.0f} MB"
            )
            last = now
    server_cpu = server.cpu_s() - server_cpu0
    busy = machine_busy_s() - busy0
    ordered = [results[i] for i in sorted(results)]
    stats = summarize(name, ordered, server_cpu, busy, sampler.phase_peak)
    stats["timeline"] = timeline(ordered, sampler.ticks, start_at, stats["load_cpu_cores"] or 0.0)
    return stats


def timeline(
    results: list[PhaseResult], samples: list[tuple[float, float, float, int]], origin: float, load_cores: float
) -> dict[str, Any]:
    """The phase in windows: events/s (client side), server CPU cores, CPU cores used by
    everything else on the machine (busy - server - the load's phase average), server RSS."""
    end = max(r.ended for r in results)
    length = max(len(r.events_per_second) for r in results)
    per_second = [sum(r.events_per_second[k] for r in results if k < len(r.events_per_second)) for k in range(length)]
    wall = end - origin
    window = 1 if wall <= 30 else 5 if wall <= 150 else 10
    times = [t for t, *_ in samples]

    def at(t: float) -> tuple[float, float, float, int]:
        if not samples:
            return (t, 0.0, 0.0, 0)
        i = bisect.bisect_left(times, t)
        if i > 0 and (i == len(times) or t - times[i - 1] <= times[i] - t):
            i -= 1
        return samples[i]

    out: dict[str, Any] = {"window_s": window, "events_per_s": [], "server_cores": [], "other_cores": [], "rss_mb": []}
    for k in range(0, length, window):
        t0, t1 = origin + k, min(origin + k + window, end)
        if t1 - t0 < 0.2:
            break
        out["events_per_s"].append(round(sum(per_second[k : k + window]) / (t1 - t0)))
        a, b = at(t0), at(t1)
        dt = b[0] - a[0]
        server = (b[1] - a[1]) / dt if dt > 0 else 0.0
        other = (b[2] - a[2]) / dt - server - load_cores if dt > 0 else 0.0
        out["server_cores"].append(round(server, 2))
        out["other_cores"].append(round(max(0.0, other), 2))
        out["rss_mb"].append(round(b[3] / MB))
    return out


def summarize(name: str, results: list[PhaseResult], server_cpu: float, busy: float, rss_peak: int) -> dict[str, Any]:
    wall = max(r.ended for r in results) - min(r.started for r in results)
    latencies: list[float] = []
    for r in results:
        lat = array.array("d")
        lat.frombytes(r.latencies)
        latencies.extend(lat)
    latencies.sort()
    statuses: Counter[int] = Counter()
    for r in results:
        statuses.update(r.statuses)
    events = sum(r.events_ok for r in results)
    reqs = sum(r.requests_ok for r in results)
    load_cpu = sum(r.cpu_s for r in results)
    errors = sum(statuses.values()) + sum(r.connection_errors + r.unfinished for r in results)

    def ms(q: float) -> float:
        return round(percentile(latencies, q) * 1000, 2)

    return {
        "phase": name,
        "wall_s": round(wall, 3),
        "events_ok": events,
        "requests_ok": reqs,
        "events_per_s": round(events / wall, 1) if wall else 0.0,
        "requests_per_s": round(reqs / wall, 1) if wall else 0.0,
        "p50_ms": ms(50),
        "p90_ms": ms(90),
        "p99_ms": ms(99),
        "p999_ms": ms(99.9),
        "max_ms": round(latencies[-1] * 1000, 2) if latencies else None,
        "mean_ms": round(sum(latencies) / len(latencies) * 1000, 2) if latencies else None,
        "errors": errors,
        "non_200": {str(k): v for k, v in sorted(statuses.items())},
        "connection_errors": sum(r.connection_errors for r in results),
        "unfinished": sum(r.unfinished for r in results),
        "ok_with_rejections": sum(r.ok_with_rejections for r in results),
        "error_samples": [s for r in results for s in r.error_samples][:5],
        "server_cpu_s": round(server_cpu, 2),
        "server_cpu_cores": round(server_cpu / wall, 2) if wall else None,
        "server_cpu_us_per_event": round(server_cpu / events * 1e6, 1) if events else None,
        "load_cpu_s": round(load_cpu, 2),
        "load_cpu_cores": round(load_cpu / wall, 2) if wall else None,
        "other_cpu_s": round(max(0.0, busy - server_cpu - load_cpu), 2),
        "machine_busy_cores": round(busy / wall, 2) if wall else None,
        "server_rss_peak_mb": round(rss_peak / MB, 1),
    }


def brief(stats: dict[str, Any]) -> str:
    return (
        f"{stats['phase']}: {stats['events_per_s']:,.0f} events/s, {stats['requests_per_s']:,.0f} req/s, "
        f"p50 {stats['p50_ms']} ms, p99 {stats['p99_ms']} ms, max {stats['max_ms']} ms, errors {stats['errors']}, "
        f"server {stats['server_cpu_cores']} cores, load {stats['load_cpu_cores']} cores, "
        f"other {stats['other_cpu_s']} cpu-s"
    )


# -- py-spy (optional) ----------------------------------------------------------------------


def start_profiler(pid: int, out: Path, seconds: float, gil: bool) -> subprocess.Popen[bytes] | None:
    exe = shutil.which("py-spy")
    if exe is None:
        log("--profile: py-spy is not installed (pip install py-spy); skipping the profile")
        return None
    cmd = [exe, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))), "--rate", "100"]
    cmd += ["--nonblocking", "--format", "raw", "-o", str(out), *(["--gil"] if gil else [])]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _function(frame: str) -> str:
    """`handle (tsunagu/api/ingest.py:123)` -> `handle (tsunagu/api/ingest.py)`."""
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit(':', 1)[0]})" if where else name


def _thread_role(frames: list[str]) -> str:
    """Which server thread a py-spy stack was sampled on, from the frames it holds."""
    for frame in frames:
        if frame.startswith("SqliteLog._run "):
            return "log writer thread (SQLite group commit)"
        if frame.startswith("DuckDBAnalytics._run "):
            return "analytics thread (DuckDB)"
        if frame.startswith("_worker (concurrent/futures/thread.py"):
            return "asyncio.to_thread pool"
    # py-spy --nonblocking sometimes gets a truncated stack; only threads start in threading.py.
    return "other thread" if frames[0].startswith("_bootstrap (threading.py") else "event loop (main thread)"


def _interesting(frame: str) -> bool:
    return ("tsunagu/" in frame and "tsunagu/cli/" not in frame) or "uvicorn/protocols" in frame


def profile_top(raw: Path, top: int = 20, gil: bool = False) -> dict[str, Any]:
    """From py-spy's raw output: sample share per server thread, top functions by own time
    (the leaf frame; time in C extensions counts for the Python function that called them),
    and top tsunagu/uvicorn functions by inclusive time."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_function(f) for f in stack.split(";") if f and not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += n
        own[frames[-1]] += n
        threads[_thread_role(frames)] += n
        for f in set(frames):
            if _interesting(f):
                inclusive[f] += n

    def table(counter: Counter[str]) -> list[dict[str, Any]]:
        return [{"function": f, "pct": round(100 * c / total, 1), "samples": c} for f, c in counter.most_common(top)]

    return {
        "samples": total,
        "note": "py-spy --nonblocking at 100 Hz; pct of all samples of "
        + ("the thread holding the GIL (--gil)" if gil else "active (non-idle) threads"),
        "threads": {k: round(100 * v / total, 1) for k, v in threads.most_common()},
        "own": table(own),
        "inclusive": table(inclusive),
    }


# -- main ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Ingest throughput and latency of `tsunagu serve` (see the docstring).")
    p.add_argument("--events", type=int, default=2_000_000, help="batch phase: events to send (default 2,000,000)")
    p.add_argument("--batch-seconds", type=float, default=600.0, help="batch phase: stop after this long anyway")
    p.add_argument("--single-seconds", type=float, default=15.0, help="single-event phase length (default 15)")
    p.add_argument("--warmup-seconds", type=float, default=3.0, help="unmeasured load before each phase")
    p.add_argument("--connections", type=int, default=32, help="keep-alive connections in total (default 32)")
    p.add_argument("--processes", type=int, default=2, help="load processes (default 2)")
    p.add_argument("--batch-size", type=int, default=100, help="events per /v1/batch request (default 100)")
    p.add_argument("--people", type=int, default=20_000, help="distinct people (default 20,000)")
    p.add_argument("--batch-pool", type=int, default=400, help="distinct batch bodies per load process")
    p.add_argument("--single-pool", type=int, default=20_000, help="distinct /v1/track bodies per load process")
    p.add_argument("--seed", type=int, default=20240601)
    p.add_argument("--skip-single", action="store_true", help="run the batch phase only")
    p.add_argument("--profile", type=Path, help="py-spy raw output file: profile the server in the batch phase")
    p.add_argument("--profile-seconds", type=float, default=10.0)
    p.add_argument("--profile-gil", action="store_true", help="py-spy --gil: sample only the thread holding the GIL")
    p.add_argument("--keep", action="store_true", help="keep the temp data directory")
    p.add_argument(
        "--analytics-interval",
        type=float,
        help="serve --analytics-interval: e.g. 3600 keeps the analytics store from catching up during the load,"
        " to measure ingest alone; its catch-up afterwards is timed (analytics_catch_up)",
    )
    p.add_argument("--quick", action="store_true", help="a few seconds per phase: a smoke check")
    args = p.parse_args(argv)
    if args.quick:
        args.events = min(args.events, 60_000)
        args.batch_seconds = min(args.batch_seconds, 10.0)
        args.single_seconds = min(args.single_seconds, 3.0)
        args.warmup_seconds = min(args.warmup_seconds, 1.0)
        args.batch_pool = min(args.batch_pool, 40)
        args.single_pool = min(args.single_pool, 2_000)
        args.profile_seconds = min(args.profile_seconds, 3.0)
    if args.connections < args.processes:
        p.error("--connections must be at least --processes")
    return args


def main(argv: list[str] | None = None) -> int:
    report, status = run(parse_args(argv))
    print(json.dumps(report, indent=2, ensure_ascii=False))
    return status


#: called with the data directory and the workspace's credentials before the server
#: starts (bench/segments.py defines segments there); what it returns goes in the report
Prepare = Callable[[Path, dict[str, str]], Any]


def run(args: argparse.Namespace, prepare: Prepare | None = None) -> tuple[dict[str, Any], int]:
    """The benchmark: (the report, the exit status)."""
    tmp = Path(tempfile.mkdtemp(prefix="tsunagu-bench-"))
    data_dir = tmp / "data"
    server: Server | None = None
    workers: Workers | None = None
    sampler: Sampler | None = None
    profile: dict[str, Any] | None = None
    try:
        source = server_source()
        log(f"tsunagu under test: {source}")
        creds = create_workspace(data_dir)
        prepared = prepare(data_dir, creds) if prepare is not None else None
        extra = ["--analytics-interval", str(args.analytics_interval)] if args.analytics_interval else []
        server = Server(data_dir, free_port(), tmp / "server.log", extra)
        startup = server.wait_healthy()
        log(f"server pid {server.proc.pid} at {server.url}, healthy after {startup:.2f}s; data in {data_dir}")
        sampler = Sampler(server)
        sampler.start()
        rss_idle = server.rss()

        run_id = secrets.token_hex(3)
        conns = split(args.connections, args.processes)
        configs = [
            WorkerConfig(
                index=i,
                host=HOST,
                port=int(server.url.rsplit(":", 1)[1]),
                write_key=creds["write_key"],
                run_id=run_id,
                connections=conns[i],
                batch_size=args.batch_size,
                batch_pool=args.batch_pool,
                single_pool=args.single_pool,
                people=args.people,
                seed=args.seed,
            )
            for i in range(args.processes)
        ]
        log(f"starting {args.processes} load processes x {conns} connections; building request pools ...")
        workers = Workers.start(configs)
        workers_info_pools = workers.info[0]
        log(f"load processes ready: {workers_info_pools}")

        phases: dict[str, dict[str, Any]] = {}
        warmups: dict[str, dict[str, Any]] = {}

        def phase(name: str, kind: str, requests: int | None, seconds: float) -> dict[str, Any]:
            assert workers is not None and server is not None and sampler is not None
            stats = run_phase(name, kind, workers, server, sampler, requests=requests, duration_s=seconds)
            log(brief(stats))
            tl = stats["timeline"]
            log(f"  per {tl['window_s']}s: events/s {tl['events_per_s']}")
            log(f"  per {tl['window_s']}s: other cores {tl['other_cores']}")
            return stats

        if args.warmup_seconds > 0:
            warmups["batch"] = phase("batch-warmup", "batch", None, args.warmup_seconds)
        profiler = None
        if args.profile is not None:
            profiler = start_profiler(server.proc.pid, args.profile, args.profile_seconds, args.profile_gil)
        batch_requests = -(-args.events // args.batch_size)
        log(f"batch phase: {batch_requests:,} requests of {args.batch_size} events (cap {args.batch_seconds:.0f}s)")
        phases["batch"] = phase("batch", "batch", batch_requests, args.batch_seconds)
        if profiler is not None:
            _, err = profiler.communicate(timeout=args.profile_seconds + 60)
            if profiler.returncode == 0 and args.profile.exists():
                profile = profile_top(args.profile, gil=args.profile_gil)
                log(f"server profile, batch phase, samples by thread: {profile['threads']}")
                log("server profile, batch phase, top functions by own time:")
                for row in profile["own"][:15]:
                    log(f"  {row['pct']:5.1f}%  {row['function']}")
            else:
                log(f"py-spy failed ({profiler.returncode}): {err.decode(errors='replace')[-500:]}")
        catch_up: dict[str, Any] | None = None
        if args.analytics_interval:
            # A people search waits for the analytics store to hold every acknowledged
            # event: time how long it takes to catch up with what the load left behind.
            started = time.perf_counter()
            status = 0
            while status != 200 and time.perf_counter() - started < 600:
                status, _ = http_get(server.url + "/api/v1/people?limit=1", creds["api_token"], timeout=120)
            seconds = time.perf_counter() - started
            behind = sum(s["events_ok"] for s in (*phases.values(), *warmups.values()))
            catch_up = {"seconds": round(seconds, 2), "events": behind, "events_per_s": round(behind / seconds)}
            log(f"analytics caught up with {behind:,} events in {seconds:.1f}s")
        if not args.skip_single:
            if args.warmup_seconds > 0:
                warmups["single"] = phase("single-warmup", "single", None, min(args.warmup_seconds, 2.0))
            phases["single"] = phase("single", "single", None, args.single_seconds)

        if any(s["errors"] for s in (*phases.values(), *warmups.values())):
            log("some requests failed; server log tail:\n" + server.log_tail(30))

        expected = sum(s["events_ok"] for s in (*phases.values(), *warmups.values()))
        status, body = http_get(server.url + "/api/v1/workspace", creds["api_token"], timeout=60)
        accepted = body.get("events_accepted_since_start") if isinstance(body, dict) else None
        check = {
            "http_status": status,
            "events_accepted_since_start": accepted,
            "events_answered_200": expected,
            "equal": accepted == expected,
            "people": body.get("people") if isinstance(body, dict) else None,
            "log_seq": body.get("log_seq") if isinstance(body, dict) else None,
        }
        log(f"accepted check: server {accepted}, answered 200 {expected}: {'OK' if check['equal'] else 'MISMATCH'}")

        workers.stop()
        workers = None
        sampler.stop()
        vm_hwm = server.vm_hwm()  # the kernel's peak RSS, read while the process still exists
        stop = server.stop()
        db_bytes = sum(f.stat().st_size for f in data_dir.rglob("*") if f.is_file())
        report = {
            **phases,
            "warmup": {k: {"events_ok": v["events_ok"], "events_per_s": v["events_per_s"]} for k, v in warmups.items()},
            "server_peak_rss_mb": round(sampler.peak / MB, 1),
            "server_vmhwm_mb": round(vm_hwm / MB, 1) if vm_hwm else None,
            "server_idle_rss_mb": round(rss_idle / MB, 1),
            "rss_samples": sampler.samples,
            "accepted_check": check,
            "server_stop": stop,
            "data_dir_mb_after": round(db_bytes / MB, 1),
            **({"profile_batch": profile} if profile is not None else {}),
            **({"analytics_catch_up": catch_up} if catch_up is not None else {}),
            "load": {**workers_info(configs, args), "pools": workers_info_pools},
            "server_source": source,
            "machine": machine_info(),
            "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            **({"prepared": prepared} if prepared is not None else {}),
        }
        return report, 0 if check["equal"] and all(s["errors"] == 0 for s in phases.values()) else 1
    except Exception:
        if server is not None:
            log("server log tail:\n" + server.log_tail())
        raise
    finally:
        # Each step on its own: a failure in one must not leave the server running.
        cleanup: list[Callable[[], object]] = []
        if workers is not None:
            cleanup.append(workers.stop)
        if sampler is not None:
            cleanup.append(sampler.stop)
        if server is not None:
            cleanup.append(server.stop)
        for step in cleanup:
            try:
                step()
            except Exception as exc:
                log(f"cleanup: {step.__qualname__} failed: {exc!r}")
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def workers_info(configs: list[WorkerConfig], args: argparse.Namespace) -> dict[str, Any]:
    try:
        import uvloop  # noqa: F401

        loop = "uvloop"
    except ImportError:
        loop = "asyncio"
    return {
        "processes": len(configs),
        "connections": [c.connections for c in configs],
        "event_loop": loop,
        "batch_size": args.batch_size,
    }


def machine_info() -> dict[str, Any]:
    vm = psutil.virtual_memory()
    return {
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gb": round(vm.total / 1e9, 1),
        "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


if __name__ == "__main__":
    sys.exit(main())

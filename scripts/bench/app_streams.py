#!/usr/bin/env python3
"""Agent streams under load: the generated Tier 1 app against bare FastAPI, in one run.

    app_streams.py --project DIR --package PKG [--work DIR] [--out DIR]
                   [--scenarios sse:1000:0.5,ws:5000:5 ...] [--hold 20] [--clients 3]
                   [--targets bare,app]

Each scenario is KIND:STREAMS:INTERVAL (KIND sse or ws; one event every INTERVAL seconds per
stream). Per scenario and target, one uvicorn worker is pinned to core 0 (the app with the
fake agent, FAKE_AGENT_DELAY_SECONDS=INTERVAL; bare: scripts/bench/bare_streams.py, FastAPI's
native SSE and a bare WebSocket endpoint sending the same events) and --clients client
processes pinned to the other cores open the streams over raw sockets on uvloop. After the
streams are open and settled, a window of --hold seconds is measured:
- memory per stream: the worker's RSS with every stream open minus its RSS idle, / streams;
- CPU per event: the worker's CPU time in the window / events the clients received in it;
- lag: per event, its arrival minus (the previous event's arrival + INTERVAL): how late it
  came against the agent's pacing (the fake agent sleeps INTERVAL after each event), so a
  loop stall (a long garbage collection) shows once, on the events it held back;
- errors: refused or dropped streams, streams that ended or went silent in the window;
- the clients' own loop lag (a 5 ms ticker), to show the figures describe the server;
- the worker's garbage collections in the window (gc_probe/sitecustomize.py).
Run with the generated project's interpreter (uvloop, uvicorn). Needs REDIS_URL. Writes
app-streams.json to --out, prints a Markdown section (table and targets) on stdout; exits 1
on any stream error.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from app_driver import mint_jwt


def log(msg: str) -> None:
    print(f"app_streams: {msg}", file=sys.stderr, flush=True)


def raise_fd_limit() -> None:
    # 5,000 streams need more descriptors than the usual soft limit of 1,024; the servers
    # and clients started from here inherit the raised limit.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < 12_000:
        raise SystemExit(
            f"the fd hard limit is {hard}: 5,000 streams need >= 12,000 "
            "(raise it with ulimit -Hn or in /etc/security/limits.conf)"
        )


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


# ------------------------------------------------------------------------------ clients


class Stream(asyncio.Protocol):
    """One SSE stream or WebSocket over a raw socket: counts events, their lag, errors."""

    def __init__(self, client: Client, request: bytes) -> None:
        self.client = client
        self.request = request
        self.transport: Any = None
        self.buffer = b""
        self.head_done = False
        self.last: float | None = None
        self.error: str | None = None
        self.closed_by_us = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        transport.write(self.request)

    def fail(self, reason: str) -> None:
        if self.error is None and not self.closed_by_us:
            self.error = reason
            self.client.fail(reason)
        if self.transport is not None:
            self.transport.abort()

    def event(self, now: float) -> None:
        c = self.client
        if c.window_start <= now <= c.window_end:
            c.events += 1
            if self.last is not None:
                c.lags.append(max(0.0, now - self.last - c.interval))
        self.last = now

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed_by_us:
            self.fail(
                f"closed by the server: {exc!r}" if exc else "closed by the server"
            )

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        self.buffer += data
        if not self.head_done:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head, self.buffer = self.buffer[:end], self.buffer[end + 4 :]
            status = head.split(b"\r\n", 1)[0]
            if not self.check_head(status, head.lower()):
                self.fail(f"answer: {status.decode(errors='replace')}")
                return
            self.head_done = True
            self.client.opened += 1
            self.opened()
        self.body(now)

    def check_head(self, status: bytes, head: bytes) -> bool:
        raise NotImplementedError

    def opened(self) -> None:
        pass

    def body(self, now: float) -> None:
        raise NotImplementedError


class SseStream(Stream):
    def check_head(self, status: bytes, head: bytes) -> bool:
        return b" 200 " in status + b" " and b"text/event-stream" in head

    def body(self, now: float) -> None:
        *frames, self.buffer = self.buffer.split(b"\n\n")
        for frame in frames:
            at = frame.find(b"event: ")
            if at < 0:
                continue  # a `: ping` comment or chunk framing
            kind = frame[at + 7 :].split(b"\n", 1)[0]
            if kind in (b"error", b"done"):
                self.fail(f"event {kind.decode()} before the end of the window")
                return
            self.event(now)


def ws_frame(opcode: int, payload: bytes) -> bytes:
    """A client frame: masked, as RFC 6455 requires of clients."""
    mask = os.urandom(4)
    n = len(payload)
    head = bytes([0x80 | opcode]) + (
        bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big")
    )
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + body


class WsStream(Stream):
    def check_head(self, status: bytes, head: bytes) -> bool:
        return b" 101 " in status + b" "

    def body(self, now: float) -> None:
        buf = self.buffer
        while len(buf) >= 2:
            opcode, n, at = buf[0] & 0x0F, buf[1] & 0x7F, 2
            if n == 126:
                if len(buf) < 4:
                    break
                n, at = int.from_bytes(buf[2:4], "big"), 4
            elif n == 127:
                if len(buf) < 10:
                    break
                n, at = int.from_bytes(buf[2:10], "big"), 10
            if len(buf) < at + n:
                break
            payload, buf = buf[at : at + n], buf[at + n :]
            if opcode == 0x9:  # the server's protocol ping: answer or be dropped
                self.transport.write(ws_frame(0xA, payload))
            elif opcode == 0x8:
                self.buffer = buf
                self.fail(f"close frame {payload[:2].hex()} {payload[2:80]!r}")
                return
            elif opcode == 0x1:
                kind = json.loads(payload).get("type")
                if kind == "ready":
                    self.transport.write(ws_frame(0x1, self.client.ws_run))
                elif kind in ("error", "done", "cancelled"):
                    self.buffer = buf
                    self.fail(
                        f"message {kind} before the end of the window: {payload[:120]!r}"
                    )
                    return
                elif kind not in ("ping", "pong"):
                    self.event(now)
        self.buffer = buf


class Client:
    def __init__(self, a: argparse.Namespace) -> None:
        self.a = a
        self.interval = a.interval
        self.window_start = a.window_start
        self.window_end = a.window_end
        self.events = 0
        self.opened = 0
        self.lags: list[float] = []
        self.errors: dict[str, int] = {}
        self.self_lags: list[float] = []
        prompt = " ".join(f"w{i}" for i in range(a.words))
        self.ws_run = json.dumps({"type": "run", "prompt": prompt}).encode()
        auth = f"Authorization: Bearer {a.token}\r\n" if a.token else ""
        host = f"Host: 127.0.0.1:{a.port}\r\n"
        if a.kind == "sse":
            self.request = (
                f"GET {a.path} HTTP/1.1\r\n{host}{auth}"
                "Accept: text/event-stream\r\n\r\n"
            ).encode()
        else:
            key = base64.b64encode(os.urandom(16)).decode()
            self.request = (
                f"GET {a.path} HTTP/1.1\r\n{host}{auth}Upgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                f"Sec-WebSocket-Key: {key}\r\n\r\n"
            ).encode()

    def fail(self, reason: str) -> None:
        key = re.sub(r"\d+", "N", reason)[:140]
        self.errors[key] = self.errors.get(key, 0) + 1

    async def ticker(self) -> None:
        while time.monotonic() < self.window_end:
            before = time.monotonic()
            await asyncio.sleep(0.005)
            now = time.monotonic()
            if self.window_start <= now <= self.window_end:
                self.self_lags.append(now - before - 0.005)

    async def run(self) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        kind = SseStream if self.a.kind == "sse" else WsStream
        ticker = asyncio.create_task(self.ticker())
        streams: list[Stream] = []
        step = (self.a.open_end - self.a.open_start) / max(1, self.a.count)
        for i in range(self.a.count):
            delay = self.a.open_start + i * step - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            stream = kind(self, self.request)
            try:
                await loop.create_connection(
                    lambda s=stream: s, "127.0.0.1", self.a.port
                )
            except OSError as exc:
                self.fail(f"connect: {exc!r}")
                continue
            streams.append(stream)
        await asyncio.sleep(max(0.0, self.window_end - time.monotonic()))
        silent = 0
        for s in streams:
            # Heartbeats aside, every stream must have had an event in the last two intervals.
            if s.error is None and (
                s.last is None or s.last < self.window_end - 2 * self.interval - 1
            ):
                silent += 1
                self.fail("no event in the last two intervals of the window")
            s.closed_by_us = True
            if s.transport is not None:
                s.transport.abort()
        await ticker
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "opened": self.opened,
            "events": self.events,
            "lags": self.lags,
            "errors": self.errors,
            "silent": silent,
            "self_lag_p99_ms": percentile(self.self_lags, 0.99) * 1e3,
            "self_lag_max_ms": max(self.self_lags, default=0.0) * 1e3,
            "cpu_s": usage.ru_utime + usage.ru_stime,
        }


def client_main(a: argparse.Namespace) -> int:
    try:
        import uvloop  # type: ignore[import-not-found]

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(Client(a).run())
    Path(a.client_out).write_text(json.dumps(result))
    return 0


# ------------------------------------------------------------------------------ servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_kb(pid: int) -> int:
    m = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    return int(m.group(1)) if m else 0


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


class Worker:
    """One uvicorn worker (no supervisor process: --workers 1 serves in-process) on core 0."""

    def __init__(
        self,
        name: str,
        app: str,
        *,
        cwd: Path,
        env: dict[str, str],
        factory: bool,
        log_dir: Path,
        core: str,
    ) -> None:
        self.name = name
        self.port = free_port()
        # The GC probe (gc_probe/sitecustomize.py) reports the collector's pauses.
        self.gc_file = log_dir / f"gc-{name}.json"
        self.gc_file.unlink(missing_ok=True)
        env = {
            **env,
            "BENCH_GC_PROBE": str(self.gc_file),
            "PYTHONPATH": str(HERE / "gc_probe"),
        }
        argv = [
            "taskset",
            "-c",
            core,
            sys.executable,
            "-m",
            "uvicorn",
            app,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            "1",
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--backlog",
            "8192",
            "--no-access-log",
        ]
        if factory:
            argv.append("--factory")
        self.log_path = log_dir / f"streams-{name}.log"
        self.log_file = self.log_path.open("w")
        self.process = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=self.log_file, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 60
        while "startup complete" not in self.log_path.read_text(errors="replace"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SystemExit(
                    f"{name} did not start; log {self.log_path}:\n"
                    + self.log_path.read_text(errors="replace")[-3000:]
                )
            time.sleep(0.2)

    def gc_stats(self) -> dict[str, Any]:
        self.process.send_signal(signal.SIGUSR2)
        for _ in range(50):
            if self.gc_file.exists() and self.gc_file.stat().st_size:
                return dict(json.loads(self.gc_file.read_text()))
            time.sleep(0.1)
        return {}

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log_file.close()


def app_env(args: argparse.Namespace, interval: float, work: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"}
    }
    if "REDIS_URL" not in env:
        raise SystemExit(
            "REDIS_URL is not set (scripts/bench-app sets it from scripts/services)"
        )
    metrics = work / "metrics-streams"
    shutil.rmtree(metrics, ignore_errors=True)
    metrics.mkdir(parents=True)
    audience = args.package.replace("_", "-")
    env.update(
        APP_NAME=audience,
        ENVIRONMENT="prod",
        LOG_JSON="true",
        LOG_LEVEL="WARNING",
        JWT_SECRET="bench-secret-" + "k" * 48,
        JWT_AUDIENCE=audience,
        JWT_ISSUER=audience,
        RATE_LIMIT_REQUESTS=str(10**9),
        RATE_LIMIT_WINDOW_SECONDS="60",
        REDIS_KEY_PREFIX=f"benchstreams{os.getpid()}:",
        AGENT_RUNNER="fake",
        FAKE_AGENT_DELAY_SECONDS=str(interval),
        # Every stream is a run of one caller: the caps must not be what is measured.
        AGENT_MAX_CONCURRENT_RUNS="100000",
        AGENT_MAX_CONCURRENT_RUNS_PER_USER="100000",
        AGENT_TIMEOUT_SECONDS="3600",
        PROMETHEUS_MULTIPROC_DIR=str(metrics),
    )
    return env


def run_clients(
    args: argparse.Namespace,
    kind: str,
    port: int,
    path: str,
    token: str,
    streams: int,
    interval: float,
    words: int,
    times: dict[str, float],
) -> list[subprocess.Popen[bytes]]:
    out = args.work
    procs = []
    per = [
        streams // args.clients + (i < streams % args.clients)
        for i in range(args.clients)
    ]
    for i, count in enumerate(per):
        argv = [
            "taskset",
            "-c",
            args.client_cores,
            sys.executable,
            __file__,
            "--client",
            "--kind",
            kind,
            "--port",
            str(port),
            "--path",
            path,
            "--token",
            token,
            "--count",
            str(count),
            "--interval",
            str(interval),
            "--words",
            str(words),
            "--client-out",
            str(out / f"client-{i}.json"),
        ]
        (out / f"client-{i}.json").unlink(missing_ok=True)
        argv += [f"--{k.replace('_', '-')}={v}" for k, v in times.items()]
        procs.append(subprocess.Popen(argv))
    return procs


def measure(
    args: argparse.Namespace,
    target: str,
    kind: str,
    streams: int,
    interval: float,
    work: Path,
) -> dict[str, Any]:
    token = mint_jwt(args.package.replace("_", "-")) if target == "app" else ""
    if target == "app":
        worker = Worker(
            f"app-{kind}",
            f"{args.package}.main:create_app",
            cwd=args.project,
            env=app_env(args, interval, work),
            factory=True,
            log_dir=work,
            core=args.server_core,
        )
    else:
        env = dict(os.environ, BENCH_EVENT_INTERVAL=str(interval))
        worker = Worker(
            f"bare-{kind}",
            "bare_streams:app",
            cwd=HERE,
            env=env,
            factory=False,
            log_dir=work,
            core=args.server_core,
        )
    pid = worker.process.pid
    ramp = max(2.0, streams / args.open_rate)
    words = int((ramp + args.settle + args.hold + 10) / interval) + 5
    if target == "app":
        path = {
            "sse": f"/agents/run/stream?prompt={'+'.join(f'w{i}' for i in range(words))}",
            "ws": "/agents/ws",
        }[kind]
    else:
        path = {"sse": f"/sse?words={words}", "ws": "/ws"}[kind]
    try:
        # Warm-up: a few streams through every layer, then the idle reading.
        warm_times = {
            "open_start": time.monotonic() + 1.5,
            "open_end": time.monotonic() + 2,
            "window_start": time.monotonic() + 2,
            "window_end": time.monotonic() + 4,
        }
        for p in run_clients(
            argparse.Namespace(**{**vars(args), "clients": 1}),
            kind,
            worker.port,
            path,
            token,
            20,
            interval,
            words,
            warm_times,
        ):
            p.wait(timeout=60)
        time.sleep(2)
        rss_idle = proc_rss_kb(pid)
        now = time.monotonic() + 1.5  # the clients' start-up
        times = {
            "open_start": now,
            "open_end": now + ramp,
            "window_start": now + ramp + args.settle,
            "window_end": now + ramp + args.settle + args.hold,
        }
        load_before = loadavg()
        procs = run_clients(
            args, kind, worker.port, path, token, streams, interval, words, times
        )
        time.sleep(max(0.0, times["window_start"] - time.monotonic()))
        worker.process.send_signal(signal.SIGUSR1)
        cpu_start = proc_cpu_s(pid)
        rss_loaded = proc_rss_kb(pid)
        while time.monotonic() < times["window_end"] - 0.2:
            time.sleep(min(1.0, max(0.0, times["window_end"] - 0.2 - time.monotonic())))
            rss_loaded = max(rss_loaded, proc_rss_kb(pid))
        cpu_s = proc_cpu_s(pid) - cpu_start
        gc_stats = worker.gc_stats()
        load_after = loadavg()
        for p in procs:
            p.wait(timeout=120)
        results = [
            json.loads((args.work / f"client-{i}.json").read_text())
            for i in range(len(procs))
        ]
    finally:
        worker.stop()
    lags = [x for r in results for x in r["lags"]]
    events = sum(r["events"] for r in results)
    errors: dict[str, int] = {}
    for r in results:
        for k, v in r["errors"].items():
            errors[k] = errors.get(k, 0) + v
    row = {
        "target": target,
        "kind": kind,
        "streams": streams,
        "interval_s": interval,
        "opened": sum(r["opened"] for r in results),
        "events": events,
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "rss_idle_mb": rss_idle / 1024,
        "rss_loaded_mb": rss_loaded / 1024,
        "kb_per_stream": (rss_loaded - rss_idle) / streams,
        "cpu_s": cpu_s,
        "cpu_ms_per_event": cpu_s * 1e3 / events if events else float("nan"),
        "lag_p50_ms": percentile(lags, 0.5) * 1e3,
        "lag_p99_ms": percentile(lags, 0.99) * 1e3,
        "lag_max_ms": max(lags, default=float("nan")) * 1e3,
        "client_lag_p99_ms": max(r["self_lag_p99_ms"] for r in results),
        "client_cpu_s": sum(r["cpu_s"] for r in results),
        "load_before": load_before,
        "load_after": load_after,
        "gc": gc_stats,
    }
    log(
        f"{target} {kind} {streams}x1/{interval}s: {events} events, errors {row['errors']} "
        f"{errors or ''}, {row['kb_per_stream']:.1f} KB/stream, "
        f"{row['cpu_ms_per_event']:.3f} ms CPU/event, lag p50 {row['lag_p50_ms']:.1f} "
        f"p99 {row['lag_p99_ms']:.1f} max {row['lag_max_ms']:.1f} ms, client loop lag p99 "
        f"{row['client_lag_p99_ms']:.1f} ms, load {load_before} -> {load_after}; gc {gc_stats}"
    )
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    # Client-process arguments.
    for name in ("kind", "path", "token", "client-out"):
        parser.add_argument(f"--{name}", default="")
    for name in ("port", "count", "words"):
        parser.add_argument(f"--{name}", type=int, default=0)
    for name in ("interval", "open-start", "open-end", "window-start", "window-end"):
        parser.add_argument(f"--{name}", type=float, default=0.0)
    # Driver arguments.
    parser.add_argument("--project", type=Path)
    parser.add_argument("--package")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument(
        "--out", type=Path, default=None, help="where app-streams.json goes"
    )
    parser.add_argument(
        "--scenarios", default="sse:1000:0.5,ws:1000:0.5,sse:5000:5,ws:5000:5"
    )
    parser.add_argument("--targets", default="bare,app")
    parser.add_argument("--hold", type=float, default=20)
    parser.add_argument("--settle", type=float, default=3)
    parser.add_argument(
        "--open-rate", type=float, default=500, help="streams opened per s"
    )
    parser.add_argument("--clients", type=int, default=3)
    parser.add_argument("--server-core", default="0")
    parser.add_argument("--client-cores", default="1")
    args = parser.parse_args()
    raise_fd_limit()
    if args.client:
        return client_main(args)
    if args.project is None or args.package is None:
        parser.error("--project and --package are required")
    work = args.work = args.work or Path(tempfile.mkdtemp(prefix="bench-streams-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for scenario in args.scenarios.split(","):
        kind, streams, interval = scenario.split(":")
        if kind not in ("sse", "ws"):
            raise SystemExit(f"--scenarios: {scenario!r}: KIND must be sse or ws")
        for target in args.targets.split(","):
            rows.append(
                measure(args, target, kind, int(streams), float(interval), work)
            )
    for row in rows:
        if row["target"] == "app":
            base = next(
                (
                    r
                    for r in rows
                    if r["target"] == "bare"
                    and r["kind"] == row["kind"]
                    and r["streams"] == row["streams"]
                    and r["interval_s"] == row["interval_s"]
                ),
                None,
            )
            if base and base["cpu_ms_per_event"] > 0:
                row["cpu_vs_bare"] = row["cpu_ms_per_event"] / base["cpu_ms_per_event"]
    summary = {
        "test": "streams",
        "hold_s": args.hold,
        "machine_load_end": loadavg(),
        "rows": rows,
    }
    out = args.out or work
    out.mkdir(parents=True, exist_ok=True)
    (out / "app-streams.json").write_text(json.dumps(summary, indent=1))
    print(report(rows, args))
    return 0 if all(r["errors"] == 0 for r in rows) else 1


def report(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    intro = (
        f"Streams: one uvicorn worker (uvloop, httptools) pinned to CPU {args.server_core}, "
        f"{args.clients} client processes (raw sockets, uvloop) on CPU {args.client_cores}; "
        f"fake agent; {args.hold:.0f} s measured after every stream is open. bare = FastAPI's "
        "EventSourceResponse / a bare WebSocket endpoint sending the same events."
    )
    header = (
        "| stream | server | open | events | errors | KB/stream | CPU ms/event | vs bare "
        "| lag p50 / p99 / max ms | full GCs (longest ms) | client lag p99 ms | load 1-min |"
    )
    lines = [intro, "", header, "| --- " * 12 + "|"]
    for r in rows:
        gc2 = r["gc"].get("2", {})
        lines.append(
            f"| {r['kind'].upper()} {r['streams']:,} x 1/{r['interval_s']:g}s | {r['target']} "
            f"| {r['opened']:,} | {r['events']:,} | {r['errors']} | {r['kb_per_stream']:.1f} "
            f"| {r['cpu_ms_per_event']:.3f} | "
            + (f"{r['cpu_vs_bare']:.2f}x" if "cpu_vs_bare" in r else "")
            + f" | {r['lag_p50_ms']:.1f} / {r['lag_p99_ms']:.1f} / {r['lag_max_ms']:.0f} "
            f"| {gc2.get('collections', 0)} ({gc2.get('max_ms', 0):.0f}) "
            f"| {r['client_lag_p99_ms']:.1f} | {r['load_before'].split()[0]} -> "
            f"{r['load_after'].split()[0]} |"
        )

    def app(kind: str, streams: int) -> dict[str, Any] | None:
        return next(
            (
                r
                for r in rows
                if r["target"] == "app"
                and r["kind"] == kind
                and r["streams"] == streams
            ),
            None,
        )

    lines.append("")
    checks = []
    if (r := app("sse", 1000)) is not None:
        checks.append(("1,000 SSE: lag p99 < 50 ms", r["lag_p99_ms"] < 50))
        checks.append(("1,000 SSE: <= 40 KB per stream", r["kb_per_stream"] <= 40))
        if "cpu_vs_bare" in r:
            checks.append(("CPU per SSE event <= 1.2x bare", r["cpu_vs_bare"] <= 1.2))
    for kind in ("sse", "ws"):
        if (r := app(kind, 5000)) is not None:
            name = f"5,000 {'SSE' if kind == 'sse' else 'WebSockets'}"
            checks.append(
                (
                    f"{name}: 0 errors, lag p99 < 100 ms",
                    r["errors"] == 0 and r["lag_p99_ms"] < 100,
                )
            )
    lines += [f"- {name}: {'MET' if ok else 'MISSED'}" for name, ok in checks]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

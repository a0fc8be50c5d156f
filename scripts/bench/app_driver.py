#!/usr/bin/env python3
"""Starts the generated Tier 1 app (and the bare baseline) under uvicorn and measures them.

    app_driver.py throughput --project DIR --package PKG [--rounds 3 --duration 15 ...]
    app_driver.py sse        --project DIR --package PKG [--streams 1000 --hold 30]
    app_driver.py robustness --project DIR --package PKG --schemathesis ST [--duration 30]
    app_driver.py profile    --project DIR --package PKG --py-spy PY_SPY [--duration 20]

Run with the generated project's own interpreter (its FastAPI and uvicorn); standard library
only otherwise. Needs REDIS_URL in the environment (scripts/services start gives one) and
`wrk` on PATH. Every server it starts listens on 127.0.0.1 and is stopped on the way out.
Prints a JSON summary as its last line; exits 1 when a hard condition fails (errors, 5xx).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
JWT_SECRET = "bench-secret-" + "k" * 48


def log(msg: str) -> None:
    print(f"app_driver: {msg}", file=sys.stderr, flush=True)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def mint_jwt(audience: str, subject: str = "bench", ttl: int = 7200) -> str:
    now = int(time.time())
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = {"sub": subject, "iat": now, "exp": now + ttl, "aud": audience, "iss": audience}
    body = b64url(json.dumps(claims).encode())
    sig = hmac.new(JWT_SECRET.encode(), f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{b64url(sig)}"


# The generated image's uvicorn options (Tier 1 Dockerfile CMD), for the app and the bare
# baseline alike.
SERVER_FLAGS = ["--loop", "uvloop", "--http", "httptools", "--no-access-log"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """`python -m uvicorn APP --workers N` on a free loopback port, in its own process group."""

    def __init__(self, name: str, app: str, *, cwd: Path, env: dict[str, str], workers: int,
                 factory: bool, log_dir: Path, cpus: str | None = None,
                 python: str | None = None, extra: list[str] | None = None) -> None:
        self.name = name
        self.port = free_port()
        argv = [python or sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1",
                "--port", str(self.port), "--workers", str(workers)]
        if factory:
            argv.append("--factory")
        argv += extra or []
        if cpus is not None:
            # Pinned: the server owns this core and the load generator the other one.
            argv = ["taskset", "-c", cpus, *argv]
        self.log_path = log_dir / f"{name}.log"
        self.log_file = self.log_path.open("w")
        self.process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=self.log_file,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        self.workers = workers
        self._wait_ready()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"{self.name} exited with {self.process.returncode}; "
                                 f"log: {self.log_path}\n{self.log_path.read_text()[-3000:]}")
            started = self.log_path.read_text(errors="replace").count("startup complete")
            if started >= self.workers:
                try:
                    with urllib.request.urlopen(f"{self.url}/health", timeout=2) as r:
                        if r.status == 200:
                            return
                except (OSError, urllib.error.URLError):
                    pass
            time.sleep(0.3)
        self.stop()
        raise SystemExit(f"{self.name} not ready after {timeout:.0f}s; log: {self.log_path}")

    def worker_pids(self) -> list[int]:
        pids = []
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                stat = (proc / "stat").read_text().rsplit(")", 1)[1].split()
                cmdline = (proc / "cmdline").read_bytes()
            except (OSError, IndexError):
                continue
            if int(stat[1]) == self.process.pid and b"spawn_main" in cmdline:
                pids.append(int(proc.name))
        return pids

    def workers_rss_kb(self) -> int:
        total = 0
        for pid in self.worker_pids():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            m = re.search(r"VmRSS:\s+(\d+) kB", status)
            total += int(m.group(1)) if m else 0
        return total

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log_file.close()


def app_env(args: argparse.Namespace, metrics_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"}}
    if "REDIS_URL" not in env:
        raise SystemExit("REDIS_URL is not set (scripts/bench-app sets it from scripts/services)")
    audience = args.package.replace("_", "-")
    env.update(
        APP_NAME=audience,
        ENVIRONMENT="prod",
        DOCS_ENABLED="true",
        LOG_JSON="true",
        JWT_SECRET=JWT_SECRET,
        JWT_AUDIENCE=audience,
        JWT_ISSUER=audience,
        # High enough never to answer 429 during a run: the stack still does its Redis work.
        RATE_LIMIT_REQUESTS=str(10**9),
        RATE_LIMIT_WINDOW_SECONDS="60",
        REDIS_KEY_PREFIX=f"bench{os.getpid()}:",
        AGENT_RUNNER="fake",
        FAKE_AGENT_DELAY_SECONDS=str(args.fake_delay),
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
    )
    return env


def start_full(args: argparse.Namespace, work: Path, name: str = "full",
               project: Path | None = None) -> Server:
    metrics_dir = work / f"metrics-{name}"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    project = project or args.project
    env = app_env(args, metrics_dir)
    # Builds compared in one run keep their counters apart.
    env["REDIS_KEY_PREFIX"] += f"{name}:"
    env["PATH"] = f"{project / '.venv' / 'bin'}:{env.get('PATH', '')}"
    return Server(name, f"{args.package}.main:create_app", cwd=project, env=env,
                  workers=args.workers, factory=True, log_dir=work,
                  cpus=getattr(args, "server_cpu", None),
                  python=str(project / ".venv" / "bin" / "python"), extra=SERVER_FLAGS)


def get(url: str, token: str | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def to_ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        raise ValueError(f"unknown wrk duration {text!r}")
    return float(m.group(1)) * UNITS[m.group(2)]


def run_wrk(url: str, token: str | None, *, threads: int, connections: int,
            duration: int, cpus: str | None = None) -> dict[str, float]:
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency",
            "--timeout", "10s"]
    if cpus is not None:
        argv = ["taskset", "-c", cpus, *argv]
    if token:
        argv += ["-H", f"Authorization: Bearer {token}"]
    out = subprocess.run(argv + [url], capture_output=True, text=True, check=True).stdout
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", out, re.M))
    if "50" not in latency or "99" not in latency:
        raise SystemExit(f"wrk gave no latency distribution (no answers?):\n{out}")
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "p50_ms": to_ms(latency["50"]),
        "p99_ms": to_ms(latency["99"]),
        "socket_errors": sum(int(x) for x in socket_errors.groups()) if socket_errors else 0,
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
    }


def cpu_seconds(servers: list[Server]) -> float:
    """User + system CPU time so far of the servers' processes (pinned: one worker each)."""
    ticks = 0
    for server in servers:
        try:
            stat = Path(f"/proc/{server.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(stat[11]) + int(stat[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


ROUTES = ("/health", "/me")


def check_full(full: Server, token: str) -> None:
    status, body = get(f"{full.url}/me", token)
    if status != 200 or json.loads(body).get("subject") != "bench":
        raise SystemExit(f"full app: GET /me with the token gave {status} {body[:300]!r}")
    if get(f"{full.url}/me")[0] != 401:
        raise SystemExit("full app: GET /me without a token did not answer 401")


def alternate(targets: list[tuple[str, Server, str | None]], args: argparse.Namespace,
              routes: tuple[str, ...] = ROUTES,
              cpu_of: dict[str, list[Server]] | None = None) -> dict[str, object]:
    """wrk against every (route, target) in turn, `args.rounds` times; medians per pair and
    each target's ratio to the first one (the baseline) per route. Besides req/s, the CPU
    time the server processes spent per request: on a machine shared with other work the
    throughput swings with the neighbours, CPU per request much less."""
    wrk = dict(threads=args.threads, connections=args.connections, duration=args.duration,
               cpus=args.client_cpu)
    rounds: dict[str, dict[str, list[dict[str, float]]]] = {
        route: {name: [] for name, _, _ in targets} for route in routes}
    for route in routes:
        for _name, server, tok in targets:  # warm-up: imports, caches, first connections
            run_wrk(f"{server.url}{route}", tok, **{**wrk, "duration": 2})
    for n in range(args.rounds):
        for route in routes:
            for name, server, tok in targets:
                before = loadavg()
                counted = (cpu_of or {}).get(name, [server])
                cpu_before = cpu_seconds(counted)
                result = run_wrk(f"{server.url}{route}", tok, **wrk)
                cpu_us = (cpu_seconds(counted) - cpu_before) / max(result["requests"], 1) * 1e6
                result |= {"load_before": before, "load_after": loadavg(), "cpu_us": cpu_us}
                rounds[route][name].append(result)
                log(f"round {n + 1} {route} {name}: {result['rps']:.0f} req/s, p50 "
                    f"{result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms, "
                    f"non-2xx {result['non_2xx']}, socket errors {result['socket_errors']}, "
                    f"CPU {cpu_us:.0f} us/request, "
                    f"load {before:.2f}->{result['load_after']:.2f}")
    medians: dict[str, dict[str, dict[str, float]]] = {}
    for route in routes:
        medians[route] = {}
        base = statistics.median(r["rps"] for r in rounds[route][targets[0][0]])
        base_cpu = statistics.median(r["cpu_us"] for r in rounds[route][targets[0][0]])
        for name, _, _ in targets:
            rs = rounds[route][name]
            med = {k: statistics.median(r[k] for r in rs)
                   for k in ("rps", "p50_ms", "p99_ms", "cpu_us", "load_before", "load_after")}
            med["ratio"] = med["rps"] / base
            # Requests per CPU-second relative to the baseline's.
            med["cpu_ratio"] = base_cpu / med["cpu_us"] if med["cpu_us"] else 0.0
            medians[route][name] = med
    errors = sum(r["non_2xx"] + r["socket_errors"]
                 for per in rounds.values() for rs in per.values() for r in rs)
    return {"rounds": rounds, "medians": medians, "errors": errors,
            "threads": args.threads, "connections": args.connections,
            "duration": args.duration, "workers": args.workers,
            "server_cpu": args.server_cpu, "client_cpu": args.client_cpu}


def throughput(args: argparse.Namespace, work: Path) -> int:
    """Bare FastAPI and the generated app, one uvicorn worker each on the same core, wrk on
    the other core, `/health` and authenticated `GET /me` in alternating rounds."""
    token = mint_jwt(args.package.replace("_", "-"))
    servers = [Server("bare", "bare_app:app", cwd=HERE, env=dict(os.environ),
                      workers=args.workers, factory=False, log_dir=work, cpus=args.server_cpu,
                      extra=SERVER_FLAGS)]
    try:
        servers.append(start_full(args, work))
        # --also NAME=DIR: other builds of the app (before/after a change) in the same run.
        for spec in args.also:
            name, _, project = spec.partition("=")
            servers.append(start_full(args, work, name, Path(project)))
        for server in servers[1:]:
            check_full(server, token)
        summary = alternate([(s.name, s, None if s.name == "bare" else token)
                             for s in servers], args)
    finally:
        for server in servers:
            server.stop()
    print(json.dumps({"test": "throughput", **summary}))
    return 0 if summary["errors"] == 0 else 1


def versions(args: argparse.Namespace, work: Path) -> int:
    """The bare app under two interpreters (two sets of package versions) in one run: the
    first is the baseline of the ratio."""
    targets = []
    try:
        for spec in args.python:
            name, _, python = spec.partition("=")
            server = Server(f"bare-{name}", "bare_app:app", cwd=HERE, env=dict(os.environ),
                            workers=args.workers, factory=False, log_dir=work,
                            cpus=args.server_cpu, python=python, extra=SERVER_FLAGS)
            targets.append((name, server, None))
        summary = alternate(targets, args)
    finally:
        for _, server, _ in targets:
            server.stop()
    code = ("import importlib.metadata as m; print(', '.join(f'{p} {m.version(p)}' for p in "
            "('fastapi', 'starlette', 'pydantic', 'pydantic-core', 'uvicorn', 'uvloop', "
            "'httptools', 'anyio')))")
    summary["versions"] = {
        spec.partition("=")[0]: subprocess.run([spec.partition("=")[2], "-c", code],
                                               capture_output=True, text=True, check=True).stdout.strip()
        for spec in args.python}
    print(json.dumps({"test": "versions", **summary}))
    return 0 if summary["errors"] == 0 else 1


def gateway_args(dockerfile: Path) -> list[str]:
    """The uvicorn options of the generated gateway image's CMD, less --host/--port."""
    text = dockerfile.read_text()
    start = text.index("CMD [")
    argv: list[str] = json.loads(text[start + 4:text.index("]", start) + 1])
    options, kept = iter(argv[2:]), []
    for option in options:
        if option in ("--host", "--port"):
            next(options)
        else:
            kept.append(option)
    return kept


def gateway(args: argparse.Namespace, work: Path) -> int:
    """The generated app's `GET /me` called directly, and through the Tier 2 gateway
    (assets/templates/microservice_gateway.py, the file the scaffold copies, with its
    image's uvicorn options) in front of it; app and gateway share the server core."""
    audience = args.package.replace("_", "-")
    token = mint_jwt(audience)
    full = start_full(args, work, "direct")
    servers = [full]
    try:
        check_full(full, token)
        env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH"}}
        env.update(SERVICES=json.dumps({"me": full.url}), JWT_SECRET=JWT_SECRET,
                   JWT_AUDIENCE=audience, JWT_ISSUER=audience, LOG_LEVEL="WARNING",
                   RETRY_ATTEMPTS="0", MAX_CONNECTIONS_PER_SERVICE="256")
        gw = Server("gateway", "microservice_gateway:app", cwd=args.gateway.parent, env=env,
                    workers=args.workers, factory=False, log_dir=work, cpus=args.server_cpu,
                    python=str(args.project / ".venv" / "bin" / "python"),
                    extra=gateway_args(args.gateway_dockerfile))
        servers.append(gw)
        status, body = get(f"{gw.url}/me", token)
        if status != 200 or json.loads(body).get("subject") != "bench":
            raise SystemExit(f"gateway: GET /me with the token gave {status} {body[:300]!r}")
        summary = alternate([("direct", full, token), ("gateway", gw, token)], args,
                            routes=("/me",), cpu_of={"gateway": [gw, full]})
    finally:
        for server in servers:
            server.stop()
    print(json.dumps({"test": "gateway", **summary}))
    return 0 if summary["errors"] == 0 else 1


async def sse_stream(port: int, path: str, token: str, hold: float,
                     stats: dict[str, int]) -> str | None:
    """Holds one SSE stream for `hold` seconds. Returns None, or what went wrong."""
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port), timeout=30)
    except (OSError, asyncio.TimeoutError) as e:
        return f"connect: {e!r}"
    counted = False
    try:
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n".encode())
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=30)
        status_line = head.split(b"\r\n", 1)[0].decode()
        if " 200 " not in status_line + " " or b"text/event-stream" not in head.lower():
            return f"answer: {status_line}"
        stats["open"] += 1
        counted = True
        deadline = time.monotonic() + hold
        events = 0
        while (left := deadline - time.monotonic()) > 0:
            try:
                chunk = await asyncio.wait_for(reader.read(65536), timeout=min(left, 30))
            except asyncio.TimeoutError:
                if time.monotonic() >= deadline:
                    break
                return "read: no data for 30 s"
            if not chunk:
                return f"closed by the server after {events} events"
            events += chunk.count(b"\nevent: ") + chunk.startswith(b"event: ")
            if b"event: error" in chunk:
                return "error event"
            if b"event: done" in chunk:
                return f"stream finished before the hold time ({events} events): lengthen it"
        stats["events"] += events
        return None
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as e:
        return f"read: {e!r}"
    finally:
        if counted:
            stats["open"] -= 1
        writer.close()


async def sse_load(server: Server, token: str, args: argparse.Namespace) -> dict[str, object]:
    words = max(10, int((args.hold + 15) / max(args.fake_delay, 0.01)))
    prompt = "+".join(f"w{i}" for i in range(words))
    path = f"/agents/run/stream?prompt={prompt}"
    stats = {"open": 0, "events": 0}
    idle_rss = server.workers_rss_kb()
    tasks = []
    started = time.monotonic()
    # Open in batches so the listen backlog is never the bottleneck being measured.
    for i in range(args.streams):
        tasks.append(asyncio.create_task(sse_stream(server.port, path, token, args.hold, stats)))
        if i % 100 == 99:
            await asyncio.sleep(0.2)
    peak_rss = idle_rss
    peak_open = 0
    while not all(t.done() for t in tasks):
        await asyncio.sleep(1)
        peak_rss = max(peak_rss, server.workers_rss_kb())
        peak_open = max(peak_open, stats["open"])
    results = [t.result() for t in tasks]
    failures = [r for r in results if r is not None]
    reasons: dict[str, int] = {}
    for r in failures:
        key = re.sub(r"\d+", "N", r)[:120]
        reasons[key] = reasons.get(key, 0) + 1
    return {
        "test": "sse", "streams": args.streams, "hold_s": args.hold,
        "fake_delay_s": args.fake_delay, "errors": len(failures), "error_kinds": reasons,
        "peak_open": peak_open, "events": stats["events"],
        "elapsed_s": time.monotonic() - started,
        "workers_rss_idle_kb": idle_rss, "workers_rss_peak_kb": peak_rss,
        "kb_per_stream": (peak_rss - idle_rss) / args.streams,
    }


def sse(args: argparse.Namespace, work: Path) -> int:
    token = mint_jwt(args.package.replace("_", "-"))
    server = start_full(args, work)
    try:
        # Warm both workers up (imports, first requests) before the idle memory reading.
        for _ in range(20):
            get(f"{server.url}/me", token)
        time.sleep(1)
        before = loadavg()
        summary = asyncio.run(sse_load(server, token, args))
        summary |= {"load_before": before, "load_after": loadavg()}
    finally:
        server.stop()
    print(json.dumps(summary))
    return 0 if summary["errors"] == 0 else 1


# (frame pattern, layer): py-spy frames read `function (package/module.py:line)`.
LAYERS = (
    (r"\((redis)/", "Redis client (rate limit)"),
    (r"\(jwt/", "PyJWT (token check)"),
    (r"\((structlog/|logging/)", "logging (structlog)"),
    (r"\(prometheus_client/", "metrics (prometheus_client)"),
    (r"\(forge_\w+/middleware/", "app middleware code"),
    (r"\(forge_\w+/", "app code (routes, security)"),
    (r"\(pydantic", "pydantic"),
    (r"\((fastapi|starlette)/", "FastAPI/Starlette"),
    (r"\(uvicorn/", "uvicorn (HTTP)"),
    (r"\(asyncio/", "asyncio"),
)


def profile(args: argparse.Namespace, work: Path) -> int:
    """py-spy samples both workers of the full app while wrk drives `GET /me`; prints the
    share of samples (inclusive) per function of the request path."""
    token = mint_jwt(args.package.replace("_", "-"))
    server = start_full(args, work)
    raw = work / "py-spy.txt"
    try:
        spy = subprocess.Popen(
            [args.py_spy, "record", "--format", "raw", "--output", str(raw), "--rate", "250",
             "--duration", str(args.duration), "--subprocesses", "--nonblocking",
             "--pid", str(server.process.pid)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(1)
        result = run_wrk(f"{server.url}{args.route}", token, threads=args.threads,
                         connections=args.connections, duration=args.duration - 2,
                         cpus=args.client_cpu)
        _, err = spy.communicate(timeout=args.duration + 60)
        if spy.returncode != 0 or not raw.exists():
            raise SystemExit(f"py-spy failed ({spy.returncode}): {err[-2000:]}")
    finally:
        server.stop()
    samples = []
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        # Process labels hold the command line (with `;` in it): keep real frames only.
        frames = [f for f in stack.split(";") if re.fullmatch(r"\S+ \(.+:\d+\)", f)]
        if not frames or not count.isdigit():
            continue
        # Waiting is not work: idle event loops (selectors) and idle worker threads.
        if re.match(r"\S*(select|poll|wait|get) \((selectors|threading|queue)\.py", frames[-1]):
            continue
        samples.append((frames, int(count)))
    total = sum(n for _, n in samples)
    categories: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    for frames, n in samples:
        # Charge the sample to the innermost frame of a known layer.
        label = "other"
        for frame in reversed(frames):
            hit = next((name for pattern, name in LAYERS if re.search(pattern, frame)), None)
            if hit:
                label = hit
                break
        categories[label] = categories.get(label, 0) + n
        for name in {re.sub(r":\d+\)$", ")", f) for f in frames}:
            inclusive[name] = inclusive.get(name, 0) + n
    top = sorted(inclusive.items(), key=lambda kv: -kv[1])[:30]
    print(f"wrk: {result['rps']:.0f} req/s; py-spy: {total} busy samples over both workers",
          file=sys.stderr)
    print(json.dumps({
        "test": "profile", "wrk": result, "samples": total,
        "layers": sorted(([k, v / total] for k, v in categories.items()), key=lambda r: -r[1]),
        "top": [{"function": k, "share": v / total} for k, v in top],
    }))
    return 0


def robustness(args: argparse.Namespace, work: Path) -> int:
    token = mint_jwt(args.package.replace("_", "-"))
    server = start_full(args, work)
    summary: dict[str, object] = {"test": "robustness"}
    failed = False
    try:
        report = work / "schemathesis"
        shutil.rmtree(report, ignore_errors=True)
        argv = [args.schemathesis, "run", f"{server.url}/openapi.json",
                "--header", f"Authorization: Bearer {token}",
                "--checks", "not_a_server_error,response_schema_conformance",
                "--max-examples", str(args.max_examples),
                "--report", "junit", "--report-dir", str(report),
                "--seed", "8", "--no-color"]
        log("schemathesis: " + " ".join(a if "Bearer" not in a else "Authorization: Bearer ..."
                                        for a in argv[1:]))
        # cwd: schemathesis and hypothesis keep their caches (.schemathesis, .hypothesis)
        # in the current folder; they belong with the run, not in the checkout.
        st = subprocess.run(argv, capture_output=True, text=True, cwd=work,
                            env={**os.environ, "NO_COLOR": "1"})
        (work / "schemathesis.out").write_text(st.stdout + st.stderr)
        print(st.stdout[-6000:], file=sys.stderr)
        summary["schemathesis_exit"] = st.returncode
        failed |= st.returncode != 0
        before = loadavg()
        result = run_wrk(f"{server.url}/me", token, threads=args.threads,
                         connections=args.connections, duration=args.duration)
        result |= {"load_before": before, "load_after": loadavg()}
        summary["wrk"] = result
        log(f"wrk {args.connections} connections {args.duration}s: {result}")
        failed |= result["socket_errors"] > 0 or result["non_2xx"] > 0
        summary["server_errors_in_log"] = server.log_path.read_text(errors="replace").count(
            '"unhandled_error"')
        failed |= bool(summary["server_errors_in_log"])
    finally:
        server.stop()
    summary["passed"] = not failed
    print(json.dumps(summary))
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command",
                        choices=("throughput", "versions", "gateway", "sse", "robustness",
                                 "profile"))
    parser.add_argument("--project", type=Path)
    parser.add_argument("--package", default="forge_bench")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--server-cpu", default=None,
                        help="taskset CPU list for the servers (throughput, versions, profile)")
    parser.add_argument("--client-cpu", default=None, help="taskset CPU list for wrk")
    parser.add_argument("--python", action="append", default=[],
                        help="versions: NAME=INTERPRETER, twice or more (first: baseline)")
    parser.add_argument("--route", default="/me", help="profile: the route wrk drives")
    parser.add_argument("--gateway", type=Path,
                        help="gateway: the gateway module (microservice_gateway.py)")
    parser.add_argument("--gateway-dockerfile", type=Path,
                        help="gateway: the generated gateway's Dockerfile (its CMD's options)")
    parser.add_argument("--also", action="append", default=[],
                        help="throughput: NAME=PROJECT_DIR, another build of the app to compare")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--hold", type=float, default=30)
    parser.add_argument("--fake-delay", type=float, default=0.5)
    parser.add_argument("--schemathesis", default="st")
    parser.add_argument("--max-examples", type=int, default=50)
    parser.add_argument("--py-spy", default="py-spy")
    args = parser.parse_args()
    # 1,000 streams need more descriptors than the usual soft limit of 1,024 (the servers
    # inherit the raised limit too).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(soft, 65536), hard), hard))
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-app-"))
    work.mkdir(parents=True, exist_ok=True)
    if args.command != "versions" and args.project is None:
        parser.error(f"{args.command} needs --project (the generated project's folder)")
    if args.command == "versions" and len(args.python) < 2:
        parser.error("versions needs --python NAME=INTERPRETER at least twice")
    if args.command == "gateway" and (args.gateway is None or args.gateway_dockerfile is None):
        parser.error("gateway needs --gateway and --gateway-dockerfile")
    commands = {"throughput": throughput, "versions": versions, "gateway": gateway,
                "sse": sse, "robustness": robustness, "profile": profile}
    return commands[args.command](args, work)


if __name__ == "__main__":
    sys.exit(main())

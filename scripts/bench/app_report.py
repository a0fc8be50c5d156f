#!/usr/bin/env python3
"""Renders scripts/bench-app's results (the JSON files in OUT) as the Markdown of BENCHMARKS.md.

    app_report.py OUT MACHINE_LINE VERSIONS_LINE
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

TARGETS = {"/health": 0.80, "/me": 0.50}
LABELS = {"/health": "`/health`", "/me": "authenticated `GET /me`"}


def load(out: Path, name: str) -> dict | None:
    path = out / name
    if not path.exists() or not path.stat().st_size:
        return None
    return json.loads(path.read_text())


def table(result: dict, names: dict[str, str], targets: dict[str, float]) -> None:
    print("| route | server | req/s | p50 ms | p99 ms | ratio | CPU µs/req | CPU ratio "
          "| load before→after |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for route, per in result["medians"].items():
        for name, m in per.items():
            print(f"| {LABELS.get(route, route)} | {names.get(name, name)} | {m['rps']:,.0f} | "
                  f"{m['p50_ms']:.2f} | {m['p99_ms']:.2f} | {m['ratio']:.2f} | "
                  f"{m.get('cpu_us', 0):.0f} | {m.get('cpu_ratio', 0):.2f} | "
                  f"{m['load_before']:.2f}→{m['load_after']:.2f} |")
    print()
    for route, per in result["medians"].items():
        base, *others = per
        for name in others:
            ratio = per[name]["ratio"]
            target = targets.get(route) if name == "full" else None
            verdict = "" if target is None else (
                f" (target >= {target:.2f}: {'MET' if ratio >= target else 'MISSED'})")
            print(f"- {route}: {names.get(name, name)} / {names.get(base, base)} = "
                  f"{ratio:.2f}{verdict}; requests per CPU-second: "
                  f"{per[name].get('cpu_ratio', 0):.2f}")
    print(f"- errors (non-2xx + socket): {result['errors']}\n")


def setup(result: dict) -> str:
    return (f"one uvicorn worker pinned to CPU {result['server_cpu']}, `wrk -t{result['threads']} "
            f"-c{result['connections']} -d{result['duration']}s` pinned to CPU "
            f"{result['client_cpu']}, median of {len(next(iter(next(iter(result['rounds'].values())).values())))} "
            "alternating rounds")


def main() -> int:
    out, machine, versions = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    print(f"Machine: {machine}\nVersions: {versions}\n")
    if thr := load(out, "app-throughput.json"):
        print(f"HTTP, {setup(thr)}:\n")
        table(thr, {"bare": "bare FastAPI", "full": "generated Tier 1"}, TARGETS)
    if ver := load(out, "app-versions.json"):
        print(f"Bare FastAPI on two sets of package versions, {setup(ver)}:\n")
        table(ver, {}, {})
        for name, line in ver.get("versions", {}).items():
            print(f"- {name}: {line}")
        print()
    if gw := load(out, "app-gateway.json"):
        print(f"Tier 2 gateway, {setup(gw)}:\n")
        table(gw, {"direct": "service called directly", "gateway": "through the gateway"}, {})
    if prof := load(out, "app-profile.json"):
        print(f"Where the app worker's CPU time goes (py-spy, {prof['samples']} busy samples, "
              f"wrk at {prof['wrk']['rps']:,.0f} req/s), by innermost layer:")
        for name, share in prof["layers"]:
            print(f"  {share * 100:5.1f}%  {name}")
        print("Top functions (inclusive):")
        for row in prof["top"]:
            print(f"  {row['share'] * 100:5.1f}%  {row['function']}")
        print()
    streams = out / "app-streams.md"
    if streams.exists():
        print(streams.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())

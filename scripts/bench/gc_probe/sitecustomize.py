"""Garbage-collection pauses of a server under scripts/bench/app_streams.py (bench only).

On the PYTHONPATH of the measured worker with BENCH_GC_PROBE=FILE: SIGUSR1 starts counting
(the measurement window), SIGUSR2 writes per generation the collections, total and longest
pause, and the objects tracked by the collector, as JSON to FILE.
"""

import gc
import json
import os
import signal
import time

_OUT = os.environ.get("BENCH_GC_PROBE")
if _OUT:
    _stats: dict[int, list[float]] = {}
    _started = [0.0]

    def _on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            _started[0] = time.perf_counter()
            return
        pause = time.perf_counter() - _started[0]
        s = _stats.setdefault(info["generation"], [0, 0.0, 0.0])
        s[0] += 1
        s[1] += pause
        s[2] = max(s[2], pause)

    def _reset(*_: object) -> None:
        _stats.clear()

    def _dump(*_: object) -> None:
        out = {
            str(g): {
                "collections": int(s[0]),
                "total_ms": s[1] * 1e3,
                "max_ms": s[2] * 1e3,
            }
            for g, s in sorted(_stats.items())
        }
        objects = gc.get_objects()
        out["tracked_objects"] = len(objects)
        if os.environ.get("BENCH_GC_TYPES"):
            counts: dict[str, int] = {}
            for o in objects:
                name = type(o).__qualname__
                if type(o) is type(lambda: 0) or type(o).__name__ in (
                    "coroutine",
                    "cell",
                    "method",
                ):
                    name += ":" + getattr(
                        o,
                        "__qualname__",
                        getattr(getattr(o, "__func__", None), "__qualname__", ""),
                    )
                counts[name] = counts.get(name, 0) + 1
            out["types"] = sorted(counts.items(), key=lambda kv: -kv[1])[:40]
        del objects
        out["frozen_objects"] = gc.get_freeze_count()
        out["thresholds"] = list(gc.get_threshold())
        with open(_OUT, "w") as f:
            json.dump(out, f)

    gc.callbacks.append(_on_gc)
    signal.signal(signal.SIGUSR1, _reset)
    signal.signal(signal.SIGUSR2, _dump)

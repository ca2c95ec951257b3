"""Does the host probe see what slows a dispatch-bound pass? Quiet vs a contended core, side by side.

The probe (:mod:`live.hostprobe`) is meant to carry a process's host speed from one recording to
another. This script pins itself to one CPU and measures, in alternating phases, the probe, a
dispatch-bound pass (a narrow 30-layer Llama: ~450 tiny ops a token, the CPU analogue of a small
model's launch-bound GPU pass) and the bundled model's shape (135M, compute-bound on a CPU), once
with the core to itself and once sharing it with a busy process (what a noisy neighbour or CPU
steal does to a VM). Prints each figure's contended / quiet ratio and the probe's own spread
over repeated probes in one process (it must be far below the 1.2-1.7x drift it is to detect).

    python tests/bench/bench_hostprobe.py [--phases 3] [--cpu 0]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from profile_random import SHAPES, build  # noqa: E402

from live.hostprobe import host_probe  # noqa: E402

SHAPES["narrow-30"] = {**SHAPES["tiny"], "num_hidden_layers": 30}


def pass_ms(model: torch.nn.Module, n: int) -> float:
    """Median ms of a 1-token pass after 32 cached tokens (the cache rebuilt untimed)."""
    from transformers import DynamicCache

    from live.kvcache import cache_keyword

    kw = cache_keyword(model)  # ``cache`` on recent transformers, else ``past_key_values``
    ids = torch.zeros(1, 32, dtype=torch.long)
    one = torch.zeros(1, 1, dtype=torch.long)
    times = []
    with torch.inference_mode():
        for _ in range(n + 1):
            cache = DynamicCache()
            model(input_ids=ids, use_cache=True, **{kw: cache})
            t0 = time.perf_counter()
            model(input_ids=one, use_cache=True, **{kw: cache})
            times.append(time.perf_counter() - t0)
    return statistics.median(times[1:]) * 1e3


def measure(models: dict[str, torch.nn.Module]) -> dict[str, float]:
    out = {"probe us/op": host_probe("cpu")["us_per_op"]}
    out["narrow 30-layer pass ms"] = pass_ms(models["narrow-30"], 30)
    out["135M pass ms"] = pass_ms(models["smollm2-135m"], 8)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--phases", type=int, default=3, help="quiet/contended pairs")
    ap.add_argument("--cpu", type=int, default=0, help="the core both share")
    args = ap.parse_args()
    os.sched_setaffinity(0, {args.cpu})
    torch.set_num_threads(1)
    models = {s: build(s, "cpu", "float32").model for s in ("narrow-30", "smollm2-135m")}
    spread = [host_probe("cpu")["us_per_op"] for _ in range(10)]
    rows: dict[str, list[tuple[float, float]]] = {}
    for phase in range(args.phases):
        quiet = measure(models)
        hog = subprocess.Popen(["taskset", "-c", str(args.cpu), sys.executable, "-c",
                                "while True: pass"])
        try:
            time.sleep(0.5)
            busy = measure(models)
        finally:
            hog.kill()
            hog.wait()
        for k in quiet:
            rows.setdefault(k, []).append((quiet[k], busy[k]))
        print(f"phase {phase + 1}/{args.phases}: " + ", ".join(
            f"{k} {quiet[k]:.2f} -> {busy[k]:.2f}" for k in quiet), flush=True)
    print(f"\nprobe spread over 10 probes in one quiet process: median "
          f"{statistics.median(spread):.3f} us/op, min {min(spread):.3f}, max {max(spread):.3f}"
          f" (max/min {max(spread) / min(spread):.3f})")
    print("| figure | quiet | sharing the core | ratio |\n|---|---|---|---|")
    for k, pairs in rows.items():
        q = statistics.median(p[0] for p in pairs)
        b = statistics.median(p[1] for p in pairs)
        print(f"| {k} | {q:.3f} | {b:.3f} | {b / q:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

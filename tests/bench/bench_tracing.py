"""Trace IO speed, measured side by side in one run.

    python tests/bench/bench_tracing.py [--cycles 1000000]

1. Reading a 1,000,000-cycle Parquet trace into the library's frames (read + validate), as a ratio
   to pyarrow's bare ``read_table`` of the same file (goal <= 1.5x).
2. JSONL streaming-write cost per cycle record, flushed per line (goal < 20 microseconds), beside
   the cost of a bare ``json.dumps`` + write of the same dict.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from tracing import CycleRecord, RunMeta, Trace, TraceWriter, read_trace, write_trace


def synthetic(n_cycles: int, per_request: int = 200) -> Trace:
    rng = np.random.default_rng(0)
    n_req = n_cycles // per_request
    n = n_req * per_request
    tau = np.full(n, 4)
    acc = np.minimum(rng.geometric(0.3, n) - 1, 4)
    emitted = acc + 1
    cycles = pd.DataFrame({
        "request_id": np.repeat(np.arange(n_req), per_request),
        "cycle": np.tile(np.arange(per_request), n_req),
        "start_s": np.arange(n) * 0.02, "tau": tau, "accepted": acc, "emitted": emitted,
        "draft_s": rng.uniform(0.004, 0.006, n), "verify_s": rng.uniform(0.02, 0.03, n),
        "overhead_s": rng.uniform(0, 0.001, n), "context_tokens": rng.integers(100, 2000, n),
    })
    t0 = np.arange(n_req) * per_request * 0.02
    requests = pd.DataFrame({
        "request_id": np.arange(n_req), "arrival_s": t0, "start_s": t0, "first_token_s": t0 + 0.05,
        "end_s": t0 + per_request * 0.02, "prompt_tokens": np.full(n_req, 100),
        "output_tokens": emitted.reshape(n_req, per_request).sum(axis=1),
        "prefill_s": np.full(n_req, 0.05), "verify_passes": np.full(n_req, per_request),
    })
    return Trace(RunMeta(source="sim", target_model="bench", draft_model="bench"), requests, cycles)


def best_of(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cycles", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=9)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.parquet"
        write_trace(synthetic(args.cycles), path)
        read_trace(path)  # warm the page cache and the imports
        # Interleave the two measurements so machine noise hits both alike.
        bare, ours = [], []
        for _ in range(args.repeats):
            bare.append(best_of(lambda: pq.read_table(path), 1))
            ours.append(best_of(lambda: read_trace(path), 1))
        b, o = min(bare), min(ours)
        print(f"parquet read, {args.cycles:,} cycles: pyarrow read_table {b * 1e3:.1f} ms, "
              f"specsim read_trace (+validate) {o * 1e3:.1f} ms -> ratio {o / b:.2f}x (goal <= 1.5x)")

        n = 100_000
        rec = CycleRecord(3, 17, 12.345678, 4, 2, 3, 0.00512, 0.0251, 0.0004, 812)
        meta = RunMeta(source="sim", target_model="bench", draft_model="bench")

        def ours_write() -> None:
            with TraceWriter(Path(tmp) / "w.jsonl", meta) as w:
                for _ in range(n):
                    w.write_cycle(rec)

        def bare_write() -> None:
            d = {"type": "cycle", **{k: getattr(rec, k) for k in rec.__slots__}}  # type: ignore[attr-defined]
            with open(Path(tmp) / "b.jsonl", "w") as f:
                for _ in range(n):
                    f.write(json.dumps(d) + "\n")
                    f.flush()

        w_ours, w_bare = best_of(ours_write, 3) / n, best_of(bare_write, 3) / n
        print(f"jsonl write per cycle record (flushed): specsim {w_ours * 1e6:.2f} us, "
              f"bare json.dumps+write+flush {w_bare * 1e6:.2f} us -> ratio {w_ours / w_bare:.2f}x "
              f"(goal < 20 us)")


if __name__ == "__main__":
    main()

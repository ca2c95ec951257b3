"""Where ``StaticLM.warm``'s compile time goes: each step kind's first call, timed, under dynamo
alone (backend ``eager``) and dynamo + AOT autograd (``aot_eager``), on the SmolLM2-shaped
random target -- the part before any kernel is generated (inductor's own share is the rest of
``bench_compile.py``'s warm-up).

    python tests/bench/bench_compile_split.py [--threads 2]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch
from bench_decode import load_target

from live.static import StaticLM


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print("| backend | 1-token graph, s | verify graph (dynamic), s | a 3-token replay, s |")
    print("|---|---|---|---|")
    for backend in ("eager", "aot_eager"):
        torch._dynamo.reset()
        target, prompts, _ = load_target("random", "cpu", "builtin:edit", 1)
        lm = StaticLM(target.model, 128, backend=backend)
        first = prompts[0][:, :1]
        took = []
        with torch.inference_mode():
            lm.feed(first)
            for k in (1, 2, 3):
                t0 = time.perf_counter()
                lm.feed(first.expand(1, k), logits_to_keep=k)
                took.append(time.perf_counter() - t0)
                lm.crop_to(1)
        print(f"| {backend} | {took[0]:.1f} | {took[1]:.1f} | {took[2]:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The constants of sim/models/catalog.py that no datasheet gives, measured on the host at hand:

    python tests/bench/framework_shape.py [--rounds 60]

1. the *shape* of the fixed per-pass cost of transformers eager (``FrameworkCost``): a random
   Llama of width 16 (its arithmetic is negligible, so every microsecond is framework and
   dispatch) run through the decoder's own calls (``CachedLM.feed``, the layer-skip draft's
   ``propose``) at 30 and 8 layers, 1 and 4 tokens per pass: per-layer and per-pass seconds, the
   multi-token surcharge and the draft step against a 1-token target pass;
2. the effective memory bandwidth (a float32 sum over 512 MB, read once per round) and float32
   matmul throughput (a (64, 576) x (576, 4096) product, a verify pass's shape) of this host --
   the measured CPU entry.

Medians of ``--rounds`` runs in a shuffled order; it prints the figures and the ratios; none of
the project's traces is read.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=60)
    args = parser.parse_args()

    import torch

    from live.drafts import LayerSkipDraft
    from live.kvcache import CachedLM
    from live.sampling import SamplingConfig, make_generator
    from sim.policies.library import Policy
    from tiny import tiny_llama

    torch.set_num_threads(1)
    rng = random.Random(0)
    ids = torch.randint(0, 64, (1, 40))
    models = {n: tiny_llama(layers=n, hidden=16, heads=2, kv_heads=1, vocab=64) for n in (30, 8)}
    lms = {n: CachedLM(m) for n, m in models.items()}
    draft = LayerSkipDraft(models[30], 8, "layerskip:layers=8")
    sampling, gen, policy = SamplingConfig(), make_generator(0, "cpu"), Policy(tau=3)
    samples: dict[str, list[float]] = {}
    jobs = [(n, t) for n in (30, 8) for t in (1, 4)] + [("draft", 3)]
    with torch.inference_mode():
        for lm in lms.values():
            lm.feed(ids)
        for _ in range(args.rounds):
            rng.shuffle(jobs)
            for n, t in jobs:
                if n == "draft":
                    draft.start(ids)
                    t0 = time.perf_counter()
                    draft.propose(t, sampling, gen, policy)
                    samples.setdefault("draft", []).append((time.perf_counter() - t0) / t)
                    continue
                lm = lms[int(n)]
                t0 = time.perf_counter()
                lm.feed(ids[:, :t], logits_to_keep=t)
                samples.setdefault(f"{n}x{t}", []).append(time.perf_counter() - t0)
                lm.crop_to(40)
        med = {k: statistics.median(v) for k, v in samples.items()}
        per_layer = (med["30x1"] - med["8x1"]) / 22
        per_pass = med["8x1"] - 8 * per_layer
        multi = med["30x4"] / med["30x1"] - 1.0
        print(f"framework: per_layer {per_layer * 1e3:.3f} ms, per_pass {per_pass * 1e3:.3f} ms "
              f"= {per_pass / per_layer:.2f} layers; multi-token surcharge {multi:+.1%} "
              f"(8 layers: {med['8x4'] / med['8x1'] - 1:+.1%}); draft step / target 1-token "
              f"pass {med['draft'] / med['30x1']:.2f}")

        x = torch.ones(128 * 1024 * 1024)  # 512 MB float32
        a, b = torch.randn(64, 576), torch.randn(576, 4096)
        reads, mms = [], []
        for _ in range(max(5, args.rounds // 10)):
            t0 = time.perf_counter()
            x.sum()
            reads.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            for _ in range(10):
                a @ b
            mms.append((time.perf_counter() - t0) / 10)
        bw = x.numel() * 4 / statistics.median(reads) / 1e9
        flops = 2 * 64 * 576 * 4096 / statistics.median(mms) / 1e12
        print(f"host: float32 read {bw:.1f} GB/s, float32 matmul {flops * 1e3:.1f} GFLOPS "
              "(one thread)")


if __name__ == "__main__":
    main()

"""Batched verify steps, side by side in one run: which per-row cache layout to batch with.

Each step, B rows each score ``tau + 1`` new tokens and keep a random prefix of them (what
speculative verification does). Three layouts, interleaved round by round so machine noise
hits them alike:

- ``holes``: ONE shared padded cache (``live.batch_cache.BatchedLM``): a 4-D mask and per-row
  positions; rejected columns become holes, squeezed out now and then. What live/batch uses.
- ``stacked``: per-row caches, stacked (left-padded) into a batch for every step's forward and
  split back after it (two copies of every row's context per step).
- ``sequential``: per-row caches and one forward per row (no batching at all).

Prints seconds per step and the ratios to ``holes``; the logits of every layout are checked
against each other (max abs difference).

    python tests/bench/bench_batch.py --target smollm2 --batch 4 --context 300 --steps 20
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from transformers import DynamicCache  # noqa: E402

from live.batch_cache import BatchedLM, _unwrap, _wrap  # noqa: E402
from live.kvcache import CachedLM  # noqa: E402


class Stacked:
    """Per-row key/value tensors, stacked into a padded batch for each forward."""

    def __init__(self, model: Any, prompts: list[list[int]]) -> None:
        self.model = model
        self.rows: list[tuple[list[torch.Tensor], list[torch.Tensor]]] = []
        for p in prompts:
            cache = DynamicCache()
            with torch.inference_mode():
                model(input_ids=torch.tensor([p]), past_key_values=cache, use_cache=True)
            self.rows.append(_unwrap(cache, model.config.num_hidden_layers))

    def step(self, feeds: list[list[int]], keep: list[int]) -> torch.Tensor:
        lengths = [r[0][0].shape[2] for r in self.rows]
        longest, width = max(lengths), max(len(f) for f in feeds)
        n_layers = len(self.rows[0][0])
        keys, values = [], []
        for i in range(n_layers):  # left-pad every row to the longest
            ks, vs = [], []
            for (k, v), n in zip(self.rows, lengths, strict=True):
                pad = k[i].new_zeros(1, k[i].shape[1], longest - n, k[i].shape[3])
                ks.append(torch.cat([pad, k[i]], dim=2))
                vs.append(torch.cat([pad, v[i]], dim=2))
            keys.append(torch.cat(ks))
            values.append(torch.cat(vs))
        valid = torch.zeros(len(feeds), longest + width, dtype=torch.bool)
        ids = torch.zeros(len(feeds), width, dtype=torch.long)
        for b, (f, n) in enumerate(zip(feeds, lengths, strict=True)):
            valid[b, longest - n:longest] = True
            valid[b, longest:longest + len(f)] = True
            ids[b, : len(f)] = torch.tensor(f)
        cols = torch.arange(longest + width)
        q = longest + torch.arange(width)
        mask = ((valid[:, None, :] & (cols[None, :] <= q[:, None])[None])
                | (cols[None, :] == q[:, None])[None])[:, None]
        pos = torch.tensor(lengths)[:, None] + torch.arange(width)[None]
        cache = _wrap(keys, values)
        with torch.inference_mode():
            out = self.model(input_ids=ids, attention_mask=mask, position_ids=pos,
                             past_key_values=cache, use_cache=True)
        new_k, new_v = _unwrap(cache, n_layers)
        for b, kept in enumerate(keep):  # split back: each row's own context + kept tokens
            k, v = self.rows[b]
            self.rows[b] = (
                [torch.cat([k[i], new_k[i][b:b + 1, :, longest:longest + kept]], dim=2)
                 for i in range(n_layers)],
                [torch.cat([v[i], new_v[i][b:b + 1, :, longest:longest + kept]], dim=2)
                 for i in range(n_layers)])
        return out.logits


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", default="smollm2")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--context", type=int, default=300)
    ap.add_argument("--tau", type=int, default=4)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from live.models import load_model

    model = load_model(args.target, device="cpu", dtype="float32").model
    vocab = int(model.config.vocab_size)
    rng = random.Random(0)
    times: dict[str, list[float]] = {"holes": [], "stacked": [], "sequential": []}
    worst = 0.0
    for _ in range(args.rounds):
        prompts = [[rng.randrange(vocab) for _ in range(args.context + 17 * b)]
                   for b in range(args.batch)]
        plan = [([[rng.randrange(vocab) for _ in range(args.tau + 1)] for _ in prompts],
                 [rng.randint(1, args.tau + 1) for _ in prompts]) for _ in range(args.steps)]
        holes = BatchedLM(model)
        for p in prompts:
            holes.add_row(torch.tensor([p]))
        stacked = Stacked(model, prompts)
        singles = [CachedLM(model) for _ in prompts]
        with torch.inference_mode():
            for lm, p in zip(singles, prompts, strict=True):
                lm.feed(torch.tensor([p]))
        for feeds, keep in plan:
            t0 = time.perf_counter()
            a = holes.feed(feeds)
            for b, k in enumerate(keep):
                holes.truncate(b, holes.lengths[b] - len(feeds[b]) + k)
            holes.compact()
            t1 = time.perf_counter()
            s = stacked.step(feeds, keep)
            t2 = time.perf_counter()
            outs = []
            with torch.inference_mode():
                for lm, f, k in zip(singles, feeds, keep, strict=True):
                    before = lm.length
                    outs.append(lm.feed(torch.tensor([f]), logits_to_keep=len(f)))
                    lm.crop_to(before + k)
            t3 = time.perf_counter()
            times["holes"].append(t1 - t0)
            times["stacked"].append(t2 - t1)
            times["sequential"].append(t3 - t2)
            seq = torch.stack(outs)
            worst = max(worst, float((a - s).abs().max()), float((a - seq).abs().max()))
    base = statistics.median(times["holes"])
    print(f"target={args.target} batch={args.batch} context~{args.context} tau={args.tau} "
          f"steps={args.steps} rounds={args.rounds} threads={torch.get_num_threads()}")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"  {name:<10} {med * 1e3:8.2f} ms/step  x{med / base:5.2f} of holes")
    print(f"  max |logit difference| between layouts: {worst:.2e}")


if __name__ == "__main__":
    main()

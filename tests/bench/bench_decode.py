"""The decoding core, side by side in one run: each draft kind vs target-only, and tracing cost.

For every variant, the same prompts are decoded greedily, variants interleaved round by round
(so machine noise hits them alike). Prints tokens/s, the speedup over target-only, tokens per
cycle, where a cycle's time goes (draft / verify / overhead) and whether the output matched
target-only token for token. The last pair decodes with and without a JSONL TraceWriter fed
from ``on_cycle`` and prints the tracing overhead (the target is < 2%).

    python tests/bench/bench_decode.py --target smollm2 --prompts builtin:edit --limit 2 \
        --max-new-tokens 32 --rounds 2
    python tests/bench/bench_decode.py --target random --device cuda   # random SmolLM2-shaped
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from live.decode import DecodeResult, speculative_generate  # noqa: E402
from live.drafts import make_draft  # noqa: E402
from live.sampling import SamplingConfig  # noqa: E402
from sim.policies.library import make_policy  # noqa: E402
from tracing import RunMeta, TraceWriter  # noqa: E402


@dataclass
class Target:
    """What decoding and make_draft need of a target (random-weights mode has no tokenizer)."""

    model: Any
    device: str
    name: str = "random"
    dtype: str = "float32"
    tokenizer: Any = None


def load_target(spec: str, device: str, prompt_set: str, n_prompts: int,
                dtype: str = "float32") -> tuple[Any, list[torch.Tensor], int | None]:
    """The target, the encoded prompts and the EOS id (``dtype``: the random target's)."""
    if spec == "random":
        from profile_random import SHAPES  # tests/bench: the bundled model's exact shape
        from transformers import LlamaConfig, LlamaForCausalLM

        torch.manual_seed(0)
        cfg = LlamaConfig(**SHAPES["smollm2-135m"])
        model = LlamaForCausalLM(cfg).eval().to(device=device, dtype=getattr(torch, dtype))
        g = torch.Generator().manual_seed(1)
        base = torch.randint(0, 49152, (40,), generator=g)
        prompts = [torch.cat([base, base[:20]])[None], torch.randint(0, 49152, (1, 60),
                                                                       generator=g)]
        return Target(model, device, dtype=dtype), prompts, None
    from live.models import load_model
    from live.prompts import encode_prompt, load_prompts

    target = load_model(spec, device=device)
    tok = target.tokenizer
    prompts = [encode_prompt(tok, p) for p in load_prompts(prompt_set, limit=n_prompts)]
    return target, prompts, tok.eos_token_id


def run(target: Any, draft_spec: str, tau: int, prompts: list[torch.Tensor], max_new: int,
        eos: int | None, on_cycle: Callable[[Any], None] | None = None) -> list[DecodeResult]:
    draft = make_draft(draft_spec, target)
    policy = make_policy("target_only" if draft is None else f"fixed:tau={tau}")
    return [speculative_generate(target, draft, policy, ids, max_new_tokens=max_new,
                                 sampling=SamplingConfig(), request_id=i,
                                 eos_token_ids={eos} if eos is not None else None,
                                 on_cycle=on_cycle)
            for i, ids in enumerate(prompts)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--target", default="smollm2")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--drafts", default="ngram,layerskip:layers=4")
    ap.add_argument("--prompts", default="builtin:edit")
    ap.add_argument("--limit", type=int, default=2, help="prompts from the set")
    ap.add_argument("--tau", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    target, prompts, eos = load_target(args.target, args.device, args.prompts, args.limit)
    variants = ["none", *args.drafts.split(",")]
    run(target, "ngram", args.tau, prompts[:1], 8, eos)  # warm-up
    times: dict[str, list[float]] = {v: [] for v in [*variants, "traced", "untraced"]}
    results: dict[str, list[DecodeResult]] = {}
    tmp = Path(tempfile.mkdtemp())
    for r in range(args.rounds):
        for v in variants:
            t0 = time.perf_counter()
            results[v] = run(target, v, args.tau, prompts, args.max_new_tokens, eos)
            times[v].append(time.perf_counter() - t0)
        # tracing overhead: the same ngram decode with and without a streaming JSONL writer
        meta = RunMeta(source="live", target_model=args.target, draft_model="ngram")
        for label in (("traced", "untraced") if r % 2 == 0 else ("untraced", "traced")):
            t0 = time.perf_counter()
            if label == "traced":
                with TraceWriter(tmp / f"r{r}.jsonl", meta) as w:
                    run(target, "ngram", args.tau, prompts, args.max_new_tokens, eos,
                        on_cycle=w.write_cycle)
            else:
                run(target, "ngram", args.tau, prompts, args.max_new_tokens, eos)
            times[label].append(time.perf_counter() - t0)

    ref = [r.tokens for r in results["none"]]
    base = statistics.median(times["none"])
    print(f"target={args.target} device={args.device} tau={args.tau} prompts={len(prompts)} "
          f"max_new={args.max_new_tokens} rounds={args.rounds} threads={torch.get_num_threads()}")
    print(f"{'draft':24} {'tok/s':>8} {'speedup':>8} {'tok/cyc':>8} {'draft%':>7} {'verify%':>8} "
          f"{'ovh%':>6}  same")
    for v in variants:
        res = results[v]
        cycles = [c for r in res for c in r.cycles]
        tokens = sum(len(r.tokens) for r in res)
        spent = sum(c.draft_s + c.verify_s + c.overhead_s for c in cycles) or 1.0
        med = statistics.median(times[v])
        print(f"{v:24} {tokens / med:8.1f} {base / med:8.2f} {tokens / len(cycles):8.2f} "
              f"{100 * sum(c.draft_s for c in cycles) / spent:7.1f} "
              f"{100 * sum(c.verify_s for c in cycles) / spent:8.1f} "
              f"{100 * sum(c.overhead_s for c in cycles) / spent:6.1f}  "
              f"{[r.tokens for r in res] == ref}")
    traced, untraced = statistics.median(times["traced"]), statistics.median(times["untraced"])
    print(f"tracing overhead (JSONL TraceWriter via on_cycle, ngram): "
          f"{100 * (traced / untraced - 1):+.2f}%  (median {traced:.3f}s vs {untraced:.3f}s)")
    # The same cost without decode noise: the writer alone on this run's ngram cycles.
    cycles = [c for r in results["ngram"] for c in r.cycles]
    reps = max(1, 20_000 // len(cycles))
    with TraceWriter(tmp / "writer.jsonl", meta) as w:
        t0 = time.perf_counter()
        for _ in range(reps):
            for c in cycles:
                w.write_cycle(c)
        per_cycle = (time.perf_counter() - t0) / (reps * len(cycles))
    mean_cycle = statistics.median(times["ngram"]) / len(cycles)
    print(f"TraceWriter.write_cycle: {per_cycle * 1e6:.1f} us per cycle = "
          f"{100 * per_cycle / mean_cycle:.3f}% of a mean ngram cycle ({mean_cycle * 1e3:.1f} ms)")


if __name__ == "__main__":
    main()

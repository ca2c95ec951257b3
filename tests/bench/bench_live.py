"""Live decoder vs transformers, side by side in one run (greedy, same models, prompts and tau).

Pairs (ours / theirs), each timed over the same prompts, interleaved round by round:
  1. model draft:   speculative_generate(ModelDraft)  vs generate(assistant_model=draft)
  2. prompt lookup: speculative_generate(ngram:n=N)    vs generate(prompt_lookup_num_tokens=tau)
  3. target only:   speculative_generate(draft none)   vs generate()
  4. tracing:       capture's TraceWriter per cycle    vs no on_cycle (ngram draft)
The draft model is the target's first ``--draft-layers`` layers as an independent module (HF's
assistant needs a model of its own). Prints tokens/s per variant, ratios (ours / theirs) and
whether the greedy outputs match.

    python tests/bench/bench_live.py --target smollm2 --limit 4 --max-new-tokens 64 --rounds 3
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from live.capture import eos_ids  # noqa: E402
from live.decode import SamplingConfig, speculative_generate  # noqa: E402
from live.device import synchronizer  # noqa: E402
from live.drafts import ModelDraft, make_draft  # noqa: E402
from live.models import LoadedModel, load_model  # noqa: E402
from live.prompts import encode_prompt, load_prompts  # noqa: E402
from sim.policies.library import make_policy  # noqa: E402
from tracing import RunMeta, TraceWriter  # noqa: E402

Run = Callable[[Any], list[int]]  # input_ids (1, n) -> generated tokens


def truncated_copy(model: Any, layers: int) -> Any:
    """An independent copy of a Llama-family model keeping its first ``layers`` decoder layers."""
    draft = copy.deepcopy(model)
    draft.model.layers = torch.nn.ModuleList(list(draft.model.layers)[:layers])
    draft.config.num_hidden_layers = layers
    if getattr(draft.config, "layer_types", None) is not None:
        draft.config.layer_types = list(draft.config.layer_types)[:layers]
    return draft.eval()


def ours(target: LoadedModel, draft: Any, policy_spec: str, max_new: int, stops: set[int],
         on_cycle: Any = None) -> Run:
    sampling = SamplingConfig(temperature=0.0)

    def run(ids: Any) -> list[int]:
        res = speculative_generate(target, draft, make_policy(policy_spec), ids,
                                   max_new_tokens=max_new, sampling=sampling,
                                   eos_token_ids=stops, on_cycle=on_cycle)
        return [int(t) for t in res.tokens]

    return run


def theirs(target: LoadedModel, max_new: int, stops: set[int], **kw: Any) -> Run:
    def run(ids: Any) -> list[int]:
        out = target.model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                    max_new_tokens=max_new, eos_token_id=sorted(stops),
                                    pad_token_id=target.tokenizer.pad_token_id, **kw)
        tokens = [int(t) for t in out[0, ids.shape[1]:]]
        return tokens

    return run


def time_run(run: Run, prompts: list[Any], sync: Callable[[], None]) -> tuple[float, list[list[int]]]:
    """tokens/s of ``run`` over all prompts, and its outputs."""
    outs = []
    sync()
    t0 = time.perf_counter()
    with torch.inference_mode():
        for ids in prompts:
            outs.append(run(ids))
    sync()
    dt = time.perf_counter() - t0
    return sum(len(o) for o in outs) / dt, outs


def _strip_eos(tokens: list[int], stops: set[int]) -> list[int]:
    return tokens[:-1] if tokens and tokens[-1] in stops else tokens


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--target", default="smollm2")
    ap.add_argument("--device", default=None)
    ap.add_argument("--dtype", default=None)
    ap.add_argument("--prompts", default="builtin:edit")
    ap.add_argument("--limit", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--tau", type=int, default=4)
    ap.add_argument("--ngram", type=int, default=3)
    ap.add_argument("--draft-layers", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    target = load_model(args.target, args.device, args.dtype)
    sync = synchronizer(target.device)
    stops = eos_ids(target.tokenizer, target.model)
    prompts = [encode_prompt(target.tokenizer, p).to(target.device)
               for p in load_prompts(args.prompts, args.limit)]
    small = truncated_copy(target.model, args.draft_layers)
    # HF's assistant: a constant number of drafted tokens, no confidence cut-off.
    small.generation_config.num_assistant_tokens = args.tau
    small.generation_config.num_assistant_tokens_schedule = "constant"
    small.generation_config.assistant_confidence_threshold = 0.0
    fixed = f"fixed:tau={args.tau}"
    tmp = tempfile.TemporaryDirectory()
    meta = RunMeta(source="live", target_model=target.name, draft_model=f"ngram:n={args.ngram}")
    writer = TraceWriter(Path(tmp.name) / "bench.jsonl", meta)
    writer.open()
    ngram = make_draft(f"ngram:n={args.ngram}", target)
    variants: dict[str, Run] = {
        "ours model draft": ours(target, ModelDraft(small, "truncated", target.device), fixed,
                                 args.max_new_tokens, stops),
        "hf assistant_model": theirs(target, args.max_new_tokens, stops, assistant_model=small),
        "ours ngram": ours(target, ngram, fixed, args.max_new_tokens, stops),
        "hf prompt_lookup": theirs(target, args.max_new_tokens, stops,
                                   prompt_lookup_num_tokens=args.tau,
                                   max_matching_ngram_size=args.ngram),
        "ours target-only": ours(target, None, "target_only", args.max_new_tokens, stops),
        "hf generate": theirs(target, args.max_new_tokens, stops),
        "ours ngram + tracing": ours(target, ngram, fixed, args.max_new_tokens, stops,
                                     on_cycle=writer.write_cycle),
    }
    pairs = [("model draft", "ours model draft", "hf assistant_model"),
             ("prompt lookup", "ours ngram", "hf prompt_lookup"),
             ("target-only", "ours target-only", "hf generate"),
             ("tracing on/off", "ours ngram + tracing", "ours ngram")]
    print(f"device={target.device} ({target.device_name}) dtype={target.dtype} "
          f"target={target.name} ({target.n_params / 1e6:.0f}M) draft layers={args.draft_layers} "
          f"tau={args.tau} prompts={args.prompts} x{len(prompts)} "
          f"max_new={args.max_new_tokens} rounds={args.rounds} torch={torch.__version__}")
    for run in variants.values():  # warm-up (allocator, kernels, caches)
        time_run(run, prompts[:1], sync)
    rates: dict[str, list[float]] = {k: [] for k in variants}
    outputs: dict[str, list[list[int]]] = {}
    for _ in range(args.rounds):
        for name, run in variants.items():
            rate, outs = time_run(run, prompts, sync)
            rates[name].append(rate)
            outputs[name] = [_strip_eos(o, stops) for o in outs]
    writer.close()
    # Best round (least disturbed by other load on a shared machine) and the median.
    best = {k: max(v) for k, v in rates.items()}
    med = {k: statistics.median(v) for k, v in rates.items()}
    print(f"{'variant':24s} {'tok/s best':>10s} {'median':>8s}  per round")
    for name, v in rates.items():
        print(f"{name:24s} {best[name]:10.1f} {med[name]:8.1f}  " + " ".join(f"{x:.1f}" for x in v))
    print(f"{'pair':16s} {'best a/b':>9s} {'median a/b':>11s}  outputs equal")
    for label, a, b in pairs:
        same = sum(x == y for x, y in zip(outputs[a], outputs[b], strict=True))
        print(f"{label:16s} {best[a] / best[b]:9.3f} {med[a] / med[b]:11.3f}  "
              f"{same}/{len(prompts)}")
    ref = outputs["hf generate"]
    agree = {k: sum(x == y for x, y in zip(v, ref, strict=True)) for k, v in outputs.items()}
    print("outputs equal to hf generate: " + ", ".join(f"{k} {n}/{len(ref)}"
                                                      for k, n in agree.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The fast path (--compile) vs today's eager path vs transformers' generate(), side by side.

Greedy decoding of the same prompts, exactly ``--max-new-tokens`` each (EOS ignored, so every
variant emits the same count), variants interleaved round by round in a rotating order (machine
noise hits them alike):

  hf        transformers ``generate()`` (DynamicCache, eager)
  eager     speculative_generate, target only, today's path (CachedLM: DynamicCache)
  static    the same on the static KV cache, NOT compiled (live.static, compile=False)
  compiled  the same on the static KV cache with torch.compile'd steps (--compile)
  and, with ``--draft`` (e.g. ngram), eager+DRAFT and compiled+DRAFT at ``--tau``.

Compilation is timed apart (``StaticLM.warm``: every step kind compiled before any timed run)
and never counted in a round. Prints ms/token per variant (median over rounds), ratios against
eager and hf, and whether each output equals hf's token for token.

    python tests/bench/bench_compile.py --target smollm2 --limit 2 --max-new-tokens 32 --rounds 3
    python tests/bench/bench_compile.py --target random --device cuda --dtype bfloat16
                                                    # SmolLM2-shaped, random weights

``--json FILE`` also writes the medians, every round, the compile time and the software stack.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from bench_decode import load_target  # noqa: E402

from live.decode import speculative_generate  # noqa: E402
from live.device import synchronizer  # noqa: E402
from live.drafts import make_draft  # noqa: E402
from live.sampling import SamplingConfig  # noqa: E402
from live.static import StaticLM  # noqa: E402
from sim.policies.library import make_policy  # noqa: E402

Run = Callable[[torch.Tensor], list[int]]


def ours(target: Any, draft_spec: str, policy: str, max_new: int, lm: Any = None) -> Run:
    draft = make_draft(draft_spec, target)

    def run(ids: torch.Tensor) -> list[int]:
        res = speculative_generate(target, draft, make_policy(policy), ids,
                                   max_new_tokens=max_new, sampling=SamplingConfig(),
                                   target_lm=lm)
        return [int(t) for t in res.tokens]

    return run


def hf(target: Any, max_new: int) -> Run:
    def run(ids: torch.Tensor) -> list[int]:
        out = target.model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                    max_new_tokens=max_new, min_new_tokens=max_new,
                                    pad_token_id=0)
        return [int(t) for t in out[0, ids.shape[1]:]]

    return run


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--target", default="smollm2", help="smollm2, a model, or random")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32",
                    help="the random target's dtype (e.g. bfloat16, as the GPU captures ran)")
    ap.add_argument("--prompts", default="builtin:edit")
    ap.add_argument("--limit", type=int, default=2)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--draft", default="", help="also a speculative pair with this draft")
    ap.add_argument("--tau", type=int, default=4)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--backend", default="inductor",
                    help="torch.compile backend of the compiled steps: inductor (kernels "
                         "generated, CUDA graphs on cuda; minutes to compile) or cudagraphs "
                         "(the eager kernels replayed from CUDA graphs; seconds)")
    ap.add_argument("--json", default="", help="also write the results to this JSON file")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    target, prompts, _ = load_target(args.target, args.device, args.prompts, args.limit,
                                     args.dtype)
    prompts = [p.to(args.device) for p in prompts]
    sync = synchronizer(args.device)
    n = args.max_new_tokens
    size = max(int(p.shape[1]) for p in prompts) + n + args.tau + 2
    static = StaticLM(target.model, size, compile=False)
    compiled = StaticLM(target.model, size, compile=True, backend=args.backend)
    t0 = time.perf_counter()
    compiled.warm(prompts[0])
    sync()
    compile_s = time.perf_counter() - t0
    print(f"compile ({args.backend}; StaticLM.warm: 1-, 2- and 3-token steps): "
          f"{compile_s:.1f} s", flush=True)

    runs: dict[str, Run] = {
        "hf": hf(target, n),
        "eager": ours(target, "none", "target_only", n),
        "static": ours(target, "none", "target_only", n, static),
        "compiled": ours(target, "none", "target_only", n, compiled),
    }
    if args.draft:
        pol = f"fixed:tau={args.tau}"
        runs[f"eager+{args.draft}"] = ours(target, args.draft, pol, n)
        runs[f"compiled+{args.draft}"] = ours(target, args.draft, pol, n, compiled)
    names = list(runs)
    ms: dict[str, list[float]] = {k: [] for k in names}
    outs: dict[str, list[list[int]]] = {}
    with torch.inference_mode():
        for r in range(args.rounds + 1):  # round 0 warms every variant up, untimed
            order = names[r % len(names):] + names[:r % len(names)]
            for name in order:
                sync()
                t = time.perf_counter()
                got = [runs[name](ids) for ids in prompts]
                sync()
                took = (time.perf_counter() - t) * 1e3 / sum(map(len, got))
                if r:
                    ms[name].append(took)
                print(f"  round {r} {name}: {took:.1f} ms/token", flush=True)
                outs[name] = got
    med = {k: statistics.median(v) for k, v in ms.items()}
    print(f"{args.target} on {args.device}, {len(prompts)} prompts x {n} tokens, greedy, "
          f"{args.rounds} rounds (median), torch threads {torch.get_num_threads()}")
    print(f"{'variant':<20} {'ms/token':>9} {'vs eager':>9} {'vs hf':>7}  same as hf")
    for k in names:
        same = sum(a == b for a, b in zip(outs[k], outs["hf"], strict=True))
        print(f"{k:<20} {med[k]:9.2f} {med['eager'] / med[k]:8.2f}x {med['hf'] / med[k]:6.2f}x"
              f"  {same}/{len(prompts)}   rounds: " + " ".join(f"{x:.1f}" for x in ms[k]))
    if args.json:
        write_json(args, target, compile_s, ms, med, outs)
    return 0


def write_json(args: argparse.Namespace, target: Any, compile_s: float,
               ms: dict[str, list[float]], med: dict[str, float],
               outs: dict[str, list[list[int]]]) -> None:
    import transformers

    device = str(args.device)
    if device.startswith("cuda"):
        device = torch.cuda.get_device_name(torch.device(device))
    out = {"device": device, "target": args.target, "dtype": str(getattr(target, "dtype", "")),
           "prompts": args.prompts, "n_prompts": args.limit, "max_new_tokens": args.max_new_tokens,
           "rounds": args.rounds, "draft": args.draft, "tau": args.tau,
           "backend": args.backend, "compile_s": round(compile_s, 3),
           "torch_threads": torch.get_num_threads(),
           "ms_per_token": {k: round(v, 4) for k, v in med.items()},
           "ms_per_token_rounds": {k: [round(x, 4) for x in v] for k, v in ms.items()},
           "same_tokens_as_hf": {k: sum(a == b for a, b in zip(outs[k], outs["hf"], strict=True))
                                 for k in outs},
           "software": {"python": platform.python_version(), "torch": torch.__version__,
                        "transformers": transformers.__version__,
                        "cuda": str(torch.version.cuda or "")},
           "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    Path(args.json).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())

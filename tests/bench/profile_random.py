"""Device profile (``live.profile.profile_device``, as ``specsim profile`` writes it) of a
randomly initialised Llama-shaped target: pass times depend on shapes, not on weight values, so
a real-size model can be profiled without its weights.

The model is built directly on the device in the profile's dtype (no float32 copy, no host
round trip), so an 8B shape is ready in seconds. One JSON per context length is written as soon
as it is measured (``OUT.ctxN.json``), then all of them merged into ``OUT``.

Several shapes (``--shape a,b``; ``OUT`` then names ``{shape}``) are profiled in ONE process,
context by context, shape after shape: their levels then share one host, which two profiles
recorded in two processes do not (on the H200 machine the same pass took 18.2, 31.1 and 24-28
ms in three processes), so fitting on one shape and checking on the other tests the cost
model's shape terms and not the host's drift. Each profile carries its host probe
(:mod:`live.hostprobe`).

    python tests/bench/profile_random.py --shape llama-3.1-8b --device cuda --dtype bfloat16 \\
        --batch 1,2,4,8,16,32 --tokens 1,2,3,5,9,17 --context 512,2048 --rounds 5 \\
        --out traces/h200/profile_h200_random-llama-3.1-8b.json
    python tests/bench/profile_random.py --shape smollm2-135m,llama-1b --device cuda \\
        --dtype bfloat16 --batch 1,2,4,8,16 --tokens 1,2,3,5,9 --context 128,1024 \\
        --out 'profile_{shape}.json'                       # both in one process
    python tests/bench/profile_random.py --shape tiny --out /tmp/p.json    # a dry run on CPU
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

# Llama configs (transformers' field names); "tiny" is for rehearsals on a CPU
SHAPES: dict[str, dict[str, Any]] = {
    "llama-3.1-8b": {"num_hidden_layers": 32, "hidden_size": 4096, "intermediate_size": 14336,
                     "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128,
                     "vocab_size": 128256, "rope_theta": 500000.0,
                     "max_position_embeddings": 8192, "tie_word_embeddings": False},
    # the bundled SmolLM2-135M-Instruct's shape (tied head), and the 1.2B of
    # traces/h200/profile_h200_random-llama-1b.json
    "smollm2-135m": {"num_hidden_layers": 30, "hidden_size": 576, "intermediate_size": 1536,
                     "num_attention_heads": 9, "num_key_value_heads": 3, "head_dim": 64,
                     "vocab_size": 49152, "rope_theta": 100000.0,
                     "max_position_embeddings": 8192, "tie_word_embeddings": True},
    "llama-1b": {"num_hidden_layers": 16, "hidden_size": 2048, "intermediate_size": 8192,
                 "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 64,
                 "vocab_size": 49152, "max_position_embeddings": 8192,
                 "tie_word_embeddings": False},
    "tiny": {"num_hidden_layers": 2, "hidden_size": 64, "intermediate_size": 128,
             "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
             "vocab_size": 1000, "max_position_embeddings": 4096, "tie_word_embeddings": False},
}


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def build(shape: str, device: str, dtype: str) -> Any:
    """The random-weight model as a ``LoadedModel`` (what ``profile_device`` reads)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from live.models import LoadedModel

    torch.manual_seed(0)
    cfg = LlamaConfig(**SHAPES[shape])
    torch_dtype = getattr(torch, dtype)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch_dtype)
    try:
        with torch.device(device):
            model = LlamaForCausalLM(cfg).eval()
    finally:
        torch.set_default_dtype(previous)
    n_params = int(sum(p.numel() for p in model.parameters()))
    return LoadedModel(model=model, tokenizer=None, name=f"random-{shape}", device=device,
                       dtype=dtype, n_params=n_params)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", default="llama-3.1-8b",
                    help=f"one or more of {', '.join(sorted(SHAPES))}, comma-separated")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--batch", default="1,2,4")
    ap.add_argument("--tokens", default="1,2,3")
    ap.add_argument("--context", default="16,64")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", required=True, help="the profile file; with several shapes a "
                                                 "pattern naming {shape}")
    args = ap.parse_args()
    shapes = [s for s in args.shape.split(",") if s]
    unknown = [s for s in shapes if s not in SHAPES]
    if unknown or not shapes:
        ap.error(f"--shape {args.shape}: known shapes are {', '.join(sorted(SHAPES))}")
    if len(shapes) > 1 and "{shape}" not in args.out:
        ap.error("--out: with several shapes, a pattern naming {shape}")
    from live.profile import profile_device

    t0 = time.perf_counter()
    targets = {}
    for shape in shapes:
        targets[shape] = build(shape, args.device, args.dtype)
        print(f"built {targets[shape].name}: {targets[shape].n_params / 1e9:.3f} B parameters "
              f"in {time.perf_counter() - t0:.1f} s", flush=True)
    outs = {s: Path(args.out.replace("{shape}", s)) for s in shapes}
    merged: dict[str, dict[str, Any]] = {}
    for c in _ints(args.context):  # one context at a time: each is kept as soon as measured
        for shape in shapes:  # every shape in this process, one after the other
            t1 = time.perf_counter()
            prof = profile_device(targets[shape], batches=_ints(args.batch),
                                  tokens=_ints(args.tokens), contexts=[c], rounds=args.rounds)
            prof["note"] = (f"random weights (timings are shape-bound); Llama shape {shape}"
                            + (f"; profiled in one process with {', '.join(shapes)}"
                               if len(shapes) > 1 else ""))
            part = outs[shape].with_suffix(f".ctx{c}.json")
            part.write_text(json.dumps(prof, indent=1) + "\n")
            print(f"{shape} context {c}: {len(prof['points'])} points in "
                  f"{time.perf_counter() - t1:.1f} s, host {prof['host_probe']['us_per_op']:.2f}"
                  f" us/op -> {part}", flush=True)
            _merge(merged, shape, prof)
    from sim.models.deviceprofile import from_dict

    for shape, prof in merged.items():
        prof.pop("fit", None)  # refitted over all the points below
        refit = from_dict(prof, str(outs[shape])).to_dict()
        prof["fit"] = refit["fit"]
        outs[shape].write_text(json.dumps(prof, indent=1) + "\n")
        print(f"wrote {outs[shape]} ({len(prof['points'])} points)")
    print(f"done in {time.perf_counter() - t0:.1f} s")
    return 0


def _merge(merged: dict[str, dict[str, Any]], shape: str, prof: dict[str, Any]) -> None:
    """Add one context's profile of ``shape`` to ``merged``: its points appended, its host
    probe kept (``host_probes``, one per context) and averaged into ``host_probe``."""
    probe = prof.pop("host_probe")
    have = merged.setdefault(shape, {**prof, "points": [], "host_probes": []})
    have["points"] = have["points"] + prof["points"]
    have["host_probes"].append(probe)
    probes = have["host_probes"]
    have["host_probe"] = {"us_per_op": round(sum(p["us_per_op"] for p in probes)
                                             / len(probes), 4)}


if __name__ == "__main__":
    raise SystemExit(main())

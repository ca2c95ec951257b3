"""Device profile (``live.profile.profile_device``, as ``specsim profile`` writes it) of a
randomly initialised Llama-shaped target: pass times depend on shapes, not on weight values, so
a real-size model can be profiled without its weights.

The model is built directly on the device in the profile's dtype (no float32 copy, no host
round trip), so an 8B shape is ready in seconds. One JSON per context length is written as soon
as it is measured (``OUT.ctxN.json``), then all of them merged into ``OUT``.

    python tests/bench/profile_random.py --shape llama-3.1-8b --device cuda --dtype bfloat16 \\
        --batch 1,2,4,8,16,32 --tokens 1,2,3,5,9,17 --context 512,2048 --rounds 5 \\
        --out traces/h200/profile_h200_random-llama-3.1-8b.json
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
    ap.add_argument("--shape", default="llama-3.1-8b", choices=sorted(SHAPES))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--batch", default="1,2,4")
    ap.add_argument("--tokens", default="1,2,3")
    ap.add_argument("--context", default="16,64")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    from live.profile import profile_device

    t0 = time.perf_counter()
    target = build(args.shape, args.device, args.dtype)
    print(f"built {target.name}: {target.n_params / 1e9:.3f} B parameters in "
          f"{time.perf_counter() - t0:.1f} s", flush=True)
    out = Path(args.out)
    merged: dict[str, Any] | None = None
    for c in _ints(args.context):  # one context at a time: each is kept as soon as measured
        t1 = time.perf_counter()
        prof = profile_device(target, batches=_ints(args.batch), tokens=_ints(args.tokens),
                              contexts=[c], rounds=args.rounds)
        prof["note"] = f"random weights (timings are shape-bound); Llama shape {args.shape}"
        part = out.with_suffix(f".ctx{c}.json")
        part.write_text(json.dumps(prof, indent=1) + "\n")
        print(f"context {c}: {len(prof['points'])} points in {time.perf_counter() - t1:.1f} s "
              f"-> {part}", flush=True)
        if merged is None:
            merged = prof
        else:
            merged["points"] = merged["points"] + prof["points"]
    assert merged is not None
    merged.pop("fit", None)  # refitted over all the points below
    from sim.models.deviceprofile import from_dict

    refit = from_dict(merged, str(out)).to_dict()
    merged.update({k: v for k, v in refit.items() if k == "fit"})
    out.write_text(json.dumps(merged, indent=1) + "\n")
    print(f"wrote {out} ({len(merged['points'])} points) in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

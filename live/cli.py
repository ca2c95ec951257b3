"""``specsim capture``: flags -> CaptureConfig -> live.capture (torch is imported only on run)."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(sub: Any) -> None:
    """Add ``capture`` to the ``specsim`` parser."""
    p = sub.add_parser(
        "capture",
        help="decode prompts with real models and record a trace",
        description="Run the live speculative decoder over a prompt set and stream a trace "
                    "(JSONL, or Parquet by the --out extension).",
    )
    p.add_argument("--target", required=True,
                   help="target model: a local path, a cached hub id, or 'smollm2' (bundled)")
    p.add_argument("--draft", default="ngram",
                   help="none | ngram[:n=3] | layerskip[:layers=8] | a model (default: ngram)")
    p.add_argument("--policy", default="fixed:tau=4",
                   help="draft-length policy NAME[:key=value,...] (default: fixed:tau=4)")
    p.add_argument("--prompts", default="builtin:chat",
                   help="a JSONL file ('prompt' or 'messages' per line) or builtin:edit / "
                        "builtin:chat (default: builtin:chat)")
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda if available)")
    p.add_argument("--dtype", default=None,
                   help="float32, bfloat16, float16 (default: bfloat16 on cuda, else float32)")
    p.add_argument("--limit", type=int, default=None, help="only the first N prompts")
    p.add_argument("--warmup-tokens", type=int, default=16,
                   help="untimed tokens decoded before the first request (0: none)")
    p.add_argument("--profile-tokens", type=int, default=17,
                   help="profile verify passes of 1..N tokens into the run metadata (0: off)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--out", required=True, help="trace to write (.jsonl or .parquet)")
    p.set_defaults(func=_cmd_capture)


def _cmd_capture(args: argparse.Namespace) -> int:
    from transformers.utils import logging as hf_logging

    from live.capture import CaptureConfig, capture

    hf_logging.disable_progress_bar()  # our own bar is the one to watch
    config = CaptureConfig(
        target=args.target, out=args.out, draft=args.draft, policy=args.policy,
        prompts=args.prompts, max_new_tokens=args.max_new_tokens,
        temperature=args.temperature, top_p=args.top_p, seed=args.seed, device=args.device,
        dtype=args.dtype, limit=args.limit, warmup_tokens=args.warmup_tokens,
        profile_tokens=args.profile_tokens,
    )
    result = capture(config, progress=not args.no_progress and sys.stderr.isatty())
    line = (f"{result.path}: {result.requests} requests, {result.cycles} cycles, "
            f"{result.tokens} tokens in {result.wall_s:.1f} s")
    if result.interrupted:
        print(f"specsim: interrupted; {line} (the last request cut off)", file=sys.stderr)
        return 130
    print(line)
    return 0

"""``specsim capture``: flags -> CaptureConfig(s) -> live.capture / live.interleave (torch is
imported only on run).

One configuration (one ``--draft``, one ``--policy``) writes ``--out``; several (``--draft``
and ``--policy`` repeated: every draft with every policy) are recorded interleaved on one loaded
target into ``--out-dir``, one trace per configuration named ``{draft}_{policy}.jsonl``. An
existing trace is never overwritten without ``--force``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from tracing.errors import SpecsimError


def register(sub: Any) -> None:
    """Add ``capture`` to the ``specsim`` parser."""
    p = sub.add_parser(
        "capture",
        help="decode prompts with real models and record a trace",
        description="Run the live speculative decoder over a prompt set and stream a trace "
                    "(JSONL, or Parquet by the --out extension). Several --draft / --policy "
                    "values record every draft x policy configuration interleaved, prompt by "
                    "prompt, on one loaded target (--out-dir, one trace each).",
    )
    p.add_argument("--target", required=True,
                   help="target model: a local path, a cached hub id, or 'smollm2' (bundled)")
    p.add_argument("--draft", action="append", default=None,
                   help="none | ngram[:n=3] | layerskip[:layers=8] | a model (default: ngram); "
                        "repeat for an interleaved capture")
    p.add_argument("--policy", action="append", default=None,
                   help="draft-length policy NAME[:key=value,...] (default: fixed:tau=4); "
                        "repeat for an interleaved capture")
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
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", help="the trace of one configuration (.jsonl or .parquet)")
    where.add_argument("--out-dir",
                       help="folder for an interleaved capture: one trace per configuration")
    p.add_argument("--format", choices=("jsonl", "parquet"), default="jsonl",
                   help="trace format under --out-dir (default: jsonl)")
    p.add_argument("--force", action="store_true", help="overwrite existing traces")
    p.set_defaults(func=_cmd_capture)


def _cmd_capture(args: argparse.Namespace) -> int:
    from transformers.utils import logging as hf_logging

    from live.capture import CaptureConfig, CaptureResult, capture
    from live.interleave import capture_interleaved, check_overwrite, plan_configs

    hf_logging.disable_progress_bar()  # our own bar is the one to watch
    drafts = args.draft or ["ngram"]
    policies = args.policy or ["fixed:tau=4"]
    progress = not args.no_progress and sys.stderr.isatty()
    if args.out_dir is not None:
        folder = Path(args.out_dir)
        if folder.exists() and not folder.is_dir():
            raise SpecsimError(f"--out-dir {args.out_dir}: exists and is not a directory")
        folder.mkdir(parents=True, exist_ok=True)
    # the shared settings; under --out-dir each configuration gets its own draft, policy, out
    out = args.out or str(Path(args.out_dir) / "capture.jsonl")
    base = CaptureConfig(
        target=args.target, out=out, draft=drafts[0],
        policy=policies[0], prompts=args.prompts, max_new_tokens=args.max_new_tokens,
        temperature=args.temperature, top_p=args.top_p, seed=args.seed, device=args.device,
        dtype=args.dtype, limit=args.limit, warmup_tokens=args.warmup_tokens,
        profile_tokens=args.profile_tokens,
    )
    results: list[CaptureResult]
    if args.out is not None:
        if len(drafts) > 1 or len(policies) > 1:
            raise SpecsimError("capture: several --draft / --policy values need --out-dir "
                               "(one trace per configuration), not --out")
        check_overwrite([args.out], args.force)
        results = [capture(base, progress=progress)]
    else:
        configs = plan_configs(base, drafts, policies, args.out_dir, f".{args.format}",
                               force=args.force)
        results = capture_interleaved(configs, progress=progress)
    interrupted = any(r.interrupted for r in results)
    for result in results:
        line = (f"{result.path}: {result.requests} requests, {result.cycles} cycles, "
                f"{result.tokens} tokens in {result.wall_s:.1f} s")
        print(line, file=sys.stderr if interrupted else sys.stdout)
    if interrupted:
        print("specsim: interrupted; every trace is valid (the last request cut off)",
              file=sys.stderr)
        return 130
    return 0


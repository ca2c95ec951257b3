"""``specsim capture`` and ``specsim profile``: flags -> live.capture / live.interleave /
live.profile (torch is imported only on run).

Capture: one configuration (one ``--draft``, one ``--policy``) writes ``--out``; several
(``--draft`` and ``--policy`` repeated: every draft with every policy) are recorded interleaved
on one loaded target into ``--out-dir``, one trace per configuration named
``{draft}_{policy}.jsonl``. An existing trace is never overwritten without ``--force``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from tracing.errors import SpecsimError
from tracing.outputs import add_force, add_out, claim, publish


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
    p.add_argument("--compile", action="store_true",
                   help="static KV cache + torch.compile'd decode and verify steps (compiled "
                        "in the untimed warm-up; not for sliding-window models)")
    p.add_argument("--record-tokens", action="store_true",
                   help="also write TRACE.tokens.ndjson (each request's prompt and output token "
                        "ids: an n-gram draft of another size is then replayed exactly)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("-o", "--out", metavar="TRACE",
                       help="the trace of one configuration (.jsonl or .parquet)")
    where.add_argument("--out-dir",
                       help="folder for an interleaved capture: one trace per configuration")
    p.add_argument("--format", choices=("jsonl", "parquet"), default="jsonl",
                   help="trace format under --out-dir (default: jsonl)")
    p.add_argument("--force", action="store_true", help="overwrite existing traces")
    p.set_defaults(func=_cmd_capture)
    register_profile(sub)
    register_cache(sub)


def register_cache(sub: Any) -> None:
    """Add ``cache list|clear`` (the converted-model cache, ``$SPECSIM_CACHE``)."""
    p = sub.add_parser("cache", help="the converted-model cache ($SPECSIM_CACHE, default "
                       "~/.cache/specsim): list or clear it")
    p.add_argument("action", choices=("list", "clear"))
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_cache)


def _cmd_cache(args: argparse.Namespace) -> int:
    from live.models import cache_dir, cache_entries, clear_cache
    from tracing.cli import print_json

    entries = cache_entries() if args.action == "list" else clear_cache()
    total = sum(e["bytes"] for e in entries)
    if args.json:
        print_json({"cache": str(cache_dir()), "action": args.action, "models": entries,
                    "bytes": total})
        return 0
    verb = "removed" if args.action == "clear" else "holds"
    print(f"{cache_dir()} {verb} {len(entries)} model(s), {total / 1e6:.0f} MB")
    for e in entries:
        print(f"  {e['name']}  {e['bytes'] / 1e6:.0f} MB")
    return 0


def _cmd_capture(args: argparse.Namespace) -> int:
    if args.out is not None:
        claim(args.out, args.force)  # before any model is loaded
    from live.capture import CaptureConfig, CaptureResult, capture
    from live.interleave import capture_interleaved, check_overwrite, plan_configs
    from live.models import quiet_transformers

    quiet_transformers()  # our own bar is the one to watch; no deprecation noise
    drafts = args.draft or ["ngram"]
    policies = args.policy or ["fixed:tau=4"]
    progress = not args.no_progress  # a bar on a terminal, plain lines when piped
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
        profile_tokens=args.profile_tokens, compile=args.compile,
        record_tokens=args.record_tokens,
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


def register_profile(sub: Any) -> None:
    """Add ``profile`` to the ``specsim`` parser."""
    p = sub.add_parser(
        "profile",
        help="measure forward-pass costs on this device into a profile (JSON)",
        description="Time target passes over batch sizes x tokens per sequence x context "
                    "lengths (and a draft's steps) on the device at hand: warmed up, "
                    "synchronized, shuffled, medians; fixed and variable parts fitted.",
    )
    p.add_argument("--target", required=True, help="target model (as for capture)")
    p.add_argument("--draft", default="none",
                   help="none | layerskip[:layers=8] | a model (ngram is host code: nothing "
                        "to profile on the device)")
    p.add_argument("--batch", default="1,2,4,8", help="batch sizes, e.g. 1,2,4,8")
    p.add_argument("--tokens", default="1-17", help="tokens per sequence, e.g. 1-17 or 1,4,8")
    p.add_argument("--context", default="128,1024", help="context lengths, e.g. 128,1024")
    p.add_argument("--rounds", type=int, default=5, help="timed runs of each shape (median)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda if available)")
    p.add_argument("--dtype", default=None,
                   help="float32, bfloat16, float16 (default: bfloat16 on cuda, else float32)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_force(p)
    add_out(p, metavar="PROFILE.json", required=True, help="profile to write (.json)")
    p.set_defaults(func=_cmd_profile)


def parse_counts(text: str, flag: str, low: int = 1) -> list[int]:
    """``"1,2,4"`` / ``"1-17"`` / ``"1-4,8"`` -> sorted distinct integers >= ``low``."""
    from tracing.errors import SpecsimError

    out: set[int] = set()
    for part in filter(None, (x.strip() for x in text.split(","))):
        lo, dash, hi = part.partition("-")
        try:
            a = int(lo)
            b = int(hi) if dash else a
        except ValueError:
            raise SpecsimError(f"{flag} '{text}': expected integers like 1,2,4 or 1-17") from None
        if a < low or b < a:
            raise SpecsimError(f"{flag} '{text}': values must be >= {low}, ranges increasing")
        out.update(range(a, b + 1))
    if not out:
        raise SpecsimError(f"{flag} '{text}': no values")
    return sorted(out)


def _cmd_profile(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from tracing.errors import SpecsimError

    batches = parse_counts(args.batch, "--batch")
    tokens = parse_counts(args.tokens, "--tokens")
    contexts = parse_counts(args.context, "--context", low=0)
    if args.rounds < 1:
        raise SpecsimError(f"--rounds {args.rounds}: must be >= 1")
    out = Path(args.out)
    claim(out, args.force)
    kind = args.draft.strip().partition(":")[0]
    if kind == "ngram":
        raise SpecsimError("--draft ngram: prompt lookup is host code, there is no device pass "
                           "to profile (its cost is the host time a capture measures)")
    from live.drafts import make_draft
    from live.models import load_model, quiet_transformers
    from live.profile import profile_device
    quiet_transformers()
    target = load_model(args.target, device=args.device, dtype=args.dtype)
    limit = getattr(target.model.config, "max_position_embeddings", None)
    if limit and max(contexts) + max(tokens) > int(limit):
        raise SpecsimError(f"--context {max(contexts)} + --tokens {max(tokens)} exceeds the "
                           f"target's {limit} positions")
    draft = make_draft(args.draft, target) if kind != "none" else None
    draft_model = getattr(getattr(draft, "lm", None), "model", None)
    profile = profile_device(target, draft=draft_model, draft_name=args.draft if draft else "",
                             batches=batches, tokens=tokens, contexts=contexts,
                             rounds=args.rounds, seed=args.seed,
                             progress=not args.no_progress)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(profile, indent=1) + "\n")
        publish(out)
    except OSError as exc:
        raise SpecsimError(f"--out {out}: cannot write: {exc.strerror}") from None
    fit = profile["fit"]["target"]
    print(f"{out}: {profile['device']} {profile['dtype']}, {len(profile['points'])} shapes; "
          f"target 1-token pass fixed {fit['fixed_1_s'] * 1e3:.2f} ms, multi-token "
          f"{fit['fixed_multi_s'] * 1e3:.2f} ms + {fit['per_token_s'] * 1e6:.1f} us/token "
          f"+ {fit['per_context_token_s'] * 1e9:.1f} ns/cached token")
    probe = profile["host_probe"]
    print(f"host: {probe['us_per_op']:.2f} us per eager op (before the passes "
          f"{probe['before_us']:.2f}, after {probe['after_us']:.2f}): the yardstick "
          "`specsim costs --host-probe` scales by")
    return 0

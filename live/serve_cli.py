"""``specsim serve`` and ``specsim load``: flags -> configs -> live.serve / live.load."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def register(sub: Any) -> None:
    """Add ``serve`` and ``load`` to the ``specsim`` parser."""
    p = sub.add_parser(
        "serve",
        help="serve the OpenAI API with batched speculative decoding, recording a trace",
        description="An OpenAI-compatible server (/v1/completions, /v1/chat/completions, "
                    "/v1/models, /health, /metrics) with continuous batching and "
                    "speculative decoding; every engine step is written to --trace-out.",
    )
    p.add_argument("--target", required=True,
                   help="target model: a local path, a cached hub id, or 'smollm2' (bundled)")
    p.add_argument("--draft", default="none",
                   help="none | ngram[:n=3] | layerskip[:layers=8] | a model (default: none)")
    p.add_argument("--policy", default="fixed:tau=4",
                   help="draft-length policy NAME[:key=value,...], one object per request "
                        "(default: fixed:tau=4)")
    p.add_argument("--max-batch", type=int, default=8, help="rows per engine step (default 8)")
    p.add_argument("--max-step-tokens", type=int, default=512,
                   help="tokens one target pass may score, sum of tau+1 (default 512)")
    p.add_argument("--max-queue", type=int, default=64,
                   help="requests that may wait for a row; past it, 503 (default 64)")
    p.add_argument("--max-body-bytes", type=int, default=1 << 20,
                   help="largest request body accepted; a larger one gets 413 (default 1 MiB)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--served-model-name", default=None,
                   help="the model id clients send (default: the --target spec)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda if available)")
    p.add_argument("--dtype", default=None,
                   help="float32, bfloat16, float16 (default: bfloat16 on cuda, else float32)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--profile-tokens", type=int, default=None,
                   help="profile batched verify passes of 1..N tokens (default tau+1; 0: off)")
    p.add_argument("--profile-rounds", type=int, default=3)
    p.add_argument("--profile-context", type=int, default=0,
                   help="context tokens per profiled row: about the served requests' mean "
                        "prompt + output (default 0: the 43-token warm-up prompt)")
    p.add_argument("--warmup-tokens", type=int, default=8)
    p.add_argument("--trace-out", "-o", "--out", dest="trace_out", required=True,
                   help="server trace to write (.jsonl)")
    p.add_argument("--force", action="store_true", help="overwrite --trace-out")
    p.add_argument("--log-level", default="warning", help="uvicorn's log level")
    p.set_defaults(func=_cmd_serve)

    q = sub.add_parser(
        "load",
        help="drive an OpenAI-compatible endpoint with a workload and record a client trace",
        description="Send streamed completions to --endpoint (specsim serve, vLLM, SGLang, ...) "
                    "at a rate, a concurrency or from an arrival file; write a trace "
                    "(source 'client') and print a latency summary.",
    )
    q.add_argument("--endpoint", required=True, help="base URL, e.g. http://127.0.0.1:8000")
    q.add_argument("--prompts", default="builtin:chat",
                   help="a JSONL file ('prompt' or 'messages' per line) or builtin:NAME")
    mode = q.add_mutually_exclusive_group(required=True)
    mode.add_argument("--rate", type=float, help="Poisson arrivals, requests per second")
    mode.add_argument("--concurrency", type=int, help="closed loop: this many in flight")
    mode.add_argument("--arrivals", help="arrival times: Azure LLM trace CSV or Mooncake JSONL")
    q.add_argument("--requests", type=int, required=True, help="requests to send")
    q.add_argument("--max-tokens", type=int, default=128)
    q.add_argument("--temperature", type=float, default=0.0)
    q.add_argument("--top-p", type=float, default=1.0)
    q.add_argument("--seed", type=int, default=0, help="arrival times and per-request seeds")
    q.add_argument("--model", default=None, help="model id (default: the endpoint's first)")
    q.add_argument("--api", choices=("chat", "completions"), default="chat")
    q.add_argument("--timeout", type=float, default=600.0, help="per-request timeout, seconds")
    q.add_argument("--rate-scale", type=float, default=1.0,
                   help="with --arrivals: gaps divided by this")
    q.add_argument("--ignore-eos", action="store_true",
                   help="ask for exactly --max-tokens tokens (vLLM's ignore_eos)")
    q.add_argument("--metrics-url", default=None,
                   help="the engine's Prometheus /metrics: scraped before and after the run, "
                        "its spec-decode counters kept in the trace (e.g. llama-server --metrics)")
    q.add_argument("-o", "--out", required=True, help="client trace to write (.jsonl or .parquet)")
    q.add_argument("--force", action="store_true", help="overwrite --out")
    q.add_argument("--json", action="store_true", help="print the summary as JSON")
    q.add_argument("--no-progress", action="store_true", help="no progress bar")
    q.set_defaults(func=_cmd_load)


def _cmd_serve(args: argparse.Namespace) -> int:
    from live.serve import ServeConfig, serve

    config = ServeConfig(
        target=args.target, trace_out=args.trace_out, draft=args.draft, policy=args.policy,
        max_batch=args.max_batch, max_step_tokens=args.max_step_tokens,
        max_queue=args.max_queue, max_body_bytes=args.max_body_bytes, host=args.host, port=args.port,
        served_model_name=args.served_model_name, device=args.device, dtype=args.dtype,
        threads=args.threads, profile_tokens=args.profile_tokens,
        profile_rounds=args.profile_rounds, profile_context=args.profile_context,
        warmup_tokens=args.warmup_tokens, force=args.force)
    from transformers.utils import logging as hf_logging  # after the flags are checked: slow

    hf_logging.disable_progress_bar()
    return serve(config, log_level=args.log_level)


def _cmd_load(args: argparse.Namespace) -> int:
    from live.load import LoadConfig, run_load
    from live.load_summary import format_summary

    config = LoadConfig(
        endpoint=args.endpoint, prompts=args.prompts, requests=args.requests,
        out=args.out, rate=args.rate, concurrency=args.concurrency, arrivals=args.arrivals,
        max_tokens=args.max_tokens, temperature=args.temperature, top_p=args.top_p,
        seed=args.seed, model=args.model, api=args.api, timeout_s=args.timeout,
        rate_scale=args.rate_scale, ignore_eos=args.ignore_eos, force=args.force,
        metrics_url=args.metrics_url)
    summary = run_load(config, progress=not args.no_progress and sys.stderr.isatty())
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(format_summary(summary))
    if summary.get("interrupted"):
        return 130  # stopped by SIGINT; the trace holds what completed
    return 0 if summary["errors"] == 0 else 1

"""Record llama.cpp runs for the prediction table (``traces/llamacpp/``).

Each configuration starts its own ``llama-server`` (``live.llamacpp_server``: the bundled
SmolLM2 GGUF, ``-t 2``, ``--metrics``, n-gram self-speculation) on a free loopback port, is
driven by ``specsim load`` (``builtin:edit``, closed loop, bounded requests and tokens, with
``--metrics-url``) and stopped. Configurations are interleaved round by round in a rotating
order, so a slow spell of the shared machine lands on all of them alike. Each run writes
``OUT/NAME-rK.jsonl``, its run line carrying the server command (``extra.server_command``) and
the load average before and after (``extra.uptime``). Run it under ``nice -n -10``.

    nice -n -10 python tests/bench/record_llamacpp_runs.py [--out traces/llamacpp]
        [--requests 16] [--max-tokens 40] [--rounds 1] [--only NAME,...]

Then ``specsim validate traces/llamacpp/*.jsonl`` predicts every run from ``base``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

SIMPLE = ("--spec-type", "ngram-simple", "--spec-ngram-simple-size-n", "3")
# name: (slots, concurrency, --spec-draft-n-max, drafter flags, extra flags)
CONFIGS: dict[str, tuple[int, int, int, tuple[str, ...], tuple[str, ...]]] = {
    "base": (1, 1, 4, SIMPLE, ()),
    # ngram-simple drafts only when its draft length (size-m) >= its n-gram (size-n): n = 2 here
    "nmax2": (1, 1, 2, ("--spec-type", "ngram-simple", "--spec-ngram-simple-size-n", "2"), ()),
    "nmax8": (1, 1, 8, SIMPLE, ()),
    "mapk": (1, 1, 4, ("--spec-type", "ngram-map-k", "--spec-ngram-map-k-size-n", "3"), ()),
    "np2c2": (2, 2, 4, SIMPLE, ()),
    "np4c4": (4, 4, 4, SIMPLE, ()),
    "synth-high": (1, 1, 4, SIMPLE, ("--spec-synth-rates", "0.9,0.8,0.7,0.6")),
    "synth-low": (1, 1, 4, SIMPLE, ("--spec-synth-rates", "0.5,0.25,0.125,0.0625")),
}


def _uptime() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def one_run(name: str, rnd: int, out: Path, args: argparse.Namespace,
            configs: dict[str, tuple[int, int, int, tuple[str, ...], tuple[str, ...]]] | None = None,
            ) -> dict[str, Any]:
    from live.llamacpp_server import running_server
    from live.load import LoadConfig, run_load
    from tracing.io import read_trace, write_trace

    slots, conc, nmax, drafter, extra = (configs or CONFIGS)[name]
    path = out / f"{name}-r{rnd}.jsonl"
    before = _uptime()
    with running_server(out / "raw" / f"{name}-r{rnd}.log", slots=slots, draft_max=nmax or None,
                        spec=drafter, extra=extra, threads=args.threads) as srv:
        config = LoadConfig(endpoint=f"{srv.url}/v1", prompts=args.prompts,
                            requests=args.requests, out=str(path), concurrency=conc,
                            max_tokens=args.max_tokens, metrics_url=f"{srv.url}/metrics",
                            timeout_s=300.0, force=True)
        summary = run_load(config)
        command = srv.command
    trace = read_trace(str(path))
    trace.meta.extra["server_command"] = command
    trace.meta.extra["uptime"] = {"before": before, "after": _uptime()}
    write_trace(trace, str(path))
    lat = summary.get("latency_s") or {}
    print(f"{name}-r{rnd}: p50 {lat.get('p50', 0):.3f}s p95 {lat.get('p95', 0):.3f}s "
          f"load {before} -> {_uptime()}", file=sys.stderr, flush=True)
    return summary


def record(args: argparse.Namespace,
           configs: dict[str, tuple[int, int, int, tuple[str, ...], tuple[str, ...]]]) -> None:
    """Every configuration (``--only`` some) once per round into ``--out``, the order rotated
    each round so that no configuration always runs first."""
    names = args.only.split(",") if args.only else list(configs)
    out = Path(args.out)
    (out / "raw").mkdir(parents=True, exist_ok=True)
    for rnd in range(args.first_round, args.first_round + args.rounds):
        order = names[rnd % len(names):] + names[:rnd % len(names)]  # rotate each round
        for name in order:
            one_run(name, rnd, out, args, configs=configs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "traces" / "llamacpp"))
    ap.add_argument("--prompts", default="builtin:edit")
    ap.add_argument("--requests", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=40)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--only", default=None, help="comma-separated configuration names")
    ap.add_argument("--first-round", type=int, default=0, help="number of the first round")
    record(ap.parse_args(), CONFIGS)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``specsim tune``: the draft length per batch size, and the schedule in each engine's syntax.

    specsim tune TRACE|SCENARIO.toml [--batch 1,2,4,8,16,32] [--tau 0-8]
                 [--objective throughput|p50|p95] [--slo-p95-ms X]
                 [--engine vllm|trtllm|sglang|llamacpp ...] [--hardware DEV | --profile P]
                 [--at-batch N] [--intervals N] [--requests N] [--json] [-o FILE [--force]]

The method is :mod:`sim.sweep.tune`'s; ``--json`` prints ``schedule`` [{batch_from, batch_to, tau,
gain, ci95}], ``config`` {engine: snippet}, ``batches`` (every batch size's answer and all its
candidates) and the ``serve_command`` that measures the schedule with ``specsim serve`` (for a
llama.cpp trace: the ``llama-server`` command of the setting at ``at_batch`` slots).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from tracing.errors import SpecsimError
from tracing.outputs import add_force, add_out, claim, publish

DEFAULT_BATCHES = "1,2,4,8,16,32"


def register(sub: Any) -> None:
    """Add ``tune`` to the ``specsim`` parser."""
    from analysis.engine_config import ENGINES

    p = sub.add_parser(
        "tune", help="the draft length per batch size, as each engine's config",
        description="Simulate every draft length at every batch size (closed loop at "
                    "concurrency = batch) and print the schedule, with intervals, in vLLM, "
                    "TensorRT-LLM, SGLang and llama.cpp syntax.")
    p.add_argument("base", metavar="TRACE|SCENARIO", help="trace (.jsonl/.parquet) or .toml")
    p.add_argument("--batch", default=DEFAULT_BATCHES, metavar="B1,B2,...",
                   help="batch sizes to tune (default %(default)s)")
    p.add_argument("--tau", default="0-8", metavar="0-8|0,1,2,4",
                   help="draft lengths to try (0, target-only, always; default %(default)s)")
    p.add_argument("--objective", default="throughput", choices=("throughput", "p50", "p95"),
                   help="what 'best' means (default %(default)s)")
    p.add_argument("--slo-p95-ms", type=float, metavar="X", help="p95 latency SLO (ms)")
    p.add_argument("--engine", action="append", choices=ENGINES,
                   help="the engine(s) whose config to print (default: all)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--hardware", metavar="DEV", help="a catalog device to predict for")
    where.add_argument("--profile", metavar="P", help="a device profile to predict for")
    p.add_argument("--at-batch", type=int, metavar="N",
                   help="the batch size a one-setting engine (SGLang, llama.cpp -np) runs at "
                        "(default: the trace's most common step size)")
    p.add_argument("--intervals", type=int, default=None, metavar="N",
                   help="draws behind each 95%% interval (default 10)")
    p.add_argument("--requests", type=int, metavar="N",
                   help="simulated requests per batch size (default: max(trace's, 8 x batch, 200))")
    add_out(p, metavar="FILE", help="write the JSON result to FILE")
    add_force(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_tune)


def common_batch(trace: Any, fallback: int) -> int:
    """The batch size most engine steps of ``trace`` ran at (``fallback`` without one)."""
    if trace is None or "batch_size" not in trace.cycles.columns or not len(trace.cycles):
        return fallback
    sizes = trace.cycles["batch_size"].dropna()
    if not len(sizes):
        return fallback
    steps = sizes.value_counts() / sizes.value_counts().index.to_series().clip(lower=1)
    return int(steps.idxmax())


def cmd_tune(args: argparse.Namespace) -> int:
    """Handler of ``specsim tune``."""
    from analysis.engine_config import (
        ENGINES,
        configs,
        llamacpp,
        llamacpp_command,
        llamacpp_spec,
        serve_command,
        serve_policy,
    )
    from sim.cli import load_base
    from sim.sweep.tune import DRAWS, parse_batches, parse_taus
    from sim.sweep.tune_run import tune

    claim(args.out, args.force)
    batches, taus = parse_batches(args.batch), parse_taus(args.tau)
    draws = DRAWS if args.intervals is None else args.intervals
    if args.requests is not None and args.requests < 1:
        raise SpecsimError(f"--requests {args.requests}: must be >= 1")
    if args.at_batch is not None and args.at_batch < 1:
        raise SpecsimError(f"--at-batch {args.at_batch}: must be >= 1")
    base, trace = load_base(args.base)
    if args.hardware:
        base = base.with_overrides({"latency.hardware": args.hardware})
    if args.profile:
        base = base.with_overrides({"latency.profile": args.profile})
    result = tune(base, trace, batches, taus, objective=args.objective,
                  slo_p95_ms=args.slo_p95_ms, draws=draws, requests=args.requests,
                  progress=not args.json and sys.stderr.isatty())
    at = args.at_batch or common_batch(trace, base.server.max_batch)
    target = str(trace.meta.target_model or "") if trace is not None else ""
    draft = str(trace.meta.draft_model or "") if trace is not None else ""
    command = trace.meta.extra.get("server_command") if trace is not None else None
    config, notes = configs(result.schedule, tuple(args.engine or ENGINES), draft=draft,
                            at_batch=at,
                            server_command=command if isinstance(command, list) else None)
    out = {
        "objective": result.objective, "slo_p95_ms": args.slo_p95_ms, "basis": result.basis,
        "band": result.band, "interval": result.interval, "own_policy": result.own_policy,
        "schedule": result.schedule, "config": config, "config_notes": notes, "at_batch": at,
        "serve_policy": serve_policy(result.schedule),
        "serve_command": serve_command(result.schedule, target, draft, max(batches)),
        "batches": result.batches, "warnings": result.warnings,
    }
    if trace is not None and trace.meta.extra.get("engine") == "llamacpp":
        snippet = llamacpp(result.schedule, at, *llamacpp_spec(command if isinstance(
            command, list) else None, draft))[0]
        out["serve_command"] = llamacpp_command(snippet, target, at)
    written = []
    if args.out:
        try:
            Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
        except OSError as exc:
            raise SpecsimError(f"--out {args.out}: cannot write: {exc.strerror}") from None
        publish(args.out)
        written.append(str(args.out))
    if args.json:
        from tracing.cli import print_json

        print_json({**out, "written": written})
        return 0
    _print(out)
    for path in written:
        print(f"wrote {path}")
    return 0


def _pct(g: float | None, ci: list[float] | None) -> str:
    if g is None:
        return "-"
    return f"{g:+.1%}" + (f" [{ci[0]:+.1%}, {ci[1]:+.1%}]" if ci else "")


def _print(out: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console() if sys.stdout.isatty() else Console(width=160)
    slo = f", p95 SLO {out['slo_p95_ms']:g} ms" if out["slo_p95_ms"] else ""
    table = Table(title=f"tune: best draft length per batch size (objective "
                        f"{out['objective']}{slo}; basis {out['basis']})")
    for name in ("batch", "tau", "gain vs target-only [95% CI]",
                 f"vs own setting ({out['own_policy']})", "meets SLO", "why"):
        table.add_column(name, justify="right" if name in ("batch", "tau") else "left")
    for row in out["batches"]:
        own = row["vs_own"]
        table.add_row(str(row["batch"]), str(row["tau"]), _pct(row["gain"], row["ci95"]),
                      _pct(own["gain"], own["ci95"]), row["meets_slo"], row["reason"])
    console.print(table)
    console.print(out["interval"]["text"], soft_wrap=True, markup=False)
    console.print("schedule: " + "; ".join(
        f"batch {p['batch_from']}-{p['batch_to']}: tau {p['tau']}" for p in out["schedule"]),
        markup=False)
    for engine, snippet in out["config"].items():
        console.print(f"\n[bold]{engine}[/] ({out['config_notes'][engine]}):", soft_wrap=True)
        console.print(snippet or "(none)", markup=False, soft_wrap=True)
    console.print("\nmeasure it: " + out["serve_command"], markup=False, soft_wrap=True)
    for w in out["warnings"]:
        print(f"warning: {w}", file=sys.stderr)


__all__ = ["cmd_tune", "common_batch", "register"]

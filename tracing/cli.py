"""`specsim trace validate|summary|convert|perfetto`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from tracing.errors import SpecsimError
from tracing.outputs import add_force, add_out, claim, print_json, publish

# Handlers import tracing.io and the rest: building the parser must not load numpy/pandas.
__all__ = ["print_json", "register"]  # print_json lives in tracing.outputs; kept here for callers


def _cmd_validate(args: argparse.Namespace) -> int:
    from tracing.io import read_trace
    from tracing.salvage import orphan_cycles, salvage

    if args.salvage:
        claim(args.salvage, args.force, flag="--salvage")
        kept = salvage(args.trace, args.salvage)
        if args.json:
            print_json({"valid": True, "path": args.trace, "salvaged": kept})
        else:
            cut = (f"; left out the cut line {kept['dropped_line']}" if kept["dropped_line"]
                   else "; nothing was cut")
            print(f"{args.salvage}: {kept['requests']} requests, {kept['cycles']} cycles kept "
                  f"from {args.trace}{cut}")
        return 0
    trace = read_trace(args.trace)
    lone = orphan_cycles(trace)
    result = {"valid": True, "path": args.trace, "requests": len(trace.requests),
              "cycles": len(trace.cycles), "source": trace.meta.source,
              "cycles_without_request": lone["cycles"],
              "requests_without_line": lone["requests"]}
    if args.json:
        print_json(result)
    else:
        note = (f"; {lone['cycles']} cycles of {lone['requests']} requests have no request line "
                "(requests still running when the trace ended: a crash or a cut)"
                if lone["cycles"] else "")
        print(f"{args.trace}: valid ({result['requests']} requests, {result['cycles']} cycles, "
              f"source={result['source']}){note}")
    return 0


def _fmt_ms(d: dict[str, float | None]) -> str:
    if any(v is None for v in d.values()):
        return "n/a"
    return "  ".join(f"{k} {v * 1e3:.1f} ms" for k, v in d.items() if v is not None)


def _cmd_summary(args: argparse.Namespace) -> int:
    from tracing.io import read_trace
    from tracing.summary import summarize

    s = summarize(read_trace(args.trace), include_interrupted=args.include_interrupted)
    if "latency_s" in s["unavailable"]:  # no requests to measure: no figures, not zeros
        for key in ("latency_s", "ttft_s", "tpot_s"):
            s[key] = dict.fromkeys(s[key])
    if args.json:
        print_json(s)
        return 0
    print(f"{args.trace}  ({s['source']}: {s['target_model']} + draft {s['draft_model']}, "
          f"policy {s['policy']})")
    print(f"  requests {s['requests']}  cycles {s['cycles']} ({s['spec_cycles']} speculative)  "
          f"output tokens {s['output_tokens']}")
    print(f"  tokens/cycle {s['tokens_per_cycle']:.3f}  mean accepted {s['mean_accepted']:.3f}  "
          f"acceptance rate {s['draft_acceptance_rate']:.3f}  "
          f"mean acceptance length {s['mean_acceptance_length']:.3f}  "
          f"system efficiency {s['system_efficiency']:.3f}")
    by_pos = " ".join(f"{a:.2f}" for a in s["acceptance_by_position"])
    print(f"  acceptance by position: {by_pos or '-'}")
    print(f"  latency  {_fmt_ms(s['latency_s'])}")
    print(f"  ttft     {_fmt_ms(s['ttft_s'])}")
    if s["interrupted_requests"]:
        print(f"  interrupted requests {s['interrupted_requests']} (left out of latency figures)")
    shares = "  ".join(f"{k} {v:.0%}" for k, v in s["time_share"].items() if v is not None)
    print(f"  time     {shares}   throughput {s['throughput_tok_s']:.1f} tok/s")
    for figure, why in s["unavailable"].items():
        print(f"  not available: {figure} -- {why}")
    return 0


def _out(args: argparse.Namespace) -> str:
    """OUT given as the positional argument or as -o/--out (one of them), claimed."""
    if args.out_pos and args.out and args.out_pos != args.out:
        raise SpecsimError(f"two outputs given ({args.out_pos} and -o {args.out}): give one")
    out = args.out or args.out_pos
    if not out:
        raise SpecsimError("no output given: OUT or -o/--out OUT")
    if Path(out).resolve() == Path(args.trace).resolve():
        raise SpecsimError(f"{out}: refusing to overwrite the input trace")
    claim(out, args.force)
    return str(out)


def _cmd_convert(args: argparse.Namespace) -> int:
    from tracing.io import convert_trace, trace_format

    out = _out(args)
    trace_format(out)
    trace = convert_trace(args.trace, out)
    print(f"{out}: {len(trace.requests)} requests, {len(trace.cycles)} cycles")
    return 0


def _cmd_perfetto(args: argparse.Namespace) -> int:
    from tracing.io import read_trace
    from tracing.perfetto import write_perfetto

    out = _out(args)
    trace = read_trace(args.trace)
    write_perfetto(trace, out)
    publish(out)
    print(f"{out}: open it at https://ui.perfetto.dev ({len(trace.cycles)} cycles)")
    return 0


def register(sub: Any) -> None:
    """Add the ``trace`` subcommands (and ``import``) to the ``specsim`` parser."""
    from tracing.importers.cli import register as register_import

    register_import(sub)
    trace = sub.add_parser("trace", help="validate, summarise, convert and export traces")
    tsub = trace.add_subparsers(dest="trace_command", required=True, metavar="ACTION")

    p = tsub.add_parser("validate", help="check every schema invariant")
    p.add_argument("trace")
    p.add_argument("--salvage", metavar="OUT",
                   help="write the complete records of a cut or crashed JSONL trace to OUT")
    add_force(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_validate)

    p = tsub.add_parser("summary", help="counts, acceptance, latency percentiles")
    p.add_argument("trace")
    p.add_argument("--include-interrupted", action="store_true",
                   help="count interrupted requests in the latency figures too")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_summary)

    p = tsub.add_parser("convert", help="JSONL <-> Parquet (format from the extension)")
    p.add_argument("trace")
    p.add_argument("out_pos", nargs="?", metavar="OUT", help="trace to write (.jsonl/.parquet)")
    add_out(p, metavar="OUT", help="the same as OUT")
    add_force(p)
    p.set_defaults(func=_cmd_convert)

    p = tsub.add_parser("perfetto", help="export Chrome/Perfetto trace-event JSON")
    p.add_argument("trace")
    p.add_argument("out_pos", nargs="?", metavar="OUT", help="trace-event JSON to write")
    add_out(p, metavar="OUT", help="the same as OUT")
    add_force(p)
    p.set_defaults(func=_cmd_perfetto)

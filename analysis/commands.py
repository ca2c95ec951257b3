"""`specsim diagnose`, `specsim report` and `specsim demo` (registered by analysis.cli).

Handlers only parse flags, call :mod:`analysis.report` / :mod:`analysis.diagnose` and print;
bad input is a :class:`~tracing.errors.SpecsimError` that the CLI turns into exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from tracing.errors import SpecsimError
from tracing.outputs import add_force, add_out, claim, publish

if TYPE_CHECKING:  # the handlers import these: building the parser must not load pandas/plotly
    from analysis.report import ReportConfig, WhatIfs
    from tracing.trace import Trace

TRACES_DIR = Path(__file__).resolve().parents[1] / "traces"
DEMO_TRACES = ("live_edit_ngram.jsonl", "live_chat_layerskip.jsonl")
DEMO_MARK = ".specsim-demo"  # in a folder `specsim demo` made: it may rewrite what is there
# Defaults of the report flags (analysis.report's WhatIfConfig.requests and
# ReportConfig.timeline_requests; a test keeps them equal) written out so that building the
# parser does not import analysis.report.
WHATIF_REQUESTS = 300
TIMELINE_REQUESTS = 20


def register(sub: Any) -> None:
    """Add ``diagnose``, ``report`` and ``demo`` to the ``specsim`` parser."""
    p = sub.add_parser("diagnose", help="name the bottleneck of a trace and what to change")
    p.add_argument("trace")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--no-whatif", action="store_true",
                   help="skip the simulated predictions behind each finding")
    p.set_defaults(func=_cmd_diagnose)

    p = sub.add_parser("report", help="write one self-contained interactive HTML report")
    p.add_argument("trace")
    add_out(p, metavar="REPORT.html", help="output .html (default: TRACE_NAME.report.html here)")
    add_force(p)
    p.add_argument("--json", action="store_true",
                   help="print one JSON object (the page written, findings, what-if best)")
    _report_flags(p)
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("demo", help="bundled trace -> diagnose -> what-if -> report")
    add_out(p, metavar="DIR", default="specsim-demo", help="output folder (default: %(default)s)")
    add_force(p)
    p.add_argument("--json", action="store_true",
                   help="print one JSON object (files written, findings, what-if best)")
    _report_flags(p)
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("compare", help="two traces side by side: every metric, its change and "
                       "whether it is significant")
    p.add_argument("a", metavar="A", help="the trace before (baseline)")
    p.add_argument("b", metavar="B", help="the trace after")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_out(p, metavar="PAGE.html", help="also write an interactive page with both distributions")
    add_force(p)
    p.add_argument("--draws", type=int, default=200,
                   help="bootstrap resamples behind each interval (default: %(default)s)")
    p.set_defaults(func=_cmd_compare)


def _report_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--slo-p95-ms", type=float, default=None,
                   help="p95 latency SLO of the what-ifs (default: the measured p95)")
    p.add_argument("--no-whatif", action="store_true", help="skip the simulator sweeps")
    p.add_argument("--whatif-requests", type=int, default=WHATIF_REQUESTS,
                   help="requests simulated per what-if point (default: %(default)s)")
    p.add_argument("--timeline-requests", type=int, default=TIMELINE_REQUESTS,
                   help="requests drawn in the timeline (default: %(default)s)")


def _config(args: argparse.Namespace) -> ReportConfig:
    from analysis.report import ReportConfig, WhatIfConfig

    if args.whatif_requests < 1 or args.timeline_requests < 1:
        raise SpecsimError("--whatif-requests and --timeline-requests must be >= 1")
    if args.slo_p95_ms is not None and args.slo_p95_ms <= 0:
        raise SpecsimError(f"--slo-p95-ms {args.slo_p95_ms}: must be > 0")
    whatif = None if args.no_whatif else WhatIfConfig(
        slo_p95_ms=args.slo_p95_ms, requests=args.whatif_requests)
    return ReportConfig(timeline_requests=args.timeline_requests, whatif=whatif)


@contextmanager
def _steps(console: Console, total: int) -> Iterator[Any]:
    """Named steps on stderr (a bar on a terminal, plain lines when piped): ``step(message)``."""
    from tracing.progress import steps

    with steps(total) as step:
        yield step


# ---- diagnose -------------------------------------------------------------------------------


def _cmd_diagnose(args: argparse.Namespace) -> int:
    from analysis.report import findings_and_metrics
    from tracing.io import read_trace

    trace = read_trace(args.trace)
    findings, metrics = findings_and_metrics(trace, whatif=not args.no_whatif)
    warnings = timing_warnings(findings)
    schedule = None
    if not args.no_whatif:  # the draft length per batch size, where the trace shows it varies
        from analysis.tune_view import schedule_or_warning

        schedule, problem = schedule_or_warning(trace)
        warnings += [problem] if problem else []
    if args.json:
        from tracing.cli import print_json

        print_json({"findings": findings, "metrics": metrics, "warnings": warnings,
                    "schedule": schedule})
        return 0
    err = Console(stderr=True)
    for warning in warnings:
        err.print(Text(f"warning: {warning}"), soft_wrap=True)
    console = Console()
    meta = trace.meta
    console.print(Text(f"{args.trace}: {len(trace.requests)} requests, {len(trace.cycles)} "
                       f"cycles; target {meta.target_model}, draft {meta.draft_model}, "
                       f"policy {meta.policy}"), soft_wrap=True)
    console.print(Text(_headline(metrics)), soft_wrap=True)
    for figure, why in (metrics.get("unavailable") or {}).items():  # an imported trace's gaps
        console.print(Text(f"not available: {figure} -- {why}"), soft_wrap=True)
    _print_findings(console, findings)
    if schedule is not None:
        from analysis.tune_view import schedule_lines

        for line in schedule_lines(schedule):
            console.print(Text(line), soft_wrap=True)
    return 0


def timing_warnings(findings: list[dict[str, Any]]) -> list[str]:
    """A warning when the trace's timing is too unstable to trust the predictions made from it."""
    for f in findings:
        if f.get("kind") == "unstable_timing":
            return [f"timing too unstable for the predictions below to be trusted: {f.get('title')}"]
    return []


def _headline(metrics: dict[str, Any]) -> str:
    """Tokens per cycle, acceptance and latency in one line (keys absent are skipped), all
    measured in the trace."""
    parts = ["measured:"]
    for key, label in (("tokens_per_cycle", "tokens/cycle"),
                       ("draft_acceptance_rate", "acceptance rate"),
                       ("speedup_vs_target_only", "speedup vs target-only")):
        value = metrics.get(key)
        if isinstance(value, int | float):
            parts.append(f"{label} x{value:.2f}" if key.startswith("speedup")
                         else f"{label} {value:.2f}")
    latency = metrics.get("latency_s")
    if isinstance(latency, dict) and "p95" in latency:
        parts.append(f"latency p50 {latency.get('p50', 0) * 1e3:.1f} ms, "
                     f"p95 {latency['p95'] * 1e3:.1f} ms")
    return "  ".join(parts) if len(parts) > 1 else ""


def _print_findings(console: Console, findings: list[dict[str, Any]]) -> None:
    if not findings:
        console.print("No bottleneck found.")
        return
    from analysis.report_tables import SEVERITY_NOTE

    table = Table(title="Findings (most severe first)", caption=SEVERITY_NOTE, show_lines=True)
    for col in ("severity", "kind", "finding", "recommendation"):
        table.add_column(col, overflow="fold")
    for f in findings:
        # Text(...) keeps rich from reading "[...]" in finding text as markup.
        sev = f.get("severity", "")
        sev_text = f"{sev:.2f}" if isinstance(sev, float) else str(sev)
        level = f" {f['level']}" if f.get("level") else ""
        table.add_row(Text(sev_text + level), Text(str(f.get("kind", ""))),
                      Text(str(f.get("title") or "")), Text(str(f.get("recommendation") or "")))
    console.print(table)
    from sim.sweep.intervals import caveats

    caveat = caveats(*((f.get("predicted") or {}).get("interval") for f in findings))
    if caveat:
        console.print(Text(f"about every interval above: {caveat}"), soft_wrap=True)


# ---- report ---------------------------------------------------------------------------------


def _cmd_report(args: argparse.Namespace) -> int:
    from analysis.report import write_report
    from tracing.io import read_trace

    config = _config(args)
    out = Path(args.out) if args.out else Path(f"{Path(args.trace).stem}.report.html")
    _check_out_dir(out.parent)
    claim(out, args.force)
    trace = read_trace(args.trace)
    err = Console(stderr=True)
    with _steps(err, 3) as step:
        data = write_report(trace, out, config, step=step)
    publish(out)
    if args.json:
        from tracing.cli import print_json

        best = data.whatifs.best() if data.whatifs else None
        print_json({"written": [str(out)], "bytes": out.stat().st_size,
                    "findings": data.findings, "figures": [h for h, _ in data.figures],
                    "best": best, "warnings": data.warnings,
                    "schedule": data.whatifs.schedule if data.whatifs else None})
        return 0
    print(f"{out}: {out.stat().st_size / 1e6:.1f} MB, {len(data.findings)} findings, "
          f"{len(data.figures)} figures")
    for warning in data.warnings:
        err.print(Text(f"warning: {warning}"))
    return 0


def _check_out_dir(folder: Path) -> None:
    if not folder.is_dir():
        raise SpecsimError(f"{folder}: output folder does not exist")


# ---- demo -----------------------------------------------------------------------------------


def demo_trace() -> tuple[Trace, str]:
    """The bundled trace (a live capture when one ships, else the synthetic sample); without
    the traces folder (an install that left it out), a small simulated run."""
    from tracing.io import read_trace

    for name in DEMO_TRACES:
        path = TRACES_DIR / name
        if path.is_file():
            return read_trace(str(path)), str(path)
    from sim import Scenario, simulate

    scenario = Scenario.from_dict({"workload": {"requests": 40, "prompt_tokens": 128,
                                                "output_tokens": 96},
                                   "acceptance": {"model": "iid", "alpha": 0.7}}, where="demo")
    return simulate(scenario, seed=0).trace, "a simulated run (no bundled trace found)"


NEXT_STEPS = (
    "what to try next:",
    "  specsim diagnose {trace}              the findings, with their intervals",
    "  specsim whatif {trace} --vary policy.tau=2,3,4,6 --slo-p95-ms 5000",
    "  specsim capture --target smollm2 --draft ngram --out my.jsonl   your own run",
    "  specsim compare {trace} my.jsonl      before/after, with significance",
)


def own_demo_dir(out_dir: Path, force: bool) -> None:
    """Make ``out_dir`` the demo's own folder, or refuse (before any work is done).

    A folder that does not exist, is empty, or holds the mark a previous ``specsim demo`` left
    is the demo's: its report and findings are rewritten, so the demo can be re-run as it is.
    A non-empty folder without the mark is someone else's: refused unless ``--force``.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise SpecsimError(f"{out_dir}: exists and is not a folder (--out)")
    owned = not out_dir.exists() or (out_dir / DEMO_MARK).is_file() or not any(out_dir.iterdir())
    if not owned and not force:
        raise SpecsimError(f"{out_dir}: a folder that `specsim demo` did not make (use --force "
                           "to write into it anyway, or choose another --out)")
    for name in ("report.html", "findings.json"):
        claim(out_dir / name, True)  # a folder in the way is still refused
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / DEMO_MARK).write_text("written by `specsim demo`; it rewrites this folder\n",
                                     encoding="utf-8")


def _cmd_demo(args: argparse.Namespace) -> int:
    from analysis.report import findings_and_metrics, run_whatifs, write_report

    config = _config(args)
    out_dir = Path(args.out)
    report, found = out_dir / "report.html", out_dir / "findings.json"
    own_demo_dir(out_dir, args.force)
    console, err = Console(), Console(stderr=True)
    with _steps(err, 4) as step:
        step("loading trace")
        trace, source = demo_trace()
        step("diagnosing")
        findings, metrics = findings_and_metrics(trace)
        whatifs = None
        if config.whatif is not None:
            step("what-if sweeps")
            whatifs = run_whatifs(trace, config.whatif)
        step("writing report")
        write_report(trace, report, config, findings=findings, metrics=metrics,
                     whatifs=whatifs)
    found.write_text(
        json.dumps({"findings": findings, "metrics": metrics}, default=_jsonable, indent=1),
        encoding="utf-8")
    for path in (report, found):
        publish(path)
    where = trace.path or "TRACE"
    if args.json:
        from tracing.cli import print_json

        print_json({"trace": source, "written": [str(report), str(found)], "findings": findings,
                    "best": whatifs.best() if whatifs else None,
                    "next": [line.format(trace=where).strip() for line in NEXT_STEPS[1:]]})
        return 0
    console.print(Text(f"trace: {source} ({len(trace.requests)} requests, "
                       f"{len(trace.cycles)} cycles)"), soft_wrap=True)
    _print_findings(console, findings)
    console.print(Text(_best_line(whatifs)), soft_wrap=True)
    console.print(Text(f"report: {report} (open it in a browser; it works offline)"),
                  soft_wrap=True)
    for line in NEXT_STEPS:
        console.print(Text(line.format(trace=where)), soft_wrap=True)
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from analysis.compare import compare, page

    if args.draws < 2:
        raise SpecsimError(f"--draws {args.draws}: at least 2")
    out = claim(args.out, args.force)
    if out is not None:
        _check_out_dir(out.parent)
    from tracing.io import read_trace

    a, b = read_trace(args.a), read_trace(args.b)
    result = compare(a, b, draws=args.draws)
    if out is not None:
        out.write_text(page(a, b, result), encoding="utf-8")
        publish(out)
        result["written"] = [str(out)]
    if args.json:
        from tracing.cli import print_json

        print_json(result)
        return 0
    _print_compare(Console() if sys.stdout.isatty() else Console(width=160), args.a, args.b,
                   result)
    return 0


def _print_compare(console: Console, a: str, b: str, result: dict[str, Any]) -> None:
    d = result.get("outputs_differ")
    if d:
        console.print(Text(
            f"OUTPUTS DIFFER: greedy runs of the same prompts disagree on "
            f"{d['prompts_differing']} prompt(s); first at prompt {d['prompt_index']} "
            f"(A request {d['request_id_a']}, B request {d['request_id_b']}), character "
            f"{d['char_position']}: A {d['a']!r} vs B {d['b']!r}", style="bold red"),
            soft_wrap=True)
    else:
        console.print(Text(f"outputs: {result['outputs']}"), soft_wrap=True)
    for note in result["missing"]:
        console.print(Text(f"missing: {note}"), soft_wrap=True)
    console.print(Text(f"A: {result['a']['policy_spec']}; B: {result['b']['policy_spec']}"),
                  soft_wrap=True)
    _print_by_batch(console, result.get("by_batch_size") or [])
    sig = [(k, v) for k, v in result["metrics"].items() if v["significant"]]
    table = Table(title=f"B ({b}) against A ({a}): {len(sig)} of {len(result['metrics'])} "
                  f"metrics differ significantly ({result['method']})")
    for col in ("metric", "A", "B", "change", "95% interval"):
        table.add_column(col, justify="left" if col == "metric" else "right")
    for k, v in sig:
        rel = f" ({v['relative']:+.1%})" if v["relative"] is not None else ""
        table.add_row(k, f"{v['a']:.4g}", f"{v['b']:.4g}", f"{v['change']:+.4g}{rel}",
                      f"[{v['ci95'][0]:+.4g}, {v['ci95'][1]:+.4g}]")
    console.print(table)
    if not sig:
        console.print("no significant difference")
    for path in result.get("written", []):
        console.print(Text(f"wrote {path}"))


def _print_by_batch(console: Console, rows: list[dict[str, Any]]) -> None:
    """Mean draft length and tokens per cycle of A and B at each engine batch size."""
    if not rows:
        return
    table = Table(title="by engine batch size: mean tau / tokens per cycle (cycles)")
    for col in ("batch", "A", "B"):
        table.add_column(col, justify="right")

    def cell(x: dict[str, float] | None) -> str:
        return "-" if x is None else (f"{x['mean_tau']:.2f} / {x['tokens_per_cycle']:.2f} "
                                      f"({x['cycles']:.0f})")

    for row in rows:
        table.add_row(str(row["batch_size"]), cell(row["a"]), cell(row["b"]))
    console.print(table)


def _best_line(w: WhatIfs | None) -> str:
    if w is None:
        return "what-if: not run"
    best = w.best()
    if best is None:
        return (f"what-if: no tau or budget setting meets the SLO p95 {w.slo_p95_ms:.1f} ms "
                f"({w.slo_source}) without overload")
    from analysis.report_tables import settings_text

    vary = settings_text(best["vary"])
    speedup = best.get("speedup_vs_target_only")
    ci = (best.get("ci95") or {}).get("p95_s")
    band = f" [{ci[0] * 1e3:.1f}-{ci[1] * 1e3:.1f}]" if ci else ""
    tied = w.best_reason.startswith("no clear best")
    head = (f"what-if: no clear best; of the settings the noise cannot separate, {vary} has the "
            "best p50" if tied else f"best what-if: {vary}")
    return (f"{head}: simulated p95 {best['latency_s']['p95'] * 1e3:.1f}{band} ms "
            f"(measured {w.measured_p95_ms:.1f} ms, SLO {w.slo_p95_ms:.1f} ms)"
            + (f", simulated speedup vs target-only x{speedup:.2f}" if speedup is not None
               else "")
            + (f" [{w.best_reason}]" if w.best_reason else ""))


def _jsonable(value: Any) -> Any:
    """numpy scalars and arrays for json.dumps; anything else by its text."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)

"""``specsim simulate`` and ``specsim whatif`` (registered by analysis.cli); thin handlers.

    specsim simulate SCENARIO.toml [--trace TRACE] [--out TRACE] [--replications N] [--seed S]
                     [--json]
    specsim whatif TRACE|SCENARIO.toml --vary KEY=V1,V2,... [--vary ...] [--slo-p95-ms X]
                   [--objective p95|p50|throughput|goodput] [--find-capacity]
                   [--out DIR|TABLE.csv|TABLE.parquet] [--jobs N]
                   [--cluster local|tcp://HOST:PORT] [--json]

A trace in place of SCENARIO.toml means ``scenario_from_trace(trace)``: its configuration
replayed. Every run writes its resolved scenario beside ``--out``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracing.errors import SpecsimError
from tracing.outputs import add_force, add_out, claim, publish

if TYPE_CHECKING:  # the handlers import the simulator: the parser must not load numpy/SimPy
    from sim.engine.core import SimResult
    from sim.scenario import Scenario
    from sim.sweep.whatif import WhatIfResult
    from tracing.trace import Trace

TRACE_SUFFIXES = (".jsonl", ".parquet")
DRAWS = 20  # default --intervals: sim.sweep.intervals.DRAWS (a test keeps them equal)


def register(sub: Any) -> None:
    """Add ``simulate`` and ``whatif`` to the ``specsim`` parser."""
    p = sub.add_parser(
        "simulate",
        help="simulate a scenario (SimPy) and print its figures",
        description="Simulate SCENARIO.toml (or replay a trace's configuration).",
    )
    p.add_argument("scenario", metavar="SCENARIO", help="scenario .toml, or a trace to replay")
    p.add_argument("--trace", help='trace feeding the scenario\'s "trace" keys')
    add_out(p, metavar="TRACE", help="write the simulated trace (.jsonl/.parquet)")
    add_force(p)
    p.add_argument(
        "--replications",
        type=int,
        metavar="N",
        help="seeds S..S+N-1, with a confidence interval on p50/p95",
    )
    p.add_argument("--seed", type=int, metavar="S", help="seed (default: [workload] seed)")
    add_policy(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_simulate)

    w = sub.add_parser(
        "whatif",
        help="simulate a grid of scenario variations; name the best point",
        description="Simulate the cartesian grid of --vary keys over a scenario or a trace.",
    )
    w.add_argument("base", metavar="TRACE|SCENARIO", help="trace (.jsonl/.parquet) or .toml")
    w.add_argument("--trace", help='with a scenario: the trace feeding its "trace" keys')
    w.add_argument(
        "--vary",
        action="append",
        default=[],
        metavar="KEY=V1,V2,...",
        help="a scenario key SECTION.KEY and its values (repeatable)",
    )
    w.add_argument("--slo-p95-ms", type=float, metavar="X", help="p95 latency SLO (ms)")
    add_policy(w)
    add_out(w, metavar="DIR", help="write the table, points and base scenario")
    add_force(w)
    w.add_argument("--jobs", type=int, metavar="N",
                   help="worker processes (default: all cores; with --cluster local: its workers)")
    w.add_argument("--cluster", metavar="local|tcp://HOST:PORT",
                   help="run the grid on a Dask cluster: a LocalCluster, or a scheduler's address")
    w.add_argument("--intervals", type=int, metavar="N", default=DRAWS,
                   help="draws behind each point's 95%% intervals (replications + bootstrap over "
                   "the trace's requests; 0: none; default: %(default)s)")
    w.add_argument("--objective", choices=("p95", "p50", "throughput", "goodput"), default="p95",
                   help="what the best point is chosen by (sim.sweep.decide; goodput needs "
                   "--slo-p95-ms; default: %(default)s)")
    w.add_argument("--find-capacity", action="store_true",
                   help="bisect the Poisson arrival rate: the highest rate (with its interval) "
                   "at which each point meets --slo-p95-ms and the budget")
    w.add_argument("--json", action="store_true", help="print one JSON object")
    w.set_defaults(func=cmd_whatif)


def add_policy(p: Any) -> None:
    """``--policy NAME[:key=value,...] | FILE.py:ClassName`` (a built-in or the user's own)."""
    p.add_argument("--policy", metavar="NAME[:k=v,..]|FILE.py:Class",
                   help="run this policy: a built-in (fixed:tau=4, adaptive, ...) or your own "
                   "class from a Python file (a sim.policies.base.Policy subclass)")


def with_policy(scenario: Scenario, spec: str | None) -> Scenario:
    """``scenario`` with ``--policy`` applied (and any solved acceptance said on stderr)."""
    from sim.policies.user import is_user_policy
    from sim.scenario import acceptance_note

    note = acceptance_note(scenario.acceptance)
    if note:
        print(f"specsim: {note}", file=sys.stderr)
    if not spec:
        return scenario
    if is_user_policy(spec):
        overrides: dict[str, Any] = {"policy.name": spec}
    else:
        from sim.policies.library import parse_policy_spec

        name, params = parse_policy_spec(spec)
        overrides = {"policy.name": name, **{f"policy.{k}": v for k, v in params.items()}}
    return scenario.with_overrides(overrides, where=f"{scenario.where} with --policy {spec}")


def load_base(path: str, trace_path: str | None = None) -> tuple[Scenario, Trace | None]:
    """A scenario file (with an optional trace for its "trace" keys), or a trace to replay."""
    from sim.calibrate import scenario_from_trace
    from sim.scenario import Scenario
    from tracing.io import read_trace

    suffix = Path(path).suffix
    if suffix in TRACE_SUFFIXES:
        if trace_path:
            raise SpecsimError(f"{path}: a trace already; --trace is for scenario files")
        trace = read_trace(path)
        return scenario_from_trace(trace), trace
    if suffix != ".toml":
        raise SpecsimError(f"{path}: expected a scenario .toml or a trace .jsonl/.parquet")
    scenario = Scenario.from_toml(path)
    if _is_empty(path):
        print(f"specsim: warning: {path}: the scenario sets nothing; every value is a default "
              "(see the scenario keys in docs/scenario.md)", file=sys.stderr)
    if trace_path and not scenario.needs_trace:
        raise SpecsimError(
            f'--trace {trace_path}: {path} reads nothing from a trace (no key is "trace"); drop '
            '--trace, or set e.g. [workload] output_tokens = "trace" or [acceptance] model = '
            '"trace"')
    given = read_trace(trace_path) if trace_path else None
    if scenario.needs_trace and given is None:
        raise SpecsimError(f'{path}: some keys are "trace"; give the trace with --trace')
    return scenario, given


def _is_empty(path: str) -> bool:
    """True when a scenario file sets no key at all (empty, or only empty tables)."""
    import tomllib

    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError):
        return False
    return all(isinstance(v, dict) and not v for v in data.values())


def beside(out: str | Path, what: str) -> Path:
    """``runs/a.jsonl`` -> ``runs/a.<what>``: where the resolved config of an output goes."""
    out = Path(out)
    return out.with_name(out.name.split(".")[0] + "." + what)


def cmd_simulate(args: argparse.Namespace) -> int:
    """Handler of ``specsim simulate``."""
    from sim.engine.core import simulate
    from sim.sweep.replicate import replicate

    if args.out:
        claim(args.out, args.force)
        claim(beside(args.out, "scenario.toml"), args.force)
    scenario, trace = load_base(args.scenario, args.trace)
    scenario = with_policy(scenario, args.policy)
    if args.seed is not None:
        scenario = scenario.with_overrides({"workload.seed": args.seed})
    n = scenario.sim.replications if args.replications is None else args.replications
    if n < 1:
        raise SpecsimError(f"--replications {n}: must be >= 1")
    show_bar = not args.json  # a bar on a terminal, plain lines when piped
    result = (
        replicate(scenario, n, trace, progress=show_bar)
        if n > 1
        else simulate(scenario, trace, progress=show_bar)
    )
    written = _write_sim(result, scenario, args.out) if args.out else []
    if args.json:
        from tracing.cli import print_json

        print_json(
            {**result.figures, "warnings": result.warnings, "written": [str(p) for p in written]}
        )
        return 0
    _print_figures(result, scenario)
    for path in written:
        print(f"wrote {path}")
    return 0


def _write_sim(result: SimResult, scenario: Scenario, out: str) -> list[Path]:
    from tracing.io import write_trace

    if Path(out).suffix not in TRACE_SUFFIXES:
        raise SpecsimError(f"--out {out}: a trace path ending in .jsonl or .parquet")
    config = beside(out, "scenario.toml")
    try:
        config.parent.mkdir(parents=True, exist_ok=True)
        write_trace(result.trace, out)
        config.write_text(scenario.to_toml())
    except OSError as exc:
        raise SpecsimError(f"--out {out}: cannot write {config}: {exc.strerror}") from None
    publish(config)
    return [Path(out), config]


def cmd_whatif(args: argparse.Namespace) -> int:
    """Handler of ``specsim whatif``."""
    from sim.sweep.execution import check_cluster
    from sim.sweep.whatif import output_paths, parse_vary, sweep, write_outputs

    if args.out:
        for path in output_paths(args.out):
            claim(path, args.force)
    base, trace = load_base(args.base, args.trace)
    base = with_policy(base, args.policy)
    vary = parse_vary(args.vary)
    if args.jobs is not None and args.jobs < 1:
        raise SpecsimError(f"--jobs {args.jobs}: must be >= 1")
    if args.cluster is not None:
        check_cluster(args.cluster)
    if args.intervals < 0 or args.intervals == 1:
        raise SpecsimError(f"--intervals {args.intervals}: 0 (none) or at least 2 draws")
    if args.find_capacity:
        return _capacity(args, base, trace, vary)
    if not vary:
        raise SpecsimError("whatif: give at least one --vary KEY=V1,V2,... (or --find-capacity)")
    result = sweep(
        base,
        vary,
        trace=trace,
        slo_p95_ms=args.slo_p95_ms,
        jobs=args.jobs,
        cluster=args.cluster,
        progress=not args.json,  # a bar on a terminal, plain lines when piped
        intervals=args.intervals,
        objective=args.objective,
    )
    written = write_outputs(result, base, args.out, force=args.force) if args.out else []
    if args.json:
        from tracing.cli import print_json

        print_json(
            {
                **result.to_dict(),
                "vary": vary,
                "slo_p95_ms": args.slo_p95_ms,
                "written": [str(p) for p in written],
            }
        )
        return 0
    _print_whatif(result, list(vary), args.slo_p95_ms)
    for path in written:
        print(f"wrote {path}")
    return 0


def _capacity(args: argparse.Namespace, base: Scenario, trace: Trace | None,
              vary: dict[str, list[Any]]) -> int:
    """``whatif --find-capacity``: the highest rate per decision point (sim.sweep.capacity)."""
    from sim.sweep.capacity import find_capacity
    from sim.sweep.intervals import basis

    if args.out:
        raise SpecsimError("--find-capacity: prints its answer; --out is for grids")
    if args.slo_p95_ms is None:
        raise SpecsimError("--find-capacity: needs --slo-p95-ms X")
    capacity = find_capacity(base, vary, trace=trace, slo_p95_ms=args.slo_p95_ms,
                             draws=args.intervals, jobs=args.jobs)
    how = basis(trace, args.intervals) if args.intervals else None
    if args.json:
        from tracing.cli import print_json

        print_json({"capacity": capacity, "slo_p95_ms": args.slo_p95_ms, "vary": vary,
                    "interval": how})
        return 0
    print(f"capacity: the highest Poisson arrival rate at which p95 <= {args.slo_p95_ms:g} ms "
          "and the budget holds (no overload)")
    for c in capacity:
        where = ", ".join(f"{k}={v}" for k, v in c["vary"].items()) or "as given"
        ci = c["ci95"]
        band = f" (95% interval {ci[0]:.3g}-{ci[1]:.3g})" if ci else ""
        print(f"  {where}: {c['rate_per_s']:.3g} requests/s{band}")
    if how is not None:
        print(how["text"] + (f"; {how['caveat']}" if how.get("caveat") else ""))
    return 0


# --- human output ----------------------------------------------------------------------------


def _console() -> Any:
    """A rich console on stdout; wide enough for the tables when stdout is not a terminal."""
    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=160)


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x * 1e3:,.1f}"


def _print_figures(result: SimResult, scenario: Scenario) -> None:
    from rich.table import Table

    f = result.figures
    lat = f["latency_s"]
    table = Table(title=f"simulated: {scenario.where} ({f['policy']}, basis {f.get('basis')})",
                  show_header=True)
    table.add_column("figure")
    for name in ("value / mean", "p50", "p95", "p99"):
        table.add_column(name, justify="right")
    table.add_row("requests", str(f["requests"]))
    for name in ("latency_s", "ttft_s", "queue_s"):
        stats = f[name]
        table.add_row(
            name[:-2] + " (ms)",
            *(_ms(stats[k]) if k in stats else "" for k in ("mean", "p50", "p95", "p99")),
        )
    if lat.get("p95_ci"):
        n = f["replications"]["n"]
        table.add_row(
            f"latency {n}-seed 95% CI (ms)",
            "",
            *(f"{_ms(lat[k][0])}-{_ms(lat[k][1])}" for k in ("p50_ci", "p95_ci")),
            "",
        )
    speedup = f.get("speedup_vs_target_only")
    rows: list[tuple[str, str]] = [
        ("tokens per cycle", f"{f['tokens_per_cycle']:.3f}"),
        ("acceptance rate", f"{f['acceptance_rate']:.3f}"),
        ("verify passes / request", f"{f['verify_passes_per_request']:.2f}"),
        ("truncated by budget", str(f.get("truncated_requests", 0))),
        ("throughput (tok/s)", f"{f['throughput_tok_s']:,.1f}"),
        ("speedup vs target-only", "-" if speedup is None else f"x{speedup:.2f}"),
        ("utilization", f"{f['utilization']:.1%}"),
    ]
    for row in rows:
        table.add_row(*row)
    band = f.get("band")
    if band:  # a catalog-priced run: the factor each latency may be off by
        table.add_row(f"latency band /{band:g} to x{band:g} (ms)", "",
                      *(f"{_ms(lat[k] / band)}-{_ms(lat[k] * band)}" for k in ("p50", "p95")), "")
    console = _console()
    console.print(table)
    console.print(basis_line(f), soft_wrap=True, markup=False)
    shape = f.get("target_shape")
    if shape:
        console.print(_shape_line(shape, f), soft_wrap=True, markup=False)
    if f.get("overloaded"):
        console.print("[bold red]overloaded:[/] the queue grows without bound at this rate")
    for w in result.warnings:
        print(f"warning: {w}", file=sys.stderr)


def _shape_line(shape: dict[str, Any], figures: dict[str, Any]) -> str:
    """The target the figures priced (ASSUMED when guessed from a parameter count)."""
    text = (f"target: {shape.get('name') or '?'}, {shape['n_params'] / 1e9:.2f} B params, "
            f"{shape['layers']} layers x {shape['hidden']}, {shape['heads']} heads / "
            f"{shape['kv_heads']} KV x {shape['head_dim']}, tp {figures.get('tp', 1)}, "
            f"{figures.get('stack', '')} stack, basis {figures.get('basis')}")
    if figures.get("band"):
        text += f" (band x{figures['band']:g})"
    if shape.get("assumed"):
        text = "ASSUMED SHAPE (from the parameter count, [target] shape = \"assumed\") -- " + text
    return text


def _print_budgets(console: Any, points: list[dict[str, Any]]) -> None:
    """Per point with a budget that truncated requests or cannot be met: how many were cut
    and what the budget can reach (:func:`sim.policies.budget.describe`)."""
    from sim.policies.budget import describe

    for p in points:
        b = p.get("budget")
        cut = int(p.get("truncated_requests") or 0)
        if not cut and not (b and not b["feasible"]):
            continue
        where = ", ".join(f"{k}={v}" for k, v in p["vary"].items())
        text = f"{where}: {cut} of {p['requests']} requests truncated by the budget"
        if b:
            text += f"; {describe(b)}"
        console.print(text, soft_wrap=True, markup=False)


BASES = {
    "trace": "costs fitted on the trace's own timings",
    "profile": "costs from a measured device profile",
    "catalog": "costs moved to another device by the catalog's roofline, an estimate",
    "scenario": "costs as the scenario sets them",
}


def basis_line(figures: dict[str, Any]) -> str:
    """What the simulated figures rest on: their basis, and a catalog's band."""
    basis = str(figures.get("basis") or "scenario")
    text = f"simulated; basis: {basis} ({BASES.get(basis, basis)})"
    band = figures.get("band")
    if band:
        text += (f"; band {band:g}: each latency may be off by that factor either way "
                 "(the 'latency band' row)")
    return text


def _with_ci(point: dict[str, Any], key: str) -> str:
    """``159.4 [150.1-168.2]`` (ms): the figure and its 95% interval when it has one."""
    value = _ms(point["latency_s"][key])
    ci = (point.get("ci95") or {}).get(f"{key}_s")
    return value if not ci else f"{value} [{_ms(ci[0])}-{_ms(ci[1])}]"


def _print_whatif(result: WhatIfResult, keys: list[str], slo_p95_ms: float | None) -> None:
    from rich.table import Table

    slo = f" (SLO p95 <= {slo_p95_ms:g} ms)" if slo_p95_ms is not None else ""
    table = Table(title=f"what-if: {len(result.points)} points{slo}, best by {result.objective}")
    for key in keys:
        table.add_column(key)
    for name in ("p50 ms [95% CI]", "p95 ms [95% CI]", "tok/cycle", "tok/s", "speedup"):
        table.add_column(name, justify="right")
    table.add_column("meets SLO")
    table.add_column("feasible")
    bests = [{**b["best"]["vary"], **b["condition"]} for b in result.best_by_condition
             if b["best"] is not None]
    for p in result.points:
        speedup = p.get("speedup_vs_target_only")
        if not p.get("fits", True):
            mark = "no (does not fit)"
        elif p["overloaded"]:
            mark = "no (overloaded)"
        else:
            mark = ("yes" if p["feasible"] else "no (budget)" if not p["within_budget"]
                    else "no (SLO)")
        is_best = p["vary"] in bests
        style = "bold green" if is_best else None
        table.add_row(
            *(str(p["vary"][k]) for k in keys),
            _with_ci(p, "p50"),
            _with_ci(p, "p95"),
            f"{p['tokens_per_cycle']:.2f}",
            f"{p['throughput_tok_s']:,.1f}",
            "-" if speedup is None else f"x{speedup:.2f}",
            p["meets_slo"].replace("_", " "),
            mark + (" <- best" if is_best else "") + (" (now)" if p.get("incumbent") else ""),
            style=style,
        )
    console = _console()
    console.print(table)
    shapes = {_shape_line(p["target_shape"], p) for p in result.points if p.get("target_shape")}
    for line in sorted(shapes):
        console.print(line, soft_wrap=True, markup=False)
    for p in result.points:
        if not p.get("fits", True):
            where = ", ".join(f"{k}={v}" for k, v in p["vary"].items())
            m = p["memory"]
            console.print(f"does not fit ({where}): needs {m['needed_gb']:.1f} GB, "
                          f"{m['usable_gb']:.1f} GB usable on {m['gpus']} x {m['device']}",
                          soft_wrap=True, markup=False)
    if result.interval:
        text = result.interval["text"]
        if result.interval.get("caveat"):
            text += f"; {result.interval['caveat']}"
        console.print(text, soft_wrap=True, markup=False)
    for b in result.best_by_condition:
        cond = ", ".join(f"{k}={v}" for k, v in b["condition"].items())
        head = f"at {cond}: " if cond else ""
        if b["best"] is None:
            console.print(f"{head}{b['reason']}", soft_wrap=True, markup=False)
            continue
        where = ", ".join(f"{k}={v}" for k, v in b["best"]["vary"].items())
        console.print(f"{head}best: {where} (p95 {_with_ci(b['best'], 'p95')} ms): "
                      f"{b['reason']}", soft_wrap=True, markup=False)
    _print_budgets(console, result.points)
    if any(p["overloaded"] for p in result.points):
        console.print("[bold red]overloaded points:[/] the queue grows without bound there; "
                      "their p95 is not a steady figure, so they are never feasible")


"""``specsim validate``: the simulator's predictions measured against live runs.

For every ordered pair (A, B) of traces of the same workload (same workload label, target and
prompt lengths), B is predicted from A alone: the base is ``scenario_from_trace(A)`` -- A's
acceptance (replayed per request) and A's fitted latency -- with B's policy and budget from B's
metadata and B's prompt/output lengths, simulated with A's trace. The prediction is compared
with B's measured p50 and p95 latency, tokens per cycle and speedup over target-only.

Kinds of pair: ``replay`` (A = B: the trace's own configuration replayed), ``same config``
(another run of the same configuration), ``other policy`` (same draft, another policy or tau),
``draft`` (the same kind of draft of another size, same policy: an n-gram's ``n`` replayed
exactly over A's recorded tokens, a layer skip's depth priced by ``[draft] layers``:
:func:`draft_change`), ``other draft`` (another draft: A's acceptance and draft cost stand in for B's, so it is always
flagged), ``other hardware`` (A and B captured on different devices: :mod:`analysis.crossdevice`,
priced by the catalog and, with ``--profile``, by a measured profile of B's device). A prediction *extrapolates* when it drafts at positions A never drafted (so their
acceptance is carried from A's last positions), when the draft differs, when A has no
speculative cycles, when A's record decides fewer than ``MIN_COVERAGE`` of B's simulated draft
cycles (A drafted deep somewhere but rarely: an adaptive run that mostly did not draft), or
when it drafts a length whose verify cost A neither measured nor
profiled (a live capture profiles the pass for every token count: ``live.profile``; the
lengths costed from that profile are listed in ``verify_from_profile``).

Measured speedup: B's mean latency against the mean latency of a target-only run of the same
workload in the set (``basis = "measured"``); without one, against the target-only latency the
simulator derives from B's own fitted costs (``basis = "B's costs"``).

Errors are relative: ``(predicted - measured) / measured``.

Kind ``load`` (:mod:`analysis.validate_load`): given client traces of ``specsim load`` with their
server traces, each load curve is predicted from its lowest-load point.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from analysis.validate_output import (
    KIND_COLORS,
    _print_table,
    pairs_table_html,
    write_html,
)
from analysis.validate_predict import (
    GOALS,
    METRICS,
    MIN_COVERAGE,
    REPLICATIONS,
    Run,
    _spans,
    draft_change,
    kind_of,
    load_run,
    measured,
    predict,
    predict_with,
    with_lengths_of,
)
from tracing.errors import SpecsimError
from tracing.outputs import add_force, claim, publish

if TYPE_CHECKING:  # numpy, pandas and the simulator load in the functions that use them, so
    from tracing.trace import Trace  # that building the `specsim` parser stays light


# Pairing and prediction live in analysis.validate_predict, the page and table in
# analysis.validate_output; their public names stay importable from here.
__all__ = [
    "GOALS", "KIND_COLORS", "METRICS", "MIN_COVERAGE", "REPLICATIONS", "Run", "cmd_validate",
    "draft_change", "kind_of", "load_run", "measured", "pairs_table_html", "predict",
    "predict_with", "register", "summarize_errors", "timing_warnings", "validate",
    "with_lengths_of", "write_html",
]


def validate(paths: list[str], profile: str | None = None, *,
             progress: bool = False) -> dict[str, Any]:
    """Every ordered pair of the traces: predictions, measurements, errors, a summary
    (``profile``: a profile of some device, used for the ``other hardware`` pairs whose B ran
    on it) and ``warnings`` (a trace whose timing is too unstable for the error goals claimed)."""
    import numpy as np

    from analysis import crossdevice
    from analysis.validate_load import is_client_trace, validate_load
    from tracing.io import read_trace

    if not paths:
        raise SpecsimError("validate: give at least one trace")
    traces = {p: read_trace(p) for p in paths}
    from analysis.validate_engine import is_engine_trace, validate_engine

    if all(is_engine_trace(t) for t in traces.values()):  # llama.cpp runs: from one base run
        return validate_engine(traces)
    if any(is_client_trace(t) for t in traces.values()):  # load points: the load kind
        return validate_load(traces)
    runs = [load_run(p, traces[p]) for p in paths]
    groups: dict[tuple[Any, ...], list[Run]] = {}
    for run in runs:
        groups.setdefault(run.workload, []).append(run)
    pairs: list[dict[str, Any]] = []
    truth: dict[str, dict[str, Any]] = {}
    todo = sum(sum(not r.target_only for r in g) ** 2 for g in groups.values())
    bar = _Bar(todo) if progress else None
    try:
        for group in groups.values():
            baselines = [r for r in group if r.target_only]
            base_mean = (float(np.mean([measured(r, None)["mean_s"] for r in baselines]))
                         if baselines else None)
            truth.update({r.path: measured(r, base_mean) for r in group if not r.target_only})
            for a in group:
                if a.target_only:
                    continue  # nothing to learn acceptance from
                for b in group:
                    if b.target_only:
                        continue
                    pairs.append(_pair(a, b, truth[b.path]))
                    if bar is not None:
                        bar.advance()
    finally:
        if bar is not None:
            bar.close()
    cross = crossdevice.pairs(runs, truth, profile, predict_with)
    summary = {**summarize_errors(pairs), **crossdevice.summarize_pairs(cross)}
    # a profile recorded on a slower (or faster) host than a capture it prices: said once each
    drift = list(dict.fromkeys(p["host_probe"]["note"] for p in cross
                               if p.get("host_probe", {}).get("note")))
    return {"pairs": pairs + cross, "summary": summary,
            "workloads": [str(k[0]) for k in groups], "traces": paths, "profile": profile,
            "warnings": timing_warnings(traces) + drift}


def timing_warnings(traces: dict[str, Trace]) -> list[str]:
    """One line per trace whose timing noise alone exceeds the tightest error goal claimed."""
    from analysis.timing import assess, unstable_for

    goal = min(GOALS.values())
    out = []
    for path, trace in traces.items():
        health = assess(trace)
        if unstable_for(health, goal):
            why = "; ".join(p["text"] for p in health["problems"]) or (
                f"its requests' speeds spread by {health.get('request_speed_cv', 0.0):.0%}")
            out.append(f"{path}: timing too unstable for the {goal:.0%} error goal ({why}); "
                       "errors against it are not the simulator's alone")
    return out


class _Bar:
    """Progress over the pairs on stderr (a bar on a terminal, plain lines when piped)."""

    def __init__(self, total: int) -> None:
        from tracing.progress import Bar

        self._bar = Bar("validate pairs", total)

    def advance(self) -> None:
        self._bar.advance()

    def close(self) -> None:
        self._bar.close()


def _pair(a: Run, b: Run, meas: dict[str, Any]) -> dict[str, Any]:
    from sim.calibrate.costs import profile_of

    kind = kind_of(a, b)
    pred, warnings = predict(a, b)
    reasons = []
    if pred["max_tau"] > a.max_tau:
        reasons.append(f"drafts position {pred['max_tau']}, A observed up to {a.max_tau}")
    elif pred["coverage"] < MIN_COVERAGE:
        reasons.append(f"A's record decides {pred['coverage']:.0%} of the draft cycles "
                       "(the rest drawn from fitted acceptance)")
    if kind == "other draft":
        reasons.append("another draft: A's acceptance and draft cost")
    # verify costs of draft lengths A never ran: A's profile (measured) or a line (extrapolated)
    unmeasured = sorted(set(pred["taus"]) - set(a.trace.cycles["tau"].tolist()))
    profiled = len(profile_of(a.trace))
    from_profile = [t for t in unmeasured if t < profiled]
    off_profile = [t for t in unmeasured if t >= profiled]
    if off_profile:
        reasons.append(f"verify cost of tau {_spans(off_profile)} from a line (not measured)")
    errors = {}
    for m in METRICS:
        p, t = pred[m], meas[m]
        errors[m] = None if p is None or t is None or t == 0 else (p - t) / t
    return {"a": a.path, "b": b.path, "workload": str(b.workload[0]), "a_config": a.config,
            "b_config": b.config, "kind": kind, "extrapolated": bool(reasons),
            "extrapolation": "; ".join(reasons),
            "verify_from_profile": from_profile, "predicted": pred, "measured": meas,
            "error": errors, "warnings": warnings}


def summarize_errors(pairs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and max |error| per kind (covered vs extrapolated) and metric; goals checked."""
    import numpy as np

    out: dict[str, Any] = {}
    for kind in ("replay", "same config", "other policy", "draft", "other draft"):
        for extrapolated in (False, True):
            rows = [p for p in pairs if p["kind"] == kind and p["extrapolated"] == extrapolated]
            if not rows:
                continue
            key = f"{kind}{' (extrapolated)' if extrapolated else ''}"
            stats: dict[str, Any] = {"pairs": len(rows)}
            for m in METRICS:
                errs = [abs(p["error"][m]) for p in rows if p["error"][m] is not None]
                stats[m] = ({"mean_abs": float(np.mean(errs)), "max_abs": float(np.max(errs))}
                            if errs else None)
            goal = GOALS.get(kind)
            if goal is not None and not extrapolated:
                worst = max((stats[m]["max_abs"] for m in ("p50_s", "p95_s") if stats[m]),
                            default=0.0)
                stats["goal"] = goal
                stats["meets_goal"] = worst <= goal
            out[key] = stats
    return out


def register(sub: Any) -> None:
    """Add the ``validate`` subcommand to the ``specsim`` parser."""
    p = sub.add_parser(
        "validate",
        help="predict each live run from the others through the simulator; errors table",
        description="For every ordered pair (A, B) of traces of one workload, predict B from A. "
        "Given load runs (client traces of `specsim load` with their server traces), the load "
        "kind: every point of a load curve predicted from its lowest-load point.",
    )
    p.add_argument("traces", nargs="+", metavar="TRACE")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("-o", "--out", "--output", dest="output", metavar="REPORT.html",
                   help="predicted-vs-measured page with the table")
    add_force(p)
    p.add_argument("--profile", metavar="PROFILE",
                   help="a profile of a device (specsim profile JSON, a capture carrying one, "
                        "or a target-only trace) for the other-hardware pairs run on it")
    p.set_defaults(func=cmd_validate)


def cmd_validate(args: argparse.Namespace) -> int:
    """Handler of ``specsim validate``."""
    claim(args.output, args.force)
    result = validate(list(args.traces), args.profile,
                      progress=not args.json)
    load = result.get("kind") == "load"
    if result.get("kind") == "engine":
        if args.output:
            raise SpecsimError("validate: -o is not made for llama.cpp runs; use --json")
        if args.json:
            from tracing.cli import print_json

            print_json(result)
        else:
            from analysis.validate_engine import print_table as print_engine

            print_engine(result)
        return 0
    for warning in result.get("warnings", []):
        print(f"specsim: warning: {warning}", file=sys.stderr)
    if args.output:
        if load:
            from analysis.validate_load import write_html as write_load_html

            write_load_html(result, args.output)
        else:
            write_html(result, args.output)
        publish(args.output)
    if args.json:
        from tracing.cli import print_json

        print_json(result)
        return 0
    if load:
        from analysis.validate_load import print_table

        print_table(result)
    else:
        _print_table(result)
    if args.output:
        print(f"wrote {args.output}")
    return 0

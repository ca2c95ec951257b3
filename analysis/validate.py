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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracing.errors import SpecsimError
from tracing.outputs import add_force, claim, publish

if TYPE_CHECKING:  # numpy, pandas and the simulator load in the functions that use them, so
    from tracing.trace import Trace  # that building the `specsim` parser stays light

METRICS = ("p50_s", "p95_s", "tokens_per_cycle", "speedup")
REPLICATIONS = 20  # simulated runs averaged per prediction when the latency model has noise
MIN_COVERAGE = 0.8  # below: B's drafting is mostly drawn, not read from A (extrapolates)
GOALS = {"replay": 0.05, "same config": 0.05, "other policy": 0.10, "draft": 0.10}


@dataclass
class Run:
    """One trace and what identifies its workload and configuration."""

    path: str
    trace: Trace
    workload: tuple[Any, ...]
    draft: str
    policy: str
    max_tau: int
    device: str = ""

    @property
    def config(self) -> str:
        """``draft policy`` label, e.g. ``ngram fixed:tau=4``."""
        return f"{self.draft} {self.policy}"

    @property
    def target_only(self) -> bool:
        """True for a run that never drafted."""
        return self.max_tau == 0


def load_run(path: str, trace: Trace | None = None) -> Run:
    """Read (unless given) and describe one trace."""
    from tracing.io import read_trace

    trace = read_trace(path) if trace is None else trace
    meta, extra = trace.meta, trace.meta.extra or {}
    if len(trace.requests) == 0 or len(trace.cycles) == 0:
        raise SpecsimError(f"{path}: no requests or cycles to validate with")
    label = extra.get("workload") or extra.get("prompts") or ""
    prompts = tuple(int(x) for x in trace.requests.sort_values("request_id")["prompt_tokens"])
    params = ",".join(f"{k}={v}" for k, v in sorted((meta.policy_params or {}).items()))
    policy = f"{meta.policy}:{params}" if params else meta.policy
    return Run(path, trace, (label, meta.target_model, prompts), meta.draft_model or "none",
               policy, int(trace.cycles["tau"].max()), str(meta.device or ""))


def measured(run: Run, baseline_mean_s: float | None) -> dict[str, Any]:
    """B's measured figures (speedup against ``baseline_mean_s`` or B's own fitted costs)."""
    from sim import scenario_from_trace, simulate
    from tracing.summary import summarize

    s = summarize(run.trace)
    lat = s["latency_s"]
    mean = float(lat["mean"])
    speedup: float | None
    if baseline_mean_s is not None:
        speedup, basis = baseline_mean_s / mean, "measured"
    else:
        replay = simulate(scenario_from_trace(run.trace), run.trace).figures
        base = replay.get("speedup_vs_target_only")
        speedup = None if base is None else base * replay["latency_s"]["mean"] / mean
        basis = "B's costs"
    return {"p50_s": float(lat["p50"]), "p95_s": float(lat["p95"]),
            "tokens_per_cycle": float(s["tokens_per_cycle"]), "speedup": speedup,
            "speedup_basis": basis, "mean_s": mean}


def predict(a: Run, b: Run) -> tuple[dict[str, Any], list[str]]:
    """B predicted from A alone: A's fitted scenario with B's policy, budget and lengths; for a
    ``draft`` pair, with B's draft size (:func:`draft_change`)."""
    change = draft_change(a, b)
    if change is None:
        pred, warnings, _ = predict_with(a, b)
    else:  # ngram: --vary draft.n (replayed exactly); layer skip: --vary draft.layers
        key = "n" if change[0] == "ngram" else "layers"
        pred, warnings, _ = predict_with(a, b, draft={key: change[1]})
    return pred, warnings


def draft_change(a: Run, b: Run) -> tuple[str, int] | None:
    """``("ngram", n)`` / ``("layerskip", layers)`` when B differs from A only by its draft's
    size (the same kind, policy and tau), else None -- the ``draft`` pairs. An n-gram of
    another size (``[draft] n``) is replayed exactly over A's recorded output
    (:mod:`sim.calibrate.draftreplay`; A needs its ``TRACE.tokens.jsonl``: ``capture
    --record-tokens``). Layer skip of another depth:
    the draft step is priced by the cost model on A's device anchored to A's target pass
    (``[draft] layers``), and A's acceptance is kept -- the acceptance model for another depth
    is "unchanged", which the validation checks (tokens per cycle error)."""
    from sim.calibrate.draftreplay import draft_spec, tokens_path

    da, db = draft_spec(a.draft), draft_spec(b.draft)
    if da is None or db is None or da[0] != db[0] or da == db or a.policy != b.policy:
        return None
    if db[0] == "ngram" and not tokens_path(a.path).exists():
        return None
    return db


def predict_with(a: Run, b: Run, latency: dict[str, Any] | None = None,
                 draft: dict[str, Any] | None = None) -> tuple[dict[str, Any], list[str], Any]:
    """:func:`predict` with ``[latency]`` overrides (another device: ``hardware``,
    ``profile``) and ``[draft]`` ones; also returns the simulation result."""
    from sim import Scenario, scenario_from_trace
    from sim.calibrate.positions import coverage
    from sim.scenario_sections import policy_keys
    from sim.sweep.replicate import replicate

    base = scenario_from_trace(a.trace)
    meta = b.trace.meta
    d = base.to_dict()
    d["latency"].update(latency or {})
    d.setdefault("draft", {}).update(draft or {})
    recorded = dict(meta.policy_params or {})
    known = policy_keys(meta.policy)
    d["policy"] = {"name": meta.policy, **{k: v for k, v in recorded.items() if k in known}}
    d["budget"] = {"max_verify_per_request": int(recorded.get("max_verify", 0) or 0),
                   "mean_verify_per_request": float(recorded.get("mean_verify", 0.0) or 0.0)}
    scenario = Scenario.from_dict(d, where=f"{a.path} as {b.config}")
    # with request-to-request noise (speed_cv) one run is one draw of the tail: predict the
    # mean over REPLICATIONS runs
    runs = REPLICATIONS if scenario.latency.speed_cv > 0 else 1
    result = replicate(scenario, runs, with_lengths_of(a.trace, b.trace))
    f = result.figures
    taus = sorted(int(t) for t in set(result.trace.cycles["tau"].tolist()))
    return ({"p50_s": f["latency_s"]["p50"], "p95_s": f["latency_s"]["p95"],
             "tokens_per_cycle": f["tokens_per_cycle"], "speedup": f["speedup_vs_target_only"],
             "max_tau": max(taus, default=0), "taus": taus,
             "coverage": coverage(a.trace, result.trace), "basis": f.get("basis"),
             "band": f.get("band")},
            result.warnings, result)


def with_lengths_of(a: Trace, b: Trace) -> Trace:
    """A's trace with B's prompt and output lengths (matched by request id)."""
    import numpy as np

    from tracing.trace import Trace

    lengths = b.requests.set_index("request_id")[["prompt_tokens", "output_tokens"]]
    requests = a.requests.copy()
    for col in ("prompt_tokens", "output_tokens"):
        mapped = requests["request_id"].map(lengths[col])
        requests[col] = mapped.fillna(requests[col]).astype(np.int64)
    return Trace(a.meta, requests, a.cycles, a.path)


def _spans(values: list[int]) -> str:
    """[1, 2, 3, 6] -> '1-3, 6' (values sorted)."""
    runs: list[list[int]] = []
    for v in values:
        if runs and runs[-1][-1] == v - 1:
            runs[-1].append(v)
        else:
            runs.append([v])
    return ", ".join(str(r[0]) if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs)


def kind_of(a: Run, b: Run) -> str:
    """replay, same config, other policy, draft (the same draft kind of another size:
    :func:`draft_change`) or other draft."""
    if a is b:
        return "replay"
    if a.draft != b.draft:
        return "draft" if draft_change(a, b) is not None else "other draft"
    return "same config" if a.policy == b.policy else "other policy"


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
    return {"pairs": pairs + cross, "summary": summary,
            "workloads": [str(k[0]) for k in groups], "traces": paths, "profile": profile,
            "warnings": timing_warnings(traces)}


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


KIND_COLORS = {"replay": "#1f77b4", "same config": "#2ca02c", "other policy": "#ff7f0e",
               "draft": "#17becf", "other draft": "#9467bd", "other hardware (catalog)": "#8c564b",
               "other hardware (profile)": "#e377c2"}


def _groups(pairs: list[dict[str, Any]]) -> list[tuple[str, str, bool, list[dict[str, Any]]]]:
    """(label, color, extrapolated, pairs) for every kind of pair present."""
    out = []
    for kind, color in KIND_COLORS.items():
        for extrapolated in (False, True):
            rows = [p for p in pairs if p["kind"] == kind and p["extrapolated"] == extrapolated]
            if rows:
                out.append((kind + (" (extrapolated)" if extrapolated else ""), color,
                            extrapolated, rows))
    return out


def _hover(p: dict[str, Any]) -> str:
    note = p["extrapolation"] or "covered"
    return (f"{Path(p['a']).name} -> {Path(p['b']).name}<br>{p['b_config']}<br>{note}"
            f"<br>coverage {p['predicted'].get('coverage', 1.0):.0%}")


def write_html(result: dict[str, Any], path: str) -> None:
    """A self-contained Plotly page. Top: predicted against measured p50 and p95, one point per
    pair, the diagonal with a +-10% band. Bottom: each pair's error by kind, with the goals
    (replay 5%, another policy 10%) as lines, so a miss is a point outside them."""
    import plotly.graph_objects as go
    import plotly.io as pio
    from plotly.subplots import make_subplots

    metrics = (("p50_s", "p50"), ("p95_s", "p95"))
    fig = make_subplots(
        rows=2, cols=2, vertical_spacing=0.14, horizontal_spacing=0.08,
        subplot_titles=[f"{n} latency: predicted vs measured (s)" for _, n in metrics]
        + [f"{n} error by kind of pair" for _, n in metrics])
    groups = _groups(result["pairs"])
    for col, (metric, name) in enumerate(metrics, start=1):
        values = [v for p in result["pairs"] for v in (p["predicted"][metric],
                                                         p["measured"][metric])]
        lo, hi = min(values, default=0.0) * 0.9, max(values, default=1.0) * 1.1
        fig.add_trace(go.Scatter(  # the +-10% band around the diagonal
            x=[lo, hi, hi, lo], y=[lo * 0.9, hi * 0.9, hi * 1.1, lo * 1.1], mode="lines",
            fill="toself",
            fillcolor="rgba(128,128,128,0.15)", line={"width": 0}, hoverinfo="skip",
            name="within 10%", legendgroup="band", showlegend=col == 1), row=1, col=col)
        fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", showlegend=False,
                                 hoverinfo="skip", line={"dash": "dash", "color": "gray"}),
                      row=1, col=col)
        for label, color, extrapolated, rows in groups:
            marker = {"color": color, "symbol": "x" if extrapolated else "circle", "size": 8,
                      "opacity": 0.55 if extrapolated else 0.9}
            fig.add_trace(go.Scatter(
                x=[p["measured"][metric] for p in rows], y=[p["predicted"][metric] for p in rows],
                mode="markers", name=label, legendgroup=label, showlegend=col == 1,
                marker=marker, text=[_hover(p) for p in rows],
                hovertemplate="%{text}<br>measured %{x:.3f} s<br>predicted %{y:.3f} s"
                              "<extra></extra>"), row=1, col=col)
            errs = [100.0 * p["error"][metric] for p in rows]
            fig.add_trace(go.Box(
                x=[label] * len(rows), y=errs, name=label, legendgroup=label, showlegend=False,
                boxpoints="all", jitter=0.5, pointpos=0, marker=marker, line={"color": color},
                fillcolor="rgba(0,0,0,0)", text=[_hover(p) for p in rows],
                hovertemplate="%{text}<br>error %{y:+.1f}%<extra></extra>"), row=2, col=col)
        for goal, dash in ((5, "dot"), (10, "dash")):
            for sign in (1, -1):
                fig.add_hline(y=sign * goal, line={"dash": dash, "color": "gray", "width": 1},
                              row=2, col=col)
        fig.update_xaxes(title_text="measured (s)", range=[lo, hi], row=1, col=col)
        fig.update_yaxes(title_text="predicted (s)", range=[lo, hi], row=1, col=col)
        fig.update_yaxes(title_text=f"{name} error (%); goals 5% / 10%", row=2, col=col)
    fig.update_layout(title="specsim validate: each run predicted from every other", height=900,
                      boxmode="group")
    page = ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>specsim validate"
            "</title></head><body style='font-family:system-ui,sans-serif'>"
            + pio.to_html(fig, include_plotlyjs=True, full_html=False)
            + pairs_table_html(result) + "</body></html>\n")
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(page)
    except OSError as exc:
        raise SpecsimError(f"-o {path}: cannot write: {exc.strerror}") from None


def pairs_table_html(result: dict[str, Any]) -> str:
    """The command's table on the page: each pair's measured and predicted figures and errors,
    then the warnings."""
    import html

    head = ("A", "B", "B config", "kind", "p50 ms meas/pred", "p50", "p95", "tok/cycle",
            "speedup", "extrapolated")
    rows = []
    for p in result["pairs"]:
        e = p["error"]
        cells = (Path(p["a"]).stem, Path(p["b"]).stem, p["b_config"], p["kind"],
                 f"{p['measured']['p50_s'] * 1e3:.0f}/{p['predicted']['p50_s'] * 1e3:.0f}",
                 _pct(e["p50_s"]), _pct(e["p95_s"]), _pct(e["tokens_per_cycle"]),
                 _pct(e["speedup"]), p["extrapolation"] or _profiled(p))
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    warn = "".join(f"<li>{html.escape(w)}</li>" for w in result.get("warnings", []))
    return ("<h2>Every pair: B predicted from A (relative error)</h2>"
            "<table border='1' cellpadding='3' style='border-collapse:collapse'><tr>"
            + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>" + "".join(rows)
            + "</table>" + (f"<h2>Warnings</h2><ul>{warn}</ul>" if warn else ""))


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


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:+.1%}"


def _profiled(pair: dict[str, Any]) -> str:
    taus = pair.get("verify_from_profile") or []
    return f"no (verify cost of tau {_spans(taus)} profiled)" if taus else "no"


def _print_table(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="validate: B predicted from A (relative error)")
    for name in ("A", "B config", "kind", "p50 ms meas/pred", "p50", "p95", "tok/cycle",
                 "speedup", "extrapolated"):
        table.add_column(name)
    for p in result["pairs"]:
        if p["kind"].startswith("other hardware"):
            continue  # their own table, below
        e = p["error"]
        table.add_row(Path(p["a"]).stem, p["b_config"], p["kind"],
                      f"{p['measured']['p50_s'] * 1e3:.0f}/{p['predicted']['p50_s'] * 1e3:.0f}",
                      _pct(e["p50_s"]), _pct(e["p95_s"]), _pct(e["tokens_per_cycle"]),
                      _pct(e["speedup"]), p["extrapolation"] or _profiled(p))
    console = Console() if sys.stdout.isatty() else Console(width=200)
    console.print(table)
    for key, stats in result["summary"].items():
        if key.startswith("other hardware"):
            continue
        parts = [f"{m} mean |err| {stats[m]['mean_abs']:.1%} max {stats[m]['max_abs']:.1%}"
                 for m in METRICS if stats.get(m)]
        goal = ""
        if "goal" in stats:
            goal = f"  [p50/p95 goal {stats['goal']:.0%}: {'met' if stats['meets_goal'] else 'MISSED'}]"
        console.print(escape(f"{key} ({stats['pairs']} pairs): " + "; ".join(parts) + goal))
    from analysis.crossdevice import print_table

    print_table(result, console)

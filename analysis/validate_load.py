"""``specsim validate`` kind ``load``: a load curve predicted from one low-load server trace.

A *load point* is one run of ``specsim load`` against ``specsim serve``: the client trace
(``source: "client"``; its run metadata's ``load`` says the concurrency or the Poisson rate)
and the server trace of the same run (its cycles carry ``batch_size``; its metadata the server's
``max_batch`` and the batched verify profile). The two are paired by the request ids they
share (the server's ids), else by name (``NAME.client.jsonl`` beside ``NAME.server.jsonl``).

Points of one configuration (draft, policy, workload) form a curve. Its lowest-load point is A
(the lowest concurrency, else the lowest rate); every point B of the configuration, on either
load axis (A included: the replay), is predicted from A alone:
``scenario_from_trace(A's server trace)`` -- A's acceptance replayed per request (request i of
every point sent prompt i), A's fitted costs with the batched profile scaled to A's passes --
under B's load: closed-loop ``concurrency`` users, or B's measured arrival times for a rate
point (one draw of the Poisson process: the one B met), B's request count, the server's
``max_batch``. The client adds what the server does not see (HTTP, SSE, tokenising): A's mean
client-minus-server latency per request, measured, added to every predicted latency.

Measured figures come from the client trace: latency = end - send (p50, p95), TTFT, output
tokens per second over the run. A point is *saturated* when more requests were in the system on
average than the server batches (time-average in flight > ``max_batch``: requests queue); the
10% goal is checked on the points below saturation. The *crossover* of a speculative curve is
the lowest load at which its p50 latency is no better than target-only's at the same load
(measured against the target-only curve's measured points, predicted against its predicted
ones); the goal is the predicted crossover within one load step of the measured one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sim.calibrate.batching import max_batch_of
from tracing.errors import SpecsimError
from tracing.trace import Trace

GOAL = 0.10
REPLICATIONS = 20  # simulated runs averaged per prediction when the latency model has noise
DRAWS = 20  # bootstrap draws behind each predicted point's 95% interval


@dataclass
class LoadPoint:
    """One measured load point: the client's and the server's view of one run."""

    client_path: str
    client: Trace
    server_path: str
    server: Trace
    concurrency: int | None
    rate: float | None

    @property
    def config(self) -> str:
        """``draft policy`` of the server, e.g. ``ngram fixed:tau=4``."""
        meta = self.server.meta
        params = ",".join(f"{k}={v}" for k, v in sorted((meta.policy_params or {}).items()))
        policy = f"{meta.policy}:{params}" if params else meta.policy
        return f"{meta.draft_model or 'none'} {policy}"

    @property
    def target_only(self) -> bool:
        """True for a server that never drafted."""
        c = self.server.cycles
        return len(c) == 0 or int(c["tau"].max()) == 0

    @property
    def load(self) -> float:
        """The load's size on its own axis (users, or requests per second)."""
        return float(self.concurrency if self.concurrency is not None else self.rate or 0.0)

    @property
    def axis(self) -> str:
        """``concurrency`` or ``rate_per_s``."""
        return "concurrency" if self.concurrency is not None else "rate_per_s"


def is_client_trace(trace: Trace) -> bool:
    """A load generator's trace (``source: "client"``, or the ``load`` block it writes)."""
    return trace.meta.source == "client" or isinstance((trace.meta.extra or {}).get("load"),
                                                       dict)


def _load_of(path: str, trace: Trace) -> tuple[int | None, float | None]:
    load = (trace.meta.extra or {}).get("load") or {}
    concurrency, rate = load.get("concurrency"), load.get("rate")
    if concurrency:
        return int(concurrency), None
    if rate:
        return None, float(rate)
    raise SpecsimError(f"{path}: a client trace with neither a concurrency nor a rate in its "
                       "run metadata (load)")


def _stem(path: str) -> str:
    name = Path(path).name
    for tail in (".client", ".server"):
        if tail in name:
            return str(Path(path).parent / name.split(tail)[0])
    return str(Path(path).with_suffix(""))


def pair_points(traces: dict[str, Trace]) -> list[LoadPoint]:
    """Client traces paired with their server traces: by the request ids they share (the
    server's string ids), else -- no ids shared, or integer ids that several runs share -- by
    name (``NAME.client.*`` with ``NAME.server.*``)."""
    clients = {p: t for p, t in traces.items() if is_client_trace(t)}
    servers = {p: t for p, t in traces.items() if p not in clients}
    ids = {p: set(map(str, t.requests["request_id"])) for p, t in servers.items()}
    points = []
    for path, client in clients.items():
        mine = set(map(str, client.requests["request_id"]))
        match = [p for p, s in ids.items() if len(mine & s) >= max(1, len(mine) // 2)]
        if len(match) != 1:  # no ids shared, or integer ids shared by many runs: by name
            match = [p for p in (match or servers) if _stem(p) == _stem(path)]
        if len(match) != 1:
            raise SpecsimError(f"{path}: found {len(match)} server traces of this run "
                               "(give each client trace with its server trace)")
        concurrency, rate = _load_of(path, client)
        points.append(LoadPoint(path, client, match[0], servers[match[0]], concurrency, rate))
    return points


def measured(point: LoadPoint) -> dict[str, Any]:
    """The client's figures of one point, and whether the server was saturated."""
    r = point.client.requests
    latency = (r["end_s"] - r["arrival_s"]).to_numpy(float)
    ttft = (r["first_token_s"] - r["arrival_s"]).to_numpy(float)
    span = float(r["end_s"].max() - r["arrival_s"].min())
    in_flight = float(latency.sum() / span) if span > 0 else 0.0
    return {"p50_s": float(np.percentile(latency, 50)), "p95_s": float(np.percentile(latency, 95)),
            "mean_s": float(latency.mean()), "ttft_p50_s": float(np.percentile(ttft, 50)),
            "throughput_tok_s": float(r["output_tokens"].sum() / span) if span > 0 else 0.0,
            "requests": len(r), "in_flight": in_flight,
            "saturated": in_flight > max_batch_of(point.server) + 1e-9}


def client_offset_s(point: LoadPoint) -> float:
    """Mean client latency minus server latency of the same requests (HTTP, SSE, tokenising)."""
    c, s = point.client.requests, point.server.requests
    cl = pd.Series((c["end_s"] - c["arrival_s"]).to_numpy(float), index=c["request_id"].map(str))
    sv = pd.Series((s["end_s"] - s["arrival_s"]).to_numpy(float), index=s["request_id"].map(str))
    both = cl.index.intersection(sv.index)
    if len(both) == 0:  # ids not shared (paired by name): compare the two means
        return float(cl.mean() - sv.mean())
    return float((cl[both] - sv[both]).mean())


def _arrivals_trace(a: Trace, b: LoadPoint) -> Trace:
    """A's server trace, its requests (arrival order) given B's client arrival times, so a
    rate point replays the arrivals it met; the request i of both runs sent prompt i."""
    from sim.calibrate.requests import request_order

    order = request_order(a)
    n = len(b.client.requests)
    if n > len(order):
        raise SpecsimError(f"{b.client_path}: {n} requests, but the low-load trace has only "
                           f"{len(order)} to replay")
    arrivals = np.sort(b.client.requests["arrival_s"].to_numpy(float))
    requests = a.requests.copy()
    col = requests["arrival_s"].to_numpy(float).copy()
    col[order[:n]] = arrivals - arrivals[0]
    col[order[n:]] = arrivals[-1] - arrivals[0] + 1e6  # never reached
    requests["arrival_s"] = col
    return Trace(a.meta, requests, a.cycles, a.path)


def predict(a: LoadPoint, b: LoadPoint) -> tuple[dict[str, Any], list[str]]:
    """B's figures predicted from A's server trace alone (see the module docstring)."""
    from sim import scenario_from_trace
    from sim.sweep.intervals import basis, intervals, make_draws, run_draws
    from sim.sweep.replicate import replicate

    base = scenario_from_trace(a.server)
    overrides: dict[str, Any] = {"server.max_batch": max_batch_of(a.server),
                                 "workload.requests": len(b.client.requests)}
    trace = a.server
    if b.concurrency is not None:
        overrides["workload.concurrency"] = b.concurrency
    else:
        overrides["workload.arrival"] = "trace"
        trace = _arrivals_trace(a.server, b)
    scenario = base.with_overrides(overrides, where=f"{a.server_path} under {b.client_path}")
    runs = REPLICATIONS if scenario.latency.speed_cv > 0 else 1
    result = replicate(scenario, runs, trace)
    lat = result.figures["latency_s"]
    offset = client_offset_s(a)
    # the interval: draws that each resample A's requests (refitted) and reseed the simulator,
    # so a fixed policy's prediction is as uncertain as the sample it was fitted on
    estimate = {"p50_s": lat["p50"], "p95_s": lat["p95"]}
    draws = run_draws(make_draws(scenario, trace, DRAWS))
    ci = intervals(estimate, draws)["ci95"]

    def shifted(key: str) -> list[float] | None:
        got = ci.get(key)
        return None if got is None else [got[0] + offset, got[1] + offset]

    return ({"p50_s": lat["p50"] + offset, "p95_s": lat["p95"] + offset,
             "mean_s": lat["mean"] + offset, "p50_ci": shifted("p50_s"),
             "p95_ci": shifted("p95_s"), "throughput_tok_s": result.figures["throughput_tok_s"],
             "client_offset_s": offset, "replications": runs,
             "interval": basis(trace, DRAWS)}, result.warnings)


def _crossover(loads: list[float], spec: dict[float, float], base: dict[float, float]
               ) -> float | None:
    """The lowest load where speculation's p50 is no better than target-only's (None: none)."""
    for x in loads:
        if x in spec and x in base and spec[x] >= base[x]:
            return x
    return None


def validate_load(traces: dict[str, Trace]) -> dict[str, Any]:
    """Every load curve predicted from its lowest-load point: points, errors, crossovers."""
    points = pair_points(traces)
    if not points:
        raise SpecsimError("validate load: no client traces (specsim load --out) given")
    curves: dict[tuple[str, str], list[LoadPoint]] = {}
    for p in points:
        workload = str((p.client.meta.extra or {}).get("workload") or "")
        curves.setdefault((p.config, workload), []).append(p)
    rows: list[dict[str, Any]] = []
    for (config, workload), group in curves.items():
        group.sort(key=lambda p: (p.axis != "concurrency", p.load))
        a = group[0]  # the lowest concurrency (else the lowest rate): the low-load trace
        for b in group:
            axis = b.axis
            pred, warnings = predict(a, b)
            meas = measured(b)
            err = {m: (pred[m] - meas[m]) / meas[m] if meas[m] else None
                   for m in ("p50_s", "p95_s", "throughput_tok_s")}
            inside = {m: None if ci is None else bool(ci[0] <= meas[m] <= ci[1])
                      for m, ci in (("p50_s", pred["p50_ci"]), ("p95_s", pred["p95_ci"]))}
            rows.append({"config": config, "workload": workload, "axis": axis, "load": b.load,
                         "a": a.client_path, "b": b.client_path, "target_only": b.target_only,
                         "predicted": pred, "measured": meas, "error": err, "in_ci": inside,
                         "warnings": warnings})
    return {"kind": "load", "points": rows, "crossovers": crossovers(rows),
            "summary": summarize(rows)}


def crossovers(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per speculative curve: the measured and predicted crossover against target-only's."""
    out = []
    keys = {(r["workload"], r["axis"]) for r in rows}
    for workload, axis in sorted(keys):
        mine = [r for r in rows if r["workload"] == workload and r["axis"] == axis]
        base = [r for r in mine if r["target_only"]]
        if not base:
            continue
        loads = sorted({r["load"] for r in mine})
        for config in sorted({r["config"] for r in mine if not r["target_only"]}):
            spec = [r for r in mine if r["config"] == config]
            got = {}
            for side in ("measured", "predicted"):
                got[side] = _crossover(loads, {r["load"]: r[side]["p50_s"] for r in spec},
                                       {r["load"]: r[side]["p50_s"] for r in base})
            steps = [len(loads) if x is None else loads.index(x)
                     for x in (got["measured"], got["predicted"])]
            out.append({"config": config, "workload": workload, "axis": axis, "loads": loads,
                        "measured": got["measured"], "predicted": got["predicted"],
                        "within_one_step": abs(steps[0] - steps[1]) <= 1})
    return out


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and max |error| of p50 and p95 below and at saturation; the 10% goal checked."""
    out: dict[str, Any] = {}
    for label, sat in (("below saturation", False), ("saturated", True)):
        mine = [r for r in rows if r["measured"]["saturated"] == sat]
        if not mine:
            continue
        stats: dict[str, Any] = {"points": len(mine)}
        for m in ("p50_s", "p95_s", "throughput_tok_s"):
            errs = [abs(r["error"][m]) for r in mine if r["error"][m] is not None]
            stats[m] = ({"mean_abs": float(np.mean(errs)), "max_abs": float(np.max(errs))}
                        if errs else None)
        if not sat:
            misses = [r for r in mine if any(abs(r["error"][m] or 0.0) > GOAL
                                             for m in ("p50_s", "p95_s"))]
            stats["goal"] = GOAL
            stats["meets_goal"] = not misses
            stats["misses"] = [f"{r['config']} {r['axis']}={r['load']:g}" for r in misses]
        out[label] = stats
    return out


def curves_of(rows: list[dict[str, Any]], axis: str) -> list[dict[str, Any]]:
    """The measured and predicted curves of one load axis, for :func:`load_curve`."""
    out = []
    for config in sorted({r["config"] for r in rows if r["axis"] == axis}):
        mine = sorted((r for r in rows if r["axis"] == axis and r["config"] == config),
                      key=lambda r: r["load"])
        for side in ("measured", "predicted"):
            out.append({"label": config, "kind": side, "load": [r["load"] for r in mine],
                        **{k: [r[side][k] for r in mine]
                           for k in ("p50_s", "p95_s", "throughput_tok_s")},
                        **({k: [r[side].get(k) for r in mine] for k in ("p50_ci", "p95_ci")}
                           if side == "predicted" else {})})
    return out


def write_html(result: dict[str, Any], path: str) -> None:
    """A self-contained page: per load axis, measured and predicted curves."""
    import plotly.io as pio

    from analysis.load_figures import load_curve

    parts: list[str] = []
    for axis in sorted({r["axis"] for r in result["points"]}):
        fig = load_curve(curves_of(result["points"], axis), axis,
                         f"load curve by {axis}: measured (o) and predicted from the lowest "
                         "load (x, 95% interval)")
        parts.append(pio.to_html(fig, include_plotlyjs=not parts, full_html=False))
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text("<html><head><meta charset='utf-8'><title>specsim validate load"
                              "</title></head><body>" + "".join(parts) + "</body></html>")
    except OSError as exc:
        raise SpecsimError(f"-o {path}: cannot write: {exc.strerror}") from None


def print_table(result: dict[str, Any]) -> None:
    """The load kind's error table, crossovers and summary (rich)."""
    import sys

    from rich.console import Console
    from rich.table import Table

    table = Table(title="validate load: each point predicted from its curve's lowest load")
    for name in ("config", "load", "p50 ms meas/pred [95% CI]", "p50", "p95 ms meas/pred", "p95",
                 "tok/s meas/pred", "saturated"):
        table.add_column(name)
    for r in result["points"]:
        m, p, e = r["measured"], r["predicted"], r["error"]
        ci = p.get("p50_ci")
        band = "" if ci is None else f" [{ci[0] * 1e3:.0f}, {ci[1] * 1e3:.0f}]"
        table.add_row(
            r["config"], f"{r['axis']}={r['load']:g}",
            f"{m['p50_s'] * 1e3:.0f}/{p['p50_s'] * 1e3:.0f}{band}", _pct(e["p50_s"]),
            f"{m['p95_s'] * 1e3:.0f}/{p['p95_s'] * 1e3:.0f}", _pct(e["p95_s"]),
            f"{m['throughput_tok_s']:.1f}/{p['throughput_tok_s']:.1f}",
            "yes" if m["saturated"] else "no")
    console = Console() if sys.stdout.isatty() else Console(width=200)
    console.print(table)
    for c in result["crossovers"]:
        console.print(f"crossover {c['config']} ({c['axis']}): measured {_show(c['measured'])}, "
                      f"predicted {_show(c['predicted'])} -- "
                      f"{'within one step' if c['within_one_step'] else 'MISSED'}")
    for key, s in result["summary"].items():
        parts = [f"{m} mean |err| {s[m]['mean_abs']:.1%} max {s[m]['max_abs']:.1%}"
                 for m in ("p50_s", "p95_s") if s.get(m)]
        goal = ""
        if "goal" in s:
            goal = f"  [goal {s['goal']:.0%}: {'met' if s['meets_goal'] else 'MISSED'}"
            goal += f" at {', '.join(s['misses'])}]" if s["misses"] else "]"
        console.print(f"{key} ({s['points']} points): " + "; ".join(parts) + goal)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:+.1%}"


def _show(x: float | None) -> str:
    return "none in range" if x is None else f"{x:g}"

"""``specsim validate`` of llama.cpp runs: every run predicted from ONE base run.

Given client traces of ``specsim load`` against ``llama-server`` (``extra.engine = llamacpp``:
their cycles are the engine's own steps, rebuilt from the stream, :mod:`live.load_llamacpp`),
the *base* A is the run with one slot, one request at a time and ``--spec-draft-n-max 4``, not
synthetic (the first such, by path). Every run B -- other draft lengths, another n-gram type,
more slots (``-np``) under more concurrency, synthetic acceptance -- is predicted from A alone:
``scenario_from_trace(A)`` (A's acceptance replayed per request, A's fitted step costs) with B's
``--spec-draft-n-max`` as ``policy.tau``, B's slots as ``server.max_batch``, B's concurrency
(closed loop) and request count. For a synthetic-acceptance run (``--spec-synth-rates``, read
from the trace's recorded server command) the acceptance is known exactly: it is set to the
run's own measured steps (drafted and accepted per step, replayed as for any trace; the
rates' per-position hazards are listed beside it), with A's fitted step costs: only the cost
model is tested there. Another n-gram type is predicted with A's acceptance (the drafter is not modelled:
its miss is the acceptance's, stated as such).

Measured: latency (end - send) p50/p95 and output tokens per second over the run, from B's
trace; a run is *saturated* when more requests were in flight on average than it has slots.
The 10% goal is checked below saturation. Every predicted figure is ``basis: trace`` (A) with a
95% interval (draws that resample A's requests and reseed the simulator).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

import numpy as np

from tracing.errors import SpecsimError
from tracing.trace import Trace

GOAL = 0.10
DRAWS = 10
REPLICATIONS = 10


@dataclass
class EngineRun:
    """One llama.cpp load run and its configuration."""

    path: str
    trace: Trace
    slots: int
    concurrency: int
    tau: int
    spec_type: str
    synth_rates: list[float] | None

    @property
    def label(self) -> str:
        """``ngram-simple n_max=4 np=1 c=1`` (+ ``synth=...``)."""
        synth = "" if self.synth_rates is None else \
            " synth=" + ",".join(f"{r:g}" for r in self.synth_rates)
        return f"{self.spec_type} n_max={self.tau} np={self.slots} c={self.concurrency}{synth}"


def is_engine_trace(trace: Trace) -> bool:
    """A ``specsim load`` trace of llama-server."""
    return (trace.meta.extra or {}).get("engine") == "llamacpp" and trace.meta.source == "client"


def _flag(command: list[str], name: str) -> str | None:
    return command[command.index(name) + 1] if name in command[:-1] else None


def engine_run(path: str, trace: Trace) -> EngineRun:
    """Read a run's configuration from its trace (``extra``: the load, the server's /props and
    the server command the recording script kept)."""
    extra = trace.meta.extra or {}
    command = extra.get("server_command") or []
    command = shlex.split(command) if isinstance(command, str) else [str(c) for c in command]
    slots = int((extra.get("engine_config") or {}).get("total_slots") or extra.get("max_batch")
                or _flag(command, "-np") or 1)
    concurrency = (extra.get("load") or {}).get("concurrency")
    if not concurrency:
        raise SpecsimError(f"{path}: a llama.cpp run needs a closed-loop --concurrency")
    tau = _flag(command, "--spec-draft-n-max") or (trace.meta.policy_params or {}).get("tau")
    if tau is None:
        raise SpecsimError(f"{path}: the run's --spec-draft-n-max is not recorded")
    rates = _flag(command, "--spec-synth-rates")
    synth = [float(x) for x in rates.split(",")] if rates else None
    spec_type = _flag(command, "--spec-type") or trace.meta.draft_model or "ngram"
    return EngineRun(path, trace, slots, int(concurrency), int(tau), spec_type, synth)


def hazards(rates: list[float]) -> list[float]:
    """Per-position hazards of unconditional acceptance rates (llama.cpp's synth rates)."""
    out, prev = [], 1.0
    for r in rates:
        out.append(r / prev if prev > 0 else 0.0)
        prev = r
    return out


def measured(run: EngineRun) -> dict[str, Any]:
    """B's figures from its own trace."""
    r = run.trace.requests
    latency = (r["end_s"] - r["arrival_s"]).to_numpy(float)
    span = float(r["end_s"].max() - r["arrival_s"].min())
    in_flight = float(latency.sum() / span) if span > 0 else 0.0
    return {"p50_s": float(np.percentile(latency, 50)), "p95_s": float(np.percentile(latency, 95)),
            "throughput_tok_s": float(r["output_tokens"].sum() / span) if span > 0 else 0.0,
            "requests": len(r), "in_flight": in_flight,
            "saturated": in_flight > run.slots + 1e-9}


def predict(a: EngineRun, b: EngineRun) -> dict[str, Any]:
    """B predicted from A (module docstring), with 95% intervals."""
    from sim import Scenario, scenario_from_trace
    from sim.sweep.intervals import basis, intervals, make_draws, run_draws
    from sim.sweep.replicate import replicate

    overrides: dict[str, Any] = {
        "server.max_batch": b.slots, "workload.requests": len(b.trace.requests),
        "workload.concurrency": b.concurrency, "policy.name": "fixed", "policy.tau": b.tau}
    costs = scenario_from_trace(a.trace)
    source = a.trace
    if b.synth_rates is not None:  # acceptance known: B's own steps, A's costs
        d = scenario_from_trace(b.trace).to_dict()
        d["latency"] = costs.to_dict()["latency"]
        costs = Scenario.from_dict(d, where=f"{b.path} with the costs of {a.path}")
        source = b.trace
    scenario = costs.with_overrides(overrides, where=f"{a.path} as {b.label}")
    runs = REPLICATIONS if scenario.latency.speed_cv > 0 else 1
    result = replicate(scenario, runs, source)
    f = result.figures
    estimate = {"p50_s": f["latency_s"]["p50"], "p95_s": f["latency_s"]["p95"],
                "throughput_tok_s": f["throughput_tok_s"]}
    ci = intervals(estimate, run_draws(make_draws(scenario, source, DRAWS)))["ci95"]
    return {**estimate, "ci95": ci, "basis": f.get("basis") or "trace",
            "interval": basis(source, DRAWS), "overrides": overrides,
            "acceptance_from": "B (synthetic, known)" if source is b.trace else "A",
            "warnings": result.warnings}


def kind(a: EngineRun, b: EngineRun) -> str:
    """What B changes against A."""
    if b.path == a.path:
        return "replay"
    if b.synth_rates is not None:
        return "synthetic acceptance (cost model only)"
    if b.spec_type != a.spec_type:
        return "other n-gram type"
    if b.slots != a.slots or b.concurrency != a.concurrency:
        return "slots x concurrency"
    if b.tau != a.tau:
        return "other draft length"
    return "same config"


def validate_engine(traces: dict[str, Trace]) -> dict[str, Any]:
    """Every llama.cpp run predicted from the base run (module docstring)."""
    runs = [engine_run(p, t) for p, t in sorted(traces.items())]
    bases = [r for r in runs if r.slots == 1 and r.concurrency == 1 and r.tau == 4
             and r.synth_rates is None]
    if not bases:
        raise SpecsimError("validate: no base llama.cpp run (one slot, --concurrency 1, "
                           "--spec-draft-n-max 4, not synthetic) among the traces")
    a = bases[0]
    rows: list[dict[str, Any]] = []
    for b in runs:
        pred, meas = predict(a, b), measured(b)
        err = {m: (pred[m] - meas[m]) / meas[m] if meas[m] else None
               for m in ("p50_s", "p95_s", "throughput_tok_s")}
        row: dict[str, Any] = {"config": b.label, "kind": kind(a, b), "b": b.path, "predicted": pred,
               "measured": meas, "error": err}
        if b.synth_rates is not None:
            row["synth_hazards"] = hazards(b.synth_rates)
        rows.append(row)
    below = [r for r in rows if not r["measured"]["saturated"]]
    misses = [f"{r['config']} ({r['b']})" for r in below
              if any(abs(r["error"][m] or 0.0) > GOAL for m in ("p50_s", "p95_s",
                                                                "throughput_tok_s"))]
    summary: dict[str, Any] = {"goal": GOAL, "points_below_saturation": len(below), "meets_goal": not misses,
               "misses": misses}
    for m in ("p50_s", "p95_s", "throughput_tok_s"):
        errs = [abs(r["error"][m]) for r in below if r["error"][m] is not None]
        summary[m] = {"mean_abs": float(np.mean(errs)), "max_abs": float(np.max(errs))} \
            if errs else None
    out: dict[str, Any] = {"kind": "engine", "engine": "llamacpp", "base": a.path,
                           "points": rows, "summary": summary}
    return out


def print_table(result: dict[str, Any]) -> None:
    """The table: measured / predicted p50, p95 and throughput per run."""
    print(f"validate llama.cpp: every run predicted from {result['base']}")
    print(f"{'config':58} {'kind':38} {'p50 ms m/p':>15} {'err':>7} {'p95 ms m/p':>15} "
          f"{'err':>7} {'tok/s m/p':>13} {'err':>7} sat")
    rows: list[dict[str, Any]] = result["points"]
    for r in rows:
        m, p, e = r["measured"], r["predicted"], r["error"]
        print(f"{r['config']:58} {r['kind']:38} "
              f"{m['p50_s'] * 1e3:7.0f}/{p['p50_s'] * 1e3:<7.0f} {e['p50_s']:+7.1%} "
              f"{m['p95_s'] * 1e3:7.0f}/{p['p95_s'] * 1e3:<7.0f} {e['p95_s']:+7.1%} "
              f"{m['throughput_tok_s']:6.1f}/{p['throughput_tok_s']:<6.1f} "
              f"{e['throughput_tok_s']:+7.1%} {'yes' if m['saturated'] else 'no'}")
    s = result["summary"]
    print(f"below saturation: {s['points_below_saturation']} points; goal {s['goal']:.0%}: "
          + ("met" if s["meets_goal"] else "MISSED at " + "; ".join(s["misses"])))

"""Predicting one pair of ``specsim validate``: load a run, what was measured of it, what kind
of pair (A, B) is, and B predicted from A alone (see :mod:`analysis.validate` for the method).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tracing.errors import SpecsimError

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
    (:mod:`sim.calibrate.draftreplay`; A needs its ``TRACE.tokens.ndjson``: ``capture
    --record-tokens``). Layer skip of another depth:
    the draft step is priced by the cost model on A's device anchored to A's target pass
    (``[draft] layers``), and A's acceptance is kept -- the acceptance model for another depth
    is "unchanged", which the validation checks (tokens per cycle error)."""
    from sim.calibrate.draftreplay import draft_spec
    from tracing.jsonl import token_ids_path

    da, db = draft_spec(a.draft), draft_spec(b.draft)
    if da is None or db is None or da[0] != db[0] or da == db or a.policy != b.policy:
        return None
    if db[0] == "ngram" and not token_ids_path(a.path).exists():
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

"""Issue 26 part 1: a what-if that changes a cost is honoured on a trace.

Each request's speed factor is measured once against the trace's own fitted costs and kept as
a factor (``sim.calibrate.costs.trace_speeds``); before, it was re-measured against the
what-if's costs and cancelled the change (a draft 64x dearer predicted the same p50).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from analysis.diagnose import diagnose
from analysis.planted import planted_trace
from sim.calibrate import calibrate, scenario_from_trace
from sim.calibrate.costs import fit_latency, trace_speeds
from sim.calibrate.requests import request_order
from sim.engine.core import simulate
from tracing.io import read_trace

ROOT = Path(__file__).resolve().parents[1]
LAYERSKIP = ROOT / "traces" / "live_chat_layerskip.jsonl"


def test_halving_the_draft_step_moves_p50_by_the_closed_form_amount() -> None:
    """Closed form: request i's latency falls by speed_i * (d / 2) * (tokens it drafted), with
    speed_i its measured speed against the trace's fitted costs and d the fitted draft step;
    the predicted p50 is the median of the measured latencies less that."""
    trace = planted_trace("draft_bound", requests=60)
    base = scenario_from_trace(trace).with_overrides({"latency.replay_speed": True})
    d = fit_latency(trace).draft_step_s
    half = simulate(base.with_overrides({"draft.step_s": d / 2}), trace).figures
    r = trace.requests.iloc[request_order(trace)]
    measured = (r["end_s"] - r["arrival_s"]).to_numpy()
    drafted = trace.cycles.groupby("request_id")["tau"].sum().reindex(r["request_id"]).to_numpy()
    expected = float(np.median(measured - trace_speeds(trace) * (d / 2) * drafted))
    assert expected < 0.8 * float(np.median(measured))  # a draft-bound trace: a real move
    assert half["latency_s"]["p50"] == pytest.approx(expected, rel=0.02)


def test_speed_factors_do_not_depend_on_the_what_if_costs() -> None:
    trace = planted_trace("draft_bound", requests=30)
    base = scenario_from_trace(trace)
    own = calibrate(base, trace).speed_pool
    cheap = calibrate(base.with_overrides({"draft.step_s": 1e-4}), trace).speed_pool
    assert own is not None and cheap is not None
    np.testing.assert_array_equal(own, cheap)


def test_draft_step_what_if_moves_latency_and_speedup_together() -> None:
    """On the layer-skip capture a dearer draft is slower, and the target-only baseline (the
    same speed factors) does not move: speedup x mean latency stays the same."""
    trace = read_trace(str(LAYERSKIP))
    base = scenario_from_trace(trace)
    runs = [simulate(base.with_overrides({"draft.step_s": s}), trace).figures
            for s in (0.001, 0.004, 0.016, 0.064)]
    p50 = [f["latency_s"]["p50"] for f in runs]
    assert all(a < b for a, b in itertools.pairwise(p50))
    assert p50[-1] > 2.0 * p50[0]
    baseline = [f["speedup_vs_target_only"] * f["latency_s"]["mean"] for f in runs]
    assert max(baseline) == pytest.approx(min(baseline), rel=1e-9)


def test_layerskip_depth_chart_is_not_flat() -> None:
    from analysis.draftdepth import depth_sweep

    trace = read_trace(str(LAYERSKIP))
    result = depth_sweep(scenario_from_trace(trace), trace, depths=(1, 8, 24), scales=(1.0,),
                         jobs=1)
    p50 = [p["latency_s"]["p50"] for p in sorted(result.points,
                                                  key=lambda p: p["vary"]["draft.layers"])]
    assert p50[0] < p50[1] < p50[2]  # a deeper draft of the same size: more sequential steps
    assert p50[2] > 1.03 * p50[0]


def test_diagnose_cheaper_draft_advice_reflects_the_real_cost() -> None:
    """draft_bound's "cheaper draft" candidates (draft step / 2, / 4) save about that share of
    the drafting time."""
    trace = planted_trace("draft_bound", requests=60)
    f = next(f for f in diagnose(trace, draws=4) if f.kind == "draft_bound")
    start = f.predicted["baseline"]["p50_s"]
    share = f.evidence["draft_time_share"]
    step = f.evidence["draft_step_s"]
    by_step = {a["overrides"].get("draft.step_s"): a for a in f.predicted["alternatives"]}
    for factor in (2.0, 4.0):
        alt = by_step[step / factor]
        saved = 1.0 - alt["p50_s"] / start
        assert saved == pytest.approx(share * (1.0 - 1.0 / factor), rel=0.15)
        assert alt["improves"] is True


def test_draft_width_what_if_moves_latency() -> None:
    """``[draft] layers / hidden``: a wider draft of the same depth costs more per step."""
    trace = read_trace(str(LAYERSKIP))
    base = scenario_from_trace(trace)
    p50 = [simulate(base.with_overrides({"draft.layers": 8, "draft.hidden": h}), trace)
           .figures["latency_s"]["p50"] for h in (192, 576, 1152)]
    assert p50[0] < p50[1] < p50[2]
    assert p50[2] > 1.5 * p50[0]

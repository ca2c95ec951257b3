"""What the rest of specsim does with an imported trace: step costs fitted from cycle_s when the
split is unknown (per tau and per batch size), the replay at the trace's batch size, and
summaries/diagnoses that say which figures they cannot give."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from analysis.cli import main
from analysis.metrics import compute_metrics
from sim import scenario_from_trace, simulate
from tracing import CycleRecord, RequestRecord, RunMeta, Trace, write_trace
from tracing.importers import run_import

STEP = {0: 0.010, 2: 0.014, 4: 0.018}  # seconds of one whole step by tau (batch 1)
BATCH = {1: 1.0, 4: 1.5}  # a step of 4 requests takes 1.5x


def _trace(batched: bool = False) -> Trace:
    """Requests with steps of tau 2 and 4 (and a few target-only), cycle_s only."""
    cycles, requests, t = [], [], 0.0
    for rid in range(12):
        start, out, plan = t, 0, [4, 2, 4, 0, 2, 4, 4, 2]
        b = (4 if rid % 2 else 1) if batched else None
        for i, tau in enumerate(plan):
            acc = min(tau, (rid + i) % 3)
            step = STEP[tau] * (BATCH[b] if b else 1.0)
            cycles.append(CycleRecord(f"r{rid}", i, t, tau, acc, acc + 1, None, None, None,
                                      50 + out, batch_size=b, cycle_s=step))
            out += acc + 1
            t += step
        requests.append(RequestRecord(f"r{rid}", start, start, start + STEP[4], t, 50, out,
                                      0.005, len(plan)))
        t += 0.5
    meta = RunMeta(source="client", target_model="t", draft_model="d", policy="fixed",
                   policy_params={"tau": 4})
    return Trace.from_records(meta, requests, cycles)


def test_step_cost_per_tau_from_cycle_s() -> None:
    sc = scenario_from_trace(_trace())
    lat = sc.latency
    assert lat.draft_step_s == 0.0 and lat.overhead_s == 0.0
    assert lat.verify_table_s[0] == pytest.approx(STEP[0])
    assert lat.verify_table_s[2] == pytest.approx(STEP[2])
    assert lat.verify_table_s[4] == pytest.approx(STEP[4])
    # the replay charges the measured steps: its mean latency is the trace's (closed, no queue)
    trace = _trace()
    got = simulate(sc, trace, seed=0).figures["latency_s"]["mean"]
    want = float((trace.requests["end_s"] - trace.requests["arrival_s"]).mean())
    assert got == pytest.approx(want, rel=0.05)


def test_step_cost_per_batch_size_and_replay_batch() -> None:
    sc = scenario_from_trace(_trace(batched=True))
    assert sc.server.max_batch == 4
    table = sc.latency.batch_verify_table_s
    assert len(table) == 4
    assert table[0][5 - 1] == pytest.approx(STEP[4])  # batch 1, 5 tokens scored (tau 4)
    assert table[3][5 - 1] == pytest.approx(STEP[4] * BATCH[4])
    assert table[3][3 - 1] == pytest.approx(STEP[2] * BATCH[4])
    # a batch size never seen sits between its neighbours
    assert table[0][4] < table[1][4] < table[3][4]


def test_metrics_and_diagnose_say_what_they_cannot_give(tmp_path: Path) -> None:
    trace = _trace()
    m = compute_metrics(trace)
    assert m["speedup_vs_target_only"] is None and m["cycle_time_share"] is None
    assert {"speedup_vs_target_only", "verify_fit", "time_s.draft/verify/overhead"} <= set(
        m["unavailable"])
    assert m["draft_acceptance_rate"] > 0  # what it can give, it gives
    path = tmp_path / "t.jsonl"
    write_trace(trace, path)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(["diagnose", str(path), "--json", "--no-whatif"])
    assert rc == 0, err.getvalue()
    d = json.loads(out.getvalue())
    assert "speedup_vs_target_only" in d["metrics"]["unavailable"]
    kinds = {f["kind"] for f in d["findings"]}
    assert not kinds & {"speculation_not_paying", "draft_bound", "verify_not_parallel"}


def _vllm(tmp_path: Path, detailed: bool) -> Trace:
    rows = []
    for i in range(30):
        acc = [(i + j) % 4 for j in range(6)]
        spec = {"num_spec_steps": 6, "num_draft_tokens": 18, "num_accepted_draft_tokens": sum(acc),
                "num_spec_tokens": 3,
                "acceptance_histogram_by_draft_length": {"3": [acc.count(a) for a in range(4)]}}
        if detailed:
            spec.update(per_step_accepted=acc, per_step_drafted=[3] * 6)
        rows.append({"id": f"cmpl-{i}", "created": 1000 + i, "usage": {
            "prompt_tokens": 20, "completion_tokens": 1 + sum(acc) + 6},
            "metrics": {"time_to_first_token_ms": 30, "generation_time_ms": 60,
                        "queue_time_ms": 0, "speculative_decoding": spec}})
    src = tmp_path / "r.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = run_import("vllm", [str(src)])
    assert res.trace is not None
    return res.trace


@pytest.mark.parametrize("detailed", [True, False])
def test_imported_vllm_replays(tmp_path: Path, detailed: bool) -> None:
    sc = scenario_from_trace(_vllm(tmp_path, detailed))
    # the prefill's token (a 0 s target-only cycle) is not a draft that proposed nothing
    assert sc.draft.no_proposal_prob == 0.0
    assert sc.acceptance.replay is detailed  # a histogram has no order to replay
    # one draft length: the step cost is the line's intercept, 60 ms over 6 steps
    assert sc.latency.target_step_s == pytest.approx(0.010) and sc.latency.verify_slope_s == 0

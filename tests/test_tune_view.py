"""The tuned schedule outside `tune`: diagnose/report show it where batch sizes vary, and
`compare` puts a tuned run beside an untuned one."""

from __future__ import annotations

import tomllib
from typing import Any

from analysis.compare import compare
from analysis.report import WhatIfs, _whatif_html
from analysis.tune_view import quick_grid, quick_schedule, schedule_lines, schedule_reason
from sim import Scenario, simulate
from sim.policies.library import make_policy

SCENARIO = """
[workload]
requests = 24
prompt_tokens = 16
output_tokens = 24
concurrency = 8

[acceptance]
alpha = 0.8

[latency]
target_step_s = 0.02
draft_step_s = 0.0005
ridge_tokens = 8

[server]
max_batch = 8

[policy]
name = "fixed"
tau = 4
"""


def _run(policy: dict[str, Any], **server: Any) -> Any:
    d = tomllib.loads(SCENARIO)
    d["policy"] = policy
    d["server"].update(server)
    return simulate(Scenario.from_dict(d), seed=1).trace


def test_compare_puts_a_tuned_run_beside_an_untuned_one() -> None:
    untuned = _run({"name": "fixed", "tau": 4})
    tuned = _run({"name": "fixed", "tau": 4, "tau_by_batch": "1:4,4:2,8:0"})
    got = compare(untuned, tuned, draws=20)
    assert got["a"]["policy_spec"] == "fixed:tau=4"
    assert got["b"]["policy_spec"] == "fixed:tau=4,tau_by_batch=1:4,4:2,8:0"
    rows = {r["batch_size"]: r for r in got["by_batch_size"]}
    assert rows[8]["a"]["mean_tau"] > 3  # untuned drafts 4 at a full batch (less near the end)
    assert rows[8]["b"]["mean_tau"] == 0 and rows[8]["b"]["tokens_per_cycle"] == 1.0
    assert sum(r["b"]["cycles"] for r in rows.values() if r["b"]) == len(tuned.cycles)
    # the tuned run did what its schedule says at every batch size it met
    policy = make_policy(got["b"]["policy_spec"])
    for size, row in rows.items():
        if row["b"] is not None:
            assert row["b"]["mean_tau"] <= policy.tau_for_batch(size)


def test_schedule_shown_only_where_batch_sizes_vary() -> None:
    single = _run({"name": "fixed", "tau": 4}, max_batch=1)
    assert schedule_reason(single) is None and quick_schedule(single) is None
    live_like = _run({"name": "fixed", "tau": 4})
    live_like.cycles["batch_size"] = live_like.cycles.groupby("start_s")["request_id"].transform(
        "size")
    assert "batch sizes" in (schedule_reason(live_like) or "")
    assert quick_grid(live_like) == ([1, 2, 4, 8], [0, 1, 2, 4])


def test_quick_schedule_and_its_report_lines() -> None:
    trace = _run({"name": "fixed", "tau": 4})
    trace.cycles["batch_size"] = trace.cycles.groupby("start_s")["request_id"].transform("size")
    view = quick_schedule(trace, draws=2)
    assert view is not None
    assert view["schedule"][0]["batch_from"] == 1 and view["schedule"][-1]["batch_to"] == 8
    make_policy(view["serve_policy"])  # serve takes it as it is
    lines = schedule_lines(view)
    assert lines[0].startswith("Draft length per batch size")
    assert len(lines) == len(view["schedule"]) + 2 and "specsim tune" in lines[-1]
    w = WhatIfs(requests=24, slo_p95_ms=1.0, slo_source="given", measured_p95_ms=1.0,
                measured_latency_s=trace.requests["end_s"].to_numpy(), schedule=view)
    assert "draft length per batch size" in _whatif_html(w)

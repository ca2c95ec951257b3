"""Issue 26 part 3: a budget keeps the policy, speedup compares equal work, and an infeasible
budget is said (simulate, whatif, diagnose) -- never blamed on the policy."""

from __future__ import annotations

import json

import pytest

from analysis.cli import main
from analysis.diagnose import diagnose
from sim.engine.core import simulate
from sim.scenario import Scenario

SHORT = {  # 2 passes per request where 120 tokens need ~50 at this acceptance
    "workload": {"requests": 40, "output_tokens": 120, "prompt_tokens": 200},
    "acceptance": {"model": "iid", "alpha": 0.6},
    "policy": {"name": "fixed", "tau": 8},
    "budget": {"mean_verify_per_request": 2},
}


def _scenario(**policy: object) -> Scenario:
    base = Scenario.from_dict(SHORT)
    return base.with_overrides({f"policy.{k}": v for k, v in policy.items()})


@pytest.mark.parametrize("tau", [2, 3, 8])
def test_a_short_budget_keeps_the_policys_tau(tau: int) -> None:
    f = simulate(_scenario(tau=tau)).figures
    assert f["mean_tau"] <= tau  # was 16 for every tau: the wrapper raised it
    assert f["truncated_requests"] == 40


def test_policies_under_one_budget_give_different_figures() -> None:
    runs = [simulate(_scenario(tau=t)).figures for t in (2, 8)]
    runs.append(simulate(_scenario(name="heuristic")).figures)
    assert len({round(f["tokens_per_cycle"], 6) for f in runs}) == 3
    assert len({round(f["latency_s"]["mean"], 9) for f in runs}) == 3


def test_speedup_of_a_truncated_run_is_per_output_token() -> None:
    run = simulate(_scenario(tau=2)).figures
    target_only = simulate(_scenario(name="target_only").with_overrides(
        {"budget.mean_verify_per_request": 0})).figures
    per_token_run = run["latency_s"]["mean"] / (run["output_tokens"] / run["requests"])
    per_token_base = target_only["latency_s"]["mean"] / 120
    assert run["speedup_vs_target_only"] == pytest.approx(per_token_base / per_token_run,
                                                          rel=1e-6)
    assert run["speedup_vs_target_only"] < 3  # x23 before: 4-token requests vs 120-token ones


def test_simulate_says_the_budget_is_infeasible_and_by_how_much() -> None:
    result = simulate(_scenario(tau=2))
    b = result.figures["budget"]
    assert b["feasible"] is False and b["passes_per_request"] == 2
    assert b["asked_tokens"] == 120
    assert b["reachable_tokens"] == pytest.approx(2 * b["tokens_per_pass"], rel=1e-3)
    assert b["passes_needed"] == pytest.approx(120 / b["tokens_per_pass"], rel=1e-3)
    assert any(w.startswith("budget infeasible: 2 verify passes") for w in result.warnings)


def test_a_feasible_budget_is_not_flagged() -> None:
    result = simulate(_scenario(tau=2).with_overrides({"budget.mean_verify_per_request": 200}))
    assert result.figures["budget"]["feasible"] is True
    assert result.figures["truncated_requests"] == 0
    assert not any("infeasible" in w for w in result.warnings)


def test_whatif_shows_truncation_and_infeasibility(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "short.toml"
    path.write_text(_scenario(tau=8).to_toml())
    assert main(["whatif", str(path), "--vary", "policy.tau=2,8", "--intervals", "0"]) == 0
    out = capsys.readouterr().out
    assert "policy.tau=2: 40 of 40 requests truncated by the budget" in out
    assert "budget infeasible" in out and "the workload asks 120" in out
    assert main(["whatif", str(path), "--vary", "policy.tau=2,8", "--intervals", "0",
                 "--json"]) == 0
    points = json.loads(capsys.readouterr().out)["points"]
    assert [p["budget"]["feasible"] for p in points] == [False, False]
    assert [p["mean_tau"] for p in points] == [2.0, 8.0]


def test_diagnose_says_infeasible_and_blames_no_tau_on_the_budget() -> None:
    """A budgeted run of fixed tau=2 (whose tau is fine at alpha 0.6): only budget_bound, and
    it says how far the budget is from what the workload asks. Before, the wrapper's tau of 16
    drew a false over_speculation."""
    trace = simulate(_scenario(tau=2)).trace
    findings = diagnose(trace, whatif=False)
    assert [f.kind for f in findings] == ["budget_bound"]
    f = findings[0]
    assert f.evidence["budget_reach"]["asked_tokens"] == 120
    assert f.evidence["budget_reach"]["feasible"] is False
    assert f.recommendation.startswith("budget infeasible: 2 verify passes per request")

"""`specsim simulate` / `specsim whatif` end to end through `python -m analysis.cli`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from sim import Scenario, simulate
from tracing import read_trace

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = """
[workload]
requests = 40
prompt_tokens = 16
output_tokens = 24
arrival = "poisson"
rate_per_s = 2.0

[acceptance]
alpha = 0.7

[latency]
target_step_s = 0.02
draft_step_s = 0.004

[policy]
name = "fixed"
tau = 3
"""


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI as users do; never raises on a non-zero exit."""
    return subprocess.run([sys.executable, "-m", "analysis.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def scenario_file(tmp_path: Path) -> Path:
    path = tmp_path / "s.toml"
    path.write_text(SCENARIO)
    return path


def test_simulate_json_keys(scenario_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "runs" / "sim.jsonl"
    res = run("simulate", str(scenario_file), "--json", "--out", str(out))
    assert res.returncode == 0, res.stderr
    figures = json.loads(res.stdout)
    for key in ("requests", "tokens_per_cycle", "verify_passes_per_request", "throughput_tok_s",
                "speedup_vs_target_only", "overloaded", "warnings"):
        assert key in figures
    assert set(figures["latency_s"]) >= {"mean", "p50", "p95", "p99"}
    assert set(figures["ttft_s"]) >= {"p50", "p95"}
    assert set(figures["queue_s"]) >= {"mean", "p50", "p95"}
    assert figures["requests"] == 40
    # The same figures as the library, the trace written and the resolved config beside it.
    direct = simulate(Scenario.from_toml(scenario_file)).figures
    assert figures["latency_s"]["p95"] == pytest.approx(direct["latency_s"]["p95"])
    trace = read_trace(out)
    assert len(trace.requests) == 40 and trace.meta.source == "sim"
    assert Scenario.from_toml(tmp_path / "runs" / "sim.scenario.toml") == Scenario.from_toml(
        scenario_file)


def test_simulate_seed_and_replications(scenario_file: Path) -> None:
    a = json.loads(run("simulate", str(scenario_file), "--json", "--seed", "7").stdout)
    b = json.loads(run("simulate", str(scenario_file), "--json", "--seed", "8").stdout)
    assert a["seed"] == 7 and a["latency_s"] != b["latency_s"]
    rep = json.loads(run("simulate", str(scenario_file), "--json", "--replications", "4").stdout)
    lo, hi = rep["latency_s"]["p95_ci"]
    assert lo <= rep["latency_s"]["p95"] <= hi
    assert rep["replications"]["n"] == 4


def test_simulate_human_output(scenario_file: Path) -> None:
    res = run("simulate", str(scenario_file))
    assert res.returncode == 0, res.stderr
    assert "latency (ms)" in res.stdout and "tokens per cycle" in res.stdout


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[acceptance]\nalpha = 1.5\n", "alpha"),
        ("[workload]\nbogus_key = 1\n", "bogus_key"),
        ("[nosection]\nx = 1\n", "nosection"),
        ("[policy]\nname = \"nosuch\"\n", "nosuch"),
        ("not toml = = \n", "TOML"),
    ],
)
def test_bad_scenarios_exit_2_naming_the_key(tmp_path: Path, text: str, named: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    res = run("simulate", str(path), "--json")
    assert res.returncode == 2
    assert named in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert res.stdout == ""


def test_bad_inputs_exit_2(scenario_file: Path, tmp_path: Path) -> None:
    assert run("simulate", str(tmp_path / "missing.toml")).returncode == 2
    needs = tmp_path / "needs.toml"
    needs.write_text('[workload]\noutput_tokens = "trace"\n')
    res = run("simulate", str(needs))
    assert res.returncode == 2 and "--trace" in res.stderr
    res = run("whatif", str(scenario_file), "--vary", "policy.nosuch=1,2")
    assert res.returncode == 2 and "nosuch" in res.stderr
    res = run("whatif", str(scenario_file), "--vary", "acceptance.alpha=0.5,7")
    assert res.returncode == 2 and "alpha" in res.stderr
    res = run("whatif", str(scenario_file), "--vary", "policy.tau")
    assert res.returncode == 2 and "KEY=V1,V2" in res.stderr
    bad_trace = tmp_path / "bad.jsonl"
    bad_trace.write_text('{"type": "run", "schema_version": 1}\n{"type": "cycle"}\n')
    res = run("whatif", str(bad_trace), "--vary", "policy.tau=1,2")
    assert res.returncode == 2 and "bad.jsonl" in res.stderr


def test_whatif_best_is_lowest_feasible_p95(scenario_file: Path, tmp_path: Path) -> None:
    res = run("whatif", str(scenario_file), "--vary", "policy.tau=0,1,2,4,8",
              "--vary", "acceptance.alpha=0.4,0.8", "--slo-p95-ms", "1500", "--json",
              "--jobs", "2", "--out", str(tmp_path / "grid"))
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    points = out["points"]
    assert len(points) == 10
    assert points[5]["vary"] == {"policy.tau": 2, "acceptance.alpha": 0.8}
    for p in points:
        # "yes" only when the whole p95 interval is below the SLO; "within_noise" when it
        # straddles it
        lo, hi = p["ci95"]["p95_s"]
        want = "yes" if hi * 1e3 <= 1500 else "within_noise" if lo * 1e3 <= 1500 else "no"
        assert p["meets_slo"] == want
        assert "throughput_tok_s" in p and "speedup_vs_target_only" in p
    feasible = [p for p in points if p["feasible"]]
    assert feasible, "the test grid should have a feasible point"
    assert all(p["meets_slo"] == "yes" for p in feasible)
    # The best is feasible; without condition keys best_by_condition holds it alone.
    assert out["best"]["vary"] in [p["vary"] for p in feasible]
    assert out["best_by_condition"] == [{"condition": {}, "best": out["best"],
                                         "tied": out["tied"], "reason": out["best_reason"],
                                         "kept_incumbent": out["best_by_condition"][0][
                                             "kept_incumbent"]}]
    assert all(p["ci95"]["p95_s"][0] <= p["latency_s"]["p95"] <= p["ci95"]["p95_s"][1]
               for p in points)
    table = pd.read_csv(tmp_path / "grid" / "whatif.csv")
    assert len(table) == 10 and table["feasible"].sum() == len(feasible)
    assert Scenario.from_toml(tmp_path / "grid" / "scenario.toml") == Scenario.from_toml(
        scenario_file)


def test_whatif_from_a_trace_and_human_table(tmp_path: Path) -> None:
    trace = ROOT / "tests" / "data" / "sample_synthetic.jsonl"
    res = run("whatif", str(trace), "--vary", "policy.tau=1,4", "--jobs", "1")
    assert res.returncode == 0, res.stderr
    assert "policy.tau" in res.stdout and "best:" in res.stdout


def test_overloaded_scenario_finishes_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "over.toml"
    path.write_text(SCENARIO.replace("rate_per_s = 2.0", "rate_per_s = 40.0").replace(
        "requests = 40", "requests = 300"))
    res = run("simulate", str(path))
    assert res.returncode == 0
    assert "grows without bound" in res.stdout + res.stderr
    figures = json.loads(run("simulate", str(path), "--json").stdout)
    assert figures["overloaded"] is True

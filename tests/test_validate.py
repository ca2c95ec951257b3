"""`specsim validate` on simulated "live" runs whose ground truth the simulator knows."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from analysis.validate import kind_of, load_run, validate, with_lengths_of, write_html
from sim import Scenario, simulate
from tracing import Trace, write_trace

ROOT = Path(__file__).resolve().parents[1]


def live_like(tmp_path: Path, name: str, policy: dict[str, object], workload: str = "edit",
              output_tokens: int = 48, profile: list[float] | None = None) -> str:
    """A simulated run dressed as a live capture of ``workload`` (costs linear in tau, CPU-like),
    with a verify-cost ``profile`` in its metadata if given."""
    scenario = Scenario.from_dict({
        "workload": {"requests": 24, "prompt_tokens": {"dist": "uniform", "low": 40, "high": 120},
                     "output_tokens": output_tokens, "seed": 3},
        "acceptance": {"model": "positional", "alpha": [0.8, 0.7, 0.6, 0.5, 0.45, 0.4, 0.35, 0.3]},
        "latency": {"target_step_s": 0.05, "verify_slope_s": 0.004, "draft_step_s": 0.001,
                    "overhead_s": 0.0005, "prefill_s_per_token": 0.0002},
        "policy": policy,
    })
    trace = simulate(scenario).trace
    extra: dict[str, object] = {"workload": workload}
    if profile:
        extra["verify_profile_s"] = {"seconds": profile}
    meta = dataclasses.replace(trace.meta, source="live", draft_model="ngram",
                               target_model="smollm2", extra=extra)
    path = str(tmp_path / f"{name}.jsonl")
    write_trace(Trace(meta, trace.requests, trace.cycles, None), path)
    return path


@pytest.fixture
def runs(tmp_path: Path) -> dict[str, str]:
    return {
        "tau2": live_like(tmp_path, "tau2", {"name": "fixed", "tau": 2}),
        "tau6": live_like(tmp_path, "tau6", {"name": "fixed", "tau": 6}),
        "base": live_like(tmp_path, "base", {"name": "target_only"}),
    }


def test_pairs_kinds_and_replay_accuracy(runs: dict[str, str]) -> None:
    result = validate(list(runs.values()))
    pairs = result["pairs"]
    # Target-only runs give the measured speedup but are neither A nor B.
    assert len(pairs) == 4
    assert {(p["a"], p["b"]) for p in pairs} == {
        (a, b) for a in (runs["tau2"], runs["tau6"]) for b in (runs["tau2"], runs["tau6"])}
    for p in pairs:
        assert p["measured"]["speedup_basis"] == "measured"
        assert set(p["error"]) == {"p50_s", "p95_s", "tokens_per_cycle", "speedup"}
        if p["kind"] == "replay":
            assert abs(p["error"]["p50_s"]) < 0.05 and abs(p["error"]["p95_s"]) < 0.05
            assert not p["extrapolated"]
    assert result["summary"]["replay"]["meets_goal"] is True


def test_covered_prediction_within_10_percent_and_extrapolation_flagged(
    runs: dict[str, str],
) -> None:
    pairs = {(Path(p["a"]).stem, Path(p["b"]).stem): p for p in validate(list(runs.values()))[
        "pairs"]}
    down = pairs[("tau6", "tau2")]  # tau 2 from a run that drafted up to 6: covered
    assert down["kind"] == "other policy" and not down["extrapolated"]
    for m in ("p50_s", "p95_s", "tokens_per_cycle"):
        assert abs(down["error"][m]) < 0.10, (m, down["error"])
    up = pairs[("tau2", "tau6")]  # positions 3..6 never observed in the tau 2 run
    assert up["extrapolated"] and "A observed up to 2" in up["extrapolation"]


def test_workloads_are_not_mixed(tmp_path: Path) -> None:
    a = live_like(tmp_path, "edit", {"name": "fixed", "tau": 2}, workload="edit")
    b = live_like(tmp_path, "chat", {"name": "fixed", "tau": 4}, workload="chat")
    result = validate([a, b])
    assert [p["kind"] for p in result["pairs"]] == ["replay", "replay"]
    assert sorted(result["workloads"]) == ["chat", "edit"]
    # Without a target-only run the speedup is measured against B's own fitted costs.
    assert result["pairs"][0]["measured"]["speedup_basis"] == "B's costs"


def test_kinds_and_lengths(tmp_path: Path) -> None:
    a = load_run(live_like(tmp_path, "a", {"name": "fixed", "tau": 2}))
    b = load_run(live_like(tmp_path, "b", {"name": "fixed", "tau": 2}, output_tokens=20))
    assert kind_of(a, a) == "replay" and kind_of(a, b) == "same config"
    other = dataclasses.replace(b, draft="layerskip")
    assert kind_of(a, other) == "other draft"
    mixed = with_lengths_of(a.trace, b.trace)
    assert mixed.requests["output_tokens"].tolist() == [20] * 24
    assert len(mixed.cycles) == len(a.trace.cycles)


def test_html_is_self_contained(runs: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "v" / "report.html"
    write_html(validate([runs["tau2"], runs["tau6"]]), str(out))
    html = out.read_text()
    assert "plotly" in html.lower() and "predicted vs measured" in html
    assert "error by kind of pair" in html and "within 10%" in html
    assert 'src="http' not in html


def test_cli_json_and_bad_input(runs: dict[str, str], tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "analysis.cli", "validate"]
    res = subprocess.run([*cmd, runs["tau2"], runs["tau6"], "--json", "-o",
                          str(tmp_path / "r.html")], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert len(out["pairs"]) == 4 and "replay" in out["summary"]
    assert (tmp_path / "r.html").exists()
    res = subprocess.run([*cmd, str(tmp_path / "missing.jsonl")], cwd=ROOT,
                         capture_output=True, text=True)
    assert res.returncode == 2 and "missing.jsonl" in res.stderr


def test_unmeasured_draft_lengths_are_costed_from_the_profile_or_flagged(tmp_path: Path) -> None:
    profile = [0.05 + 0.004 * n for n in range(12)]  # the pass for 1..12 tokens
    b = live_like(tmp_path, "tau6", {"name": "fixed", "tau": 6})
    with_profile = live_like(tmp_path, "tau2p", {"name": "fixed", "tau": 2}, profile=profile)
    without = live_like(tmp_path, "tau2", {"name": "fixed", "tau": 2})
    for a, listed in ((with_profile, [3, 4, 5, 6]), (without, [])):
        pair = next(p for p in validate([a, b])["pairs"] if p["a"] == a and p["b"] == b)
        assert pair["verify_from_profile"] == listed
        assert pair["extrapolated"]  # positions 3..6 were never drafted: acceptance is
        assert ("tau 3-6 from a line" in pair["extrapolation"]) == (not listed)

"""`specsim compare`: a trace against itself, planted differences, diverging greedy outputs."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from analysis.cli import main
from analysis.compare import compare, flatten
from sim import Scenario, simulate
from tracing import summarize
from tracing.io import read_trace
from tracing.outputs import public_mode
from tracing.trace import Trace

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "tests" / "data" / "sample_synthetic.jsonl"  # greedy, prompt texts only
DEMO = ROOT / "traces" / "live_edit_ngram.jsonl"  # a greedy live capture with output texts


def _sim(alpha: float, step: float = 0.02, seed: int = 0) -> Trace:
    return simulate(Scenario.from_dict({
        "workload": {"requests": 40, "output_tokens": 64, "seed": seed},
        "acceptance": {"model": "iid", "alpha": alpha},
        "latency": {"target_step_s": step, "draft_step_s": 0.002},
    }), seed=seed).trace


def test_a_trace_against_itself_has_no_significant_difference() -> None:
    trace = read_trace(str(DEMO))
    out = compare(trace, trace, draws=30)
    assert out["significant"] == [] and out["paired"]
    assert out["outputs"] == "identical" and out["outputs_differ"] is None
    # Every numeric figure of `trace summary --json`, dotted.
    assert set(out["metrics"]) == set(flatten(summarize(trace)))
    for key in ("latency_s.p50", "latency_s.p95", "tokens_per_cycle", "acceptance_by_position.0",
                "mean_accepted", "requests", "cycles"):
        m = out["metrics"][key]
        assert set(m) >= {"a", "b", "change", "ci95", "significant"}
        assert m["change"] == 0 and not m["significant"]


def test_planted_differences_are_detected() -> None:
    a, b = _sim(alpha=0.8), _sim(alpha=0.4, step=0.03)
    out = compare(a, b, draws=60)
    m = out["metrics"]
    assert not out["paired"] or out["paired"]  # same lengths: paired by prompt length
    for key in ("tokens_per_cycle", "draft_acceptance_rate", "latency_s.p50", "latency_s.mean"):
        assert m[key]["significant"], key
        lo, hi = m[key]["ci95"]
        assert lo <= m[key]["change"] <= hi
    assert m["tokens_per_cycle"]["change"] < 0 and m["latency_s.p50"]["change"] > 0
    assert out["outputs"].startswith("not") or out["outputs"] == "not recorded"
    assert any("output texts not recorded" in x for x in out["missing"])


def test_greedy_outputs_that_differ_come_first() -> None:
    a = read_trace(str(DEMO))
    b = Trace(copy.deepcopy(a.meta), a.requests.copy(), a.cycles.copy(), path="b.jsonl")
    order = b.requests.sort_values("arrival_s").index
    row = order[3]
    text = b.requests.at[row, "output_text"]
    b.requests.at[row, "output_text"] = text[:5] + ("X" if text[5] != "X" else "Y") + text[6:]
    out = compare(a, b, draws=10)
    assert next(iter(out)) == "outputs_differ"
    d = out["outputs_differ"]
    assert d["prompt_index"] == 3 and d["char_position"] == 5 and d["prompts_differing"] == 1
    assert out["outputs"] == "differ"


def test_string_request_ids_compare(tmp_path: Path) -> None:
    a = read_trace(str(DEMO))
    r, c = a.requests.copy(), a.cycles.copy()
    r["request_id"] = [f"chatcmpl-{i}" for i in r["request_id"]]
    c["request_id"] = [f"chatcmpl-{i}" for i in c["request_id"]]
    b = Trace(copy.deepcopy(a.meta), r, c)
    out = compare(a, b, draws=10)
    assert out["significant"] == [] and out["outputs"] == "identical"


def test_compare_cli_json_page_and_no_clobber(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    page = tmp_path / "cmp.html"
    assert main(["compare", str(SAMPLE), str(SAMPLE), "--json", "--draws", "10",
                 "-o", str(page)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"a", "b", "metrics"} <= set(out) and out["written"] == [str(page)]
    assert out["metrics"]["latency_s.p50"]["significant"] is False
    html = page.read_text()
    assert "Request latency: A against B" in html and "Plotly" in html
    assert page.stat().st_mode & 0o777 == public_mode()
    assert main(["compare", str(SAMPLE), str(SAMPLE), "-o", str(page)]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["compare", str(SAMPLE), str(SAMPLE), "--draws", "10"]) == 0
    assert "no significant difference" in capsys.readouterr().out


def test_an_imported_trace_says_what_it_cannot_give() -> None:
    import sys

    sys.path.insert(0, str(ROOT / "tests"))
    from test_imported_downstream import _trace  # cycle_s only, string ids, no texts

    a, b = _trace(), _trace(batched=True)
    same = compare(a, a, draws=10)
    assert same["significant"] == [] and same["outputs"] == "not recorded"
    assert any("per-phase split is not measured" in m for m in same["missing"])
    assert compare(a, b, draws=20)["metrics"]["latency_s.mean"]["significant"]

"""Reports a person reads (issue 24, part 4): charts only where they mean something for the
draft, labelled tables instead of key=value dumps, "unlimited" budgets, measured and simulated
figures labelled, severity explained, the basis and band of a text-mode simulate."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from analysis.cli import main
from analysis.draftdepth import depth_applies
from analysis.report import ReportConfig, WhatIfConfig, build_report, render_html
from analysis.report_tables import SEVERITY_NOTE, settings_text, table, value_text
from conftest import make_small_trace

FAST = WhatIfConfig(taus=(2,), budget_fractions=(1.0,), hardware=("H100",), draft_scales=(1.0,),
                    requests=20, intervals=0)
FINDING = {"kind": "budget_bound", "title": "requests hit the verify budget", "severity": 0.71,
           "level": "high", "recommendation": "raise the budget",
           "evidence": {"share_at_cap": 0.4, "policy": {"name": "fixed", "tau": 4},
                        "budget": {"max_verify_per_request": 0}},
           "predicted": {"overrides": {"budget.max_verify_per_request": 0}, "p95_s": 0.05,
                         "baseline": {"p50_s": 0.04, "p95_s": 0.06,
                                      "speedup_vs_target_only": 1.32},
                         "p50_s": 0.03, "speedup_vs_target_only": 1.36, "improves": True}}


def _trace(draft: str) -> object:
    trace = make_small_trace()
    trace.meta.draft_model = draft
    trace.meta.extra["target_n_params"] = 1.3e8
    return trace


def test_depth_means_something_only_for_drafts_with_layers() -> None:
    assert "n-gram" in depth_applies(_trace("ngram:n=3"))  # type: ignore[arg-type]
    assert "no draft" in depth_applies(_trace("none"))  # type: ignore[arg-type]
    assert depth_applies(_trace("layerskip:layers=8")) == ""  # type: ignore[arg-type]
    assert depth_applies(_trace("HuggingFaceTB/SmolLM2-135M")) == ""  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def ngram_page() -> str:
    data = build_report(_trace("ngram"), ReportConfig(whatif=FAST),  # type: ignore[arg-type]
                        findings=[FINDING], metrics={"speedup_vs_target_only": 1.32,
                                                     "latency_s": {"p50": 0.04, "p95": 0.06}})
    return render_html(data)


def test_an_ngram_report_has_no_depth_chart_and_says_why(ngram_page: str) -> None:
    headings = re.findall(r"<h2>(.*?)</h2>", ngram_page)
    assert not [h for h in headings if "depth" in h]
    assert "draft depth</b>: not drawn: the draft (ngram) is an n-gram lookup" in ngram_page


def test_tables_are_labelled_not_dumps(ngram_page: str) -> None:
    # nested evidence, metrics and run metadata: sub-tables under their labels, no "k=v, k=v"
    cells = re.findall(r"<td>([^<]*)</td>", ngram_page)
    assert cells and not [c for c in cells if re.search(r"\w=\S", c)]
    assert "<th>budget</th><td><table class='kv'><tr><th>max_verify_per_request</th>" \
           "<td>unlimited</td>" in ngram_page
    html = table({"workload": {"requests": 3, "arrival": "file"}, "taus": [1, 2]},
                 caption="Scenario")
    assert html.startswith("<table class='kv'><caption>Scenario</caption><tr><th>workload</th>"
                           "<td><table class='kv'><tr><th>requests</th><td>3</td>")
    rows = table({"points": [{"tau": 1, "p95_s": 0.5}, {"tau": 2, "p95_s": 0.25}]})
    assert "<th>tau</th><th>p95_s</th>" in rows and "<td>0.25</td>" in rows


def test_a_zero_budget_reads_unlimited() -> None:
    assert value_text(0, "budget.max_verify_per_request") == "unlimited"
    assert value_text(0, "max_verify") == "unlimited"
    assert value_text(12, "budget.max_verify_per_request") == "12"
    assert value_text(0, "policy.tau") == "0"
    assert settings_text({"policy.tau": 3, "budget.max_verify_per_request": 0}) == (
        "policy.tau 3; budget.max_verify_per_request unlimited")


def test_measured_and_simulated_are_labelled(ngram_page: str) -> None:
    headings = re.findall(r"<h2>(.*?)</h2>", ngram_page)
    for h in headings:
        if h.startswith(("Timeline", "Accepted", "Acceptance", "Latency", "Draft length")):
            assert h.endswith("(measured)"), h
        if h.startswith("What-if"):
            assert "simulated" in h, h
    assert "Read off this simulated trace" in headings  # the small trace is source "sim"
    assert "Metrics (read off this simulated trace)" in headings
    assert "simulated speedup x1.32 -> x1.36" in ngram_page
    assert "predicted (simulated)" in ngram_page
    live = make_small_trace()
    live.meta.source = "live"
    page = render_html(build_report(live, ReportConfig(whatif=None), findings=[], metrics={}))
    assert "<h2>Measured in this trace</h2>" in page


def test_severity_is_explained(ngram_page: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert SEVERITY_NOTE[:40] in ngram_page and "(severity 0.71)" in ngram_page
    from rich.console import Console

    from analysis.commands import _print_findings

    _print_findings(Console(width=200), [FINDING])
    out = " ".join(capsys.readouterr().out.split())
    assert "Severity (0 to 1) says how far past its detector's threshold" in out


def test_text_simulate_shows_basis_and_band(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    scenario = tmp_path / "h100.toml"
    scenario.write_text("[workload]\nrequests = 10\noutput_tokens = 16\n"
                        '[latency]\nhardware = "H100"\n[target]\nmodel = "llama-3.1-8b"\n')
    assert main(["simulate", str(scenario)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "basis: catalog" in out and "band 2.7" in out
    assert re.search(r"latency band /2\.7 to x2\.7 \(ms\) │ │ [\d,.]+-[\d,.]+ │", out)
    plain = tmp_path / "plain.toml"
    plain.write_text("[workload]\nrequests = 10\noutput_tokens = 16\n")
    assert main(["simulate", str(plain)]) == 0
    out = capsys.readouterr().out
    assert "basis: scenario" in out and "latency band" not in out

"""The report's figures say what they show: readable axes, rolling means, CDF steps, bars that
match the cards, the budget's truncation explained, findings first, one speedup format."""

from __future__ import annotations

import numpy as np
import pytest

from analysis import figures as F
from analysis.planted import planted_trace
from analysis.report import ReportConfig, _findings_html, build_report, render_html
from tracing import summarize


def _hw_points() -> list[dict]:
    return [{"vary": {"latency.hardware": name}, "latency_s": {"p50": p, "p95": 2 * p, "p99": 3 * p},
             "speedup_vs_target_only": s}
            for name, p, s in (("A100", 0.8, 2.1345), ("H100", 0.5, 2.5), ("CPU", 9.0, 0.6476))]


def test_hardware_chart_axes_labels_and_legend() -> None:
    fig = F.comparison_bars(_hw_points(), "latency.hardware", title="hw", slo_p95_ms=1500.0)
    axis = fig.layout.yaxis
    assert axis.type == "log" and axis.minor.ticks == ""
    ticks = list(axis.tickvals)
    assert 2 <= len(ticks) <= 8
    for t in ticks:  # 1, 2 or 5 times a power of ten only
        assert round(t / 10 ** np.floor(np.log10(t)), 6) in (1, 2, 5)
    labels = next(d for d in fig.data if d.type == "scatter" and d.mode == "text")
    assert list(labels.text) == ["x2.13", "x2.50", "x0.65"]
    assert labels.showlegend and "speedup" in labels.name
    assert any("SLO" in (s.text or "") for s in fig.layout.annotations)


def test_measured_cdf_is_drawn_as_steps() -> None:
    v = np.array([1.0, 2.0, 3.0, 4.0])
    fig = F.latency_distributions({"measured": v}, title="t")
    line = fig.data[0]
    assert line.line.shape == "hv"
    assert list(line.x) == [1000.0, 1000.0, 2000.0, 3000.0, 4000.0]
    assert list(line.y) == [0.0, 0.25, 0.5, 0.75, 1.0]  # one step of 1/n per request


def test_breakdown_bars_are_the_cards_figures() -> None:
    trace = planted_trace("healthy", requests=31)
    card = summarize(trace)["latency_s"]
    fig = F.latency_breakdown(trace)
    labels = list(fig.data[0].y)
    totals = np.sum([list(d.x) for d in fig.data], axis=0)
    for name in ("p50", "p95", "p99"):
        i = next(k for k, label in enumerate(labels) if label.startswith(name + " "))
        assert totals[i] == pytest.approx(card[name], rel=1e-9)
        assert f"{card[name] * 1e3:,.0f} ms" in labels[i]


def test_budget_curve_explains_truncated_requests() -> None:
    points = [
        {"vary": {"budget.max_verify_per_request": 0}, "latency_s": {"p50": 1.0, "p95": 2.0},
         "truncated_requests": 0, "feasible": True, "tokens_per_cycle": 2.0},
        {"vary": {"budget.max_verify_per_request": 10}, "latency_s": {"p50": 0.4, "p95": 0.6},
         "truncated_requests": 7, "feasible": False, "tokens_per_cycle": 2.0},
    ]
    fig = F.whatif_curve(points, "budget.max_verify_per_request", title="b",
                         zero_label="unlimited")
    notes = " ".join(a.text for a in fig.layout.annotations)
    assert "cut short" in notes and "10: 7" in notes and "truncated" in notes


def test_findings_come_first_with_their_intervals() -> None:
    trace = planted_trace("over_speculation", requests=30)
    config = ReportConfig(whatif=None)
    from analysis.diagnose import diagnose

    findings = [f.to_dict() for f in diagnose(trace, draws=4)]
    data = build_report(trace, config, findings=findings, metrics={"speedup_vs_target_only": 0.6476})
    page = render_html(data)
    assert page.index("<h2>Findings</h2>") < page.index("class=\"tiles\"")
    cards = _findings_html(findings)
    assert "predicted" in cards and "change" in cards and "95% interval" in cards
    # One speedup format everywhere: x0.65, never 0.6476.
    assert "x0.65" in page and "0.6476" not in page

"""What a report shows, computed: :func:`build_report` gathers the diagnosis, the what-ifs
(:mod:`analysis.report_whatifs`), the downsampled figures and sample requests into a
:class:`ReportData`, which :mod:`analysis.report_html` only formats.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import plotly.graph_objects as go

from analysis import figures as F
from analysis.report_whatifs import WhatIfConfig, WhatIfs, run_whatifs
from tracing.summary import summarize
from tracing.trace import Trace

Step = Callable[[str], None]


@dataclass
class ReportConfig:
    """What goes into a report and how large the downsampled parts may be."""

    timeline_requests: int = 20  # requests drawn in the timeline (first by arrival)
    timeline_cycles: int = 3000  # cycles drawn in the timeline at most
    time_bins: int = 300  # bins of the tau-over-time series
    samples: int = 8  # requests whose prompt/output text is shown
    text_chars: int = 400  # characters of each prompt/output shown
    whatif: WhatIfConfig | None = field(default_factory=WhatIfConfig)  # None: no what-ifs


@dataclass
class ReportData:
    """Everything a report shows, computed; :func:`render_html` only formats it."""

    title: str
    meta: dict[str, Any]
    summary: dict[str, Any]
    metrics: dict[str, Any]
    findings: list[dict[str, Any]]
    figures: list[tuple[str, go.Figure]]  # (section heading, figure)
    samples: list[dict[str, Any]]
    whatifs: WhatIfs | None
    warnings: list[str] = field(default_factory=list)
    text_chars: int = 400


def findings_and_metrics(trace: Trace, whatif: bool = True) -> tuple[list[dict[str, Any]], dict]:
    """``diagnose(trace)`` as dicts (most severe first) and ``compute_metrics(trace)``."""
    from analysis.diagnose import diagnose
    from analysis.metrics import compute_metrics

    findings = [f.to_dict() for f in diagnose(trace, whatif=whatif)]
    return order_findings(findings), compute_metrics(trace)


_SEVERITY_WORDS = {"critical": 4, "high": 3, "warning": 2, "medium": 2, "low": 1, "info": 0}


def order_findings(findings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Most severe first (numeric severities or the usual words); ties keep their order."""

    def rank(f: dict[str, Any]) -> float:
        s = f.get("severity")
        if isinstance(s, int | float) and not isinstance(s, bool):
            return -float(s)
        return -float(_SEVERITY_WORDS.get(str(s).lower(), 0))

    return sorted(findings, key=rank)


def build_report(
    trace: Trace,
    config: ReportConfig | None = None,
    *,
    findings: list[dict[str, Any]] | None = None,
    metrics: dict[str, Any] | None = None,
    whatifs: WhatIfs | None = None,
    step: Step | None = None,
) -> ReportData:
    """Compute a report's content: diagnosis, what-ifs (unless given), downsampled figures."""
    config = config or ReportConfig()
    say = step or (lambda _msg: None)
    summary = summarize(trace)
    if findings is None or metrics is None:
        say("diagnosing")
        found, computed = findings_and_metrics(trace)
        findings = found if findings is None else findings
        metrics = computed if metrics is None else metrics
    if whatifs is None and config.whatif is not None and len(trace.requests):
        say("what-if sweeps")
        whatifs = run_whatifs(trace, config.whatif)
    say("figures")
    figs = _figures(trace, summary, whatifs, config)
    warnings = list(whatifs.warnings) if whatifs else []
    # an imported trace's gaps: the figures it cannot give, said, not drawn from nothing
    warnings += [f"not available: {k} -- {why}"
                 for k, why in ((metrics or {}).get("unavailable") or {}).items()]
    return ReportData(
        title=f"specsim report: {trace.name}",
        meta=trace.meta.to_dict(),
        summary=summary,
        metrics=metrics,
        findings=order_findings(findings),
        figures=figs,
        samples=_samples(trace, config),
        whatifs=whatifs,
        warnings=warnings,
        text_chars=config.text_chars,
    )


def _figures(
    trace: Trace, summary: dict[str, Any], w: WhatIfs | None, config: ReportConfig
) -> list[tuple[str, go.Figure]]:
    from analysis.load_report import load_figures  # server traces: the serving-under-load section

    figs = [  # measured: drawn from the trace itself
        ("Timeline (measured)", F.timeline(trace, config.timeline_requests,
                                           config.timeline_cycles)),
        ("Accepted length (measured)", F.accepted_histogram(trace)),
        ("Acceptance by position (measured)", F.acceptance_by_position(
            summary["acceptance_by_position"], summary["acceptance_hazard_by_position"])),
        ("Latency breakdown (measured)", F.latency_breakdown(trace)),
        ("Draft length over time (measured)", F.tau_over_time(trace, config.time_bins)),
        *load_figures(trace),
    ]
    if w is None:
        return figs
    slo, measured = w.slo_p95_ms, w.measured_p95_ms
    if w.tau is not None:
        figs.append(("What-if: draft length (simulated)", F.whatif_curve(
            w.tau.points, "policy.tau", slo_p95_ms=slo, measured_p95_ms=measured,
            title="Simulated p95 latency against tau (fixed policy)")))
    if w.budget is not None:
        figs.append(("What-if: verify budget (simulated)", F.whatif_curve(
            w.budget.points, "budget.max_verify_per_request", slo_p95_ms=slo,
            measured_p95_ms=measured, zero_label="unlimited",
            title="Simulated p95 latency against the verify budget per request")))
    if w.hardware is not None:
        figs.append(("What-if: hardware (simulated)", F.comparison_bars(
            w.hardware.points, "latency.hardware", slo_p95_ms=slo,
            title="Simulated latency of this configuration on other hardware (basis; "
                  "catalog points with their band)")))
    if w.depth is not None:
        from analysis.draftdepth import depth_figure

        figs.append(("What-if: draft depth (simulated)", depth_figure(
            w.depth.points, title="Predicted p50 against draft depth at the same parameter "
                                  "count (wide and shallow vs deep and narrow)")))
    if w.draft is not None:
        figs.append(("What-if: draft quality (simulated)", F.whatif_curve(
            w.draft.points, "draft.acceptance_scale", slo_p95_ms=slo, measured_p95_ms=measured,
            title="Simulated p95 latency with a worse or better draft (acceptance scaled)")))
    if w.replay is not None:
        figs.append(("Measured vs simulated", F.latency_distributions(
            {"measured": w.measured_latency_s, "simulated": w.replay_latency_s},
            title="Measured vs simulated latency (the trace's own configuration)")))
    return figs


def _samples(trace: Trace, config: ReportConfig) -> list[dict[str, Any]]:
    r = trace.requests
    rows = F.request_order(trace)[: config.samples]
    out = []
    for i in rows:
        row = r.iloc[int(i)]
        item: dict[str, Any] = {
            "request_id": r["request_id"].tolist()[int(i)],  # an int or a string (schema v2)
            "latency_s": float(row["end_s"] - row["arrival_s"]),
            "output_tokens": int(row["output_tokens"]),
        }
        for col in ("prompt_text", "output_text"):
            value = row.get(col) if col in r.columns else None
            item[col] = None if value is None or value != value else str(value)
        out.append(item)
    return out


__all__ = [
    "ReportConfig",
    "ReportData",
    "Step",
    "build_report",
    "findings_and_metrics",
    "order_findings",
]

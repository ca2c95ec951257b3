"""``specsim report``: one self-contained, offline, interactive HTML file about a trace.

The file embeds plotly.js once (``plotly.offline.get_plotlyjs()``) and each figure as a JSON
data block; nothing is fetched from the network (a Content-Security-Policy forbids it, and only
the two scripts carrying this report's nonce may run). Every piece of text that comes from a
trace -- prompts, outputs, model names, metadata, finding texts -- goes through
:func:`html.escape`, and JSON placed inside ``<script>`` has ``<``, ``>`` and ``&`` written as
``\\u003c``-style escapes, so no string can close the tag or inject markup.

The what-if sweeps behind the report (through :mod:`sim`) are :func:`run_whatifs`;
:func:`build_report` gathers everything and :func:`render_html` writes the page.
"""

from __future__ import annotations

import html
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import plotly.graph_objects as go

from analysis import figures as F
from analysis.metrics import first_requests
from analysis.report_tables import SEVERITY_NOTE, settings_text, table, value_text
from tracing.errors import SpecsimError
from tracing.summary import summarize
from tracing.trace import Trace

if TYPE_CHECKING:
    from sim.sweep.whatif import WhatIfResult

Step = Callable[[str], None]


HARDWARE = ("CPU", "L4", "L40S", "A100", "H100", "H200", "B200", "MI300X")


@dataclass
class WhatIfConfig:
    """The sweeps a report runs through the simulator, and on how many requests."""

    taus: tuple[int, ...] = (1, 2, 3, 4, 6, 8)  # fixed-policy draft lengths
    budget_fractions: tuple[float, ...] = (0.5, 0.75, 1.0)  # of the measured verify passes/request
    hardware: tuple[str, ...] = HARDWARE  # catalog names (sim.models.catalog); () = the whole catalog
    draft_scales: tuple[float, ...] = (0.8, 0.9, 1.0, 1.1, 1.2)  # a worse or better draft
    slo_p95_ms: float | None = None  # None: the measured p95 of the simulated requests
    requests: int = 300  # requests simulated per point: the trace's first, by arrival
    jobs: int | None = 1
    seed: int = 0
    intervals: int = 8  # draws behind each point's 95% intervals (sim.sweep.intervals); 0: none


@dataclass
class WhatIfs:
    """Results of :func:`run_whatifs` (each sweep a ``sim.sweep.whatif.WhatIfResult`` or None)."""

    requests: int
    slo_p95_ms: float
    slo_source: str
    measured_p95_ms: float
    measured_latency_s: np.ndarray
    tau: WhatIfResult | None = None
    budget: WhatIfResult | None = None
    hardware: WhatIfResult | None = None
    draft: WhatIfResult | None = None
    depth: WhatIfResult | None = None  # draft depth at a fixed size (analysis.draftdepth)
    depth_note: str = ""  # why the draft-depth sweep was not run (an n-gram draft has no depth)
    replay: dict[str, Any] | None = None  # simulate --json figures of the trace's own config
    replay_latency_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    warnings: list[str] = field(default_factory=list)
    schedule: dict[str, Any] | None = None  # draft length per batch size (analysis.tune_view)

    def best(self) -> dict[str, Any] | None:
        """The best feasible configuration change: of the tau sweep, else of the budget one."""
        for result in (self.tau, self.budget):
            if result is not None and result.best is not None:
                return dict(result.best)
        return None

    @property
    def best_reason(self) -> str:
        """Why :meth:`best` won (which points the noise could not separate from it)."""
        for result in (self.tau, self.budget):
            if result is not None and result.best is not None:
                return result.best_reason
        return ""


def run_whatifs(trace: Trace, config: WhatIfConfig | None = None) -> WhatIfs:
    """Replay the trace's own configuration and sweep tau, the verify budget, the hardware and
    the draft's acceptance (``draft.acceptance_scale``: every acceptance chance scaled).

    Only the first ``config.requests`` requests (by arrival) take part: the base scenario is
    ``sim.scenario_from_trace`` of that part, so the simulator fits and replays a bounded
    amount of data whatever the trace's size. The SLO defaults to their measured p95 ("no
    worse than now").
    A sweep the simulator rejects becomes a warning instead of failing the report.
    """
    from sim import CATALOG, scenario_from_trace, simulate
    from sim.sweep.whatif import sweep

    config = config or WhatIfConfig()
    trace = first_requests(trace, config.requests)
    base = scenario_from_trace(trace)
    batch = _recorded_batch(trace)
    if batch > base.server.max_batch:  # a simulated trace keeps it in its scenario
        base = base.with_overrides({"server.max_batch": batch})
    n = len(trace.requests)
    measured = (trace.requests["end_s"] - trace.requests["arrival_s"]).to_numpy(float)
    measured_p95_ms = float(np.percentile(measured, 95)) * 1e3
    slo = config.slo_p95_ms if config.slo_p95_ms is not None else measured_p95_ms
    out = WhatIfs(
        requests=n,
        slo_p95_ms=slo,
        slo_source="given" if config.slo_p95_ms is not None else "default: the measured p95",
        measured_p95_ms=measured_p95_ms,
        measured_latency_s=measured,
    )
    try:
        replay = simulate(base, trace, seed=config.seed)
        out.replay = replay.figures
        rt = replay.trace.requests
        out.replay_latency_s = (rt["end_s"] - rt["arrival_s"]).to_numpy(float)
        out.warnings += replay.warnings
    except SpecsimError as exc:
        out.warnings.append(f"replay: {exc}")
    passes = float(trace.requests["verify_passes"].mean())
    budgets = sorted({max(1, round(f * passes)) for f in config.budget_fractions})
    hardware = list(config.hardware or CATALOG)  # () = every device of the catalog
    sweeps: list[tuple[str, Any, dict[str, list[Any]]]] = [
        ("tau", _as_fixed(base), {"policy.tau": _with_current_tau(base, config.taus)}),
        ("budget", base, {"budget.max_verify_per_request": [0, *budgets]}),
        ("hardware", base, {"latency.hardware": hardware}),
        ("draft", base, {"draft.acceptance_scale": list(config.draft_scales)}),
    ]
    for name, scenario, vary in sweeps:
        try:
            result = sweep(scenario, vary, trace=trace, slo_p95_ms=slo, jobs=config.jobs,
                           intervals=config.intervals)
        except SpecsimError as exc:
            out.warnings.append(f"what-if {name}: {exc}")
            continue
        setattr(out, name, result)
        seen = {w for p in result.points for w in p.get("warnings", [])}
        out.warnings += [f"what-if {name}: {w}" for w in sorted(seen)]
    from analysis.draftdepth import depth_applies, depth_sweep

    out.depth_note = depth_applies(trace)
    if out.depth_note:
        return out
    try:
        out.depth = depth_sweep(base, trace, slo_p95_ms=slo, jobs=config.jobs)
    except SpecsimError as exc:
        out.warnings.append(f"what-if draft depth: {exc}")
    from analysis.tune_view import schedule_or_warning

    out.schedule, problem = schedule_or_warning(trace, base)
    out.warnings += [problem] if problem else []
    return out


def _recorded_batch(trace: Trace) -> int:
    extra = trace.meta.extra or {}
    server = (extra.get("scenario") or {}).get("server") or {}
    value = extra.get("max_batch") or server.get("max_batch") or 1
    return int(value) if isinstance(value, int | float) else 1


def _with_current_tau(base: Any, taus: tuple[int, ...]) -> list[int]:
    """The taus swept, with the trace's own fixed tau among them: the incumbent a change must
    surely beat (sim.sweep.decide)."""
    tau = base.policy.params.get("tau") if base.policy.name == "fixed" else None
    return sorted(set(taus) | ({int(tau)} if isinstance(tau, int) else set()))


def _as_fixed(base: Any) -> Any:
    return base if base.policy.name == "fixed" else base.with_overrides({"policy.name": "fixed"})


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


# ---- HTML -----------------------------------------------------------------------------------


def script_json(obj: Any) -> str:
    """``obj`` as JSON that is safe to place inside ``<script>`` (see :func:`escape_json`)."""
    return escape_json(json.dumps(obj, allow_nan=False))


def escape_json(text: str) -> str:
    """JSON text made safe inside ``<script>``: ``<``, ``>`` and ``&`` become ``\\u00XX``.

    JSON has these characters only inside strings, where the escapes mean the same text; so
    no string can close the tag (``</script>``) or open a comment (``<!--``).
    """
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _fmt(value: Any) -> str:
    """One value as the page writes it (analysis.report_tables.value_text)."""
    return value_text(value)


def _kv_table(items: dict[str, Any], limit: int = 600, caption: str = "") -> str:
    """A labelled table; nested mappings become sub-tables (analysis.report_tables.table)."""
    return table(items, caption=caption, limit=limit)


def _findings_html(findings: list[dict[str, Any]]) -> str:
    if not findings:
        return "<p class='ok'>No bottleneck found: nothing to recommend.</p>"
    cards = [f"<p class='note'>{_e(SEVERITY_NOTE)}</p>"]
    for f in findings:
        sev = f.get("severity", "")
        sev_text = f"{sev:.2f}" if isinstance(sev, float) else str(sev)
        level = str(f.get("level") or sev_text).lower()
        cls = "sev-" + "".join(ch for ch in level if ch.isalnum())
        head = f.get("title") or f.get("kind")
        cards.append(
            f"<div class='finding {_e(cls)}'><h3>{_e(head)} "
            f"<span class='tag'>{_e(f.get('kind'))}</span>"
            f"<span class='tag'>{_e(level)} (severity {_e(sev_text)})</span>"
            f"</h3><p>{_e(f.get('recommendation'))}</p>{_prediction_line(f)}"
            f"<details><summary>evidence (measured) and prediction (simulated)</summary>"
            f"{_kv_table(f.get('evidence') or {}, caption='Evidence: measured in the trace')}"
            f"{_kv_table(_without_caveat(f.get('predicted')), caption='Prediction: simulated')}"
            f"</details></div>"
        )
    return "".join(cards)


def _without_caveat(predicted: dict[str, Any] | None) -> dict[str, Any]:
    """A prediction for its details table: the small-sample caveat is said once per page."""
    p = dict(predicted or {})
    if isinstance(p.get("interval"), dict):
        p["interval"] = {k: v for k, v in p["interval"].items() if k != "caveat"}
    return p


def page_caveat(data: ReportData) -> str:
    """The small-sample caveat of the page's intervals, once ("" when the sample is not small)."""
    from sim.sweep.intervals import caveats

    bases = [(f.get("predicted") or {}).get("interval") for f in data.findings]
    w = data.whatifs
    if w is not None:
        bases += [r.interval for r in (w.tau, w.budget, w.hardware, w.draft, w.depth)
                  if r is not None]
    text = caveats(*bases)
    return f"<p class='warn'>About every interval on this page: {_e(text)}.</p>" if text else ""


def _prediction_line(f: dict[str, Any]) -> str:
    """The prediction behind a finding with its intervals, one line (empty without one): each
    change a ratio with its 95% interval (log scale: never more than all of it)."""
    from sim.sweep.intervals import ratio_text

    p = f.get("predicted") or {}
    base = p.get("baseline")
    if not base or "p95_s" not in p:
        return ""
    parts = []
    for key in ("p50_s", "p95_s"):
        change = ratio_text(key[:3], (p.get("change_ratio") or {}).get(key),
                            (p.get("change_ratio_ci95") or {}).get(key))
        parts.append(f"{key[:3]} {base[key] * 1e3:,.0f} -> {p[key] * 1e3:,.0f} ms ({change})")
    verdict = "improves" if p.get("improves") else "no change supported by the noise"
    how = (p.get("interval") or {}).get("text", "")
    return (f"<p class='pred'><b>predicted (simulated)</b> with "
            f"{_e(settings_text(p.get('overrides') or {}))}: "
            f"{_e('; '.join(parts))}, simulated speedup "
            f"{_e(F.speedup_text(base.get('speedup_vs_target_only')))}"
            f" -> {_e(F.speedup_text(p.get('speedup_vs_target_only')))}: <b>{_e(verdict)}</b>. "
            f"<small>{_e(how)}</small></p>")


def _tiles(s: dict[str, Any]) -> str:
    lat = s["latency_s"]
    tiles = [
        ("requests", f"{s['requests']}"),
        ("cycles", f"{s['cycles']}"),
        ("tokens / cycle", f"{s['tokens_per_cycle']:.2f}"),
        ("acceptance rate", f"{s['draft_acceptance_rate']:.2f}"),
        ("latency p50", f"{lat['p50'] * 1e3:.1f} ms"),
        ("latency p95", f"{lat['p95'] * 1e3:.1f} ms"),
        ("latency p99", f"{lat['p99'] * 1e3:.1f} ms"),
        ("throughput", f"{s['throughput_tok_s']:.1f} tok/s"),
    ]
    return "".join(f"<div class='tile'><b>{_e(v)}</b><span>{_e(k)}</span></div>" for k, v in tiles)


def _whatif_html(w: WhatIfs | None) -> str:
    if w is None:
        return "<p>What-if analysis was not run.</p>"
    parts = [f"<p>Every figure here is <b>simulated</b>: {_e(w.requests)} requests per point "
             f"(first by arrival); SLO p95 {_e(f'{w.slo_p95_ms:.1f}')} ms ({_e(w.slo_source)})."
             f"{_replay_text(w)}</p>"]
    for name, result in (("draft length", w.tau), ("verify budget", w.budget),
                         ("hardware", w.hardware), ("draft quality", w.draft),
                         ("draft depth", w.depth)):
        if result is None:
            continue
        best = result.best
        ci = (best or {}).get("ci95", {}).get("p95_s")
        band = f" [{ci[0] * 1e3:.1f}-{ci[1] * 1e3:.1f}]" if ci else ""
        text = "no point meets the SLO without overload" if best is None else (
            f"best {settings_text(best['vary'])}: simulated p95 "
            f"{best['latency_s']['p95'] * 1e3:.1f}{band} ms, simulated speedup "
            f"{F.speedup_text(best.get('speedup_vs_target_only'))}; {result.best_reason}")
        parts.append(f"<li><b>{_e(name)}</b>: {_e(text)}</li>")
    if w.schedule is not None:
        from analysis.tune_view import schedule_lines

        head, *rest = schedule_lines(w.schedule)
        parts.append(f"<li><b>draft length per batch size</b>: {_e(head)}<br>"
                     + "<br>".join(_e(line.strip()) for line in rest) + "</li>")
    if w.depth_note:
        parts.append(f"<li><b>draft depth</b>: not drawn: {_e(w.depth_note)}</li>")
    return parts[0] + "<ul>" + "".join(parts[1:]) + "</ul>"


def _replay_text(w: WhatIfs) -> str:
    if w.replay is None or w.measured_p95_ms <= 0:
        return ""
    sim_ms = w.replay["latency_s"]["p95"] * 1e3
    error = sim_ms / w.measured_p95_ms - 1.0
    speedup = ""
    if w.replay.get("speedup_vs_target_only") is not None:
        speedup = (f" Its speedup vs target-only is simulated "
                   f"{F.speedup_text(w.replay['speedup_vs_target_only'])}; the measured one is in "
                   "the tiles and Metrics above and below.")
    return (f" Replaying the trace's own configuration gives a simulated p95 of {sim_ms:.1f} ms "
            f"against {w.measured_p95_ms:.1f} ms measured ({error:+.1%}).{speedup}")


def _samples_html(samples: list[dict[str, Any]], chars: int) -> str:
    def cut(text: str | None) -> str:
        if text is None:
            return "<i>(not recorded)</i>"
        return _e(text if len(text) <= chars else text[:chars] + " ...")

    rows = "".join(
        f"<tr><td>{_e(s['request_id'])}</td><td>{s['latency_s'] * 1e3:.1f} ms</td>"
        f"<td>{_e(s['output_tokens'])}</td><td class='text'>{cut(s['prompt_text'])}</td>"
        f"<td class='text'>{cut(s['output_text'])}</td></tr>"
        for s in samples
    )
    return ("<table class='samples'><tr><th>request</th><th>latency</th><th>tokens</th>"
            f"<th>prompt</th><th>output</th></tr>{rows}</table>")


_CSS = """
body{font-family:system-ui,sans-serif;margin:0 auto;max-width:1200px;padding:0 20px;color:#222}
h1{font-size:1.5em}h2{border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:2em}
.tiles{display:flex;flex-wrap:wrap;gap:10px}.tile{background:#f5f7fa;padding:8px 14px;
border-radius:6px;min-width:110px}.tile b{display:block;font-size:1.3em}.tile span{color:#666}
.finding{border-left:6px solid #999;background:#fafafa;padding:6px 14px;margin:10px 0}
.sev-critical,.sev-high{border-color:#d62728}.sev-medium,.sev-warning{border-color:#ff7f0e}
.sev-low{border-color:#1f77b4}.tag{font-size:.7em;font-weight:normal;
background:#eee;border-radius:4px;padding:1px 6px;margin-left:8px}table{border-collapse:collapse}
table.kv th{text-align:left;padding-right:14px;color:#555;font-weight:normal}
td,th{vertical-align:top;padding:2px 6px}.samples td.text{white-space:pre-wrap;max-width:420px;
font-family:monospace;font-size:.85em}.plot{width:100%;min-height:320px}.warn{color:#b35c00}
table.kv table.kv{margin:2px 0}caption{text-align:left;font-weight:bold;padding:6px 0 2px}
table.rows th{text-align:right;color:#555;font-weight:normal}table.rows td{text-align:right}
.note{color:#555;font-size:.9em}
"""

_RENDER = """
document.querySelectorAll('script[type="application/json"][data-plot]').forEach(function (el) {
  var spec = JSON.parse(el.textContent);
  var div = document.getElementById(el.getAttribute('data-plot'));
  Plotly.newPlot(div, spec.data, spec.layout, {responsive: true, displaylogo: false});
});
"""


def page_shell(title: str, body: str) -> str:
    """One offline HTML page around ``body`` (already escaped HTML): plotly.js embedded once,
    a Content-Security-Policy that lets only this page's two scripts run, and the script that
    draws every ``<script type="application/json" data-plot=ID>`` figure into ``#ID``."""
    from plotly.offline import get_plotlyjs

    nonce = secrets.token_urlsafe(16)
    csp = (f"default-src 'none'; script-src 'nonce-{nonce}' 'unsafe-eval'; "
           "style-src 'unsafe-inline'; img-src data: blob:; font-src data:")
    plotly_js = get_plotlyjs().replace("</script", "<\\/script")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title><style>{_CSS}</style>
<script nonce="{nonce}">{plotly_js}</script>
</head><body>
<h1>{_e(title)}</h1>
{body}
<script nonce="{nonce}">{_RENDER}</script>
</body></html>
"""


def _measured(meta: dict[str, Any]) -> str:
    """How the page names figures read off the trace: measured, unless the trace is simulated."""
    return ("read off this simulated trace" if meta.get("source") == "sim"
            else "measured in this trace")


def render_html(data: ReportData) -> str:
    """The report page: one file, plotly.js embedded once, no network, all text escaped."""
    meta = dict(data.meta)
    plots = []
    for i, (heading, fig) in enumerate(data.figures):
        plots.append(
            f"<h2>{_e(heading)}</h2><div class='plot' id='plot-{i}'></div>"
            f"<script type='application/json' data-plot='plot-{i}'>"
            f"{escape_json(fig.to_json())}</script>"
        )
    warnings = "".join(f"<li class='warn'>{_e(w)}</li>" for w in data.warnings)
    body = f"""<p>{_e(meta.get('source'))} trace: target <b>{_e(meta.get('target_model'))}</b>, draft
<b>{_e(meta.get('draft_model'))}</b> on {_e(meta.get('device'))}, policy
<b>{_e(meta.get('policy'))}</b> {_e(settings_text(meta.get('policy_params') or {}))}</p>
{page_caveat(data)}
<h2>Findings</h2>{_findings_html(data.findings)}
<h2>{_e(_measured(meta).capitalize())}</h2><div class="tiles">{_tiles(data.summary)}</div>
<h2>What-if summary (simulated)</h2>{_whatif_html(data.whatifs)}
{f"<ul>{warnings}</ul>" if warnings else ""}
{"".join(plots)}
<h2>Metrics ({_e(_measured(meta))})</h2>{_kv_table(data.metrics)}
<h2>Sample requests</h2>{_samples_html(data.samples, data.text_chars)}
<h2>Run metadata</h2>{_kv_table(meta)}"""
    return page_shell(data.title, body)


def write_report(
    trace: Trace,
    path: str | Path,
    config: ReportConfig | None = None,
    **kwargs: Any,
) -> ReportData:
    """Build the report of ``trace`` (see :func:`build_report` for ``kwargs``) into ``path``."""
    data = build_report(trace, config, **kwargs)
    Path(path).write_text(render_html(data), encoding="utf-8")
    return data


__all__ = [
    "ReportConfig",
    "ReportData",
    "WhatIfConfig",
    "WhatIfs",
    "build_report",
    "escape_json",
    "findings_and_metrics",
    "first_requests",
    "order_findings",
    "render_html",
    "run_whatifs",
    "script_json",
    "write_report",
]

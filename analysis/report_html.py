"""The report page's HTML: :func:`render_html` formats a :class:`ReportData` section by
section -- findings with their predictions, the measured tiles, the what-if summary, the
figures, metrics, sample requests and run metadata -- inside :func:`analysis.html_page.page_shell`.
Every piece of text from a trace is escaped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from analysis import figures as F
from analysis.html_page import escape_json, page_shell
from analysis.html_page import escape_text as _e
from analysis.report_tables import SEVERITY_NOTE, settings_text, table, value_text

if TYPE_CHECKING:
    from analysis.report_data import ReportData
    from analysis.report_whatifs import WhatIfs


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


__all__ = ["page_caveat", "render_html"]

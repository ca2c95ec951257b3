"""The report's Plotly figures, each built from aggregated or downsampled data.

Every function returns a ``plotly.graph_objects.Figure`` whose size does not grow with the
trace: the timeline draws the first requests only, histograms come from ``np.bincount`` counts,
time series are binned and distributions are drawn from a fixed number of quantiles. So a
million-cycle trace makes a report of the same size as a thousand-cycle one.

Figures carry no text taken from a trace except numbers; where one must (a label), it is
escaped first (:func:`_text`), since Plotly renders a subset of HTML in titles and labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from tracing.trace import Trace

# One colour per phase, the same in every figure.
PHASE_COLORS = {
    "queue": "#bab0ac",
    "prefill": "#9c755f",
    "draft": "#4e79a7",
    "verify": "#f28e2b",
    "overhead": "#76b7b2",
    "other": "#e15759",
}
_LAYOUT: dict[str, Any] = {
    "template": "plotly_white",
    "height": 420,
    "margin": {"l": 70, "r": 30, "t": 60, "b": 50},
    "legend": {"orientation": "h", "y": -0.18},
}


def _text(value: str) -> str:
    """Trace text for Plotly's HTML-like labels: ``<``, ``>`` and ``&`` escaped (Plotly shows
    the entities as the characters; it would print ``&quot;`` verbatim, so quotes stay)."""
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _figure(title: str, **layout: Any) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(title={"text": title}, **{**_LAYOUT, **layout})
    return fig


def request_order(trace: Trace) -> np.ndarray:
    """Row indices of ``trace.requests`` in arrival order (ties by request id)."""
    r = trace.requests
    return np.lexsort((r["request_id"].to_numpy(), r["arrival_s"].to_numpy(dtype=float)))


def timeline(trace: Trace, max_requests: int = 20, max_cycles: int = 3000) -> go.Figure:
    """Gantt-like view of queue, prefill and each cycle's draft/verify/overhead phases.

    Shows the first ``max_requests`` requests by arrival and at most ``max_cycles`` of their
    cycles (the first ones of each request, in order).
    """
    r, c = trace.requests, trace.cycles
    rows = request_order(trace)[:max_requests]
    ids = r["request_id"].to_numpy()[rows]
    label = {i: f"req {i}" for i in ids.tolist()}  # ids: ints or strings (schema v2)
    cyc = c[c["request_id"].isin(ids)]
    if len(cyc) > max_cycles:
        # Keep the earliest cycles of every shown request, about evenly.
        per_request = max(1, max_cycles // max(1, len(ids)))
        cyc = cyc[cyc["cycle"].to_numpy() < per_request]
    shown = f"first {len(ids)} of {len(r)} requests, {len(cyc)} of {len(c)} cycles"
    fig = _figure(
        f"Timeline: draft and verify phases per request ({shown})",
        barmode="overlay",
        height=max(320, 60 + 22 * len(ids)),
        xaxis_title="time since run start (s)",
    )
    req = r.iloc[rows]
    y_req = [label[i] for i in ids.tolist()]
    arrival = req["arrival_s"].to_numpy(float)
    start = req["start_s"].to_numpy(float)
    prefill = req["prefill_s"].to_numpy(float)
    _phase_bar(fig, "queue", y_req, arrival, start - arrival, None)
    _phase_bar(fig, "prefill", y_req, start, prefill, None)
    y_cyc = [label[i] for i in cyc["request_id"].tolist()]
    t0 = cyc["start_s"].to_numpy(float)
    draft = cyc["draft_s"].to_numpy(float)
    verify = cyc["verify_s"].to_numpy(float)
    overhead = cyc["overhead_s"].to_numpy(float)
    info = np.stack(
        [cyc["cycle"].to_numpy(), cyc["tau"].to_numpy(), cyc["accepted"].to_numpy()], axis=1
    )
    _phase_bar(fig, "draft", y_cyc, t0, draft, info)
    _phase_bar(fig, "verify", y_cyc, t0 + draft, verify, info)
    _phase_bar(fig, "overhead", y_cyc, t0 + draft + verify, overhead, info)
    fig.update_yaxes(autorange="reversed", type="category")
    return fig


def _phase_bar(
    fig: go.Figure,
    phase: str,
    y: Sequence[str],
    base: np.ndarray,
    width: np.ndarray,
    info: np.ndarray | None,
) -> None:
    hover = f"{phase} %{{base:.4f}} s + %{{x:.4f}} s"
    if info is not None:
        hover += "<br>cycle %{customdata[0]}  tau %{customdata[1]}  accepted %{customdata[2]}"
    fig.add_trace(
        go.Bar(
            name=phase,
            orientation="h",
            y=list(y),
            x=np.round(width, 6),
            base=np.round(base, 6),
            customdata=info,
            marker={"color": PHASE_COLORS[phase], "line": {"width": 0}},
            hovertemplate=hover + "<extra>%{y}</extra>",
        )
    )


def accepted_histogram(trace: Trace) -> go.Figure:
    """How many cycles accepted 0, 1, 2, ... drafted tokens, stacked by tau (from counts)."""
    tau = trace.cycles["tau"].to_numpy()
    accepted = trace.cycles["accepted"].to_numpy()
    spec = tau > 0
    fig = _figure(
        "Accepted length per cycle (stacked by tau)",
        barmode="stack",
        xaxis_title="accepted drafted tokens",
        yaxis_title="cycles",
    )
    if not spec.any():
        return _empty(fig, "no speculative cycles (tau = 0 everywhere)")
    tau, accepted = tau[spec], accepted[spec]
    width = int(tau.max()) + 1
    counts = np.bincount(tau * width + accepted, minlength=width * width).reshape(width, width)
    for t in np.flatnonzero(counts.sum(axis=1)):
        fig.add_trace(
            go.Bar(
                name=f"tau={t}",
                x=np.arange(t + 1),
                y=counts[t, : t + 1],
                hovertemplate=f"tau={t}: accepted %{{x}} in %{{y}} cycles<extra></extra>",
            )
        )
    fig.update_xaxes(dtick=1)
    return fig


def acceptance_by_position(by_position: Sequence[float], hazard: Sequence[float]) -> go.Figure:
    """Per-position acceptance (vLLM's) and the conditional hazard, positions 1..max tau."""
    pos = np.arange(1, len(by_position) + 1)
    fig = _figure(
        "Acceptance by draft position",
        xaxis_title="draft position",
        yaxis_title="acceptance",
        yaxis_range=[0, 1.05],
    )
    if not len(by_position):
        return _empty(fig, "no speculative cycles")
    fig.add_trace(go.Bar(name="P(position accepted | drafted)", x=pos, y=list(by_position)))
    fig.add_trace(
        go.Scatter(
            name="P(accepted | drafted and all before accepted)",
            x=pos,
            y=list(hazard),
            mode="lines+markers",
        )
    )
    fig.update_xaxes(dtick=1)
    return fig


def request_phases(trace: Trace) -> pd.DataFrame:
    """Per request (rows of ``trace.requests``): latency and its parts in seconds.

    ``other`` is what the phases do not explain (waiting inside a batch, gaps), floored at 0.
    """
    r, c = trace.requests, trace.cycles
    sums = c.groupby("request_id", sort=False)[["draft_s", "verify_s", "overhead_s"]].sum()
    sums = sums.reindex(r["request_id"].to_numpy(), fill_value=0.0)
    out = pd.DataFrame(
        {
            "latency": (r["end_s"] - r["arrival_s"]).to_numpy(float),
            "queue": (r["start_s"] - r["arrival_s"]).to_numpy(float),
            "prefill": r["prefill_s"].to_numpy(float),
            "draft": sums["draft_s"].to_numpy(float),
            "verify": sums["verify_s"].to_numpy(float),
            "overhead": sums["overhead_s"].to_numpy(float),
        }
    )
    explained = out[["queue", "prefill", "draft", "verify", "overhead"]].sum(axis=1)
    out["other"] = np.maximum(out["latency"] - explained, 0.0)
    return out


def latency_breakdown(trace: Trace) -> go.Figure:
    """Where a request's time goes: the mean request and the requests at latency quantiles."""
    phases = request_phases(trace)
    fig = _figure(
        "Latency breakdown (queue / prefill / draft / verify / overhead)",
        barmode="stack",
        xaxis_title="seconds",
    )
    if not len(phases):
        return _empty(fig, "no requests")
    latency = phases["latency"].to_numpy()
    # Each quantile bar is the request nearest that percentile, its phases scaled so the bar's
    # total is exactly the percentile the cards show (np.percentile, linear interpolation).
    picks: dict[str, tuple[int | None, float]] = {
        f"mean request ({latency.mean() * 1e3:,.0f} ms)": (None, 1.0)}
    for name, q in (("p50", 50), ("p90", 90), ("p95", 95), ("p99", 99), ("slowest", 100)):
        value = float(np.percentile(latency, q))
        i = int(np.argmin(np.abs(latency - value)))
        scale = value / latency[i] if latency[i] > 0 else 1.0
        picks[f"{name} ({value * 1e3:,.0f} ms)"] = (i, scale)
    labels = list(picks)
    for phase in ("queue", "prefill", "draft", "verify", "overhead", "other"):
        col = phases[phase].to_numpy()
        values = [float(col.mean()) if i is None else float(col[i]) * k for i, k in picks.values()]
        fig.add_trace(
            go.Bar(
                name=phase,
                orientation="h",
                y=labels,
                x=values,
                marker={"color": PHASE_COLORS[phase]},
                hovertemplate=f"{phase} %{{x:.4f}} s<extra>%{{y}}</extra>",
            )
        )
    fig.add_annotation(text="each percentile bar: the request nearest it, its phases scaled to "
                       "the percentile (the cards' figures)", showarrow=False, xref="paper",
                       yref="paper", x=0, y=1.0, xanchor="left", yanchor="bottom",
                       font={"size": 11, "color": "#555"})
    fig.update_yaxes(autorange="reversed")
    return fig


def tau_over_time(trace: Trace, bins: int = 300, max_cycle_index: int = 200) -> go.Figure:
    """What the policy chose as the run went on (mean tau and accepted per time bin) and
    within a request (per cycle index, the first ``max_cycle_index``)."""
    c = trace.cycles
    fig = make_subplots(rows=1, cols=2, column_widths=[0.6, 0.4], subplot_titles=(
        "over the run", "within a request"))
    fig.update_layout(title={"text": f"Draft length (tau) over time, policy {_policy(trace)}"},
                      **_LAYOUT)
    if not len(c):
        return _empty(fig, "no cycles")
    t = c["start_s"].to_numpy(float)
    tau = c["tau"].to_numpy(float)
    accepted = c["accepted"].to_numpy(float)
    edges = np.linspace(t.min(), t.max() if t.max() > t.min() else t.min() + 1.0, bins + 1)
    by_time = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, bins - 1)
    mid = (edges[:-1] + edges[1:]) / 2
    index = c["cycle"].to_numpy()
    within = index < max_cycle_index
    panels: list[tuple[np.ndarray, np.ndarray, int, np.ndarray]] = [
        (by_time, mid, bins, np.ones(len(c), dtype=bool)),
        (index[within], np.arange(max_cycle_index), max_cycle_index, within),
    ]
    for col, (groups, x, n_groups, keep) in enumerate(panels, start=1):
        counts = np.bincount(groups, minlength=n_groups)
        has = counts > 0
        window = max(1, int(has.sum()) // 20)
        for name, values, color in (("mean tau", tau, "#4e79a7"),
                                    ("mean accepted", accepted, "#f28e2b")):
            sums = np.bincount(groups, weights=values[keep], minlength=n_groups)
            raw = sums[has] / counts[has]
            smooth = pd.Series(raw).rolling(window, center=True, min_periods=1).mean().to_numpy()
            fig.add_trace(go.Scatter(name=f"{name} (raw)", x=x[has], y=raw, mode="markers",
                                     marker={"color": color, "size": 4, "opacity": 0.25},
                                     legendgroup=name, showlegend=False, hoverinfo="skip"),
                          row=1, col=col)
            fig.add_trace(go.Scatter(name=f"{name}, rolling mean of {window}", x=x[has],
                                     y=smooth, mode="lines", line={"color": color},
                                     legendgroup=name, showlegend=col == 1), row=1, col=col)
    fig.update_xaxes(title_text="time since run start (s)", row=1, col=1)
    fig.update_xaxes(title_text="cycle index in the request", row=1, col=2)
    fig.update_yaxes(title_text="tokens per cycle", rangemode="tozero")
    return fig


def _policy(trace: Trace) -> str:
    params = ",".join(f"{k}={v}" for k, v in (trace.meta.policy_params or {}).items())
    return _text(trace.meta.policy + (f":{params}" if params else ""))


def whatif_curve(
    points: Sequence[dict[str, Any]],
    key: str,
    *,
    title: str,
    slo_p95_ms: float | None = None,
    measured_p95_ms: float | None = None,
    zero_label: str | None = None,
) -> go.Figure:
    """p50/p95 latency of each what-if point against the varied ``key``, with the SLO line
    (``zero_label`` names the value 0, e.g. "unlimited" for a budget)."""
    fig = _figure(title, xaxis_title=_text(key), yaxis_title="latency (ms)")
    if not points:
        return _empty(fig, "no what-if points")
    xs = [_label(p["vary"].get(key), zero_label) for p in points]
    p95 = [_ms(p, "p95") for p in points]
    p50 = [_ms(p, "p50") for p in points]
    feasible = [bool(p.get("feasible", True)) for p in points]
    hover = [
        f"tokens/cycle {p.get('tokens_per_cycle', 0):.2f}<br>"
        f"speedup {speedup_text(p.get('speedup_vs_target_only'))}<br>"
        f"truncated requests {p.get('truncated_requests', 0)}<br>"
        f"feasible {f}"
        for p, f in zip(points, feasible, strict=True)
    ]
    fig.add_trace(go.Scatter(name="p50", x=xs, y=p50, mode="lines+markers"))
    fig.add_trace(
        go.Scatter(
            name="p95",
            x=xs,
            y=p95,
            mode="lines+markers",
            text=hover,
            marker={
                "size": 10,
                "symbol": ["circle" if f else "x" for f in feasible],
                "color": ["#2ca02c" if f else "#d62728" for f in feasible],
            },
            hovertemplate="%{x}: p95 %{y:.1f} ms<br>%{text}<extra></extra>",
        )
    )
    if slo_p95_ms is not None:
        fig.add_hline(y=slo_p95_ms, line_dash="dash", line_color="#d62728",
                      annotation_text=f"SLO p95 {slo_p95_ms:.1f} ms")
    if measured_p95_ms is not None:
        fig.add_hline(y=measured_p95_ms, line_dash="dot", line_color="#7f7f7f",
                      annotation_text=f"measured p95 {measured_p95_ms:.1f} ms",
                      annotation_position="bottom right")
    cut = [(x, int(p.get("truncated_requests") or 0)) for x, p in zip(xs, points, strict=True)
           if p.get("truncated_requests")]
    if cut:
        where = ", ".join(f"{x}: {n}" for x, n in cut)
        fig.add_annotation(
            text=(f"x = infeasible. Requests cut short by the budget ({where}) end early: their "
                  "latency is that of truncated outputs,<br>so a tight budget looks fast without "
                  "being faster"),
            showarrow=False, xref="paper", yref="paper", x=0, y=1.0, xanchor="left",
            yanchor="bottom", align="left", font={"size": 11, "color": "#d62728"})
    _add_bands(fig, xs, points)
    fig.update_xaxes(type="category")
    return fig


def _add_bands(fig: go.Figure, xs: list[str], points: Sequence[dict[str, Any]]) -> None:
    """Error bars of each point's 95% p95 interval (``ci95.p95_s``), when the sweep has them."""
    cis = [(p.get("ci95") or {}).get("p95_s") for p in points]
    if not any(cis):
        return
    p95 = [_ms(p, "p95") for p in points]
    fig.add_trace(go.Scatter(
        name="p95 95% interval", x=xs, y=p95, mode="markers", marker={"size": 1, "opacity": 0},
        error_y={"type": "data", "symmetric": False,
                 "array": [(c[1] * 1e3 - v) if c else 0 for c, v in zip(cis, p95, strict=True)],
                 "arrayminus": [(v - c[0] * 1e3) if c else 0 for c, v in zip(cis, p95, strict=True)],
                 "color": "#7f7f7f"},
        hoverinfo="skip"))


def comparison_bars(
    points: Sequence[dict[str, Any]], key: str, *, title: str, slo_p95_ms: float | None = None
) -> go.Figure:
    """p50/p95/p99 latency per value of ``key`` (hardware names, drafts) as grouped bars."""
    fig = _figure(title, barmode="group", xaxis_title=_text(key),
                  yaxis_title="latency (ms)")
    if not points:
        return _empty(fig, "no points")
    xs = [_label(p["vary"].get(key)) for p in points]
    if any("basis" in p for p in points):  # how each point was made, and a catalog's band
        xs = [f"{x}<br>{p.get('basis')}" + (f" x{p['band']:g}" if p.get("band") else "")
              for x, p in zip(xs, points, strict=True)]
    for q in ("p50", "p95", "p99"):
        bar = go.Bar(name=q, x=xs, y=[_ms(p, q) for p in points])
        if q == "p50" and any(p.get("band") for p in points):
            band = [float(p.get("band") or 1.0) for p in points]
            y = [_ms(p, q) for p in points]
            bar.error_y = {"type": "data", "symmetric": False,
                           "array": [v * (b - 1) for v, b in zip(y, band, strict=True)],
                           "arrayminus": [v * (1 - 1 / b) for v, b in zip(y, band, strict=True)]}
        fig.add_trace(bar)
    speedups = [speedup_text(p.get("speedup_vs_target_only")) for p in points]
    fig.add_trace(
        go.Scatter(
            name="xN above a bar: speedup vs target-only on that hardware",
            x=xs,
            y=[_ms(p, "p99") for p in points],
            mode="text",
            text=speedups,
            textposition="top center",
            showlegend=True,
            hoverinfo="skip",
        )
    )
    if slo_p95_ms is not None:
        fig.add_hline(y=slo_p95_ms, line_dash="dash", line_color="#d62728",
                      annotation_text=f"SLO p95 {slo_p95_ms:.1f} ms",
                      annotation_position="top left")
    values = [_ms(p, q) for p in points for q in ("p50", "p95", "p99")]
    values += [slo_p95_ms] if slo_p95_ms else []
    fig.update_yaxes(type="log", tickvals=log_ticks(values), minor={"showgrid": False,
                     "ticks": ""}, tickformat=",.3~g", title_text="latency (ms, log scale)")
    return fig


def log_ticks(values: Sequence[float]) -> list[float]:
    """Tick values for a log axis over ``values``: 1, 2, 5 times powers of ten in their range,
    at most ~8 of them (so no minor labels clutter the axis)."""
    v = [float(x) for x in values if x is not None and x == x and x > 0]
    if not v:
        return []
    lo, hi = min(v), max(v) * 1.6
    ticks = [m * 10.0**e for e in range(int(np.floor(np.log10(lo))) - 1,
                                        int(np.ceil(np.log10(hi))) + 1) for m in (1, 2, 5)]
    ticks = [t for t in ticks if lo / 2 <= t <= hi]
    while len(ticks) > 8:
        ticks = ticks[::2]
    return ticks


def latency_distributions(
    series: dict[str, np.ndarray], *, title: str, quantiles: int = 200
) -> go.Figure:
    """Empirical CDFs of latency samples (e.g. measured vs simulated), drawn from quantiles."""
    fig = _figure(title, xaxis_title="request latency (ms)", yaxis_title="fraction of requests",
                  yaxis_range=[0, 1.02])
    q = np.linspace(0.0, 1.0, quantiles + 1)
    for name, values in series.items():
        v = np.asarray(values, dtype=float)
        if not v.size:
            continue
        if v.size <= quantiles:  # the exact empirical CDF: one step per request
            x = np.sort(v) * 1e3
            y = np.arange(1, v.size + 1) / v.size
            x, y = np.concatenate([[x[0]], x]), np.concatenate([[0.0], y])
        else:
            x, y = np.quantile(v, q, method="inverted_cdf") * 1e3, q
        p95 = float(np.percentile(v, 95)) * 1e3
        fig.add_trace(
            go.Scatter(
                name=f"{_text(name)} (n={v.size}, p95 {p95:.1f} ms)",
                x=np.round(x, 4),
                y=y,
                mode="lines",
                line={"shape": "hv"},
            )
        )
    fig.add_hline(y=0.95, line_dash="dot", line_color="#7f7f7f", annotation_text="p95")
    return fig


def speedup_text(value: Any) -> str:
    """A speedup as the report writes it everywhere: ``x0.65`` (``-`` when unknown)."""
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    return f"x{float(value):.2f}"


def _ms(point: dict[str, Any], q: str) -> float:
    return float(point.get("latency_s", {}).get(q, float("nan"))) * 1e3


def _num(value: Any) -> str:
    return "-" if value is None else f"{float(value):.2f}"


def _label(value: Any, zero_label: str | None = None) -> str:
    if zero_label is not None and value == 0:
        return zero_label
    return "none" if value in (None, "") else _text(str(value))


def _empty(fig: go.Figure, message: str) -> go.Figure:
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    return fig

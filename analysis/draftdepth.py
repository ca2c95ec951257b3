"""A wide, shallow draft or a deep, narrow one of the same size? Predicted latency by draft depth.

Speculative decoding's speed-up depends more on the draft's latency -- its depth, since every
layer is a sequential step -- than on its language-modelling quality (Yan et al., "Decoding
Speculative Decoding"). This what-if holds the draft's parameter count fixed and varies its
depth (``[draft] layers``; the width follows from the count, :meth:`ModelShape.with_geometry`),
each step priced by the cost model on the trace's device (or ``[latency] hardware``), for the
trace's acceptance and for the same acceptance scaled (``[draft] acceptance_scale``): a deeper
draft usually predicts better, so the chart shows how much better it must be to pay for itself.
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

from tracing.errors import SpecsimError
from tracing.trace import Trace

DEPTHS = (1, 2, 4, 8, 16, 24)
SCALES = (0.8, 1.0, 1.2)


def depth_applies(trace: Trace) -> str:
    """Why the draft-depth what-if means nothing for ``trace``'s draft ("" when it does): depth
    is a model draft's (or a layer-skip draft's) number of layers; an n-gram lookup has none."""
    from sim.models.hardware import draft_kind_of

    extra = trace.meta.extra or {}
    params = float(extra.get("draft_params") or extra.get("draft_n_params") or 0.0)
    kind, _ = draft_kind_of(str(trace.meta.draft_model or ""), params)
    if kind == "host":
        return (f"the draft ({trace.meta.draft_model}) is an n-gram lookup: it has no layers, "
                "and its cost is host time, not depth")
    if kind == "none" and str(trace.meta.draft_model or "").strip() in ("", "none"):
        return "the run has no draft"
    return ""


def draft_params_for(trace: Trace) -> float:
    """The fixed size: the trace's draft model's parameters, else a quarter of the target's."""
    extra = trace.meta.extra or {}
    draft = float(extra.get("draft_params") or extra.get("draft_n_params") or 0.0)
    if draft > 0:
        return draft
    target = float(extra.get("target_params") or extra.get("target_n_params")
                   or extra.get("n_params") or 0.0)
    if target <= 0:
        raise SpecsimError(f"{trace.name}: the run metadata records no model size to hold "
                           "a draft's parameter count at")
    return target / 4.0


def depth_sweep(base: Any, trace: Trace, *, depths: tuple[int, ...] = DEPTHS,
                scales: tuple[float, ...] = SCALES, slo_p95_ms: float | None = None,
                jobs: int | None = 1) -> Any:
    """``sim.sweep.whatif.sweep`` over ``draft.layers`` x ``draft.acceptance_scale`` at the trace's
    draft size (a ``sim.sweep.whatif.WhatIfResult``)."""
    from sim.sweep.whatif import sweep

    fixed = base.with_overrides({"draft.params": draft_params_for(trace)})
    return sweep(fixed, {"draft.layers": list(depths), "draft.acceptance_scale": list(scales)},
                 trace=trace, slo_p95_ms=slo_p95_ms, jobs=jobs)


def depth_figure(points: list[dict[str, Any]], *, title: str) -> go.Figure:
    """Predicted p50 (ms) against draft depth, one line per acceptance scale; the hover says
    each point's basis (and band)."""
    fig = go.Figure()
    fig.update_layout(title=title, template="plotly_white", xaxis_title="draft layers (same "
                      "parameter count)", yaxis_title="predicted p50 latency (ms)",
                      legend_title="acceptance")
    scales = sorted({p["vary"]["draft.acceptance_scale"] for p in points})
    for scale in scales:
        row = sorted((p for p in points if p["vary"]["draft.acceptance_scale"] == scale),
                     key=lambda p: p["vary"]["draft.layers"])
        name = "the trace's" if scale == 1.0 else f"x{scale:g}"
        fig.add_trace(go.Scatter(
            name=name, x=[p["vary"]["draft.layers"] for p in row],
            y=[p["latency_s"]["p50"] * 1e3 for p in row], mode="lines+markers",
            text=[_basis(p) for p in row],
            hovertemplate="%{x} layers: p50 %{y:.1f} ms<br>%{text}<extra>" + name + "</extra>"))
    fig.update_xaxes(type="log", tickvals=sorted({p["vary"]["draft.layers"] for p in points}))
    return fig


def _basis(point: dict[str, Any]) -> str:
    band = point.get("band")
    return f"basis {point.get('basis')}" + (f" (band x{band:g})" if band else "")

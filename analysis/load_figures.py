"""Figures of serving under load: latency against batch size, and the load curve.

``latency_by_batch`` reads one server trace (its cycles carry ``batch_size``): the engine
step's time and tokens per step by the batch size it ran at, and each request's latency against
the mean batch size it decoded in. ``load_curve`` draws p50 and p95 latency and throughput
against the load (concurrency or Poisson rate) of measured points and predicted ones, the
predictions with their 95% intervals where they have them. Both return Plotly figures whose size
does not grow with the trace (per-batch-size aggregates; one marker per request, at most a few
thousand).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analysis.figures import _LAYOUT, _text
from tracing.trace import Trace

MAX_POINTS = 3000  # request markers drawn at most


def step_table(trace: Trace) -> pd.DataFrame:
    """Per batch size: steps, mean step seconds, mean tokens emitted per row and per step."""
    c = trace.cycles
    if len(c) == 0 or "batch_size" not in c.columns:
        return pd.DataFrame(columns=["batch_size", "steps", "step_s", "tokens_per_row",
                                     "tokens_per_step"])
    c = c[c["batch_size"].notna()]
    step_s = c["cycle_s"] if "cycle_s" in c.columns else c["draft_s"] + c["verify_s"]
    steps = pd.DataFrame({"start_s": c["start_s"], "batch_size": c["batch_size"].astype(int),
                          "step_s": step_s.astype(float), "emitted": c["emitted"]})
    per_step = steps.groupby("start_s").agg(batch_size=("batch_size", "max"),
                                            step_s=("step_s", "max"),
                                            tokens=("emitted", "sum"))
    out = per_step.groupby("batch_size").agg(steps=("step_s", "size"), step_s=("step_s", "mean"),
                                             tokens_per_step=("tokens", "mean"))
    out["tokens_per_row"] = out["tokens_per_step"] / out.index.to_numpy(dtype=float)
    return out.reset_index()


def request_batch(trace: Trace) -> pd.DataFrame:
    """Per request: its latency (end - arrival) and the mean batch size of its cycles."""
    c, r = trace.cycles, trace.requests
    if len(c) == 0 or "batch_size" not in c.columns:
        return pd.DataFrame(columns=["request_id", "latency_s", "mean_batch"])
    mean_batch = c.groupby("request_id")["batch_size"].mean()
    latency = pd.Series((r["end_s"] - r["arrival_s"]).to_numpy(float), index=r["request_id"])
    both = latency.index.intersection(mean_batch.index)
    return pd.DataFrame({"request_id": both, "latency_s": latency[both].to_numpy(),
                         "mean_batch": mean_batch[both].to_numpy(dtype=float)})


def latency_by_batch(trace: Trace) -> go.Figure:
    """Left: step time and tokens per step by batch size. Right: request latency against the
    mean batch size it decoded in."""
    table, reqs = step_table(trace), request_batch(trace)
    fig = make_subplots(rows=1, cols=2, specs=[[{"secondary_y": True}, {}]],
                        subplot_titles=["engine step by batch size",
                                        "request latency vs the batch it ran in"])
    fig.update_layout(**{**_LAYOUT, "height": 440},
                      title={"text": "Latency against batch size (server trace)"})
    if table.empty:
        fig.add_annotation(text="no batch_size in this trace's cycles (not a server trace)",
                           showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
        return fig
    b = table["batch_size"].to_numpy()
    fig.add_trace(go.Bar(x=b, y=1e3 * table["step_s"].to_numpy(), name="step time (ms)",
                         marker={"color": "#f28e2b"},
                         customdata=table["steps"].to_numpy(),
                         hovertemplate="batch %{x}: %{y:.1f} ms over %{customdata} steps"
                                       "<extra></extra>"), row=1, col=1)
    fig.add_trace(go.Scatter(x=b, y=table["tokens_per_step"].to_numpy(), mode="lines+markers",
                             name="tokens per step", line={"color": "#4e79a7"}),
                  row=1, col=1, secondary_y=True)
    if len(reqs) > MAX_POINTS:
        reqs = reqs.iloc[np.linspace(0, len(reqs) - 1, MAX_POINTS).astype(int)]
    fig.add_trace(go.Scatter(x=reqs["mean_batch"], y=1e3 * reqs["latency_s"], mode="markers",
                             name="request", marker={"color": "#76b7b2", "size": 7},
                             text=[_text(str(x)) for x in reqs["request_id"]],
                             hovertemplate="%{text}: %{y:.0f} ms at mean batch %{x:.2f}"
                                           "<extra></extra>"), row=1, col=2)
    fig.update_xaxes(title_text="batch size (rows in the step)", dtick=1, row=1, col=1)
    fig.update_yaxes(title_text="step time (ms)", row=1, col=1, secondary_y=False)
    fig.update_yaxes(title_text="tokens per step", row=1, col=1, secondary_y=True)
    fig.update_xaxes(title_text="mean batch size", row=1, col=2)
    fig.update_yaxes(title_text="latency (ms)", row=1, col=2)
    return fig


def load_curve(curves: Sequence[dict[str, Any]], axis: str, title: str) -> go.Figure:
    """p50/p95 latency and throughput against load. Each curve: ``label``, ``kind``
    ("measured" | "predicted"), ``load`` (list), ``p50_s``, ``p95_s``, ``throughput_tok_s``
    (lists), optionally ``p50_ci`` / ``p95_ci`` (lists of [lo, hi] or None)."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=["latency (p50 solid, p95 dashed)",
                                                         "throughput"])
    fig.update_layout(**{**_LAYOUT, "height": 460}, title={"text": _text(title)})
    palette = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#76b7b2"]
    labels = sorted({c["label"] for c in curves})
    color = {label: palette[i % len(palette)] for i, label in enumerate(labels)}
    for c in curves:
        measured = c["kind"] == "measured"
        style = {"color": color[c["label"]]}
        name = f"{_text(c['label'])} ({c['kind']})"
        for q, dash in (("p50", "solid"), ("p95", "dash")):
            values = list(c[f"{q}_s"])
            y = [1e3 * v for v in values]
            err = None
            ci = c.get(f"{q}_ci")
            if ci and any(x is not None for x in ci):  # [lo, hi] seconds -> +- ms
                up = [1e3 * (x[1] - v) if x else 0.0 for x, v in zip(ci, values, strict=True)]
                down = [1e3 * (v - x[0]) if x else 0.0 for x, v in zip(ci, values, strict=True)]
                err = {"type": "data", "array": up, "arrayminus": down, "visible": True}
            fig.add_trace(go.Scatter(
                x=c["load"], y=y, name=f"{name} {q}", legendgroup=name, error_y=err,
                mode="markers" if measured else "lines+markers",
                marker={**style, "symbol": "circle" if measured else "x", "size": 9},
                line={**style, "dash": dash}), row=1, col=1)
        fig.add_trace(go.Scatter(
            x=c["load"], y=c["throughput_tok_s"], name=f"{name} tok/s", legendgroup=name,
            mode="markers" if measured else "lines+markers", showlegend=False,
            marker={**style, "symbol": "circle" if measured else "x", "size": 9},
            line=style), row=1, col=2)
    label = "concurrency (users)" if axis == "concurrency" else "rate (requests / s)"
    for col in (1, 2):
        fig.update_xaxes(title_text=label, type="log" if axis == "concurrency" else "linear",
                         row=1, col=col)
    fig.update_yaxes(title_text="latency (ms)", row=1, col=1)
    fig.update_yaxes(title_text="output tokens / s", row=1, col=2)
    return fig


__all__ = ["latency_by_batch", "load_curve", "request_batch", "step_table"]

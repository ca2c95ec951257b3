"""``specsim compare A B``: two traces side by side -- a regression check before and after a change.

Every numeric figure of ``trace summary --json`` (dotted keys: ``latency_s.p50``,
``acceptance_by_position.0``, ...) with both values, the change ``b - a``, its 95% interval and
``significant`` (the interval excludes 0). The interval is a bootstrap over requests: each of
``draws`` resamples draws each trace's requests with replacement (with their cycles) and
summarises it again; the interval is the 2.5th..97.5th percentile of the resampled changes. When
both traces ran the same prompts (the same prompt texts, or without texts the same prompt lengths
in order), request ``i`` of A is paired with its prompt's request in B and both are resampled
together, so a trace compared with itself changes by exactly 0 in every draw.

When both are greedy runs (temperature 0) of the same prompts, their output texts are compared
first: ``outputs_differ`` names the first prompt whose outputs differ and the first differing
character -- "fast but wrong" comes before any speed figure. What a trace cannot give (output
texts not recorded, per-phase timings of an imported trace) is listed in ``missing``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from tracing.summary import summarize
from tracing.trace import Trace

DRAWS = 200


def flatten(obj: Any, prefix: str = "") -> dict[str, float | None]:
    """The numeric leaves of a summary, dotted (``latency_s.p50``; lists by index)."""
    out: dict[str, float | None] = {}
    if isinstance(obj, dict):
        for key, value in obj.items():
            out.update(flatten(value, f"{prefix}{key}."))
    elif isinstance(obj, list | tuple):
        for i, value in enumerate(obj):
            out.update(flatten(value, f"{prefix}{i}."))
    elif obj is None:
        out[prefix[:-1]] = None
    elif isinstance(obj, bool):
        pass
    elif isinstance(obj, int | float | np.integer | np.floating):
        value = float(obj)
        out[prefix[:-1]] = value if math.isfinite(value) else None
    return out


def _ordered(trace: Trace) -> pd.DataFrame:
    return trace.requests.sort_values(["arrival_s"], kind="stable").reset_index(drop=True)


def _texts(r: pd.DataFrame, col: str) -> list[str] | None:
    if col not in r.columns or r[col].isna().any():
        return None
    return [str(x) for x in r[col]]


def pairing(a: Trace, b: Trace) -> np.ndarray | None:
    """For each of A's requests (arrival order), the row of B's (arrival order) with the same
    prompt; None when the traces did not run the same prompts."""
    ra, rb = _ordered(a), _ordered(b)
    if len(ra) != len(rb) or len(ra) == 0:
        return None
    ta, tb = _texts(ra, "prompt_text"), _texts(rb, "prompt_text")
    if ta is not None and tb is not None:
        free: dict[str, list[int]] = {}
        for j, text in enumerate(tb):
            free.setdefault(text, []).append(j)
        match = []
        for text in ta:
            rows = free.get(text)
            if not rows:
                return None
            match.append(rows.pop(0))
        return np.asarray(match)
    if ra["prompt_tokens"].tolist() == rb["prompt_tokens"].tolist():
        return np.arange(len(ra))
    return None


def resample(trace: Trace, rows: np.ndarray, ordered: pd.DataFrame,
             index: dict[Any, np.ndarray]) -> Trace:
    """The trace made of requests ``rows`` (of ``ordered``), renumbered, with their cycles."""
    req = ordered.iloc[rows].reset_index(drop=True).copy()
    old = req["request_id"].tolist()
    req["request_id"] = np.arange(len(req), dtype=np.int64)
    parts = [index.get(rid, np.zeros(0, dtype=np.int64)) for rid in old]
    take = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    cyc = trace.cycles.iloc[take].reset_index(drop=True).copy()
    cyc["request_id"] = np.repeat(np.arange(len(old), dtype=np.int64), [p.size for p in parts])
    return Trace(trace.meta, req, cyc, path=trace.path)


def _index(trace: Trace) -> dict[Any, np.ndarray]:
    return {k: np.asarray(v, dtype=np.int64)
            for k, v in trace.cycles.groupby("request_id", sort=False).indices.items()}


def outputs_differ(a: Trace, b: Trace, match: np.ndarray | None) -> dict[str, Any] | None:
    """The first prompt (A's arrival order) whose output texts differ, and where; None when they
    all agree or cannot be compared (see :func:`compare`'s ``outputs``)."""
    if match is None:
        return None
    ra, rb = _ordered(a), _ordered(b)
    oa, ob = _texts(ra, "output_text"), _texts(rb, "output_text")
    if oa is None or ob is None:
        return None
    for i, j in enumerate(match):
        x, y = oa[i], ob[int(j)]
        if x != y:
            pos = next((k for k, (u, v) in enumerate(zip(x, y, strict=False)) if u != v),
                       min(len(x), len(y)))
            prompt = _texts(ra, "prompt_text")
            return {"prompt_index": i, "request_id_a": _plain_id(ra["request_id"].iloc[i]),
                    "request_id_b": _plain_id(rb["request_id"].iloc[int(j)]),
                    "char_position": pos, "prompt": None if prompt is None else prompt[i][:80],
                    "a": x[max(0, pos - 20): pos + 40], "b": y[max(0, pos - 20): pos + 40],
                    "prompts_differing": sum(oa[k] != ob[int(m)] for k, m in enumerate(match))}
    return None


def _plain_id(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _missing(trace: Trace, name: str) -> list[str]:
    r, c = trace.requests, trace.cycles
    out = []
    if "output_text" not in r.columns or r["output_text"].isna().all():
        out.append(f"{name}: output texts not recorded (outputs cannot be compared)")
    for col in ("draft_s", "verify_s", "overhead_s"):
        if col in c.columns and len(c) and c[col].isna().any():
            out.append(f"{name}: {col} unknown for some cycles (an imported trace: the per-phase "
                       "split is not measured, so time shares are not compared)")
            break
    return out


def compare(a: Trace, b: Trace, *, draws: int = DRAWS, seed: int = 0) -> dict[str, Any]:
    """The ``compare --json`` object (see the module docstring)."""
    match = pairing(a, b)
    greedy = a.meta.temperature == 0 and b.meta.temperature == 0
    out: dict[str, Any] = {}
    differ = outputs_differ(a, b, match) if greedy else None
    if greedy and match is not None:
        recorded = (_texts(_ordered(a), "output_text") is not None
                    and _texts(_ordered(b), "output_text") is not None)
        out["outputs_differ"] = differ
        out["outputs"] = "differ" if differ else "identical" if recorded else "not recorded"
    else:
        out["outputs"] = ("not compared: " + ("not both greedy" if not greedy
                                              else "not the same prompts"))
    sa, sb = flatten(summarize(a)), flatten(summarize(b))
    keys = [k for k in sa if k in sb] + [k for k in sb if k not in sa]
    oa, ob = _ordered(a), _ordered(b)
    ia, ib = _index(a), _index(b)
    rng = np.random.default_rng(seed)
    changes: dict[str, list[float]] = {k: [] for k in keys}
    for _ in range(draws):
        rows_a = rng.integers(0, len(oa), len(oa))
        rows_b = match[rows_a] if match is not None else rng.integers(0, len(ob), len(ob))
        fa = flatten(summarize(resample(a, rows_a, oa, ia)))
        fb = flatten(summarize(resample(b, rows_b, ob, ib)))
        for k in keys:
            x, y = fa.get(k), fb.get(k)
            if x is not None and y is not None:
                changes[k].append(y - x)
    metrics: dict[str, Any] = {}
    for k in keys:
        x, y = sa.get(k), sb.get(k)
        change = None if x is None or y is None else y - x
        values = np.asarray(changes[k], dtype=float)
        ci = None
        if change is not None and values.size >= max(2, draws // 2):
            ci = [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))]
        significant = bool(ci is not None and change != 0 and (ci[0] > 0 or ci[1] < 0))
        metrics[k] = {"a": x, "b": y, "change": change,
                      "relative": change / x if change is not None and x else None,
                      "ci95": ci, "significant": significant}
    out.update({
        "a": _describe(a), "b": _describe(b), "paired": match is not None,
        "method": f"bootstrap over requests, {draws} resamples"
                  + (" (paired by prompt)" if match is not None else " (independent)"),
        "missing": _missing(a, "a") + _missing(b, "b"),
        "significant": [k for k, v in metrics.items() if v["significant"]],
        "metrics": metrics,
        "by_batch_size": by_batch_size(a, b),
    })
    return out


def _per_batch(trace: Trace) -> dict[int, dict[str, float]]:
    """Per engine-step batch size: cycles, mean draft length and mean tokens emitted per row."""
    c = trace.cycles
    if not len(c):
        return {}
    if ("batch_size" not in c.columns or c["batch_size"].isna().all()) \
            and trace.meta.source == "sim":  # a simulated step's cycles share its start
        c = c.assign(batch_size=c.groupby("start_s")["request_id"].transform("size"))
    if "batch_size" not in c.columns or c["batch_size"].isna().all():
        return {}
    out = {}
    for _, rows in c.dropna(subset=["batch_size"]).groupby("batch_size"):
        out[int(rows["batch_size"].iloc[0])] = {
            "cycles": float(len(rows)), "mean_tau": float(rows["tau"].mean()),
            "tokens_per_cycle": float(rows["emitted"].mean())}
    return out


def by_batch_size(a: Trace, b: Trace) -> list[dict[str, Any]]:
    """What each run did at each batch size its engine steps ran at: a tuned schedule (tau by
    batch size) beside a fixed one shows here. [] when neither trace records batch sizes."""
    pa, pb = _per_batch(a), _per_batch(b)
    return [{"batch_size": size, "a": pa.get(size), "b": pb.get(size)}
            for size in sorted(set(pa) | set(pb))]


def _describe(trace: Trace) -> dict[str, Any]:
    m = trace.meta
    return {"path": trace.path, "source": m.source, "target_model": m.target_model,
            "draft_model": m.draft_model, "policy": m.policy, "policy_params": m.policy_params,
            "policy_spec": _spec(m.policy, m.policy_params),
            "temperature": m.temperature, "requests": len(trace.requests),
            "cycles": len(trace.cycles)}


def _spec(policy: str | None, params: dict[str, Any] | None) -> str:
    """``fixed:tau=4,tau_by_batch=1:4,4:2`` (the policy as ``--policy`` takes it)."""
    items = ",".join(f"{k}={v}" for k, v in (params or {}).items())
    name = policy or "unknown"
    return f"{name}:{items}" if items else name


def page(a: Trace, b: Trace, result: dict[str, Any]) -> str:
    """A self-contained HTML page: both latency / TTFT distributions (CDF steps), acceptance by
    position, and every significant change with its interval."""
    import html

    import plotly.graph_objects as go

    from analysis import figures as F
    from analysis.report import escape_json, page_shell

    def lat(t: Trace, start: str) -> np.ndarray:
        r = t.requests
        return (r["end_s" if start == "arrival_s" else "first_token_s"] - r["arrival_s"]).to_numpy(float)

    figs = [
        F.latency_distributions({"A": lat(a, "arrival_s"), "B": lat(b, "arrival_s")},
                                title="Request latency: A against B"),
        F.latency_distributions({"A": lat(a, "ttft"), "B": lat(b, "ttft")},
                                title="Time to first token: A against B"),
    ]
    figs[1].update_xaxes(title_text="time to first token (ms)")
    acc = go.Figure()
    for name, t in (("A", a), ("B", b)):
        pos = summarize(t)["acceptance_by_position"]
        acc.add_trace(go.Bar(name=name, x=list(range(1, len(pos) + 1)), y=pos))
    acc.update_layout(title={"text": "Acceptance by draft position"}, barmode="group",
                      template="plotly_white", xaxis_title="draft position",
                      yaxis_title="acceptance", yaxis_range=[0, 1.05])
    figs.append(acc)
    sig = [(k, v) for k, v in result["metrics"].items() if v["significant"] and v["a"]]
    if sig:
        bars = go.Figure(go.Bar(
            x=[v["change"] / v["a"] * 100 for _, v in sig], y=[k for k, _ in sig], orientation="h",
            error_x={"type": "data", "symmetric": False,
                     "array": [(v["ci95"][1] - v["change"]) / v["a"] * 100 for _, v in sig],
                     "arrayminus": [(v["change"] - v["ci95"][0]) / v["a"] * 100 for _, v in sig]}))
        bars.update_layout(title={"text": "Significant changes, B against A (% of A, 95% interval)"},
                           template="plotly_white", height=max(300, 40 + 24 * len(sig)),
                           xaxis_title="change (%)")
        figs.append(bars)
    rows = "".join(
        f"<tr{' class=sig' if v['significant'] else ''}><td>{html.escape(k)}</td>"
        f"<td>{_num(v['a'])}</td><td>{_num(v['b'])}</td><td>{_num(v['change'])}</td>"
        f"<td>{_ci(v['ci95'])}</td><td>{'yes' if v['significant'] else ''}</td></tr>"
        for k, v in result["metrics"].items())
    head = ""
    if result.get("outputs_differ"):
        d = result["outputs_differ"]
        head = (f"<p class='warn'><b>Outputs differ</b> (greedy runs of the same prompts): "
                f"{d['prompts_differing']} prompt(s); first at prompt {d['prompt_index']}, "
                f"character {d['char_position']}: A {html.escape(repr(d['a']))} / B "
                f"{html.escape(repr(d['b']))}</p>")
    notes = "".join(f"<li>{html.escape(m)}</li>" for m in result["missing"])
    body = (f"{head}<p>A: {html.escape(str(a.path or 'A'))} ({len(a.requests)} requests); B: "
            f"{html.escape(str(b.path or 'B'))} ({len(b.requests)} requests). Outputs: "
            f"{html.escape(result['outputs'])}. Intervals: {html.escape(result['method'])}.</p>"
            + (f"<ul>{notes}</ul>" if notes else "")
            + "".join(f"<div class='plot' id='plot-{i}'></div><script type='application/json' "
                      f"data-plot='plot-{i}'>{escape_json(fig.to_json())}</script>"
                      for i, fig in enumerate(figs))
            + "<h2>Every metric</h2><table class='kv'><tr><th>metric</th><th>A</th><th>B</th>"
            f"<th>change</th><th>95% interval</th><th>significant</th></tr>{rows}</table>")
    return page_shell("specsim compare: A against B", body)


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.4g}"


def _ci(ci: list[float] | None) -> str:
    return "-" if ci is None else f"[{ci[0]:.4g}, {ci[1]:.4g}]"


__all__ = ["DRAWS", "compare", "flatten", "outputs_differ", "page", "pairing", "resample"]

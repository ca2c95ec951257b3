"""The output of ``specsim validate``: the HTML page (one chart per kind of pair, and the pairs
table) and the terminal table.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from analysis.validate_predict import METRICS, _spans
from tracing.errors import SpecsimError

KIND_COLORS = {"replay": "#1f77b4", "same config": "#2ca02c", "other policy": "#ff7f0e",
               "draft": "#17becf", "other draft": "#9467bd", "other hardware (catalog)": "#8c564b",
               "other hardware (profile)": "#e377c2"}


def _groups(pairs: list[dict[str, Any]]) -> list[tuple[str, str, bool, list[dict[str, Any]]]]:
    """(label, color, extrapolated, pairs) for every kind of pair present."""
    out = []
    for kind, color in KIND_COLORS.items():
        for extrapolated in (False, True):
            rows = [p for p in pairs if p["kind"] == kind and p["extrapolated"] == extrapolated]
            if rows:
                out.append((kind + (" (extrapolated)" if extrapolated else ""), color,
                            extrapolated, rows))
    return out


def _hover(p: dict[str, Any]) -> str:
    note = p["extrapolation"] or "covered"
    return (f"{Path(p['a']).name} -> {Path(p['b']).name}<br>{p['b_config']}<br>{note}"
            f"<br>coverage {p['predicted'].get('coverage', 1.0):.0%}")


def write_html(result: dict[str, Any], path: str) -> None:
    """A self-contained Plotly page. Top: predicted against measured p50 and p95, one point per
    pair, the diagonal with a +-10% band. Bottom: each pair's error by kind, with the goals
    (replay 5%, another policy 10%) as lines, so a miss is a point outside them."""
    import plotly.graph_objects as go
    import plotly.io as pio
    from plotly.subplots import make_subplots

    metrics = (("p50_s", "p50"), ("p95_s", "p95"))
    fig = make_subplots(
        rows=2, cols=2, vertical_spacing=0.14, horizontal_spacing=0.08,
        subplot_titles=[f"{n} latency: predicted vs measured (s)" for _, n in metrics]
        + [f"{n} error by kind of pair" for _, n in metrics])
    groups = _groups(result["pairs"])
    for col, (metric, name) in enumerate(metrics, start=1):
        values = [v for p in result["pairs"] for v in (p["predicted"][metric],
                                                         p["measured"][metric])]
        lo, hi = min(values, default=0.0) * 0.9, max(values, default=1.0) * 1.1
        fig.add_trace(go.Scatter(  # the +-10% band around the diagonal
            x=[lo, hi, hi, lo], y=[lo * 0.9, hi * 0.9, hi * 1.1, lo * 1.1], mode="lines",
            fill="toself",
            fillcolor="rgba(128,128,128,0.15)", line={"width": 0}, hoverinfo="skip",
            name="within 10%", legendgroup="band", showlegend=col == 1), row=1, col=col)
        fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", showlegend=False,
                                 hoverinfo="skip", line={"dash": "dash", "color": "gray"}),
                      row=1, col=col)
        for label, color, extrapolated, rows in groups:
            marker = {"color": color, "symbol": "x" if extrapolated else "circle", "size": 8,
                      "opacity": 0.55 if extrapolated else 0.9}
            fig.add_trace(go.Scatter(
                x=[p["measured"][metric] for p in rows], y=[p["predicted"][metric] for p in rows],
                mode="markers", name=label, legendgroup=label, showlegend=col == 1,
                marker=marker, text=[_hover(p) for p in rows],
                hovertemplate="%{text}<br>measured %{x:.3f} s<br>predicted %{y:.3f} s"
                              "<extra></extra>"), row=1, col=col)
            errs = [100.0 * p["error"][metric] for p in rows]
            fig.add_trace(go.Box(
                x=[label] * len(rows), y=errs, name=label, legendgroup=label, showlegend=False,
                boxpoints="all", jitter=0.5, pointpos=0, marker=marker, line={"color": color},
                fillcolor="rgba(0,0,0,0)", text=[_hover(p) for p in rows],
                hovertemplate="%{text}<br>error %{y:+.1f}%<extra></extra>"), row=2, col=col)
        for goal, dash in ((5, "dot"), (10, "dash")):
            for sign in (1, -1):
                fig.add_hline(y=sign * goal, line={"dash": dash, "color": "gray", "width": 1},
                              row=2, col=col)
        fig.update_xaxes(title_text="measured (s)", range=[lo, hi], row=1, col=col)
        fig.update_yaxes(title_text="predicted (s)", range=[lo, hi], row=1, col=col)
        fig.update_yaxes(title_text=f"{name} error (%); goals 5% / 10%", row=2, col=col)
    fig.update_layout(title="specsim validate: each run predicted from every other", height=900,
                      boxmode="group")
    page = ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>specsim validate"
            "</title></head><body style='font-family:system-ui,sans-serif'>"
            + pio.to_html(fig, include_plotlyjs=True, full_html=False)
            + pairs_table_html(result) + "</body></html>\n")
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(page)
    except OSError as exc:
        raise SpecsimError(f"-o {path}: cannot write: {exc.strerror}") from None


def pairs_table_html(result: dict[str, Any]) -> str:
    """The command's table on the page: each pair's measured and predicted figures and errors,
    then the warnings."""
    import html

    head = ("A", "B", "B config", "kind", "p50 ms meas/pred", "p50", "p95", "tok/cycle",
            "speedup", "extrapolated")
    rows = []
    for p in result["pairs"]:
        e = p["error"]
        cells = (Path(p["a"]).stem, Path(p["b"]).stem, p["b_config"], p["kind"],
                 f"{p['measured']['p50_s'] * 1e3:.0f}/{p['predicted']['p50_s'] * 1e3:.0f}",
                 _pct(e["p50_s"]), _pct(e["p95_s"]), _pct(e["tokens_per_cycle"]),
                 _pct(e["speedup"]), p["extrapolation"] or _profiled(p))
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    warn = "".join(f"<li>{html.escape(w)}</li>" for w in result.get("warnings", []))
    return ("<h2>Every pair: B predicted from A (relative error)</h2>"
            "<table border='1' cellpadding='3' style='border-collapse:collapse'><tr>"
            + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>" + "".join(rows)
            + "</table>" + (f"<h2>Warnings</h2><ul>{warn}</ul>" if warn else ""))



def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:+.1%}"


def _profiled(pair: dict[str, Any]) -> str:
    taus = pair.get("verify_from_profile") or []
    return f"no (verify cost of tau {_spans(taus)} profiled)" if taus else "no"


def _print_table(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="validate: B predicted from A (relative error)")
    for name in ("A", "B config", "kind", "p50 ms meas/pred", "p50", "p95", "tok/cycle",
                 "speedup", "extrapolated"):
        table.add_column(name)
    for p in result["pairs"]:
        if p["kind"].startswith("other hardware"):
            continue  # their own table, below
        e = p["error"]
        table.add_row(Path(p["a"]).stem, p["b_config"], p["kind"],
                      f"{p['measured']['p50_s'] * 1e3:.0f}/{p['predicted']['p50_s'] * 1e3:.0f}",
                      _pct(e["p50_s"]), _pct(e["p95_s"]), _pct(e["tokens_per_cycle"]),
                      _pct(e["speedup"]), p["extrapolation"] or _profiled(p))
    console = Console() if sys.stdout.isatty() else Console(width=200)
    console.print(table)
    for key, stats in result["summary"].items():
        if key.startswith("other hardware"):
            continue
        parts = [f"{m} mean |err| {stats[m]['mean_abs']:.1%} max {stats[m]['max_abs']:.1%}"
                 for m in METRICS if stats.get(m)]
        goal = ""
        if "goal" in stats:
            goal = f"  [p50/p95 goal {stats['goal']:.0%}: {'met' if stats['meets_goal'] else 'MISSED'}]"
        console.print(escape(f"{key} ({stats['pairs']} pairs): " + "; ".join(parts) + goal))
    from analysis.crossdevice import print_table

    print_table(result, console)

"""``other hardware`` pairs of ``specsim validate``: a run on device A predicts a run on device B.

A pair is two traces of one workload (label and target) and one draft, captured on different
devices (exact catalog identity, :func:`sim.models.catalog.same_device`), over the prompts both ran
(same request id, same prompt length). B is predicted from A alone with ``[latency] hardware`` =
B's device -- A's acceptance replayed per request, B's policy, budget and lengths -- twice:

* ``catalog``: datasheet + cost model only (no measurement of B's device);
* ``profile``: anchored to a measured profile of B's device (``--profile``: a ``specsim
  profile`` file, a capture carrying one, or a target-only trace of the device), when given.

Compared with B's measured median ms per output token (each request's wall time over its
tokens), p50 and p95 latency. Goals: catalog within a factor of ``CATALOG_GOAL``, profile within
``PROFILE_GOAL`` per token.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from sim.models.catalog import device_of, same_device
from tracing.trace import Trace

CATALOG_GOAL = 1.5  # factor
PROFILE_GOAL = 0.15  # relative
KINDS = ("other hardware (catalog)", "other hardware (profile)")


def ms_per_token(trace: Trace) -> float:
    """Median over requests of (end - start) / output tokens, in milliseconds."""
    r = trace.requests
    r = r[r["output_tokens"] > 0]
    if len(r) == 0:
        return 0.0
    per = (r["end_s"] - r["start_s"]).to_numpy(float) / r["output_tokens"].to_numpy(float)
    return float(np.median(per) * 1e3)


def common_ids(a: Trace, b: Trace) -> list[Any]:
    """Request ids both traces ran with the same prompt length."""
    pa = a.requests.set_index("request_id")["prompt_tokens"]
    pb = b.requests.set_index("request_id")["prompt_tokens"]
    both = pa.index.intersection(pb.index)
    return [i for i in both if int(pa[i]) == int(pb[i])]


def restrict(trace: Trace, ids: list[Any]) -> Trace:
    """The trace's requests (and their cycles) among ``ids``."""
    keep = set(ids)
    r = trace.requests[trace.requests["request_id"].isin(keep)].reset_index(drop=True)
    c = trace.cycles[trace.cycles["request_id"].isin(keep)].reset_index(drop=True)
    return Trace(trace.meta, r, c, trace.path)


def pairs(runs: list[Any], truth: dict[str, dict[str, Any]], profile: str | None,
          predict: Any) -> list[dict[str, Any]]:
    """Every ordered cross-device pair of ``runs`` (:class:`analysis.validate.Run`), predicted
    by ``predict(a, b, overrides)``; ``truth``: each B's measured figures (speedup basis)."""
    from sim.calibrate.device import load_profile

    prof = load_profile(profile) if profile else None
    out: list[dict[str, Any]] = []
    for a in runs:
        for b in runs:
            if a.target_only or b.target_only or a.draft != b.draft:
                continue
            if a.workload[:2] != b.workload[:2] or same_device(a.device, b.device):
                continue
            dst = device_of(b.device)
            ids = common_ids(a.trace, b.trace)
            if dst is None or not ids:
                continue
            bases: list[tuple[str, dict[str, Any]]] = [("catalog", {})]
            if prof is not None and same_device(prof.device, b.device):
                bases.append(("profile", {"profile": profile}))
            for basis, extra in bases:
                row = _pair(a, b, ids, basis, {"hardware": dst.key, **extra}, truth, predict)
                if basis == "profile" and prof is not None:
                    probes = host_probes(prof, b)
                    if probes:
                        row["host_probe"] = probes
                out.append(row)
    return out


DRIFT = 1.10  # host probes further apart than this are worth a word


def host_probes(profile: Any, b: Any) -> dict[str, Any]:
    """The profile's host probe beside B's capture's (both microseconds per eager op, same
    device), their ratio, and a note when they differ by more than :data:`DRIFT`; {} when
    either has none."""
    from sim.models.deviceprofile import host_probe_of

    extra = b.trace.meta.extra or {}
    measured = host_probe_of(extra.get("host_probe"), f"{b.path}: extra.host_probe")
    if profile.host_probe_us <= 0 or measured <= 0:
        return {}
    ratio = profile.host_probe_us / measured
    out: dict[str, Any] = {"profile_us": profile.host_probe_us, "measured_us": measured,
                           "ratio": ratio}
    if not 1 / DRIFT <= ratio <= DRIFT:
        out["note"] = (f"the profile's host dispatched {ratio:.2f}x as slow as {b.path}'s "
                       f"(host probes {profile.host_probe_us:.2f} / {measured:.2f} us per op): "
                       "where passes are launch-bound, the profile basis reads about that "
                       "much slow")
    return out


def _pair(a: Any, b: Any, ids: list[Any], basis: str, overrides: dict[str, Any],
          truth: dict[str, dict[str, Any]], predict: Any) -> dict[str, Any]:
    import dataclasses

    from tracing.summary import summarize

    a_sub = dataclasses.replace(a, trace=restrict(a.trace, ids))
    b_trace = restrict(b.trace, ids)
    b_sub = dataclasses.replace(b, trace=b_trace)
    pred, warnings, result = predict(a_sub, b_sub, overrides)
    pred["ms_per_token"] = ms_per_token(result.trace)
    s = summarize(b_trace)
    meas = {"p50_s": float(s["latency_s"]["p50"]), "p95_s": float(s["latency_s"]["p95"]),
            "tokens_per_cycle": float(s["tokens_per_cycle"]),
            "speedup": truth[b.path]["speedup"], "speedup_basis": truth[b.path]["speedup_basis"],
            "ms_per_token": ms_per_token(b_trace), "mean_s": float(s["latency_s"]["mean"])}
    errors = {m: (None if pred.get(m) is None or not meas.get(m) else
                  (pred[m] - meas[m]) / meas[m])
              for m in ("p50_s", "p95_s", "tokens_per_cycle", "speedup", "ms_per_token")}
    ratio = pred["ms_per_token"] / meas["ms_per_token"] if meas["ms_per_token"] else math.nan
    return {"a": a.path, "b": b.path, "workload": str(b.workload[0]), "a_config": a.config,
            "b_config": b.config, "kind": f"other hardware ({basis})", "basis": basis,
            "a_device": a.device, "b_device": b.device, "requests": len(ids),
            "extrapolated": False, "extrapolation": "", "verify_from_profile": [],
            "predicted": pred, "measured": meas, "error": errors, "ratio_ms_per_token": ratio,
            "band": pred.get("band"), "warnings": warnings}


def summarize_pairs(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per basis: pairs, the worst ms/token factor (catalog) or error (profile), goal met."""
    out: dict[str, Any] = {}
    for kind in KINDS:
        sel = [p for p in rows if p["kind"] == kind]
        if not sel:
            continue
        ratios = [p["ratio_ms_per_token"] for p in sel if math.isfinite(p["ratio_ms_per_token"])]
        worst_factor = max((max(r, 1 / r) for r in ratios), default=math.nan)
        worst_err = max((abs(r - 1) for r in ratios), default=math.nan)
        if kind.endswith("(catalog)"):
            stats = {"pairs": len(sel), "worst_factor": worst_factor, "goal_factor": CATALOG_GOAL,
                     "meets_goal": bool(worst_factor <= CATALOG_GOAL)}
        else:
            stats = {"pairs": len(sel), "worst_error": worst_err, "goal": PROFILE_GOAL,
                     "meets_goal": bool(worst_err <= PROFILE_GOAL)}
        out[kind] = stats
    return out


def print_table(result: dict[str, Any], console: Any) -> None:
    """The other-hardware pairs as a table, and their goals (nothing without such pairs)."""
    from pathlib import Path

    from rich.markup import escape
    from rich.table import Table

    rows = [p for p in result["pairs"] if p["kind"] in KINDS]
    if not rows:
        return
    table = Table(title="validate: other hardware -- B on another device, predicted from A")
    for name in ("A (device)", "B (device)", "basis", "requests", "ms/token meas/pred",
                 "factor", "p50", "p95", "band"):
        table.add_column(name)
    for p in rows:
        e, m, q = p["error"], p["measured"], p["predicted"]
        table.add_row(f"{Path(p['a']).stem} ({p['a_device']})",
                      f"{Path(p['b']).stem} ({p['b_device']})", p["basis"], str(p["requests"]),
                      f"{m['ms_per_token']:.1f}/{q['ms_per_token']:.1f}",
                      f"{p['ratio_ms_per_token']:.2f}x", _pct(e["p50_s"]), _pct(e["p95_s"]),
                      "-" if p["band"] is None else f"x{p['band']:g}")
    console.print(table)
    for key, stats in result["summary"].items():
        if key not in KINDS:
            continue
        if "worst_factor" in stats:
            line = (f"worst ms/token factor {stats['worst_factor']:.2f}x [goal "
                    f"{stats['goal_factor']:g}x: {'met' if stats['meets_goal'] else 'MISSED'}]")
        else:
            line = (f"worst ms/token error {stats['worst_error']:.1%} [goal {stats['goal']:.0%}: "
                    f"{'met' if stats['meets_goal'] else 'MISSED'}]")
        console.print(escape(f"{key} ({stats['pairs']} pairs): {line}"))


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:+.1%}"

"""CPU captures -> the H200 captures of the same prompts: the README's H200 validation table.

    python tests/bench/h200_validation.py [--data traces/h200] [--json] [--passes]

For each configuration the H200 ran (``chat_*.jsonl`` there: target-only; n-gram and layer-skip
at tau 2, 4 and adaptive), the CPU validation capture of the same configuration
(``traces/validation/chat_*.jsonl``, restricted to the requests both ran: the first 6) predicts
the H200 run with ``[latency] hardware = "H200"``, on three bases:

* ``catalog``: datasheet + cost model (the H200 eager stack fitted on the 1.2B profile);
* ``profile``: anchored to ``profile_h200_smollm2.json`` (``specsim profile`` of the bundled
  model, recorded 15:26, after the captures);
* ``session``: anchored to the verify profile the interleaved capture measured in its own
  process (``chat_ngram_fixed_tau_2.jsonl``'s ``extra.verify_profile_s``, 15:22).

Prints measured and predicted median ms/token, p50 and p95 latency and their errors; times
nothing (every figure comes from the files and the simulator). ``--passes`` also splits the
session basis's miss: each H200 run's ms/token as measured and with every pass (verify and
draft) at its run's median for its draft length -- what is left when the slow passes are
taken out -- beside the predicted, and the verify and draft milliseconds measured / predicted.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from analysis.crossdevice import common_ids, ms_per_token, restrict
from analysis.validate import load_run, predict_with
from tracing.io import read_trace
from tracing.summary import summarize

CONFIGS = ("none_target_only", "ngram_fixed_tau_2", "ngram_fixed_tau_4", "ngram_adaptive",
           "layerskip_fixed_tau_2", "layerskip_fixed_tau_4", "layerskip_adaptive")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "traces" / "h200"))
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--passes", action="store_true",
                    help="also the session basis's miss, split by pass (see the docstring)")
    args = ap.parse_args()
    data = Path(args.data)
    root = Path(__file__).resolve().parents[2]
    bases = {"catalog": {},
             "profile": {"profile": str(data / "profile_h200_smollm2.json")},
             "session": {"profile": str(data / "chat_ngram_fixed_tau_2.jsonl")}}
    rows = []
    split = []
    for config in CONFIGS:
        b_path = data / f"chat_{config}.jsonl"
        a_path = root / "traces" / "validation" / f"chat_{config}.jsonl"
        a_trace, b_trace = read_trace(str(a_path)), read_trace(str(b_path))
        ids = common_ids(a_trace, b_trace)
        a = load_run(str(a_path), restrict(a_trace, ids))
        b = load_run(str(b_path), restrict(b_trace, ids))
        s = summarize(b.trace)
        meas = {"ms_per_token": ms_per_token(b.trace), "p50_s": float(s["latency_s"]["p50"]),
                "p95_s": float(s["latency_s"]["p95"])}
        for basis, latency in bases.items():
            pred, _, result = predict_with(a, b, {"hardware": "H200", **latency})
            mpt = ms_per_token(result.trace)
            if basis == "session":
                split.append(pass_split(config, b.trace, result.trace, mpt))
            rows.append({"config": config, "basis": basis, "requests": len(ids),
                         "measured": meas, "predicted": {**pred, "ms_per_token": mpt},
                         "ratio_ms_per_token": mpt / meas["ms_per_token"],
                         "err_p50": pred["p50_s"] / meas["p50_s"] - 1,
                         "err_p95": pred["p95_s"] / meas["p95_s"] - 1})
    baseline = same_session_baseline(data)
    if args.json:
        print(json.dumps({"rows": rows, "same_session_baseline": baseline,
                          "session_split": split}, default=str))
        return
    print("| configuration | basis | ms/token measured / predicted | factor | p50 | p95 |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        m, p = r["measured"], r["predicted"]
        print(f"| {r['config']} | {r['basis']} | {m['ms_per_token']:.1f} / "
              f"{p['ms_per_token']:.1f} | {r['ratio_ms_per_token']:.2f}x | "
              f"{r['err_p50']:+.1%} | {r['err_p95']:+.1%} |")
    b = baseline
    print(f"\nsame-session baseline: the n-gram captures' tau=0 steps, median "
          f"{b['tau0_ms']:.1f} ms at {b['context']} cached tokens; the separate target-only "
          f"capture's passes {b['target_only_ms']:.1f} ms; the catalog's 1-token pass "
          f"{b['catalog_ms']:.1f} ms ({b['catalog_ms'] / b['tau0_ms']:.2f}x / "
          f"{b['catalog_ms'] / b['target_only_ms']:.2f}x)")
    if args.passes:
        print("\n| configuration | ms/token measured | every pass at its median | session "
              "predicted | vs median passes | verify ms meas. / pred. | draft ms meas. / pred. |")
        print("|---|---|---|---|---|---|---|")
        for r in split:
            print(f"| {r['config']} | {r['measured']:.1f} | {r['median_passes']:.1f} | "
                  f"{r['predicted']:.1f} | {r['predicted'] / r['median_passes'] - 1:+.1%} | "
                  f"{r['verify_ms'][0]:.0f} / {r['verify_ms'][1]:.0f} | "
                  f"{r['draft_ms'][0]:.0f} / {r['draft_ms'][1]:.0f} |")


def pass_split(config: str, measured: Any, predicted: Any, predicted_mpt: float) -> dict:
    """``measured``'s ms/token as measured and with every verify and draft pass at its run's
    median for its draft length; the verify and draft totals beside ``predicted``'s."""
    import numpy as np
    import pandas as pd

    c = measured.cycles
    slow = np.zeros(len(c))
    for col in ("verify_s", "draft_s"):
        med = c.groupby("tau")[col].transform("median").to_numpy(float)
        slow += c[col].to_numpy(float) - med
    extra = pd.Series(slow).groupby(c["request_id"].to_numpy()).sum()
    r = measured.requests
    span = (r["end_s"] - r["start_s"]).to_numpy(float)
    less = extra.reindex(r["request_id"].to_numpy(), fill_value=0.0).to_numpy(float)
    tokens = r["output_tokens"].to_numpy(float)
    pc = predicted.cycles
    return {"config": config, "measured": ms_per_token(measured),
            "median_passes": float(np.median((span - less) / tokens) * 1e3),
            "predicted": predicted_mpt,
            "verify_ms": (float(c["verify_s"].sum()) * 1e3, float(pc["verify_s"].sum()) * 1e3),
            "draft_ms": (float(c["draft_s"].sum()) * 1e3, float(pc["draft_s"].sum()) * 1e3)}



def same_session_baseline(data: Path) -> dict:
    """The tau=0 steps of the interleaved n-gram captures against the separate target-only
    capture's passes and the catalog's 1-token pass at their median context."""
    import numpy as np

    from sim.models.catalog import get_device
    from sim.models.costmodel import SMOLLM2_135M, pass_s

    steps = []
    for name in ("ngram_fixed_tau_2", "ngram_fixed_tau_4", "ngram_adaptive"):
        c = read_trace(str(data / f"chat_{name}.jsonl")).cycles
        steps.append(c[c["tau"] == 0])
    tau0 = np.concatenate([s["verify_s"].to_numpy(float) for s in steps])
    ctx = int(np.median(np.concatenate([s["context_tokens"].to_numpy(float) for s in steps])))
    only = read_trace(str(data / "chat_none_target_only.jsonl")).cycles["verify_s"]
    model = pass_s(get_device("H200"), SMOLLM2_135M, "bf16", 1, 1, ctx)
    return {"tau0_ms": float(np.median(tau0)) * 1e3, "context": ctx,
            "target_only_ms": float(only.median()) * 1e3, "catalog_ms": model * 1e3}


if __name__ == "__main__":
    main()

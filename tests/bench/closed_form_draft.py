"""Issue 26 part 1: halving the draft step of a planted draft-bound trace, simulated vs closed
form (each request's latency falls by its measured speed x half the draft step x the tokens it
drafted; the predicted p50 is the median of the measured latencies less that).

    python tests/bench/closed_form_draft.py [--requests 60]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main() -> int:
    import numpy as np

    from analysis.planted import planted_trace
    from sim.calibrate import scenario_from_trace
    from sim.calibrate.costs import fit_latency, trace_speeds
    from sim.calibrate.requests import request_order
    from sim.engine.core import simulate

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=60)
    args = p.parse_args()
    trace = planted_trace("draft_bound", requests=args.requests)
    base = scenario_from_trace(trace).with_overrides({"latency.replay_speed": True})
    d = fit_latency(trace).draft_step_s
    r = trace.requests.iloc[request_order(trace)]
    measured = (r["end_s"] - r["arrival_s"]).to_numpy()
    drafted = trace.cycles.groupby("request_id")["tau"].sum().reindex(r["request_id"]).to_numpy()
    speeds = trace_speeds(trace)
    print(f"planted draft_bound, {args.requests} requests, fitted draft step {d * 1e3:.2f} ms")
    print("| draft step | closed-form p50 (s) | simulated p50 (s) | error |\n|---|---|---|---|")
    for factor in (1.0, 0.5, 0.25):
        expected = float(np.median(measured - speeds * d * (1 - factor) * drafted))
        got = simulate(base.with_overrides({"draft.step_s": d * factor}), trace).figures
        p50 = got["latency_s"]["p50"]
        print(f"| x{factor:g} | {expected:.4f} | {p50:.4f} | {(p50 - expected) / expected:+.3%} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Request-speed noise drawn from a lognormal (mean 1, the fitted spread) or from the trace's own
measured request speeds (``[latency] speed_model = "empirical"``), side by side, on the
validation set and on the H100 captures:

    python tests/bench/speed_model.py [--dir traces/validation] [--groups chat/ngram,...]

For each group it runs ``specsim validate`` twice and prints the replay and covered other-policy
errors (mean / max |error| of p50 and p95) under each model.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from record_validation import GROUPS, group_paths  # noqa: E402

GPU = ["traces/live_gpu_chat_layerskip.jsonl", "traces/live_gpu_edit_ngram.jsonl"]


def run(paths: list[str], model: str) -> dict[str, Any]:
    """``validate(paths)`` with every replayed scenario's speed model set to ``model``."""
    import sim
    from analysis.validate import validate

    original = sim.scenario_from_trace

    def patched(trace: Any) -> Any:
        return original(trace).with_overrides({"latency.speed_model": model})

    sim.scenario_from_trace = patched
    try:
        return validate(paths)["summary"]
    finally:
        sim.scenario_from_trace = original


def line(summary: dict[str, Any], kind: str) -> str:
    stats = summary.get(kind)
    if not stats:
        return "-"
    p50, p95 = stats["p50_s"], stats["p95_s"]
    return (f"p50 {p50['mean_abs']:.1%} / {p50['max_abs']:.1%}, "
            f"p95 {p95['mean_abs']:.1%} / {p95['max_abs']:.1%} ({stats['pairs']})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", default=str(ROOT / "traces" / "validation"))
    parser.add_argument("--groups", default="", help="workload/draft,... (default: all)")
    args = parser.parse_args()
    wanted = {tuple(g.split("/")) for g in args.groups.split(",") if g}
    sets = [(f"{w}/{d}", group_paths(Path(args.dir), w, d)) for w, d in GROUPS
            if not wanted or (w, d) in wanted]
    sets += [(Path(p).stem, [str(ROOT / p)]) for p in GPU]
    for name, paths in sets:
        for model in ("lognormal", "empirical"):
            s = run(paths, model)
            print(f"{name} {model}: replay {line(s, 'replay')}; other policy "
                  f"{line(s, 'other policy')}", flush=True)


if __name__ == "__main__":
    main()

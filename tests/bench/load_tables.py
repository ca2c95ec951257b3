"""The load-curve tables of docs/validation.md from a recorded set (``tests/bench/record_load.py``).

Prints markdown: the measured curves (p50 / p95 latency and throughput per configuration and
load point), the predicted-vs-measured error table of ``specsim validate`` (kind load: every
point predicted from the configuration's concurrency-1 server trace), the crossovers, and the
goodput policy's change against fixed tau=4 (same draft, recorded interleaved with it).

    python tests/bench/load_tables.py [traces/load] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def _ms(x: float) -> str:
    return f"{1e3 * x:.0f}"


def drift(paths: list[str], row: dict) -> float | None:
    """B's measured verify seconds over what A's calibrated table charges for the same steps
    (batch size, longest draft): how much slower the shared machine ran during B than during A."""
    from sim.calibrate.batching import step_groups
    from sim.calibrate.costs import fit_latency
    from sim.models.batching import pass_s
    from tracing.io import read_trace

    a = read_trace(row["a"].replace(".client.", ".server."))
    b = read_trace(row["b"].replace(".client.", ".server."))
    table = fit_latency(a).batch_verify_table_s
    if not table:
        return None
    steps = step_groups(b)
    model = sum(pass_s(table, int(n), int(t) + 1)
                for n, t in zip(steps["batch"], steps["longest"], strict=True))
    return float(steps["verify_s"].sum() / model) if model > 0 else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", nargs="?", default=str(ROOT / "traces" / "load"))
    ap.add_argument("--json", help="also write validate's JSON here")
    args = ap.parse_args()
    from analysis.validate import validate

    paths = sorted(str(p) for p in Path(args.dir).glob("*.jsonl"))
    result = validate(paths)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=str))
    rows = sorted(result["points"], key=lambda r: (r["config"], r["axis"] != "concurrency",
                                                    r["load"]))
    print("| configuration | load | p50 ms | p95 ms | tok/s | in flight | saturated |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        m = r["measured"]
        print(f"| {r['config']} | {r['axis']}={r['load']:g} | {_ms(m['p50_s'])} | "
              f"{_ms(m['p95_s'])} | {m['throughput_tok_s']:.2f} | {m['in_flight']:.1f} | "
              f"{'yes' if m['saturated'] else 'no'} |")
    print()
    print("| configuration | load | p50 ms measured / predicted [95% CI] (error) | "
          "p95 ms measured / predicted [95% CI] (error) | tok/s error |")
    print("|---|---|---|---|---|")

    def band(ci: list[float] | None, inside: bool | None) -> str:
        if ci is None:
            return ""
        return f" [{_ms(ci[0])}, {_ms(ci[1])}]{'' if inside else ' (outside)'}"

    for r in rows:
        m, p, e, inside = r["measured"], r["predicted"], r["error"], r.get("in_ci", {})
        print(f"| {r['config']} | {r['axis']}={r['load']:g} | {_ms(m['p50_s'])} / "
              f"{_ms(p['p50_s'])}{band(p.get('p50_ci'), inside.get('p50_s'))} "
              f"({e['p50_s']:+.1%}) | {_ms(m['p95_s'])} / "
              f"{_ms(p['p95_s'])}{band(p.get('p95_ci'), inside.get('p95_s'))} "
              f"({e['p95_s']:+.1%}) | {e['throughput_tok_s']:+.1%} |")
    print()
    print("Machine drift (diagnostic, uses B's own timings -- not a prediction): the speed of "
          "each point's verify passes against the A-calibrated model of the same passes, and the "
          "p50 error left once the prediction is scaled by it.")
    print()
    print("| configuration | load | drift (measured / modelled pass s) | p50 error raw | "
          "p50 error drift-scaled |")
    print("|---|---|---|---|---|")
    for r in rows:
        d = drift(paths, r)
        if d is None:
            continue
        scaled = r["predicted"]["p50_s"] * d / r["measured"]["p50_s"] - 1.0
        print(f"| {r['config']} | {r['axis']}={r['load']:g} | {d:.2f} | "
              f"{r['error']['p50_s']:+.1%} | {scaled:+.1%} |")
    print()
    for c in result["crossovers"]:
        print(f"- crossover of {c['config']} ({c['axis']}, loads {c['loads']}): measured "
              f"{c['measured'] if c['measured'] is not None else 'none in range'}, predicted "
              f"{c['predicted'] if c['predicted'] is not None else 'none in range'} -- "
              f"{'within one step' if c['within_one_step'] else 'MISSED'}")
    for key, s in result["summary"].items():
        goal = ""
        if "goal" in s:
            goal = (f"; goal 10%: {'met' if s['meets_goal'] else 'missed at ' + ', '.join(s['misses'])}")
        print(f"- {key}: {s['points']} points, p50 |error| mean {s['p50_s']['mean_abs']:.1%} "
              f"max {s['p50_s']['max_abs']:.1%}, p95 |error| mean {s['p95_s']['mean_abs']:.1%} "
              f"max {s['p95_s']['max_abs']:.1%}{goal}")
    print()
    goodput = [r for r in rows if "goodput" in r["config"]]
    if goodput:
        print("| load | goodput p50 / fixed tau=4 p50 | p95 change | tok/s change |")
        print("|---|---|---|---|")
        for g in goodput:
            draft = g["config"].split()[0]
            f = next((r for r in rows if r["config"] == f"{draft} fixed:tau=4"
                      and r["axis"] == g["axis"] and r["load"] == g["load"]), None)
            if f is None:
                continue
            gm, fm = g["measured"], f["measured"]
            print(f"| {g['axis']}={g['load']:g} | {_ms(gm['p50_s'])} / {_ms(fm['p50_s'])} "
                  f"({gm['p50_s'] / fm['p50_s'] - 1:+.1%}) | {gm['p95_s'] / fm['p95_s'] - 1:+.1%} "
                  f"| {gm['throughput_tok_s'] / fm['throughput_tok_s'] - 1:+.1%} |")


if __name__ == "__main__":
    main()

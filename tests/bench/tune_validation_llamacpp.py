"""Validate ``specsim tune`` on llama.cpp: the tuned draft length per slot count vs the best one.

The measurements: llama.cpp's ``llama-server`` with n-gram drafting (``ngram-simple``) at draft
lengths 2, 4, 8 and target-only, each at ``-np`` 1, 2, 4 slots under closed-loop concurrency =
slots, recorded by ``tests/bench/record_llamacpp_tune.py`` (configurations interleaved, rotated
round by round):

    nice -n -10 python tests/bench/record_llamacpp_tune.py --out traces/tune/llamacpp \\
        --requests 12 --max-tokens 32 --rounds 2
    python tests/bench/tune_validation_llamacpp.py traces/tune/llamacpp \\
        [--from ngram-nmax4-np1-r0] [--intervals 20]

For each slot count (= the batch llama.cpp runs at) the *measured best* is the draft length with
the highest measured throughput (client side: output tokens over the run's span, mean over the
rounds); the *tuned* one is the answer of

    specsim tune TRACE --batch 1,2,4 --tau 2,4,8 --engine llamacpp --objective throughput

run on ONE low-load trace -- ``--from`` (default: draft length 4, one slot, concurrency 1,
round 0) -- and no other run; the *loss* is the measured throughput given up by taking the tuned
draft length instead of the measured best (0 when they agree; goal: within 3%). Target-only
(tau 0) is measured too because tune always weighs it; the table also gives the best among the
draft lengths 2, 4, 8 alone, measured and by tune's estimate, and the loss of the latter.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
GOAL = 0.03
NAME = re.compile(r"^(?:ngram-nmax(?P<t>\d+)|none)-np(?P<s>\d+)-r(?P<r>\d+)\.jsonl$")


def measured(folder: Path) -> dict[int, dict[int, list[float]]]:
    """{slots: {draft length (0: target-only): [throughput of each round]}}."""
    from analysis.validate_load import LoadPoint
    from analysis.validate_load import measured as figures
    from tracing.io import read_trace

    out: dict[int, dict[int, list[float]]] = {}
    for path in sorted(folder.glob("*.jsonl")):
        m = NAME.match(path.name)
        if m is None:
            continue
        trace = read_trace(path)
        slots = int(m.group("s"))
        point = LoadPoint(str(path), trace, "", trace, slots, None)
        out.setdefault(slots, {}).setdefault(int(m.group("t") or 0), []).append(
            figures(point)["throughput_tok_s"])
    return out


def load_of(folder: Path) -> str:
    """The range of the 1-minute load average over the runs (``extra.uptime``)."""
    from tracing.io import read_trace

    loads = []
    for path in sorted(folder.glob("*.jsonl")):
        if NAME.match(path.name):
            up = read_trace(path).meta.extra.get("uptime") or {}
            loads += [float(str(up[k]).split()[0]) for k in ("before", "after") if k in up]
    return f"{min(loads):.2f}-{max(loads):.2f}" if loads else "unknown"


def tuned(trace: Path, slots: list[int], taus: list[int], intervals: int) -> dict[str, object]:
    """``specsim tune --json`` of the one trace."""
    cmd = [sys.executable, "-m", "analysis.cli", "tune", str(trace),
           "--batch", ",".join(map(str, slots)), "--tau", ",".join(map(str, taus)),
           "--engine", "llamacpp", "--objective", "throughput", "--intervals", str(intervals),
           "--json"]
    print("$ specsim " + " ".join(cmd[3:]))
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
    if res.returncode != 0:
        sys.exit(f"specsim tune failed: {res.stderr.strip()}")
    return dict(json.loads(res.stdout))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--from", dest="source", default="ngram-nmax4-np1-r0",
                    help="the one low-load trace tune reads (name without .jsonl)")
    ap.add_argument("--intervals", type=int, default=20)
    args = ap.parse_args()
    print(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    table = measured(args.folder)
    slots = sorted(table)
    taus = sorted({t for row in table.values() for t in row})
    drafts = [t for t in taus if t > 0]
    out = tuned(args.folder / f"{args.source}.jsonl", slots, drafts, args.intervals)
    rows = {int(r["batch"]): r for r in out["batches"]}  # type: ignore[attr-defined]
    print(f"\ntuned from {args.source}.jsonl alone ({out['interval']['text']}); "  # type: ignore[index]
          f"load average during the runs {load_of(args.folder)}")
    print(f"schedule {out['schedule']}\nllama.cpp at batch {out['at_batch']}: "
          f"{out['config']}\n")  # type: ignore[index]
    head = " | ".join(("target-only" if t == 0 else f"n={t}") + " tok/s meas. / pred."
                      for t in taus)
    print(f"| slots (= concurrency) | {head} | measured best | tuned (predicted gain over "
          "target-only [95% CI]) | throughput lost | best of 2,4,8 measured / by estimate "
          "(lost) |")
    print("|---" * (len(taus) + 5) + "|")
    misses = []
    for s in slots:
        means = {t: float(np.mean(v)) for t, v in table[s].items()}
        best = max(means, key=lambda t: means[t])
        row = rows[s]
        pred = {int(p["tau"]): p["throughput_tok_s"] for p in row["points"]
                if p["tau"] is not None}
        t = int(row["tau"])
        loss = (means[best] - means[t]) / means[best] if t in means else float("nan")
        if not loss <= GOAL:
            misses.append(s)
        cells = " | ".join(
            f"{means[x]:.1f}" + (f" ({', '.join(f'{v:.1f}' for v in table[s][x])})"
                                 if len(table[s][x]) > 1 else "")
            + (f" / {pred[x]:.1f}" if pred.get(x) is not None else "") for x in taus)
        ci = row["ci95"]
        gain = f"{row['gain']:+.0%}" + (f" [{ci[0]:+.0%}, {ci[1]:+.0%}]" if ci else "")
        dbest = max(drafts, key=lambda x: means.get(x, -1.0))
        dest = max(drafts, key=lambda x: pred.get(x) or -1.0)
        dloss = (means[dbest] - means[dest]) / means[dbest]
        print(f"| {s} | {cells} | {'target-only' if best == 0 else best} | "
              f"{'target-only' if t == 0 else t} ({gain}) | {loss:.1%} | "
              f"{dbest} / {dest} ({dloss:.1%}) |")
    print(f"\ngoal (loss <= {GOAL:.0%}) met at {len(slots) - len(misses)} of {len(slots)} "
          f"slot counts" + (f"; missed at {', '.join(map(str, misses))}" if misses else ""))
    for s in slots:
        rounds = max(len(v) for v in table[s].values())
        per_round = [max(table[s], key=lambda t, k=k: table[s][t][k] if k < len(table[s][t])
                         else -1.0) for k in range(rounds)]
        print(f"slots {s}: best per round {per_round}")


if __name__ == "__main__":
    main()

"""The checks of ``tests/bench/gpu_round.sh``'s files, here (no device needed).

    python tests/bench/gpu_round_check.py DIR [--hardware H200]

For the two profiles recorded in one process (``profile_same_smollm2-135m.json``,
``profile_same_llama-1b.json``): the catalog's answer against each, and the eager stack's host
constants fitted on one and checked on the other -- plain, and scaled by the two profiles' host
probes (in one process they should agree; the scale says how far). The goal (issue 21): every
point within 1.5x, median within 1.15x. Then the compiled path's ms/token from
``compile_*.json`` (goal <= 3 ms/token for the bundled model's shape).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sim.models.catalog import get_device, same_device
from sim.models.costfit import against, fit_host, probe_scale
from sim.models.costmodel import normalize_dtype
from sim.models.deviceprofile import read_profile_file
from sim.models.hardware import config_shape

SHAPES = ("smollm2-135m", "llama-1b")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--hardware", default="H200")
    args = ap.parse_args()
    d = Path(args.dir)
    device = get_device(args.hardware)
    files = {s: str(d / f"profile_same_{s}.json") for s in SHAPES}
    profs = {s: read_profile_file(f) for s, f in files.items() if Path(f).exists()}
    for p in profs.values():
        if not same_device(p.device, device.key):
            print(f'note: {p.source} measured "{p.device}", not {device.key}: the catalog '
                  "rows compare two devices (a rehearsal's files?)")
    print("| checked on | fitted on | median ratio | within 1.5x | worst | goal |")
    print("|---|---|---|---|---|---|")
    for checked, prof in profs.items():
        shape = config_shape(files[checked], checked)
        dtype = normalize_dtype(prof.dtype)
        rows = [("catalog", device)]
        for other, oprof in profs.items():
            if other == checked:
                continue
            fitted = fit_host(device, config_shape(files[other], other),
                              normalize_dtype(oprof.dtype), oprof)
            rows.append((other, fitted))
            if oprof.host_probe_us > 0 and prof.host_probe_us > 0:
                scaled, probes = probe_scale(fitted, oprof, prof)
                rows.append((f"{other}, host probes x{probes['host_scale']:.3f}", scaled))
        for label, dev in rows:
            _, s = against(dev, shape, dtype, prof)
            print(f"| {checked} | {label} | {s['median_ratio']:.3f} | "
                  f"{s['within_1_5x']}/{s['points']} | {s['worst_ratio']:.2f} | "
                  f"{'met' if s['goal_met'] else 'missed'} |")
    for p in profs.values():
        print(f"{p.source}: host probe {p.host_probe_us:.2f} us/op, 1-token pass "
              f"{(p.one_token_s() or 0) * 1e3:.2f} ms")
    for f in sorted(d.glob("compile_*.json")):
        c = json.loads(f.read_text())
        ms = c["ms_per_token"]
        print(f"{f.name}: {c['device']}, {c['dtype']}, backend {c.get('backend', 'inductor')}, "
              f"compile {c['compile_s']:.0f} s; ms/token " + ", ".join(
                  f"{k} {v:.2f}" for k, v in ms.items())
              + f" (goal <= 3 ms/token: {'met' if ms.get('compiled', 99) <= 3 else 'missed'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

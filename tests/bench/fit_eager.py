"""Fit the eager stack's host constants on one H200 profile and check them on the other.

    python tests/bench/fit_eager.py [--data traces/h200] [--extra PROFILE.json ...]

For each direction (fit on A, check on B): the constants fitted on A (per_pass, per_layer,
multi_token; the device-side terms are the datasheet's and the eager stack's accounting, never
fitted), the in-sample summary, and the out-of-sample summary on B -- catalog-only, and anchored
on B's own batch-1 1-token pass (one point of B used, the rest checked). The H200 entry of
sim/models/catalog.py carries the constants fitted on the random-weight 1.2B profile. Prints ratios
computed from files; times nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sim.models.catalog import get_device
from sim.models.costfit import against, anchor, fit_host
from sim.models.costmodel import ModelShape, normalize_dtype
from sim.models.deviceprofile import DeviceProfile, read_profile_file


def shape(prof: DeviceProfile) -> ModelShape:
    return ModelShape.from_config(prof.target_config, prof.target_params, prof.target)


def line(tag: str, s: dict) -> str:
    return (f"{tag}: median {s['median_ratio']:.3f}, within 1.5x {s['within_1_5x']}/"
            f"{s['points']}, worst {s['worst_ratio']:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "traces" / "h200"),
                    help="the folder of the shared H200 measurements")
    ap.add_argument("--extra", nargs="*", default=[], help="more profiles to check on")
    args = ap.parse_args()
    data = Path(args.data)
    profs = {"random-llama-1b": read_profile_file(data / "profile_h200_random-llama-1b.json"),
             "smollm2": read_profile_file(data / "profile_h200_smollm2.json")}
    extra = {Path(p).stem: read_profile_file(p) for p in args.extra}
    device = get_device("H200")
    print(f"catalog H200 stack: {device.framework}")
    for fit_on, prof in profs.items():
        dt = normalize_dtype(prof.dtype)
        fitted = fit_host(device, shape(prof), dt, prof)
        fw = fitted.framework
        print(f"\nfit on {fit_on}: per_pass {fw.per_pass_s * 1e3:.3f} ms, per_layer "
              f"{fw.per_layer_s * 1e3:.3f} ms, multi_token {fw.multi_token:.3f}")
        print("  " + line("in sample", against(fitted, shape(prof), dt, prof)[1]))
        for name, other in {**profs, **extra}.items():
            if name == fit_on:
                continue
            odt = normalize_dtype(other.dtype)
            print("  " + line(f"check on {name}, catalog-only",
                              against(fitted, shape(other), odt, other)[1]))
            anchored, _ = anchor(fitted, shape(other), odt, other)
            print("  " + line(f"check on {name}, anchored on its 1-token pass",
                              against(anchored, shape(other), odt, other)[1]))


if __name__ == "__main__":
    main()

"""What each part of the simulator's model buys: ``specsim validate`` over the validation set
with one part switched off at a time, errors pooled over the four workload/draft groups.

    python tests/bench/ablate_validation.py [--dir traces/validation]

Parts: the verify-cost profile (off: the trace's measured passes and a line), request-to-request
speed noise (off: every request at the fitted mean speed), the policy replay that tells an n-gram
"no match" from the policy's own tau = 0 (off: known for fixed and heuristic only), and the
target's share of a prefill that also filled the draft (off: the whole prefill). The pairs and
their kinds are those of the full model (coverage and extrapolation flags held fixed), so every
row scores the same pairs.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from record_validation import GROUPS, group_paths  # noqa: E402


@contextlib.contextmanager
def patched(target: Any, name: str, value: Any) -> Iterator[None]:
    """``target.name = value`` for the duration."""
    before = getattr(target, name)
    setattr(target, name, value)
    try:
        yield
    finally:
        setattr(target, name, before)


def no_profile() -> contextlib.AbstractContextManager[None]:
    import sim.calibrate.costs

    return patched(sim.calibrate.costs, "profile_of", lambda trace: [])


def no_noise() -> contextlib.AbstractContextManager[None]:
    import sim.calibrate.costs

    return patched(sim.calibrate.costs, "speed_spread", lambda speeds: 0.0)


def no_policy_replay() -> contextlib.AbstractContextManager[None]:
    import sim.calibrate.positions

    return patched(sim.calibrate.positions, "replay_asks", lambda trace, cycles: None)


def no_prefill_share() -> contextlib.AbstractContextManager[None]:
    import sim.models.latency  # resolve_costs charges the target-only prefill through it

    return patched(sim.models.latency, "target_prefill_share", lambda lat: 1.0)


ABLATIONS: list[tuple[str, Callable[[], contextlib.AbstractContextManager[None]]]] = [
    ("full model", contextlib.nullcontext),
    ("without the verify profile", no_profile),
    ("without speed noise", no_noise),
    ("without the policy replay", no_policy_replay),
    ("without the prefill share", no_prefill_share),
]


def pooled(pairs: list[dict[str, Any]], kinds: dict[tuple[str, str], str]) -> dict[str, Any]:
    """Mean / max |error| per metric over the pairs the full model counts as replay or covered
    other policy."""
    out: dict[str, Any] = {}
    for kind in ("replay", "other policy"):
        rows = [p for p in pairs if kinds[(p["a"], p["b"])] == kind]
        stats = {}
        for m in ("p50_s", "p95_s", "tokens_per_cycle", "speedup"):
            errs = np.abs([p["error"][m] for p in rows if p["error"][m] is not None])
            stats[m] = (float(errs.mean()), float(errs.max()))
        out[kind] = (len(rows), stats)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dir", default=str(ROOT / "traces" / "validation"))
    args = p.parse_args()
    from analysis.validate import validate

    folder = Path(args.dir)
    kinds: dict[tuple[str, str], str] = {}
    print("| model | kind | pairs | p50 error mean / max | p95 error mean / max "
          "| tokens/cycle error mean | speedup error mean |\n|---|---|---|---|---|---|---|")
    for label, switch in ABLATIONS:
        pairs: list[dict[str, Any]] = []
        with switch():
            for workload, draft in GROUPS:
                pairs += validate(group_paths(folder, workload, draft))["pairs"]
        if not kinds:  # the full model decides which pairs are covered
            kinds = {(q["a"], q["b"]): ("extrapolated" if q["extrapolated"] else q["kind"])
                     for q in pairs}
        for kind, (n, s) in pooled(pairs, kinds).items():
            print(f"| {label} | {kind} | {n} | {s['p50_s'][0]:.1%} / {s['p50_s'][1]:.1%} "
                  f"| {s['p95_s'][0]:.1%} / {s['p95_s'][1]:.1%} "
                  f"| {s['tokens_per_cycle'][0]:.1%} | {s['speedup'][0]:.1%} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

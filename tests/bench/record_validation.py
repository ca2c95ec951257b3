"""Record the validation set for ``specsim validate`` with the live decoder on the bundled
SmolLM2-135M (CPU), then validate every pair of each workload and draft.

Workloads builtin:edit and builtin:chat x drafts ngram and layerskip x policies fixed tau 1, 2,
4, 8, heuristic and adaptive (24 greedy captures of ``--limit`` prompts, ``--new`` tokens each),
plus a target-only run per workload (the measured speedup's baseline) and second runs of the
``--repeat`` configurations into OUT_DIR/repeat/ (their "same config" pairs measure how far two
runs of one configuration differ on this machine: the noise floor).

The runs of one workload are recorded *interleaved* (``live.interleave``: what ``specsim
capture --draft A --draft B --policy X --policy Y --out-dir DIR`` runs): one target is loaded,
every run is opened (each warms up and gets the same verify-cost profile, taken once on the workload's first
prompt), then prompt 0 is decoded by every run, then prompt 1, and so on, in a rotating order.
Each run's clock pauses while the others decode, so each trace is its own requests laid end to
end. A slow spell of this shared machine (another tenant, a frequency change) then lands on
every configuration alike instead of on whichever run happened to be recording, which is what
makes runs recorded minutes apart comparable at all.

    OMP_NUM_THREADS=1 taskset -c 1 python tests/bench/record_validation.py [--out traces/validation]

One torch thread gives steadier timings; keep the machine otherwise quiet while it runs.
A workload whose traces all exist in OUT_DIR is kept (delete them to record again).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

POLICIES = ("fixed:tau=1", "fixed:tau=2", "fixed:tau=4", "fixed:tau=8", "heuristic", "adaptive")
WORKLOADS = ("edit", "chat")
DRAFTS = ("ngram", "layerskip")
GROUPS = [(w, d) for w in WORKLOADS for d in DRAFTS]  # validated separately


TABLE_HEAD = (
    "| workload / draft: kind | pairs | p50 error mean / max | p95 error mean / max "
    "| tokens/cycle error mean | speedup error mean | p50/p95 goal |\n|---|---|---|---|---|---|---|"
)


def table_row(label: str, stats: dict) -> str:
    """One markdown row of a validate summary entry."""
    def both(m: str) -> str:
        return f"{stats[m]['mean_abs']:.1%} / {stats[m]['max_abs']:.1%}" if stats.get(m) else "-"

    def mean(m: str) -> str:
        return f"{stats[m]['mean_abs']:.1%}" if stats.get(m) else "-"

    goal = "not a goal (extrapolates)"
    if "goal" in stats:
        goal = f"{'met' if stats['meets_goal'] else 'missed'} ({stats['goal']:.0%})"
    return (f"| {label} | {stats['pairs']} | {both('p50_s')} | {both('p95_s')} "
            f"| {mean('tokens_per_cycle')} | {mean('speedup')} | {goal} |")


def verify_spread(path: str) -> float:
    """max / min over requests of the median verify cost at the trace's commonest tau."""
    from tracing.io import read_trace

    c = read_trace(path).cycles
    tau = c["tau"].value_counts().idxmax()
    per_request = c[c["tau"] == tau].groupby("request_id")["verify_s"].median()
    return float(per_request.max() / per_request.min())


def group_paths(folder: Path, workload: str, draft: str) -> list[str]:
    """A workload/draft group's traces (repeat/ included) and the workload's target-only run."""
    paths = sorted(str(p) for p in folder.glob(f"{workload}_{draft}_*.jsonl"))
    # repeat/: second runs of some configurations -- their "same config" pairs measure how far
    # two runs of one configuration differ on this machine (the noise floor)
    paths += sorted(str(p) for p in folder.glob(f"repeat/{workload}_{draft}_*.jsonl"))
    return [*paths, str(folder / f"{workload}_none_target_only.jsonl")]


def plan(out: Path, repeat: tuple[str, ...]) -> dict[str, list[tuple[Path, str, str]]]:
    """Per workload: (trace path, draft, policy) of every run to record."""
    runs: dict[str, list[tuple[Path, str, str]]] = {}
    for w in WORKLOADS:
        items = [(out / f"{w}_{d}_{_slug(pol)}.jsonl", d, pol) for d in DRAFTS for pol in POLICIES]
        items.append((out / f"{w}_none_target_only.jsonl", "none", "target_only"))
        items += [(out / "repeat" / path.name, d, pol) for path, d, pol in list(items)
                  if any(r in path.stem for r in repeat)]
        runs[w] = items
    return runs


def _slug(policy: str) -> str:
    return policy.replace(":", "_").replace("=", "_")


def record_workload(workload: str, items: list[tuple[Path, str, str]], limit: int, new: int,
                    target: object) -> None:
    """Record every run of one workload, interleaved prompt by prompt (live.interleave, the
    same recorder as ``specsim capture --out-dir``)."""
    from live.capture import CaptureConfig
    from live.interleave import capture_interleaved
    from live.profile import profile_verify
    from live.prompts import encode_prompt, load_prompts

    first = load_prompts(f"builtin:{workload}", 1)[0]
    profile = profile_verify(target, encode_prompt(target.tokenizer, first),  # type: ignore[attr-defined]
                             max_tokens=17, rounds=7)
    print(f"{workload}: verify profile (ms, 1..17 tokens) "
          + " ".join(f"{x * 1e3:.0f}" for x in profile["seconds"]), flush=True)
    configs = []
    for path, draft, policy in items:
        path.parent.mkdir(parents=True, exist_ok=True)
        configs.append(CaptureConfig(target="smollm2", out=str(path), draft=draft, policy=policy,
                                     prompts=f"builtin:{workload}", max_new_tokens=new, seed=0,
                                     device="cpu", limit=limit))
    for result in capture_interleaved(configs, target=target, verify_profile=profile):
        print(f"{Path(result.path).name}: {result.requests} requests, {result.cycles} "
              f"cycles, {result.wall_s:.1f} s, verify spread "
              f"{verify_spread(result.path):.2f}", flush=True)
        if result.interrupted:
            raise KeyboardInterrupt  # every trace stays valid (closed by the recorder)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(ROOT / "traces" / "validation"))
    p.add_argument("--limit", type=int, default=10, help="prompts per capture")
    p.add_argument("--new", type=int, default=48, help="max new tokens per prompt")
    p.add_argument("--repeat", default="ngram_fixed",
                   help="comma-separated: record a second run of configurations whose name "
                        "contains one of these (into OUT/repeat/)")
    p.add_argument("--only", default="", help="record only this workload")
    p.add_argument("--no-record", action="store_true", help="only validate what is there")
    p.add_argument("--no-validate", action="store_true")
    args = p.parse_args()

    from analysis.validate import validate
    from live.models import load_model

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    target = None
    for workload, items in plan(out, tuple(filter(None, args.repeat.split(",")))).items():
        if args.no_record or args.only not in workload:
            continue
        if all(path.exists() and path.stat().st_size for path, _, _ in items):
            continue
        if target is None:
            target = load_model("smollm2", "cpu", None)
        record_workload(workload, items, args.limit, args.new, target)
    if args.no_validate:
        return 0
    print(TABLE_HEAD)
    for w, d in GROUPS:
        report = validate(group_paths(out, w, d))
        (out / f"validate_{w}_{d}.json").write_text(json.dumps(report, indent=1, default=str))
        for kind, stats in report["summary"].items():
            print(table_row(f"{w} / {d}: {kind}", stats), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

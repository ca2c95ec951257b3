#!/usr/bin/env bash
# Record the validation set for `specsim validate` with the live decoder on the bundled
# SmolLM2-135M (CPU): workloads builtin:edit and builtin:chat x drafts ngram and layerskip x
# policies fixed tau 1, 2, 4, 8, heuristic and adaptive -- 24 small captures (LIMIT prompts,
# NEW tokens each, greedy) -- plus one target-only run per workload (the measured speedup's
# baseline). Then validate every pair of each workload and draft.
#
#   tests/bench/record_validation.sh [OUT_DIR]      (default traces/validation)
#
# One torch thread per capture (OMP_NUM_THREADS=1): slower, but its timings are steadier on a
# shared machine, which is what a latency model is fitted to.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT="${1:-traces/validation}"
LIMIT="${LIMIT:-4}"
NEW="${NEW:-48}"
PY="${PYTHON:-python}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
mkdir -p "$OUT"
record() {  # record NAME WORKLOAD DRAFT POLICY (resumable: keeps what was recorded)
  [ -s "$OUT/$1.jsonl" ] && return 0
  echo "== $1"
  "$PY" -m analysis.cli capture --target smollm2 --draft "$3" --policy "$4" \
    --prompts "builtin:$2" --limit "$LIMIT" --max-new-tokens "$NEW" --seed 0 \
    --device cpu --no-progress --out "$OUT/$1.jsonl.tmp.jsonl"
  mv "$OUT/$1.jsonl.tmp.jsonl" "$OUT/$1.jsonl"
}
for workload in edit chat; do
  for draft in ngram layerskip; do
    for policy in fixed:tau=1 fixed:tau=2 fixed:tau=4 fixed:tau=8 heuristic adaptive; do
      record "${workload}_${draft}_$(echo "$policy" | tr ':=' '__')" "$workload" "$draft" "$policy"
    done
  done
  record "${workload}_none_target_only" "$workload" none target_only
done
for workload in edit chat; do
  for draft in ngram layerskip; do
    "$PY" -m analysis.cli validate "$OUT/${workload}_${draft}_"*.jsonl \
      "$OUT/${workload}_none_target_only.jsonl" \
      -o "$OUT/validate_${workload}_${draft}.html" --json > "$OUT/validate_${workload}_${draft}.json"
  done
done

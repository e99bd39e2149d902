#!/usr/bin/env bash
# Train the four rivals in parallel on one device, evaluate them (one process per rival, in
# parallel; our bundled DCGAN inverter rides with the first), merge into docs/rivals.md and
# docs/results/rivals.json, and pack one .tgz per model plus one with the docs and logs.
#
#   bash benchmarks/rivals/run_all.sh                      # H200: ~4 min training + ~2-3 min evaluation
#
# Settings (environment variables): DEVICE (cuda), DATA (.dev/data), RUNS (runs/rivals),
# EPOCHS ("vae:40 bigan:15 gaan:15 aaae:15"), MAX_SECONDS (235, per training run),
# TRAIN_EXTRA / EVAL_EXTRA (extra arguments, e.g. "--limit 128 --width 8" / "--fit-steps 2"),
# DOC (docs/rivals.md), JSON (docs/results/rivals.json), PACK (the tarballs; default $OUT if
# set, else $RUNS/pack), PYTHON (python3).
set -uo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
DATA=${DATA:-.dev/data}
RUNS=${RUNS:-runs/rivals}
PACK=${PACK:-${OUT:-$RUNS/pack}}
EPOCHS=${EPOCHS:-"vae:40 bigan:15 gaan:15 aaae:15"}
MAX_SECONDS=${MAX_SECONDS:-235}
TRAIN_EXTRA=${TRAIN_EXTRA:-}
EVAL_EXTRA=${EVAL_EXTRA:-}
DOC=${DOC:-docs/rivals.md}
JSON=${JSON:-docs/results/rivals.json}
ZOO=discinvert/zoo/dcgan-fashion-mnist
export PYTHONUNBUFFERED=1
mkdir -p "$RUNS" "$PACK"
start=$(date +%s)
status=0

declare -A pid
models=()
for spec in $EPOCHS; do
  m=${spec%%:*}; e=${spec#*:}; models+=("$m")
  # shellcheck disable=SC2086
  "$PY" benchmarks/rivals/train.py --model "$m" --epochs "$e" --batch-size 64 --device "$DEVICE" --seed 0 \
    --data-root "$DATA" --max-seconds "$MAX_SECONDS" --out "$RUNS/$m" $TRAIN_EXTRA > "$RUNS/train-$m.log" 2>&1 &
  pid[$m]=$!
done
trained=()
for m in "${models[@]}"; do
  if wait "${pid[$m]}"; then trained+=("$m"); else echo "training $m FAILED"; status=1; fi
  tail -n 2 "$RUNS/train-$m.log"
done
echo "training done after $(( $(date +%s) - start )) s"
# Pack the trained models now, so they come back even if the evaluation is cut short.
for m in "${models[@]}"; do
  tar czf "$PACK/rivals-$m.tgz" "$RUNS/$m" "$RUNS"/train-"$m".log 2>/dev/null
done

jsons=()
first=1
for m in "${trained[@]}"; do
  ours=()
  if [ $first = 1 ]; then ours=(--ours "$ZOO/gan:$ZOO/inverter" --pixel-nn); first=0; fi
  # shellcheck disable=SC2086
  "$PY" benchmarks/rivals/evaluate.py --rivals "$RUNS/$m" "${ours[@]}" --device "$DEVICE" --data-root "$DATA" \
    --json "$RUNS/eval-$m.json" --out "$RUNS/eval-$m.md" $EVAL_EXTRA > "$RUNS/eval-$m.log" 2>&1 &
  pid[$m]=$!
done
for m in "${trained[@]}"; do
  if wait "${pid[$m]}"; then jsons+=("$RUNS/eval-$m.json"); else echo "evaluating $m FAILED"; status=1; fi
  grep -E "^  (own|CN)" "$RUNS/eval-$m.log"
done
echo "evaluation done after $(( $(date +%s) - start )) s"

if [ ${#jsons[@]} -gt 0 ]; then
  "$PY" benchmarks/rivals/evaluate.py --merge "${jsons[@]}" --ran-in-parallel --json "$JSON" --out "$DOC" || status=1
fi
for m in "${models[@]}"; do
  tar czf "$PACK/rivals-$m.tgz" "$RUNS/$m" "$RUNS"/train-"$m".log "$RUNS"/eval-"$m".* 2>/dev/null
done
tar czf "$PACK/rivals-docs.tgz" "$DOC" "$JSON" "$RUNS"/*.log 2>/dev/null
ls -la "$PACK"
echo "all done after $(( $(date +%s) - start )) s (status $status)"
exit $status

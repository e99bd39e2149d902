#!/usr/bin/env bash
# The whole Table 1 benchmark: train the reference GANs and the rivals, score them all with
# python -m benchmarks.paper.table1 (one process per model, sharing one device), merge into one table.
#
#   bash benchmarks/paper/table1_run.sh train [MODEL ...]   # train in parallel into $RUNS/MODEL
#   bash benchmarks/paper/table1_run.sh eval  [MODEL ...]   # table1.py per model in parallel -> $PACK/table1-MODEL.json
#   bash benchmarks/paper/table1_run.sh all   [MODEL ...]   # train, then eval, in one go
#   bash benchmarks/paper/table1_run.sh merge [JSON ...]    # table1.py --merge -> docs/lab/benchmarks.md, docs/results/table1.json, README, docs/results.md
#
# MODEL: dcgan lsgan wgan-gp (benchmarks.paper.train_gan) and vae bigan gaan aaae (benchmarks.paper.rivals.train);
# default: all seven. `train` and `eval` share only $RUNS; what comes back from a device is $PACK: the
# JSON of each scored model (written as soon as it is scored) and a .tgz per stage of the logs,
# Markdown, configs and sample images (no weights:
# a device returns at most 8 files, and the working tree it is sent with holds at most 64 MiB, so the
# models are trained and scored in the same call; see benchmarks/paper/rivals/README.md for the GPU plan).
#
# Settings (environment variables): DEVICE (cuda), DATA (.dev/data), RUNS (runs/table1), PACK (default
# $OUT if set, else $RUNS/pack), EPOCHS ("dcgan:25 lsgan:25 wgan-gp:50 vae:40 bigan:15 gaan:15 aaae:15"),
# MAX_SECONDS (540, per training run: it stops after the epoch at which another would pass it; with
# `all`, set it so that training and scoring together fit the call: see benchmarks/paper/rivals/README.md),
# TRAIN_EXTRA / EVAL_EXTRA (extra arguments, e.g. "--limit 256" / "--fit-steps 5 --n 50"),
# DOC (docs/lab/benchmarks.md), JSON (docs/results/table1.json), README (README.md), RESULTS (docs/results.md), PYTHON (python3).
set -uo pipefail
cd "$(dirname "$0")/../.."  # the repository root: the scripts run as python -m benchmarks....
PY=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
DATA=${DATA:-.dev/data}
RUNS=${RUNS:-runs/table1}
PACK=${PACK:-${OUT:-$RUNS/pack}}
EPOCHS=${EPOCHS:-"dcgan:25 lsgan:25 wgan-gp:50 vae:40 bigan:15 gaan:15 aaae:15"}
MAX_SECONDS=${MAX_SECONDS:-540}
TRAIN_EXTRA=${TRAIN_EXTRA:-}
EVAL_EXTRA=${EVAL_EXTRA:-}
DOC=${DOC:-docs/lab/benchmarks.md}
JSON=${JSON:-docs/results/table1.json}
README=${README:-README.md}
RESULTS=${RESULTS:-docs/results.md}
export PYTHONUNBUFFERED=1
stage=${1:-}
shift || true
start=$(date +%s)
status=0

is_gan() { case "$1" in dcgan|lsgan|wgan-gp) return 0;; *) return 1;; esac; }
epochs_of() {
  for spec in $EPOCHS; do [ "${spec%%:*}" = "$1" ] && { echo "${spec#*:}"; return 0; }; done
  echo "no epochs for $1 in EPOCHS=\"$EPOCHS\"" >&2; return 1
}
models=("$@")
if [ ${#models[@]} -eq 0 ] && [ "$stage" != merge ]; then
  for spec in $EPOCHS; do models+=("${spec%%:*}"); done
fi
case "$stage" in
  train|eval|all|merge) ;;
  *) echo "usage: bash benchmarks/paper/table1_run.sh train|eval|all|merge [MODEL ... | JSON ...]" >&2; exit 2;;
esac
declare -A epochs
for m in "${models[@]}"; do  # every model checked before anything starts
  case "$stage:$m" in
    merge:*) continue;;
    *:dcgan|*:lsgan|*:wgan-gp|*:vae|*:bigan|*:gaan|*:aaae) ;;
    *) echo "unknown model '$m': expected dcgan lsgan wgan-gp vae bigan gaan aaae" >&2; exit 2;;
  esac
  if [ "$stage" != eval ]; then epochs[$m]=$(epochs_of "$m") || exit 2; fi
done
mkdir -p "$RUNS" "$PACK"
declare -A pid

train() {
  for m in "${models[@]}"; do
    e=${epochs[$m]}
    if is_gan "$m"; then cmd=("$PY" -m benchmarks.paper.train_gan --loss "$m"); else cmd=("$PY" -m benchmarks.paper.rivals.train --model "$m"); fi
    # shellcheck disable=SC2086
    "${cmd[@]}" --epochs "$e" --batch-size 64 --device "$DEVICE" --seed 0 --data-root "$DATA" \
      --max-seconds "$MAX_SECONDS" --out "$RUNS/$m" $TRAIN_EXTRA > "$RUNS/train-$m.log" 2>&1 &
    pid[$m]=$!
  done
  for m in "${models[@]}"; do
    if ! wait "${pid[$m]}"; then echo "training $m FAILED"; status=1; fi
    tail -n 2 "$RUNS/train-$m.log"
  done
  echo "training done after $(( $(date +%s) - start )) s"
}

evaluate() {
  first=1
  for m in "${models[@]}"; do
    if is_gan "$m"; then kind=--gans; else kind=--rivals; fi
    extra=()
    if [ $first = 1 ]; then extra=(--pixel-nn); first=0; fi
    # shellcheck disable=SC2086
    "$PY" -m benchmarks.paper.table1 "$kind" "$RUNS/$m" "${extra[@]}" --concurrent "${#models[@]}" --device "$DEVICE" \
      --data-root "$DATA" --json "$PACK/table1-$m.json" --out "$RUNS/table1-$m.md" --readme /dev/null \
      $EVAL_EXTRA > "$RUNS/eval-$m.log" 2>&1 &
    pid[$m]=$!
  done
  for m in "${models[@]}"; do
    if ! wait "${pid[$m]}"; then echo "evaluating $m FAILED"; status=1; fi
    grep -E "^  (CN|own|naive|hybrid)" "$RUNS/eval-$m.log"
  done
  echo "evaluation done after $(( $(date +%s) - start )) s"
}

pack() {  # one archive of everything but the weights, named after $1 (train/eval) and the models
  local files=() name
  name=$(IFS=_; echo "${models[*]}")
  for m in "${models[@]}"; do
    for f in "$RUNS/train-$m.log" "$RUNS/eval-$m.log" "$RUNS/table1-$m.md" "$RUNS/$m/config.json" \
             "$RUNS/$m/samples.png" "$RUNS/$m/reconstructions.png"; do
      [ -f "$f" ] && files+=("$f")
    done
  done
  [ ${#files[@]} -gt 0 ] && tar czf "$PACK/table1-$1-$name.tgz" "${files[@]}"
}

case "$stage" in
  train) train; pack train ;;
  eval) evaluate; pack eval ;;
  all) train; pack train; [ $status = 0 ] && { evaluate; pack eval; } ;;
  merge)
    jsons=("$@")
    if [ ${#jsons[@]} -eq 0 ]; then
      for m in dcgan lsgan wgan-gp vae bigan gaan aaae; do
        [ -f "$PACK/table1-$m.json" ] && jsons+=("$PACK/table1-$m.json")
      done
    fi
    if [ ${#jsons[@]} -eq 0 ]; then echo "merge: no table1-*.json in $PACK" >&2; exit 2; fi
    "$PY" -m benchmarks.paper.table1 --merge "${jsons[@]}" --json "$JSON" --out "$DOC" --readme "$README" "$RESULTS" || status=1
    ;;
esac
ls -la "$PACK"
echo "$stage done after $(( $(date +%s) - start )) s (status $status)"
exit $status

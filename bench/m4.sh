#!/usr/bin/env bash
# Train and score every family on an M4 set with the CLI's defaults (docs/ACCURACY.md shows the results).
#   bench/m4.sh [SET: Hourly|Weekly (default Hourly)] [DATA_DIR (default ../shared/data/m4)]
#               [MAX_MINUTES per family (default 8)] [OUT (default bench/results/m4-<set>)]
# Seasons: candidates from the M4 ids (hourly 24 and 168, weekly 52), kept by `forecaster train` only
# where they beat the smoothed level alone on the train file; FAMILIES="lstm gru" picks families.
set -euo pipefail
cd "$(dirname "$0")/.."
set=${1:-Hourly}
data=${2:-../shared/data/m4}
minutes=${3:-8}
out=${4:-bench/results/m4-${set,,}}
case $set in
  Hourly) horizon=48 ;;
  Weekly) horizon=13 ;;
  *) echo "unknown M4 set $set (Hourly or Weekly)" >&2; exit 2 ;;
esac
mkdir -p "$out"
for family in ${FAMILIES:-rnn lstm gru transformer}; do
  start=$(date +%s)
  .venv/bin/forecaster train --data "$data/M4-$set-train.csv.gz" --model "$family" --out "$out/$family" \
    --horizon "$horizon" --max-minutes "$minutes" --seed 0 --quiet
  echo "$family: trained in $(( $(date +%s) - start )) s"
  .venv/bin/forecaster evaluate --model "$out/$family" --data "$data/M4-$set-train.csv.gz" \
    --test "$data/M4-$set-test.csv.gz" --json "$out/$family.json" --plot "$out/$family.png"
done
for baseline in naive snaive naive2; do
  .venv/bin/forecaster evaluate --model "$baseline" --horizon "$horizon" --data "$data/M4-$set-train.csv.gz" \
    --test "$data/M4-$set-test.csv.gz" --json "$out/$baseline.json"
done

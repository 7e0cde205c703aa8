#!/usr/bin/env bash
# Train and score every family on M4 Hourly with the CLI's defaults (docs/ACCURACY.md shows the results).
#   bench/m4_hourly.sh [DATA_DIR (default ../shared/data/m4)] [MAX_MINUTES per family (default 8)] [OUT (default bench/results/m4)]
# Seasons come from the M4 ids (hourly: 24 and 168); FAMILIES="lstm gru" picks families.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data/m4}
minutes=${2:-8}
out=${3:-bench/results/m4}
mkdir -p "$out"
for family in ${FAMILIES:-rnn lstm gru transformer}; do
  start=$(date +%s)
  .venv/bin/forecaster train --data "$data/M4-Hourly-train.csv.gz" --model "$family" --out "$out/$family" \
    --horizon 48 --max-minutes "$minutes" --seed 0 --quiet
  echo "$family: trained in $(( $(date +%s) - start )) s"
  .venv/bin/forecaster evaluate --model "$out/$family" --data "$data/M4-Hourly-train.csv.gz" \
    --test "$data/M4-Hourly-test.csv.gz" --json "$out/$family.json" --plot "$out/$family.png"
done
for baseline in naive snaive naive2; do
  .venv/bin/forecaster evaluate --model "$baseline" --horizon 48 --data "$data/M4-Hourly-train.csv.gz" \
    --test "$data/M4-Hourly-test.csv.gz" --json "$out/$baseline.json"
done

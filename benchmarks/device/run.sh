#!/usr/bin/env bash
# On the GPU machine (the device tool runs this in the repo root, with .whl carried): install the
# carried wheels, show the card and its PCIe link, run the real-size benchmark within its budget.
# Results land in $OUT (real_size.json, real_size.md, log.txt) after every part.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH="/tmp/site:$PWD/benchmarks/device/stubs" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
out="${OUT:-/tmp/real_size}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version,pcie.link.gen.current,pcie.link.width.current,pcie.link.gen.max \
  --format=csv | tee "$out/gpu.csv"
set -o pipefail
timeout "${REAL_SIZE_TIMEOUT_S:-530}" python3 benchmarks/real_size.py --out "$out" --budget-s "${REAL_SIZE_BUDGET_S:-450}" \
  ${REAL_SIZE_PARTS:+--parts "$REAL_SIZE_PARTS"} 2>&1 | tee "$out/log.txt"

#!/usr/bin/env bash
# On the GPU machine (the device tool runs this in the repo root with .whl carried, filled by
# `EPISODE=1 bash benchmarks/device/fetch_wheels.sh`): install the carried wheels, check that what
# `zray run` imports is there, build random-weight model folders at real size and time the production
# episode (benchmarks/real_episode.py). Results land in $OUT (episode.json, episode.md, log.txt).
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH="/tmp/site:$PWD/benchmarks/device/stubs" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
out="${OUT:-/tmp/episode}"
mkdir -p "$out"
missing=$(python3 -c "
import importlib.util as u
need = ['torch', 'transformers', 'accelerate', 'diffusers', 'kokoro', 'ftfy', 'av', 'pydantic', 'typer', 'rich',
        'fsspec', 'numpy', 'PIL', 'soundfile', 'pyloudnorm', 'scipy', 'srt', 'platformdirs', 'yaml']
print(' '.join(n for n in need if u.find_spec(n) is None))")
if [ -n "$missing" ]; then
  echo "episode.sh: the GPU machine lacks $missing (carry their wheels in .whl)" | tee "$out/log.txt"
  exit 2
fi
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$out/gpu.csv"
set -o pipefail
timeout "${EPISODE_TIMEOUT_S:-560}" python3 benchmarks/real_episode.py --out "$out" --budget-s "${EPISODE_BUDGET_S:-480}" \
  2>&1 | tee "$out/log.txt"

#!/usr/bin/env bash
# Download the wheels benchmarks/real_size.py needs on the GPU machine into <repo>/.whl (git-ignored),
# for Python 3.12 on manylinux x86_64, and say how much will travel. Run from anywhere.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$repo"
rm -rf .whl && mkdir -p .whl
# EPISODE=1: also what `zray run` needs there (episode_wheels.txt), for benchmarks/device/episode.sh.
lists=(benchmarks/device/wheels.txt)
if [ "${EPISODE:-0}" = 1 ]; then lists+=(benchmarks/device/episode_wheels.txt); fi
cat "${lists[@]}" | grep -v '^#' | xargs python3 -m pip download --no-deps --only-binary=:all: \
  --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl -q
if [ "${EPISODE:-0}" = 1 ]; then python3 -m pip wheel --no-deps -q -w .whl srt==3.5.3; fi
echo "wheels: $(du -sh .whl | cut -f1) in $(ls .whl | wc -l) files; tracked tree: $(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1) bytes"

#!/usr/bin/env bash
# Fetch, where pip reaches a registry, the wheels that ci/gpu.sh needs on a GPU machine without
# network (its image has NumPy, CuPy, PyTorch, JAX, safetensors, tqdm, pytest, hypothesis).
#   bash ci/gpu_wheels.sh DIR [PYTHON_VERSION]      (default Python 3.12, x86-64 Linux)
set -euo pipefail
dir=${1:?usage: ci/gpu_wheels.sh DIR [PYTHON_VERSION]}
py=${2:-3.12}
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$py" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d "$dir" array-api-compat array-api-extra array-api-strict
ls "$dir"

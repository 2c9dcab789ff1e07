#!/usr/bin/env bash
# Run on a machine with an NVIDIA GPU, CuPy and PyTorch installed and no network.
#   bash ci/gpu.sh WHEEL_DIR OUT_DIR
# WHEEL_DIR holds wheels of what the image lacks (array-api-compat, array-api-extra,
# array-api-strict, pytest, hypothesis, ...); results go to OUT_DIR.
set -uo pipefail
wheels=${1:?usage: ci/gpu.sh WHEEL_DIR OUT_DIR}
out=${2:?usage: ci/gpu.sh WHEEL_DIR OUT_DIR}
mkdir -p "$out"
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
python3 -m pip install -q --no-index --find-links "$wheels" --no-build-isolation -e . 2>&1 | tee "$out/install.log"
nvidia-smi > "$out/nvidia-smi.txt" 2>&1
python3 -c "import xpnet; print(xpnet.available_backends())" | tee "$out/backends.txt"
status=0
XPNET_BACKEND=cupy python3 -m pytest -q -p no:cacheprovider 2>&1 | tee "$out/pytest.log" || status=1
for script in backends/compare.py backends/bench.py backends/bench_core.py; do
  [ -f "$script" ] || continue
  name=$(basename "$script" .py)
  python3 "$script" 2>&1 | tee "$out/$name.txt" || status=1
done
exit $status

#!/usr/bin/env bash
# The GPU run: on a machine with an NVIDIA GPU, CuPy and PyTorch installed and no network.
#   bash ci/gpu.sh WHEEL_DIR OUT_DIR [all|tests|compare|bench|graphs]
# WHEEL_DIR holds wheels of what that machine lacks (ci/gpu_wheels.sh fetches them where pip
# reaches a registry: array-api-compat, array-api-extra, array-api-strict, ...).  They are
# unpacked into a private folder; xpnet runs from this checkout (PYTHONPATH), so nothing of
# the machine's own Python is changed.  Outputs (logs, tables, JSON; about 20 files) go to
# OUT_DIR.  The stages: tests (the whole suite, cupy the default backend), compare
# (backends/compare.py), bench (bench.py, bench_core.py, bench_optim.py), graphs (the CUDA-graph
# tests, tests/test_compile_graphs.py and tests/test_compile.py, then backends/bench_graphs.py:
# a few minutes); all (default) runs the four.  The device tool allows 10 minutes a command
# and brings back 8 files, so there run one stage per call, each under a timeout so that the tar still runs:
#   timeout 560 bash ci/gpu.sh .whl /tmp/gpu tests; tar czf $OUT/gpu.tgz -C /tmp gpu
set -uo pipefail
wheels=${1:?usage: ci/gpu.sh WHEEL_DIR OUT_DIR}
out=${2:?usage: ci/gpu.sh WHEEL_DIR OUT_DIR}
stage=${3:-all}
case "$stage" in all|tests|compare|bench|graphs) ;; *) echo "ci/gpu.sh: unknown stage '$stage': expected all, tests, compare, bench or graphs" >&2; exit 2;; esac
mkdir -p "$out"
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
site=${XPNET_SITE:-/tmp/xpnet-site}
export PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# JAX (its CUDA plugin is on such machines) would otherwise take 75% of the GPU at its first
# allocation there, next to CuPy's and torch's pools and eight test workers.
export XLA_PYTHON_CLIENT_PREALLOCATE=false
if compgen -G "$wheels/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" \
    "$wheels"/*.whl > "$out/install.log" 2>&1 || { cat "$out/install.log"; exit 2; }
fi
export PYTHONPATH="$repo:$site${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi > "$out/nvidia-smi.txt" 2>&1
python3 -m xpnet.cli backends 2>&1 | tee "$out/backends.txt"
status=0
want() { [ "$stage" = all ] || [ "$stage" = "$1" ]; }
if want tests; then
  # The whole suite on every backend the machine has (numpy, array_api_strict, torch, torch:cuda,
  # jax, cupy), cupy the default.  (XPNET_GPU_BACKEND, XPNET_PYTEST_ARGS: for a dry run without a GPU.)
  workers=()
  python3 -c "import xdist" 2>/dev/null && workers=(-n 8)
  XPNET_BACKEND=${XPNET_GPU_BACKEND:-cupy} python3 -m pytest -p no:cacheprovider "${workers[@]}" ${XPNET_PYTEST_ARGS:-} \
    2>&1 | tee "$out/pytest.log" | tail -n 40 || status=1
fi
if want compare; then
  # The same training on every backend, float32 and float64.
  for model in mlp cnn gru; do
    for dtype in float32 float64; do
      python3 backends/compare.py --model "$model" --dtype "$dtype" --json "$out/compare_${model}_$dtype.json" \
        > "$out/compare_${model}_$dtype.txt" 2>&1 || status=1
    done
  done
fi
if want bench; then
  # Speed: xpnet (cupy) vs PyTorch eager CUDA vs the hand-written CuPy floor; full float32, then TF32.
  python3 backends/bench.py --markdown "$out/bench.md" --json "$out/bench.json" 2>&1 | tee "$out/bench.txt" || status=1
  python3 backends/bench.py --tf32 --workloads mlp_784_b1024,mlp_wide --json "$out/bench_tf32.json" \
    > "$out/bench_tf32.txt" 2>&1 || status=1
  python3 backends/bench_core.py > "$out/bench_core.txt" 2>&1 || status=1
  # The optimizer step alone: the loop over parameters vs foreach (one pass), next to torch.optim.
  python3 backends/bench_optim.py --backends cupy,torch:cuda --markdown "$out/bench_optim.md" \
    > "$out/bench_optim.txt" 2>&1 || status=1
fi
if want graphs; then
  # xpnet.compile's CUDA graphs (cuda_graphs=True) on cupy and torch:cuda: equality with eager, no host
  # syncs per step (the whole suite of the tests stage includes these tests already), then the speed:
  # graphed vs plain replay vs eager xpnet vs torch eager CUDA vs a CUDA-graphed torch step.
  if [ "$stage" = graphs ]; then
    workers=()
    python3 -c "import xdist" 2>/dev/null && workers=(-n 8)
    XPNET_BACKEND=${XPNET_GPU_BACKEND:-cupy} python3 -m pytest -p no:cacheprovider -q "${workers[@]}" ${XPNET_PYTEST_ARGS:-} \
      tests/test_compile_graphs.py tests/test_compile.py 2>&1 | tee "$out/pytest_graphs.log" | tail -n 30 || status=1
  fi
  python3 backends/bench_graphs.py --json "$out/bench_graphs.json" --markdown "$out/bench_graphs.md" 2>&1 \
    | tee "$out/bench_graphs.txt" || status=1
fi
echo "ci/gpu.sh $stage: exit $status; outputs in $out"
exit $status

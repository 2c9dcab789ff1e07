#!/usr/bin/env bash
# CI step: the declared dependency floors are true.
#   bash ci/floors.sh
# 1. vermin reads the source (xpnet, tests, examples, backends, ci) and fails on anything newer
#    than the oldest Python that requires-python claims.
# 2. A fresh venv, on that oldest Python where this machine has it (pyenv), gets the package
#    with every runtime dependency and the test/plot/strict/mpi extras at exactly its declared floor
#    (ci/floors.py turns pyproject.toml into a pip constraints file).
# 3. The core tests run there on numpy and array_api_strict.  A floor that is too low fails
#    the install (a resolver conflict) or a test, and so this step.
# pip's cache (~/.cache/pip) is reused, so a run after the first downloads nothing.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
work=${XPNET_FLOORS_DIR:-${TMPDIR:-/tmp}/xpnet-floors}
t0=$SECONDS

host_py=$(command -v python3 || command -v python)
pyv=$("$host_py" ci/floors.py --python)
"$host_py" ci/floors.py --extras test,plot,strict,mpi > /dev/null  # fail here, with its message, on a requirement without a floor

# The interpreter: Python $pyv itself where pyenv (or PATH) has it, else the host's.
py=
for cand in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$pyv".*/bin/python "python$pyv"; do
  if command -v "$cand" > /dev/null 2>&1 && \
     [ "$("$cand" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" = "$pyv" ]; then
    py=$cand; break
  fi
done
if [ -z "$py" ]; then
  py=$host_py
  echo "floors: no Python $pyv on this machine: the floors run on $("$py" --version 2>&1); vermin checks the source for $pyv"
fi

rm -rf "$work"
mkdir -p "$work"
"$host_py" ci/floors.py --extras test,plot,strict,mpi > "$work/floors.txt"
"$py" -m venv "$work/venv"
pip="$work/venv/bin/pip"
echo "floors: $("$work/venv/bin/python" --version) with $(paste -sd' ' "$work/floors.txt")"
if ! "$pip" install -q --constraint "$work/floors.txt" ".[test,plot,strict,mpi]" "vermin==1.9.2" > "$work/pip.log" 2>&1; then
  grep -v "is ignored: it is neither" "$work/pip.log" || true
  echo "floors: pip cannot install the declared floors together (above): raise the floor it names"
  exit 1
fi
# Installed is what was declared (== to the floor, zeros padded):
"$work/venv/bin/python" - "$work/floors.txt" <<'EOF'
import sys
from importlib.metadata import PackageNotFoundError, version
bad = []
for line in open(sys.argv[1]):
    name, want = line.strip().split("==")
    try:
        have = version(name)
    except PackageNotFoundError:
        have = "not installed"
    if have.split("+")[0] not in (want, want + ".0", want + ".0.0"):
        bad.append(f"{name}: declared floor {want}, installed {have}")
if bad:
    sys.exit("floors: the declared floors did not install:\n  " + "\n  ".join(bad))
EOF
t_install=$((SECONDS - t0))

"$work/venv/bin/vermin" -q --no-tips --violations -t="$pyv"- --eval-annotations xpnet tests examples backends ci \
  || { echo "floors: vermin: the code above needs a newer Python than requires-python claims ($pyv)"; exit 1; }

# The core: backend, autograd, layers, losses, optimizers, checkpoints (safetensors, ml-dtypes),
# the Trainer and its tqdm bar, the sync-free step (array-api-compat's clip), padding and
# scatter (array-api-extra), data, plots (matplotlib), the thread cap (threadpoolctl), and
# 2-rank MPI jobs (mpi4py, mpich; the venv's mpiexec comes first on PATH).
PATH="$work/venv/bin:$PATH" XPNET_TEST_BACKENDS=numpy,array_api_strict "$work/venv/bin/python" -m pytest -p no:cacheprovider --disable-warnings --maxfail=10 \
  tests/test_backend.py tests/test_autograd.py tests/test_module.py tests/test_losses.py \
  tests/test_optim.py tests/test_foreach.py tests/test_checkpoint.py tests/test_train.py \
  tests/test_progress.py tests/test_sync_free.py tests/test_conv_pool.py tests/test_rnn.py \
  tests/test_dropout_embedding.py tests/test_normalization.py tests/test_data.py tests/test_plot.py tests/test_distributed.py \
  tests/test_cli.py::test_threads_are_capped_unless_the_user_set_them \
  || { echo "floors: the core tests fail with the declared floors ($work/floors.txt): raise the floor that breaks them"; exit 1; }
echo "floors: ok in $((SECONDS - t0)) s (venv and install $t_install s)"

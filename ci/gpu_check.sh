#!/usr/bin/env bash
# The GPU checks of one session on a CUDA machine, logs under $OUT (or ./out): the whole test
# suite on the default device cuda:0, the main example on cuda, and the GPU benchmark.
# Usage: [GPU_TESTS="tests/test_x.py ..."] bash ci/gpu_check.sh [bench configs, default "seed wide"]
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-out}
mkdir -p "$out"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
configs=${1:-seed wide}
{
  nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
  python3 -c "import cupy, numpy; print('cupy', cupy.__version__, 'numpy', numpy.__version__)"
} 2>&1 | tee "$out/env.log"
echo "== tests (default device cuda:0)"
timeout 150 python3 -m pytest -n 8 -o addopts="" -q -rfE ${GPU_TESTS:-tests} \
  >"$out/tests.log" 2>&1
echo "tests rc=$?"; tail -n 30 "$out/tests.log"
echo "== compiled seed step: explain"
timeout 60 python3 - >"$out/explain.log" 2>&1 <<'PY'
import sys; sys.path.insert(0, "bench")
import gpugrad as gg
from bench_training import gpugrad_function_factory, make_problem
with gg.device("cuda"):
    step, _ = gpugrad_function_factory(*make_problem(300, 3, seed=0))
for _ in range(3):
    step()
print(step.explain())
PY
echo "explain rc=$?"; tail -n 4 "$out/explain.log"
echo "== main example on cuda"
timeout 60 python3 examples/two_layer_regression.py --device cuda >"$out/example.log" 2>&1
echo "example rc=$?"; tail -n 5 "$out/example.log"
for config in $configs; do
  echo "== bench_gpu --config $config"
  timeout 150 python3 bench/bench_gpu.py --config "$config" --repeats 5 --skip-kernels --skip-torch-compile 2>&1 | tee "$out/bench_$config.log"
done

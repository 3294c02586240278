#!/usr/bin/env bash
# CI entry point: compiles every CUDA kernel with nvcc, then runs the README's two quick-start
# commands, exactly as written there, in a fresh virtual environment, then builds the API
# reference, and fails on any failure.
# Usage: bash ci/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."

readme_command() {  # the line after the `<!-- ci: NAME -->` marker's opening code fence
  awk -v marker="<!-- ci: $1 -->" '
    $0 == marker { found = 1; next }
    found && /^```/ { fence++; next }
    found && fence == 1 { print; exit }' README.md
}

# Every CUDA kernel must compile, GPU or not: a kernel that nvcc rejects fails CI here, before
# any GPU runs it. The CI machines have nvcc; its absence is an error, not a skip.
command -v nvcc >/dev/null || {
  echo "ci/run.sh: nvcc is not on PATH; CI compiles every cuda_kernels/*.cu with it (install the CUDA toolkit)" >&2
  exit 1
}
shopt -s nullglob
kernels=(cuda_kernels/*.cu)
[ ${#kernels[@]} -gt 0 ] || { echo "ci/run.sh: no cuda_kernels/*.cu to compile" >&2; exit 1; }
kernel_objects=$(mktemp -d)
trap 'rm -rf "$kernel_objects"' EXIT
for kernel in "${kernels[@]}"; do
  echo "== nvcc $kernel"
  nvcc --std=c++17 -arch=sm_80 -c -o "$kernel_objects/$(basename "$kernel" .cu).o" "$kernel" ||
    { echo "ci/run.sh: nvcc rejects $kernel" >&2; exit 1; }
done

test_command=$(readme_command test)
main_command=$(readme_command main)
[ -n "$test_command" ] || { echo "README.md has no '<!-- ci: test -->' command" >&2; exit 1; }
[ -n "$main_command" ] || { echo "README.md has no '<!-- ci: main -->' command" >&2; exit 1; }

rm -rf .venv
echo "== README test command: $test_command"
bash -c "$test_command"

rm -rf .venv
echo "== README main command: $main_command"
bash -c "$main_command"

# The API reference (pdoc, from the docstrings) must keep building: a module that no longer
# imports, or that pdoc cannot document, fails here. It goes to build/api, which git ignores.
docs_command=". .venv/bin/activate && pip install -e '.[docs]' && python docs/build_api.py build/api"
echo "== API reference: $docs_command"
bash -c "$docs_command"

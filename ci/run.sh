#!/usr/bin/env bash
# CI entry point: runs the README's two quick-start commands, exactly as written there, in
# a fresh virtual environment, and fails on any failure. Usage: bash ci/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."

readme_command() {  # the line after the `<!-- ci: NAME -->` marker's opening code fence
  awk -v marker="<!-- ci: $1 -->" '
    $0 == marker { found = 1; next }
    found && /^```/ { fence++; next }
    found && fence == 1 { print; exit }' README.md
}

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

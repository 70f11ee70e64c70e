#!/usr/bin/env bash
# Creates .venv (if missing), installs the dependencies into it and compiles the C++ op
# library against the pinned TensorFlow. Safe to run again: it rebuilds the ops.
# One line per step with its time; every command's output goes to build/setup.log.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
mkdir -p build
LOG=build/setup.log
: > "$LOG"

step() {  # step DESCRIPTION COMMAND...
  local description=$1 start=$SECONDS
  shift
  printf 'setup: %s ... ' "$description"
  if "$@" >> "$LOG" 2>&1; then
    echo "$((SECONDS - start)) s"
  else
    echo "failed; the errors in $LOG:"
    grep -E "error|Error" "$LOG" | grep -vE "^\s*File |CalledProcessError|ERROR: Failed" | tail -n 20
    exit 1
  fi
}

if [ -x .venv/bin/python ]; then
  echo "setup: environment .venv exists"
else
  step "creating the environment .venv" "$PYTHON" -m venv .venv
fi
step "installing dependencies (requirements.txt, requirements-test.txt)" \
  .venv/bin/python -m pip install --upgrade pip setuptools wheel \
  -r requirements.txt -r requirements-test.txt
step "compiling the ops (ops/, for $(grep -o "tensorflow==[0-9.*]*" requirements.txt))" \
  .venv/bin/python -m pip install --no-deps --no-build-isolation -e .

#!/usr/bin/env bash
# Builds the two op libraries with Bazel instead of setup.py and puts them where the package
# loads them from. Uses the TensorFlow and pyarrow of the active Python (PYTHON_BIN_PATH, or
# python3): activate .venv first. Extra arguments go to `bazel build` (e.g. --jobs=2).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHON_BIN_PATH=${PYTHON_BIN_PATH:-$(command -v python3)}
TF_VERSION=$("$PYTHON_BIN_PATH" -c \
  "import os; os.environ['TF_CPP_MIN_LOG_LEVEL'] = '3'; import tensorflow as tf; print(tf.__version__)")
bazel build //ops:_kv_ops.so //ops:_arrow_reader_ops.so \
  "--copt=-DDRL_BUILT_FOR_TENSORFLOW=\"$TF_VERSION\"" "$@"
# A library left by setup.py (_kv_ops.cpython-*.so): the loader refuses two builds.
rm -f deeprec_lite/kv/_kv_ops*.so deeprec_lite/data/formats/_arrow_reader_ops*.so
install -m 755 bazel-bin/ops/_kv_ops.so deeprec_lite/kv/_kv_ops.so
install -m 755 bazel-bin/ops/_arrow_reader_ops.so deeprec_lite/data/formats/_arrow_reader_ops.so
echo "bazel_build: built for TensorFlow $TF_VERSION into deeprec_lite/kv and deeprec_lite/data/formats"

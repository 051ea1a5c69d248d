#!/usr/bin/env bash
# The GPU measurements docs/benchmarks.md lacks, as one markdown table (< 8 min on one H200; see gpu_check.py).
# Usage: bash scripts/gpu_check.sh [--out table.md]     on a machine with a CUDA GPU
#        bash scripts/gpu_check.sh --smoke              toy sizes on the CPU (checks that every section runs)
# Runs from a plain checkout: the project need not be installed (PYTHONPATH), and nothing beyond torch, numpy,
# opencv and onnx/onnxruntime is imported (no PyAV/decord: the clip is written and read with OpenCV).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
exec "${PYTHON:-python3}" scripts/gpu_check.py "$@"

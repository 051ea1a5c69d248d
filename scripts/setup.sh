#!/usr/bin/env bash
# Installs posefix-video and its development tools into the current Python environment.
# torch is installed first and pinned: a bare `torch` requirement would pull several GB of CUDA packages.
# Usage: bash scripts/setup.sh            (CPU torch 2.13.0, the project, pytest and ruff)
#        TORCH_SPEC="torch==2.13.0" bash scripts/setup.sh   (choose another torch build)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
"$PY" -m pip install --quiet "${TORCH_SPEC:-torch==2.13.0}"
"$PY" -m pip install --quiet -e ".[dev]"
"$PY" -c "import torch, onnxruntime, posefix_video; print('posefix-video ready: torch', torch.__version__, '| onnxruntime', onnxruntime.__version__)"

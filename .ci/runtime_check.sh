#!/usr/bin/env bash
# The torch-free runtime serves a class photo (issue 13). Callable by hand from the repository:
#   .ci/runtime_check.sh [WORK_DIR]
# 1. the runtime environment: `uv sync --no-default-groups` into WORK_DIR/runtime-venv;
# 2. the model cache, exported by the full environment (`python -m ml.weights`);
# 3. harness.runtime_check: `import torch` must fail in the runtime environment, and the service
#    started from it must name the face-api.js cast on a group photo through POST /mark/detect.
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-$(mktemp -d -t rollcall-runtime-XXXXXX)}"
mkdir -p "$work"
runtime="$work/runtime-venv"
models="$work/models"

UV_PROJECT_ENVIRONMENT="$runtime" uv sync --frozen --no-default-groups
echo "runtime environment: $(du -sh "$runtime" | cut -f1) in $runtime"
uv run --frozen python -m ml.weights --cache-dir "$models"
uv run --frozen python -m harness.runtime_check --python "$runtime/bin/python" --models "$models"

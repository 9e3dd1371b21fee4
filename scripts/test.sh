#!/usr/bin/env bash
# Fresh machine -> whole test suite: set up .venv (and Xvfb when root), then run pytest under Xvfb.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh testing,bench
.venv/bin/ruff check napari_deepreg tests benchmarks
exec .venv/bin/python -m pytest --xvfb-backend xvfb "$@"

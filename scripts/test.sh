#!/usr/bin/env bash
# Sets everything up, then checks the project the way CI does: lint, types, contract artifacts
# against their sources, and the test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"

echo "==> ruff"
ruff check .
ruff format --check .
echo "==> mypy"
mypy
echo "==> contract artifacts match contracts/src"
node contracts/compile.js --check
echo "==> pytest"
pytest "$@"

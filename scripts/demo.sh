#!/usr/bin/env bash
# Sets everything up, then runs the demo swarm (`swarm demo --help` for its options).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/swarm demo "$@"

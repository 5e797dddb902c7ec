#!/usr/bin/env bash
# Sets up everything swarm needs on a fresh Debian machine with Python 3.11 and Node 20:
# Debian packages (as root), a virtual environment in .venv with the pinned Python packages,
# and the Node tools (anvil, solc-js) from the committed lockfile. Safe to run again: each step
# is skipped when what it installs is already there and unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

# 1. Debian packages: gmp headers and a C compiler for libp2p's fastecdsa (built from source);
#    chromium, in which a test renders the audit report headless; iproute2 (`ip netns`) for
#    the multi-host test.
#    Only installed when missing, and only possible as root.
missing=()
for pkg in libgmp-dev gcc chromium iproute2; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ]; then
    say "apt-get install ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  else
    echo "missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
fi

# 2. Python: a venv with the project and its dev tools. torch is pinned to 2.13.0 in
#    pyproject.toml: an open range pulls a multi-GB CUDA build.
PY=${PYTHON:-python3.11}
stamp=.venv/.swarm-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -x .venv/bin/python ]; then
  say "creating .venv with $PY"
  "$PY" -m venv .venv
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "pip install -e '.[dev]' (first time: a few minutes)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  echo "$want" > "$stamp"
fi

# 3. Node tools from package-lock.json: anvil (local Ethereum node) and solc-js (compiler).
lock=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ "$(cat node_modules/.swarm-installed 2>/dev/null)" != "$lock" ]; then
  say "npm ci (anvil, solc-js)"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lock" > node_modules/.swarm-installed
fi
say "set up: .venv/bin/swarm --help"

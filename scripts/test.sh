#!/usr/bin/env bash
# Runs every test: unit, protocol (indymilter-test), CLI, and end to end through
# a real Postfix on loopback. Installs Postfix and swaks first if missing.
# Needs root (Postfix runs from a private config directory) and Debian/Ubuntu.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
echo "== cargo test"
cargo test --locked "$@"

#!/usr/bin/env bash
# The main job in one command: buyer -> seller -> buyer through a loopback
# Postfix with bsm-milter in front, printing what each side receives.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
exec cargo run --quiet --locked --example demo

#!/usr/bin/env bash
# End-to-end benchmark (issue 7), one command from a clean checkout, as root:
#   N messages per round with Postfix's smtp-source through a private loopback Postfix
#   (a) without a milter, (b) with a no-op indymilter, (c) with the release bsm-milter,
#   alternating rounds, two workloads; then peak memory with 100 sessions and for one
#   message with a 10 MiB attachment; the issue's targets with PASS/FAIL.
# Options go to the benchmark (--messages N --rounds R ...; --help lists them).
# What it measures and how to read it: benches/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "bench-e2e: run as root (the benchmark starts private Postfix instances)" >&2
  exit 1
fi
./scripts/install-deps.sh
cargo build --quiet --release --locked --bin bsm-milter --example noop_milter --example e2e_bench
exec cargo run --quiet --release --locked --example e2e_bench -- "$@"

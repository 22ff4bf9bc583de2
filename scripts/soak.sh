#!/usr/bin/env bash
# Soak (issue 6): 100 concurrent SMTP sessions through a private loopback
# Postfix with the release bsm-milter in front, for about 10 minutes
# (MESSAGES=120000 at ~230 msg/s on 2 cores). Samples bsm-milter's RSS and open
# file descriptors every 30 s, then counts WARN/ERROR lines in its log.
# A script, not a CI test; needs root (private Postfix instances).
set -euo pipefail
cd "$(dirname "$0")/.."
MESSAGES=${MESSAGES:-120000}
./scripts/install-deps.sh
cargo build --quiet --release --locked --bin bsm-milter --example noop_milter --example e2e_bench
out=$(mktemp)
target/release/examples/e2e_bench --workload buyer-seller --rounds 1 --messages 100 \
  --peak-sessions 100 --peak-messages "$MESSAGES" --attachment-mib 0 --keep --quiet-wait 5 >"$out" 2>&1 &
bench=$!
pid=""
for _ in $(seq 1 300); do
  pid=$(sed -n 's/^bsm-milter pid \([0-9]*\).*/\1/p' "$out")
  [ -n "$pid" ] && break
  sleep 1
done
[ -n "$pid" ] || { cat "$out"; echo "soak: bsm-milter did not start" >&2; exit 1; }
work=$(sed -n 's/^work dir: *//p' "$out")
echo "elapsed_s  rss_kib  open_fds"
start=$(date +%s)
while kill -0 "$bench" 2>/dev/null && [ -d "/proc/$pid" ]; do
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo -)
  fds=$(ls "/proc/$pid/fd" 2>/dev/null | wc -l)
  printf '%9d  %7s  %8s\n' $(( $(date +%s) - start )) "$rss" "$fds"
  sleep 30
done
wait "$bench" || true
grep -E "^peak|VmHWM" "$out" || true
log=$(find "$work" -name bsm-milter.log | head -1)
echo "milter log: $(wc -l <"$log") lines, $(grep -c 'INFO' "$log") info lines, $(grep -cE 'WARN|ERROR' "$log" || true) warnings/errors"
grep -E 'WARN|ERROR' "$log" | head -5 || true
echo "work dir kept: $work"

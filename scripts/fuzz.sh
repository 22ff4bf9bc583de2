#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS each (default 300), one job each,
# from the committed seed corpus (fuzz/corpus/T, read only) into a work corpus
# (fuzz/work/T, git-ignored). Prints execs, exec/s and coverage per target;
# exits non-zero if any target found something (see fuzz/artifacts/T).
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`); on stable Rust the
# nightly-only flags cargo-fuzz passes are allowed with RUSTC_BOOTSTRAP=1.
set -euo pipefail
seconds="${1:-300}"
cd "$(dirname "$0")/../fuzz"
export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
# No sanitizer: the code under test is safe Rust, and ASan halves exec/s.
cargo fuzz build -s none
status=0
for target in $(cargo fuzz list); do
    mkdir -p "work/$target" "artifacts/$target"
    log="work/$target.log"
    set +e
    cargo fuzz run -s none "$target" "work/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=262144 -timeout=30 \
        -print_final_stats=1 >"$log" 2>&1
    rc=$?
    set -e
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    cov=$(grep -E '^#[0-9]+' "$log" | tail -1 | grep -oE 'cov: [0-9]+ ft: [0-9]+' || true)
    if [ "$rc" -eq 0 ]; then
        found="nothing found"
    else
        found="FINDING (exit $rc): $(grep -E '^(artifact_prefix|Test unit written to)' "$log" | tail -1)"
        status=1
    fi
    printf '%-10s %ss  %s execs  %s exec/s  %s  %s\n' "$target" "$seconds" "${execs:-?}" "${rate:-?}" "${cov:-cov ?}" "$found"
    [ "$rc" -eq 0 ] || grep -E "panicked at|^thread '" "$log" | head -3 | sed 's/^/    /'
done
exit "$status"

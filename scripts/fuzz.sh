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
cargo fuzz build -O -s none
host=$(rustc -vV | sed -n 's/^host: //p')
status=0
for target in $(cargo fuzz list); do
    mkdir -p "work/$target" "artifacts/$target"
    log="work/$target.log"
    before=$(ls "artifacts/$target" | wc -l)
    # One job in a forked child: a finding is saved and the run goes on.
    cargo fuzz run -O -s none "$target" "work/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 \
        -rss_limit_mb=2048 -max_len=262144 -timeout=30 >"$log" 2>&1 || true
    # The final status line: "#EXECS: cov: C ft: F corp: N exec/s: R oom/timeout/crash: o/t/c time: Ts".
    last=$(grep -E '^#[0-9]+: cov:' "$log" | tail -1)
    execs=$(sed -E 's/^#([0-9]+):.*/\1/' <<<"$last")
    rate=$(grep -oE 'exec/s: [0-9]+' <<<"$last" | cut -d' ' -f2)
    cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' <<<"$last")
    found=$(($(ls "artifacts/$target" | wc -l) - before))
    printf '%-10s %ss  %s execs  %s exec/s  %s  findings: %s\n' \
        "$target" "$seconds" "${execs:-?}" "${rate:-?}" "${cov:-cov ?}" "$found"
    if [ "$found" -gt 0 ]; then
        status=1
        # Fork mode keeps the children's output to itself: replay each finding for its message.
        for a in $(ls -t "artifacts/$target" | head -n "$found"); do
            msg=$("target/$host/release/$target" "artifacts/$target/$a" 2>&1 | grep -A1 'panicked at' | tail -n 1) || true
            echo "    fuzz/artifacts/$target/$a: $msg"
        done
    fi
done
exit "$status"

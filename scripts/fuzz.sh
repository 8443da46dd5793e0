#!/usr/bin/env bash
# Coverage-guided fuzzing of every reader of outside input (fuzz/fuzz_targets/), with cargo-fuzz
# and libFuzzer on the stable toolchain (`-s none`: no sanitizer, which needs nightly).
#
#   scripts/fuzz.sh SECONDS [TARGET...]   each target (default: all) for SECONDS
#   FUZZ_DEV=1 scripts/fuzz.sh 15          the same on a debug build: it compiles in a quarter of
#                                          the time and runs 4-5x fewer executions (CI's choice)
#
# Each target starts from its checked-in corpus (fuzz/corpus/TARGET) and adds what it finds
# there. A crash, a panic, a hang (over 10 s on one input) or over 2 GiB of memory fails the
# script and leaves the input in fuzz/artifacts/TARGET/. Prints executions per target.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds=${1:?usage: scripts/fuzz.sh SECONDS [TARGET...]}
shift
targets=("$@")
profile=()
if [ "${FUZZ_DEV:-0}" = 1 ]; then
    profile=(--dev)
fi
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi
cargo fuzz build -s none "${profile[@]}" 2>&1 | grep -E "^(error|warning)" -A8 >&2 || true
printf '%-22s %12s %8s %s\n' target executions seconds result
status=0
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target"
    log=$(mktemp)
    if cargo fuzz run -s none "${profile[@]}" "$target" -- -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 >"$log" 2>&1; then
        result=ok
    else
        result="FAILED (see fuzz/artifacts/$target/)"
        tail -40 "$log" >&2
        status=1
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    printf '%-22s %12s %8s %s\n' "$target" "${runs:-?}" "$seconds" "$result"
    rm -f "$log"
done
exit $status

#!/usr/bin/env bash
# Runs the cargo-fuzz targets of fuzz/ one after the other.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# SECONDS per target (default 60); TARGETs default to all of them
# (`cargo fuzz list`). Needs a nightly toolchain: without one it prints a
# SKIPPED line and exits 0. Installs cargo-fuzz if it is missing.
#
# Each run appends one line to fuzz/figures/TARGET.txt:
#   date=... seconds=... executions=... exec_per_sec=... corpus=... crashes=...
# (executions from libFuzzer's final stat::number_of_executed_units); the
# figures in SECURITY.md are made from these files. The corpus grows in
# fuzz/corpus/TARGET (only the seed-* files are committed); a crash leaves
# its input in fuzz/artifacts/TARGET/, its path is printed, and the script
# exits 1 after running the other targets.
#
# Environment: FUZZ_NICE (default `nice`; empty to run at normal
# priority), FUZZ_ARGS (extra libFuzzer arguments, e.g. -rss_limit_mb=4096).
set -uo pipefail
cd "$(dirname "$0")/.."

seconds=60
if [ $# -gt 0 ] && [[ $1 =~ ^[0-9]+$ ]]; then
    seconds=$1
    shift
fi

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "SKIPPED: fuzzing needs a nightly toolchain (rustup toolchain install nightly); none is installed"
    exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "==> cargo install cargo-fuzz"
    cargo install cargo-fuzz --locked || {
        echo "cannot install cargo-fuzz" >&2
        exit 2
    }
fi

export CARGO_INCREMENTAL=0
nice_cmd=${FUZZ_NICE-nice}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

mkdir -p fuzz/figures
failed=()
for t in "${targets[@]}"; do
    echo "==> fuzz $t for ${seconds}s"
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    before=$(find "fuzz/artifacts/$t" -type f | wc -l)
    log=$(mktemp)
    # shellcheck disable=SC2086
    $nice_cmd cargo +nightly fuzz run "$t" -- \
        -max_total_time="$seconds" -print_final_stats=1 -timeout=60 \
        ${FUZZ_ARGS:-} 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    execs=$(grep -a 'stat::number_of_executed_units:' "$log" | tail -1 | awk '{print $2}')
    rate=$(grep -a 'stat::average_exec_per_sec:' "$log" | tail -1 | awk '{print $2}')
    corpus=$(find "fuzz/corpus/$t" -type f | wc -l)
    after=$(find "fuzz/artifacts/$t" -type f | wc -l)
    crashes=$((after - before))
    if [ "$rc" -ne 0 ] && [ "$crashes" -eq 0 ]; then
        crashes=1
    fi
    echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ) seconds=$seconds executions=${execs:-0} exec_per_sec=${rate:-0} corpus=$corpus crashes=$crashes" \
        >>"fuzz/figures/$t.txt"
    tail -1 "fuzz/figures/$t.txt"
    if [ "$crashes" -ne 0 ]; then
        artifact=$(grep -a -o 'Test unit written to [^ ]*' "$log" | tail -1 | sed 's/Test unit written to //')
        echo "CRASH: $t (exit $rc) artifact: ${artifact:-see fuzz/artifacts/$t/}"
        failed+=("$t")
    fi
    rm -f "$log"
done

if [ ${#failed[@]} -ne 0 ]; then
    echo "FAILED: ${failed[*]}"
    exit 1
fi
echo "OK: ${targets[*]}"

#!/usr/bin/env bash
# Regenerates BENCHMARKS.md and docs/benchmarks.svg (issue 14): the
# firmware's in-process rates (benches/firmware.rs), then the end-to-end
# benchmark against opensc-pkcs11.so on virtual cards (benches/e2e.rs, under
# the e2e lock: it needs pcscd and the vpcd readers, see
# scripts/setup-env.sh), then the report (scripts/bench_report.py).
#
#   scripts/bench.sh            the full run (release build; about 10 minutes)
#   scripts/bench.sh --quick    a smoke run of the harness (tokens of 1 and 4
#                               keys, one run each); the report goes to
#                               target/bench/ and BENCHMARKS.md is left alone
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_INCREMENTAL=0

out=target/bench
mkdir -p "$out"
quick=()
md=BENCHMARKS.md svg=docs/benchmarks.svg link=docs/benchmarks.svg
if [[ "${1:-}" == "--quick" ]]; then
    quick=(--quick)
    md=$out/BENCHMARKS.md svg=$out/benchmarks.svg link=benchmarks.svg
fi

cargo bench --bench firmware -- "${quick[@]}" --out "$out/firmware.csv"
# Built before taking the lock, which other e2e runs wait for.
cargo bench --bench e2e --no-run
flock /tmp/picohsm-e2e.lock cargo bench --bench e2e -- "${quick[@]}" --out "$out/e2e.csv"
python3 scripts/bench_report.py "$out/e2e.csv" "$out/firmware.csv" \
    --md "$md" --svg "$svg" --svg-link "$link"

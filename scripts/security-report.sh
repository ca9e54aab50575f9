#!/usr/bin/env bash
# Regenerates SECURITY.md's tables: runs every attack test of
# tests/security_*.rs through pcscd + picohsm-vcard (scripts/setup-env.sh
# prepares them), then writes each attack with its outcome and the fuzzing
# figures of fuzz/figures/ (recorded by scripts/fuzz.sh) into SECURITY.md.
# `--no-run` rewrites the tables from the tests' list alone.
set -euo pipefail
cd "$(dirname "$0")/.."

results=()
if [ "${1:-}" != "--no-run" ]; then
    scripts/setup-env.sh
    out=$(mktemp)
    trap 'rm -f "$out"' EXIT
    tests=()
    for f in tests/security_*.rs; do
        tests+=(--test "$(basename "$f" .rs)")
    done
    # One test at a time, as scripts/test.sh runs them (cards share pcscd).
    RUST_TEST_THREADS=1 cargo test "${tests[@]}" -- attack_ 2>&1 | tee "$out" || true
    results=(--results "$out")
fi
python3 scripts/security_report.py "${results[@]}"

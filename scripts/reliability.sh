#!/usr/bin/env bash
# Runs the reliability cases (every `survives_*` test of tests/reliability_*.rs)
# through pcscd + picohsm-vcard and writes their figures into SECURITY.md.
#
#   scripts/reliability.sh            # the long runs (PICOHSM_RELIABILITY=long):
#                                     # 100 removal cycles, 200 kill cycles,
#                                     # 100,000 slot-list calls, 8 x 10,000 operations ...
#   scripts/reliability.sh --short    # the counts scripts/test.sh (and so CI) runs
#   scripts/reliability.sh [--short] FILTER   # only the cases whose name contains FILTER
#
# Each case appends `name<TAB>runs<TAB>ok<TAB>unit` to a results file; those
# lines, with the tests' outcomes, replace the cases' rows in
# tests/figures/reliability.txt, from which scripts/security_report.py
# rewrites SECURITY.md's reliability table. Exits 1 if a case failed (its
# row then says so).
set -euo pipefail
cd "$(dirname "$0")/.."

mode=long
if [ "${1:-}" = "--short" ]; then
    mode=short
    shift
fi
filter=${1:-survives_}

scripts/setup-env.sh
raw=$(mktemp)
out=$(mktemp)
trap 'rm -f "$raw" "$out"' EXIT
tests=()
for f in tests/reliability_*.rs; do
    tests+=(--test "$(basename "$f" .rs)")
done
set +e
# One test at a time, as scripts/test.sh runs them (the cards share pcscd,
# and one case restarts it).
PICOHSM_RELIABILITY=$mode PICOHSM_RELIABILITY_RESULTS=$raw RUST_TEST_THREADS=1 \
    cargo test "${tests[@]}" -- "$filter" 2>&1 | tee "$out"
status=${PIPESTATUS[0]}
set -e
python3 scripts/security_report.py --reliability "$raw" --mode "$mode" --results "$out"
exit "$status"

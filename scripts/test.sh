#!/usr/bin/env bash
# The project's test command: prepares pcscd + vpcd (scripts/setup-env.sh),
# builds everything, then runs every test, the end-to-end ones included
# (they start picohsm-vcard cards in up to 8 vpcd readers, in parallel).
# Extra arguments are passed to `cargo test` (e.g. a test name filter).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "scripts/setup-env.sh"
scripts/setup-env.sh

step "cargo build --workspace --all-targets"
cargo build --workspace --all-targets

# A bare-metal build proves the core really is no_std. thumbv8m.main (RP2350,
# Cortex-M33) works. thumbv6m (RP2040, Cortex-M0+) does not build today:
# crypto-bigint 0.7 with `alloc` uses alloc::sync::Arc, which targets without
# atomic compare-and-swap lack; set PICOHSM_CHECK_THUMBV6M=1 to try it anyway.
NOSTD_TARGETS=(thumbv8m.main-none-eabihf)
if [ "${PICOHSM_CHECK_THUMBV6M:-0}" = 1 ]; then
    NOSTD_TARGETS+=(thumbv6m-none-eabi)
fi
for target in "${NOSTD_TARGETS[@]}"; do
    if rustup target list --installed 2>/dev/null | grep -qx "$target" || rustup target add "$target"; then
        step "cargo build -p picohsm-crypto -p picohsm-firmware --lib --target $target"
        cargo build -p picohsm-crypto -p picohsm-firmware --lib --target "$target"
    else
        step "SKIPPED: cargo build --target $target (rustup cannot install the target)"
    fi
done

step "cargo test --workspace $*"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
# One test at a time: every process that loads OpenSC's PKCS#11 module
# connects to every card in every reader and SELECTs the SmartCard-HSM
# applet, which logs each card out (docs/protocol.md §2.3). A test that
# keeps a login across several tools would lose it to a neighbour's scan.
# --no-fail-fast: one failing target must not hide the others' results.
RUST_TEST_THREADS=1 cargo test --workspace --no-fail-fast "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
# The benchmarks' smoke runs (issue 14): the harness works, the figures
# mean nothing (scripts/bench.sh makes BENCHMARKS.md). Under a minute.
step "cargo test --bench firmware --bench e2e -- --quick"
cargo test --bench firmware -- --quick --out target/bench/quick-firmware.csv || status=1
cargo test --bench e2e -- --quick --out target/bench/quick-e2e.csv || status=1
set -e
# One closing line for the whole run (cargo ends on the doc-tests' own count).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
     END { printf "\ntests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"

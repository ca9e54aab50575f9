#!/usr/bin/env bash
# A first look: one Pico HSM virtual card in the first vpcd reader
# ("Virtual PCD 00 00", TCP 35963), seen by OpenSC's tools, then stopped.
# The card's flash image persists in
# ${XDG_STATE_HOME:-$HOME/.local/state}/picohsm-pkcs11/demo.flash (+ .otp).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

PORT=35963
READER="Virtual PCD 00 00"
STATE_DIR="${XDG_STATE_HOME:-$HOME/.local/state}/picohsm-pkcs11"
FLASH="$STATE_DIR/demo.flash"
BIN="${CARGO_TARGET_DIR:-target}/debug/picohsm-vcard"

step "scripts/setup-env.sh"
scripts/setup-env.sh

step "cargo build -p picohsm-firmware --features std --bin picohsm-vcard"
cargo build -p picohsm-firmware --features std --bin picohsm-vcard

MODULE=""
for m in /usr/lib/x86_64-linux-gnu/opensc-pkcs11.so /usr/lib/*/opensc-pkcs11.so /usr/lib/*/pkcs11/opensc-pkcs11.so /usr/lib64/opensc-pkcs11.so; do
    if [ -f "$m" ]; then MODULE="$m"; break; fi
done
[ -n "$MODULE" ] || { echo "opensc-pkcs11.so not found" >&2; exit 1; }

card_in_reader() { opensc-tool -l 2>/dev/null | grep -qE "^[0-9]+[[:space:]]+Yes[[:space:]]+${READER}\$"; }

# The same per-port lock as the test harness (tests/common/mod.rs).
LOCK_DIR="${TMPDIR:-/tmp}/picohsm-vcard-ports"
mkdir -p "$LOCK_DIR"
exec 9>"$LOCK_DIR/$PORT.lock"
if ! flock -n 9 || card_in_reader; then
    echo "reader \"$READER\" (port $PORT) is in use by another card or a test run; stop it first" >&2
    exit 1
fi

mkdir -p "$STATE_DIR"
step "starting picohsm-vcard --flash $FLASH --port $PORT"
"$BIN" --flash "$FLASH" --port "$PORT" 9>&- &
VCARD_PID=$!
stop_card() {
    if kill -0 "$VCARD_PID" 2>/dev/null; then
        step "stopping the card (SIGTERM)"
        kill -TERM "$VCARD_PID"
        local rc=0
        wait "$VCARD_PID" || rc=$?
        echo "picohsm-vcard exited with status $rc"
    fi
}
trap stop_card EXIT

for _ in $(seq 1 100); do
    card_in_reader && break
    kill -0 "$VCARD_PID" 2>/dev/null || { echo "picohsm-vcard exited" >&2; exit 1; }
    sleep 0.2
done
card_in_reader || { echo "the card did not show up in \"$READER\"" >&2; exit 1; }

step "opensc-tool --reader \"$READER\" -n"
opensc-tool --reader "$READER" -n

step "opensc-tool -l"
opensc-tool -l

step "pkcs11-tool --module $MODULE -L"
pkcs11-tool --module "$MODULE" -L

stop_card
trap - EXIT
step "done; the card's flash image is $FLASH"

#!/usr/bin/env bash
# The PKA demo, on two Pico HSM virtual cards behind the real pcscd:
#
#   primary        "Virtual PCD 00 00" (TCP 35963): PKA 1-of-1 and a user PIN
#   authenticator  "Virtual PCD 00 01" (TCP 35964): holds the "Authentication" key
#
# 1. the authenticator is initialised and makes its "Authentication" key;
# 2. the key is exported and registered on the primary, initialised with
#    PKA and a PIN in one step; the PKA status is shown;
# 3. pkcs11-tool, through libpicohsm_pkcs11.so, logs in to the primary with
#    PKA (the authenticator signs the primary's challenge) and the PIN, makes
#    a key and signs with it; openssl verifies the signature.
#
# Everything lives in a fresh temporary directory, removed at the end
# (PICOHSM_DEMO_KEEP=1 keeps it).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

step() { printf '\n==> %s\n' "$*"; }
show() { printf '    $'; printf ' %q' "$@"; printf '\n'; "$@"; }

PRIMARY_PORT=35963
PRIMARY="Virtual PCD 00 00"
AUTH_PORT=35964
AUTHENTICATOR="Virtual PCD 00 01"
SO_PIN=3537363231383830
PRIMARY_PIN=648219
AUTH_PIN=271828
# CARGO_TARGET_DIR may be absolute or relative to the repository.
TARGET="${CARGO_TARGET_DIR:-target}/debug"
case "$TARGET" in /*) ;; *) TARGET="$ROOT/$TARGET" ;; esac

step "scripts/setup-env.sh (pcscd, vpcd readers, OpenSC, openssl)"
scripts/setup-env.sh

step "building picohsm-vcard, libpicohsm_pkcs11.so and picohsm-tool"
cargo build --workspace
MODULE="$TARGET/libpicohsm_pkcs11.so"
TOOL="$TARGET/picohsm-tool"
VCARD="$TARGET/picohsm-vcard"

card_in_reader() { opensc-tool -l 2>/dev/null | grep -qE "^[0-9]+[[:space:]]+Yes[[:space:]]+$1\$"; }

# The same per-port locks as the test harness (tests/common/mod.rs).
LOCK_DIR="${TMPDIR:-/tmp}/picohsm-vcard-ports"
mkdir -p "$LOCK_DIR"
exec 8>"$LOCK_DIR/$PRIMARY_PORT.lock" 9>"$LOCK_DIR/$AUTH_PORT.lock"
for r in "$PRIMARY" "$AUTHENTICATOR"; do
    if card_in_reader "$r"; then
        echo "reader \"$r\" already holds a card (a test run?); stop it first" >&2
        exit 1
    fi
done
flock -n 8 && flock -n 9 || { echo "the demo's readers are in use by a test run; try again later" >&2; exit 1; }

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true; done
    if [ "${PICOHSM_DEMO_KEEP:-0}" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

start_card() { # name port reader
    "$VCARD" --flash "$WORK/$1.flash" --port "$2" 8>&- 9>&- 2>"$WORK/$1.log" &
    PIDS+=($!)
    for _ in $(seq 1 100); do
        card_in_reader "$3" && return 0
        sleep 0.2
    done
    echo "the $1 card did not show up in \"$3\"" >&2
    cat "$WORK/$1.log" >&2
    exit 1
}
step "starting two virtual cards"
start_card primary "$PRIMARY_PORT" "$PRIMARY"
start_card authenticator "$AUTH_PORT" "$AUTHENTICATOR"
show "$TOOL" list

step "1. the authenticator: initialise, make the \"Authentication\" key"
show "$TOOL" --reader "$AUTHENTICATOR" init --so-pin "$SO_PIN" --pin "$AUTH_PIN" --force
show "$TOOL" --reader "$AUTHENTICATOR" keygen --pin "$AUTH_PIN" --label Authentication
show "$TOOL" --reader "$AUTHENTICATOR" pka export --key-label Authentication -o "$WORK/authentication.pka"

step "2. the primary: PKA 1-of-1 and a PIN in one step; register the key"
show "$TOOL" --reader "$PRIMARY" init --so-pin "$SO_PIN" --pin "$PRIMARY_PIN" --pka-keys 1 --pka-required 1 --force
show "$TOOL" --reader "$PRIMARY" pka status
show "$TOOL" --reader "$PRIMARY" pka register "$WORK/authentication.pka" --pin "$PRIMARY_PIN"
show "$TOOL" --reader "$PRIMARY" pka status

step "3. pkcs11-tool through libpicohsm_pkcs11.so: PKA + PIN login, one secret"
cat >"$WORK/config.toml" <<EOF
# C_Login(CKU_USER, "<primary PIN>:<authenticator PIN>") = PKA, then the PIN
login = "pka+pin"
separator = ":"
# picohsm-vcard's device chain is under a test PKI whose keys are public:
# trusted here for the demonstration only (a real device: device-roots)
allow-test-chains = true
EOF
chmod 600 "$WORK/config.toml" # the module refuses settings others can write
echo "    PICOHSM_PKCS11_CONFIG=$WORK/config.toml:"
sed 's/^/      /' "$WORK/config.toml"
export PICOHSM_PKCS11_CONFIG="$WORK/config.toml"
SECRET="$PRIMARY_PIN:$AUTH_PIN"
P11=(pkcs11-tool --module "$MODULE" --slot-description "$PRIMARY")

echo "    (the module's log shows each PKA step)"
PICOHSM_PKCS11_LOG=info show "${P11[@]}" --login --pin "$SECRET" --keypairgen --key-type EC:prime256v1 --id 01 --label signing
echo "the data to sign" >"$WORK/data.txt"
PICOHSM_PKCS11_LOG=info show "${P11[@]}" --login --pin "$SECRET" --sign --mechanism ECDSA-SHA256 --id 01 \
    --signature-format openssl -i "$WORK/data.txt" -o "$WORK/data.sig"
show "${P11[@]}" --read-object --type pubkey --id 01 -o "$WORK/signing.der"
openssl pkey -pubin -inform DER -in "$WORK/signing.der" -out "$WORK/signing.pem"

step "openssl verifies the signature"
show openssl dgst -sha256 -verify "$WORK/signing.pem" -signature "$WORK/data.sig" "$WORK/data.txt"
step "done: a PKA login through PKCS#11, and a signature openssl accepts"

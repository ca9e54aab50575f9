#!/usr/bin/env bash
# Prepares a Debian 12 machine for picohsm-pkcs11's end-to-end tests:
# pcscd with the vsmartcard vpcd driver and 8 virtual readers, OpenSC's tools.
# Idempotent: run it as often as you like (root, or a user with sudo).
#
# Readers and the TCP ports a virtual card (picohsm-vcard --port) connects to:
#
#   port   reader name (PC/SC)        from
#   35963  Virtual PCD 00 00          /etc/reader.conf.d/vpcd (Debian package)
#   35964  Virtual PCD 00 01          /etc/reader.conf.d/vpcd
#   35965  Virtual PCD 8C7D 00 00     /etc/reader.conf.d/picohsm-vpcd
#   35966  Virtual PCD 8C7D 00 01     /etc/reader.conf.d/picohsm-vpcd
#   35967  Virtual PCD 8C7F 00 00     /etc/reader.conf.d/picohsm-vpcd
#   35968  Virtual PCD 8C7F 00 01     /etc/reader.conf.d/picohsm-vpcd
#   35969  Virtual PCD 8C81 00 00     /etc/reader.conf.d/picohsm-vpcd
#   35970  Virtual PCD 8C81 00 01     /etc/reader.conf.d/picohsm-vpcd
#
# (port = CHANNELID + slot; each vpcd reader has 2 slots.) tests/common/mod.rs
# holds the same table. Two facts found on Debian 12 (pcsc-lite 1.9.9,
# vsmartcard-vpcd 3.3) shape the extra configuration:
#  * One loaded copy of libifdvpcd.so keeps one connection per slot number, so
#    a second CHANNELID served by the same library file overwrites the first
#    one's slots. Each extra CHANNELID therefore gets its own copy of the
#    library (pcscd dlopens each file separately).
#  * Readers with the same FRIENDLYNAME all get the name "... 00 00"/"... 00 01",
#    so each extra CHANNELID gets its own name.
# OpenSC's PKCS#11 module shows only 4 readers by default (max_virtual_slots 16,
# slots_per_card 4); the test harness points OPENSC_CONF at a config with more.
set -euo pipefail

step() { printf '==> %s\n' "$*"; }

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    SUDO=(sudo)
fi

PACKAGES=(pcscd vsmartcard-vpcd libpcsclite-dev pkg-config opensc opensc-pkcs11 openssl pcsc-tools softhsm2 p11-kit libp11-kit-dev gnutls-bin gcc
    # the clients of tests/clients/ (issue 13's suite)
    libnss3-tools firefox-esr libengine-pkcs11-openssl python3-pykcs11 pinentry-tty
    openssh-server openssh-client openjdk-17-jdk-headless
    # scripts/package.sh, package-test.sh and package-clean-install.sh (the
    # Debian package; debootstrap makes the clean Debian 12)
    dpkg-dev file man-db debootstrap)
EXTRA_CHANNELS=(8C7D 8C7F 8C81)
CONF=/etc/reader.conf.d/picohsm-vpcd
LIBDIR=/usr/local/lib/picohsm-vpcd
PIDFILE=/run/pcscd/pcscd.pid
EXPECTED_READERS=(
    "Virtual PCD 00 00" "Virtual PCD 00 01"
    "Virtual PCD 8C7D 00 00" "Virtual PCD 8C7D 00 01"
    "Virtual PCD 8C7F 00 00" "Virtual PCD 8C7F 00 01"
    "Virtual PCD 8C81 00 00" "Virtual PCD 8C81 00 01"
)

# --- packages -----------------------------------------------------------------
step "checking packages: ${PACKAGES[*]}"
missing=()
for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    step "installing: ${missing[*]}"
    "${SUDO[@]}" apt-get update
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
else
    step "all packages present"
fi

# --- vpcd readers --------------------------------------------------------------
VPCD_LIB=$(readlink -f /usr/lib/pcsc/drivers/serial/libifdvpcd.so)
[ -f "$VPCD_LIB" ] || { echo "vpcd driver not found at /usr/lib/pcsc/drivers/serial/libifdvpcd.so" >&2; exit 1; }

changed=0
step "vpcd driver copies in $LIBDIR"
"${SUDO[@]}" mkdir -p "$LIBDIR"
for ch in "${EXTRA_CHANNELS[@]}"; do
    dst="$LIBDIR/libifdvpcd-$ch.so"
    if ! cmp -s "$VPCD_LIB" "$dst"; then
        "${SUDO[@]}" install -m 0644 "$VPCD_LIB" "$dst"
        changed=1
    fi
done

conf_text() {
    echo "# Written by picohsm-pkcs11 scripts/setup-env.sh: 6 more vsmartcard vpcd"
    echo "# readers (TCP 35965..35970) for the end-to-end tests. Safe to delete."
    # The Debian package's own entry (TCP 35963/35964), in case it is missing.
    if ! grep -qsi "^[[:space:]]*CHANNELID[[:space:]]*0x8C7B" /etc/reader.conf.d/vpcd; then
        printf '\nFRIENDLYNAME "Virtual PCD"\nDEVICENAME   /dev/null:0x8C7B\nLIBPATH      %s\nCHANNELID    0x8C7B\n' \
            /usr/lib/pcsc/drivers/serial/libifdvpcd.so
    fi
    for ch in "${EXTRA_CHANNELS[@]}"; do
        printf '\nFRIENDLYNAME "Virtual PCD %s"\nDEVICENAME   /dev/null:0x%s\nLIBPATH      %s\nCHANNELID    0x%s\n' \
            "$ch" "$ch" "$LIBDIR/libifdvpcd-$ch.so" "$ch"
    done
}

step "reader configuration $CONF"
want=$(conf_text)
if [ "$(cat "$CONF" 2>/dev/null || true)" != "$want" ]; then
    printf '%s\n' "$want" | "${SUDO[@]}" tee "$CONF" >/dev/null
    changed=1
    step "reader configuration written"
fi

# --- pcscd ---------------------------------------------------------------------
# The running pcscd (not a zombie), or nothing.
pcscd_pid() {
    local pid state
    if [ -r "$PIDFILE" ]; then
        pid=$(tr -dc '0-9' <"$PIDFILE" 2>/dev/null || true)
        state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || true)
        if [ -n "$pid" ] && [ -n "$state" ] && [ "$state" != Z ]; then
            echo "$pid"
            return 0
        fi
    fi
    ps -C pcscd -o pid=,stat= 2>/dev/null | awk '$2 !~ /^Z/ {print $1; exit}'
}

have_systemd() { [ -d /run/systemd/system ] && command -v systemctl >/dev/null; }

start_pcscd() {
    if have_systemd; then
        # Debian's unit runs pcscd with --auto-exit; a virtual card needs pcscd
        # (and with it vpcd's listening sockets) to stay up.
        local dropin=/etc/systemd/system/pcscd.service.d/picohsm-no-auto-exit.conf
        if [ ! -f "$dropin" ]; then
            "${SUDO[@]}" mkdir -p "$(dirname "$dropin")"
            printf '[Service]\nExecStart=\nExecStart=/usr/sbin/pcscd --foreground $PCSCD_ARGS\n' |
                "${SUDO[@]}" tee "$dropin" >/dev/null
            "${SUDO[@]}" systemctl daemon-reload
        fi
        "${SUDO[@]}" systemctl restart pcscd.service
    else
        # pcscd daemonises and keeps every descriptor it inherits: a caller's
        # lock file (flock) would stay held for pcscd's whole life.
        (
            for fd in /proc/"$BASHPID"/fd/*; do
                fd=${fd##*/}
                if [ "$fd" -gt 2 ]; then eval "exec $fd>&-" 2>/dev/null || true; fi
            done
            exec "${SUDO[@]}" pcscd
        )
    fi
}

stop_pcscd() {
    local pid
    pid=$(pcscd_pid)
    [ -n "$pid" ] || return 0
    if have_systemd; then
        "${SUDO[@]}" systemctl stop pcscd.service || true
    fi
    "${SUDO[@]}" kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
        [ -n "$(pcscd_pid)" ] || return 0
        sleep 0.1
    done
    echo "pcscd (pid $pid) did not stop" >&2
    exit 1
}

readers_ok() {
    local list name
    list=$(opensc-tool -l 2>/dev/null || true)
    for name in "${EXPECTED_READERS[@]}"; do
        grep -qE "[[:space:]]${name}\$" <<<"$list" || return 1
    done
}

wait_readers() {
    for _ in $(seq 1 50); do
        readers_ok && return 0
        sleep 0.2
    done
    return 1
}

if [ -z "$(pcscd_pid)" ]; then
    step "starting pcscd"
    start_pcscd
elif [ "$changed" = 1 ]; then
    step "restarting pcscd (reader configuration changed)"
    stop_pcscd
    start_pcscd
else
    step "pcscd already running (pid $(pcscd_pid))"
fi

if ! wait_readers; then
    step "the 8 vpcd readers are not all there; restarting pcscd"
    stop_pcscd
    start_pcscd
    if ! wait_readers; then
        echo "pcscd does not show the 8 vpcd readers; opensc-tool -l says:" >&2
        opensc-tool -l >&2 || true
        exit 1
    fi
fi

step "readers (opensc-tool -l)"
opensc-tool -l
step "environment ready"

#!/usr/bin/env bash
# The Debian package on a truly clean Debian 12 (.ci/run runs it after
# scripts/package-test.sh, which installs the package on the CI machine,
# where every dependency is present already):
#   scripts/package-clean-install.sh [DEB]
#   1. DEB, or the one scripts/package.sh builds;
#   2. a minimal Debian 12 (debootstrap --variant=minbase bookworm, from
#      the mirror this machine's apt uses) in target/clean-bookworm/base,
#      made once and reused while intact, copied afresh to
#      target/clean-bookworm/root for each run, its apt sources being this
#      machine's bookworm, bookworm-updates and bookworm-security;
#   3. in that copy (chroot, with /proc mounted, and a
#      policy-rc.d that starts no service): apt-get update, then p11-kit
#      and man-db (the tools the checks use, installed before the snapshot:
#      neither is one of the package's dependencies), then a snapshot of
#      every file (path, type, mode, size, link target), apt's and dpkg's
#      state, logs, caches and /tmp left out;
#   4. two rounds, `apt-get install -y --no-install-recommends ./DEB`, then
#      `apt-get install -y ./DEB` (the README's command: with pcscd, which
#      the package recommends), each checking: what apt pulled in
#      (libpcsclite1 at least; pcscd only with the recommends), that every
#      library the module and the programs link is found (ldd), the
#      programs' --version, `man -w` of the pages, `p11-kit list-modules`
#      (the module listed, nothing on stderr, no pcscd running), that no
#      process runs in the chroot; then `apt-get purge -y picohsm-pkcs11`
#      and `apt-get autoremove --purge -y`, and a comparison with the
#      snapshot: none of the package's paths (nor anything named *picohsm*)
#      may remain; any other difference and any package left over is
#      listed.
# One line per check; the last is `package-clean-install: OK` or
# `package-clean-install: FAILED: <what>` (and a non-zero exit).
# Whatever happens, what it mounted is unmounted on exit. Needs root (it
# runs itself again with sudo after the build when it is not).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

PKG=picohsm-pkcs11
SUITE=bookworm
DIR=$repo/target/clean-bookworm
BASE=$DIR/base
ROOT=$DIR/root
export PATH="$HOME/.cargo/bin:$PATH:/usr/sbin:/sbin"

say() { printf '==> package-clean-install: %s\n' "$*" >&2; }
failures=()
timings=()
ok() { printf 'ok: %s\n' "$*"; }
bad() {
    printf 'FAILED: %s\n' "$*"
    failures+=("$*")
}
finish() {
    if [ "${#failures[@]}" -eq 0 ]; then
        # The copy goes (base stays for the next run); after a failure it
        # is kept to look into, until the next run.
        umount_all
        [ -n "$(mounted_under)" ] || rm -rf "$ROOT"
        printf 'package-clean-install: OK\n'
        exit 0
    fi
    [ ! -d "$ROOT" ] || printf '(the chroot is kept for a look: %s)\n' "$ROOT"
    local f what=
    for f in "${failures[@]}"; do
        [ "${#f}" -le 120 ] || f="${f:0:117}..."
        what+="${what:+; }$f"
    done
    printf 'package-clean-install: FAILED: %s\n' "$what"
    exit 1
}
# A failure after which nothing else can be checked.
die() {
    bad "$*"
    finish
}
now_ms() { echo $(($(date +%s%N) / 1000000)); }
since() {
    local d=$(($(now_ms) - $1))
    printf '%d.%d' $((d / 1000)) $((d % 1000 / 100))
}

# --- the package ----------------------------------------------------------------
if [ $# -gt 1 ]; then
    echo "usage: $0 [DEB]" >&2
    exit 2
fi
if [ $# -eq 1 ]; then
    deb=$1
else
    say "scripts/package.sh"
    deb=$(scripts/package.sh) || die "scripts/package.sh"
fi
[ -f "$deb" ] || die "no such .deb: $deb"
deb=$(realpath "$deb")
if [ "$(id -u)" -ne 0 ]; then
    exec sudo -- "$0" "$deb"
fi
version=$(dpkg-deb -f "$deb" Version)
upstream_version=${version%-*}
arch=$(dpkg-deb -f "$deb" Architecture)
[ "$arch" = "$(dpkg --print-architecture)" ] ||
    die "$deb is for $arch, this machine is $(dpkg --print-architecture)"
ok "$(basename "$deb"): version $version, $(du -k "$deb" | cut -f1) KiB, Depends: $(dpkg-deb -f "$deb" Depends), Recommends: $(dpkg-deb -f "$deb" Recommends)"

# --- mirror -----------------------------------------------------------------------
# "URI SUITE" for each of this machine's apt sources of Debian's bookworm,
# bookworm-updates and bookworm-security with the main component (one-line
# .list and deb822 .sources files alike).
host_sources() {
    python3 - "$SUITE" /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources <<'EOF'
import os, sys
suite, files = sys.argv[1], sys.argv[2:]
wanted = {suite, suite + "-updates", suite + "-security"}
out = []
def add(types, uris, suites, comps):
    if "deb" in types and "main" in comps:
        for u in uris:
            for s in suites:
                if s in wanted and (u, s) not in out:
                    out.append((u.rstrip("/"), s))
for f in files:
    if not os.path.isfile(f):
        continue
    text = open(f, encoding="utf-8", errors="replace").read()
    if f.endswith(".sources"):
        for para in text.split("\n\n"):
            fields, key = {}, None
            for line in para.splitlines():
                if line.startswith("#") or not line.strip():
                    continue
                if line[0] in " \t" and key:
                    fields[key] += " " + line.strip()
                elif ":" in line:
                    key, value = line.split(":", 1)
                    key = key.strip().lower()
                    fields[key] = value.strip()
            if fields.get("enabled", "yes").lower() == "no":
                continue
            add(fields.get("types", "").split(), fields.get("uris", "").split(),
                fields.get("suites", "").split(), fields.get("components", "").split())
    else:
        for line in text.splitlines():
            words = line.split("#", 1)[0].split()
            if words and words[0] == "deb" and len(words) >= 3:
                words = words[1:]
                if words[0].startswith("["):
                    while words and not words[0].endswith("]"):
                        words = words[1:]
                    words = words[1:]
                if len(words) >= 3:
                    add(["deb"], [words[0]], [words[1]], words[2:])
for u, s in out:
    print(u, s)
EOF
}
mapfile -t sources < <(host_sources)
mirror=${PICOHSM_DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
    for s in "${sources[@]}"; do
        if [ "${s#* }" = "$SUITE" ]; then
            mirror=${s% *}
            break
        fi
    done
fi
[ -n "$mirror" ] || die "this machine's apt has no source for Debian $SUITE main (set PICOHSM_DEBIAN_MIRROR)"
[ "${#sources[@]}" -gt 0 ] || sources=("$mirror $SUITE")

# --- mounts and cleanup -------------------------------------------------------------
mounts=()
tmp=$(mktemp -d)
mounted_under() {
    findmnt -rn -o TARGET | awk -v d="$DIR" 'index($0, d) == 1 && (length($0) == length(d) || substr($0, length(d) + 1, 1) == "/")'
}
# Processes whose root is the chroot (none should run: policy-rc.d).
chroot_pids() {
    local p r
    for p in /proc/[0-9]*; do
        r=$(readlink "$p/root" 2>/dev/null) || continue
        if [ "$r" = "$ROOT" ]; then echo "${p#/proc/}"; fi
    done
}
umount_all() {
    local i status=0
    for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
        umount "${mounts[i]}" 2>/dev/null || umount -l "${mounts[i]}" || status=1
    done
    mounts=()
    return "$status"
}
cleanup() {
    local status=$? pid
    # Only processes started in this run's chroot, by their ids.
    for pid in $(chroot_pids); do
        echo "cleanup: killing process $pid ($(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)) in the chroot" >&2
        kill "$pid" 2>/dev/null || true
    done
    umount_all || status=1
    if [ -n "$(mounted_under)" ]; then
        echo "package-clean-install: still mounted: $(mounted_under | tr '\n' ' ')" >&2
        status=1
    fi
    rm -rf "$tmp"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$DIR"
exec 8>"$DIR.lock"
flock -n 8 || die "another package-clean-install.sh runs (it holds $DIR.lock)"
[ -z "$(mounted_under)" ] ||
    die "something is mounted under $DIR already ($(mounted_under | tr '\n' ' ')): unmount it first"

# --- the clean system ---------------------------------------------------------------
# base.ok is written last: a base without it (an interrupted debootstrap)
# is made again.
if [ -f "$DIR/base.ok" ] && [ -x "$BASE/usr/bin/apt-get" ] && [ -s "$BASE/var/lib/dpkg/status" ]; then
    ok "debootstrap: reused $BASE ($(cat "$DIR/base.ok"))"
    timings+=("debootstrap: reused")
else
    command -v debootstrap >/dev/null || die "debootstrap is missing: apt-get install debootstrap"
    say "debootstrap --variant=minbase $SUITE $BASE $mirror"
    rm -rf "$BASE" "$DIR/base.ok"
    t0=$(now_ms)
    debootstrap --variant=minbase "$SUITE" "$BASE" "$mirror" >"$tmp/debootstrap.log" 2>&1 || {
        tail -n 20 "$tmp/debootstrap.log"
        die "debootstrap --variant=minbase $SUITE $mirror"
    }
    echo "minbase $SUITE from $mirror, made $(date -u +%FT%TZ)" >"$DIR/base.ok"
    timings+=("debootstrap $(since "$t0") s")
    ok "debootstrap --variant=minbase $SUITE ($mirror): $(since "$t0") s, $(du -sm "$BASE" | cut -f1) MiB"
fi

say "copying $BASE to $ROOT"
rm -rf "$ROOT"
cp -a "$BASE" "$ROOT"
for s in "${sources[@]}"; do echo "deb ${s% *} ${s#* } main"; done >"$ROOT/etc/apt/sources.list"
printf '#!/bin/sh\n# package-clean-install.sh: no service starts in this chroot.\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"
chmod 755 "$ROOT/usr/sbin/policy-rc.d"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
mkdir -p "$ROOT/tmp/picohsm-deb"
cp "$deb" "$ROOT/tmp/picohsm-deb/"
debname=$(basename "$deb")

mount_in() { # TYPE SOURCE DIR [OPTIONS]
    mount -t "$1" ${4:+-o "$4"} "$2" "$ROOT$3"
    mounts+=("$ROOT$3")
}
# apt and dpkg need /proc (no pseudo-terminal either: Dpkg::Use-Pty=0);
# debootstrap made /dev's few nodes.
mount_in proc proc /proc

# Runs a command in the chroot with a clean environment.
in_root() {
    chroot "$ROOT" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root LC_ALL=C.UTF-8 TERM=dumb DEBIAN_FRONTEND=noninteractive "$@"
}
apt_in_root() {
    in_root apt-get -o Dpkg::Use-Pty=0 -o APT::Color=0 "$@"
}
packages() { in_root dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' | awk '$1 == "ii" { print $2 }' | sort; }

t0=$(now_ms)
apt_in_root update -q >"$tmp/update.log" 2>&1 || {
    tail -n 20 "$tmp/update.log"
    die "apt-get update in the chroot"
}
# The tools the checks use; the clean system gets them before the snapshot.
apt_in_root install -y -q --no-install-recommends p11-kit man-db >"$tmp/tools.log" 2>&1 || {
    tail -n 20 "$tmp/tools.log"
    die "apt-get install p11-kit man-db in the chroot"
}
ok "apt-get update, install p11-kit man-db (for the checks): $(since "$t0") s; $(packages | wc -l) packages in the clean system"

# Every file of the chroot: path, type, mode, size (files only) and link
# target; apt's and dpkg's state, logs, caches and temporary files left out.
snapshot() {
    find "$ROOT" -xdev \( -path "$ROOT/var/lib/apt" -o -path "$ROOT/var/lib/dpkg" -o -path "$ROOT/var/cache" \
        -o -path "$ROOT/var/log" -o -path "$ROOT/tmp" -o -path "$ROOT/var/tmp" -o -path "$ROOT/proc" \
        \) -prune -o -printf '/%P\t%y\t%m\t%s\t%l\n' |
        awk -F'\t' -v OFS='\t' '$2 != "f" { $4 = "-" } { print }' | LC_ALL=C sort
}
snapshot >"$tmp/files-before"
packages >"$tmp/packages-before"
ok "snapshot: $(wc -l <"$tmp/files-before") paths"

# --- one round: install, check, purge, compare ----------------------------------------
round() { # NAME APT-OPTIONS...
    local name=$1 t0 list out err p n pulled left other leftover_pkgs
    shift
    printf -- '--- round: apt-get install -y %s./%s\n' "${*:+$* }" "$debname"

    t0=$(now_ms)
    if ! in_root sh -c 'cd /tmp/picohsm-deb && exec "$@"' sh \
        apt-get -o Dpkg::Use-Pty=0 -o APT::Color=0 install -y -q "$@" "./$debname" >"$tmp/install-$name.log" 2>&1; then
        tail -n 30 "$tmp/install-$name.log"
        bad "[$name] apt-get install ./$debname in the clean $SUITE"
        return
    fi
    local install_s
    install_s=$(since "$t0")
    packages | comm -13 "$tmp/packages-before" - | grep -vx "$PKG" >"$tmp/pulled-$name" || true
    pulled=$(tr '\n' ' ' <"$tmp/pulled-$name")
    ok "[$name] apt-get install: $install_s s; apt pulled in: ${pulled:-nothing}"
    timings+=("install ($name) $install_s s")
    [ "$(in_root dpkg-query -W -f='${db:Status-Abbrev}' "$PKG")" = "ii " ] ||
        bad "[$name] dpkg does not say $PKG is installed"
    grep -qx libpcsclite1 "$tmp/pulled-$name" || bad "[$name] apt did not pull in libpcsclite1"
    if [ "$name" = recommends ]; then
        grep -qx pcscd "$tmp/pulled-$name" && ok "[$name] pcscd (recommended) installed" ||
            bad "[$name] pcscd, which the package recommends, was not installed"
    else
        grep -qx pcscd "$tmp/pulled-$name" && bad "[$name] pcscd installed with --no-install-recommends" ||
            ok "[$name] pcscd not installed"
    fi
    in_root dpkg -L "$PKG" | grep -vx '/\.' | LC_ALL=C sort >"$tmp/dpkg-L-$name"

    # Every shared library the module and the programs need is there.
    local module
    module=$(grep '/pkcs11/libpicohsm_pkcs11.so$' "$tmp/dpkg-L-$name" || true)
    [ -n "$module" ] || bad "[$name] dpkg -L $PKG lists no pkcs11/libpicohsm_pkcs11.so"
    n=0
    for p in $module /usr/bin/picohsm-tool /usr/bin/picohsm-vcard; do
        if ! out=$(in_root ldd "$p" 2>&1) || grep -q 'not found' <<<"$out"; then
            bad "[$name] ldd $p: $( (grep 'not found' <<<"$out" || echo "$out") | tr -s ' \t\n' ' ')"
        else
            n=$((n + 1))
        fi
    done
    [ "$n" -eq 3 ] && ok "[$name] ldd: every library of the module and both programs found"

    for p in picohsm-tool picohsm-vcard; do
        if out=$(in_root "/usr/bin/$p" --version 2>&1) && [ "$out" = "$p $upstream_version" ]; then
            ok "[$name] $p --version: $out"
        else
            bad "[$name] $p --version: $out"
        fi
    done

    n=0
    for p in picohsm-tool picohsm-tool-pka-login picohsm-vcard; do
        if out=$(in_root man -w "$p" 2>&1) && [ "$out" = "/usr/share/man/man1/$p.1.gz" ]; then
            n=$((n + 1))
        else
            bad "[$name] man -w $p: $out"
        fi
    done
    [ "$n" -eq 3 ] && ok "[$name] man -w finds picohsm-tool, picohsm-tool-pka-login, picohsm-vcard"

    # No pcscd runs in the chroot (policy-rc.d; nor is there a systemd to
    # start its socket): the module loads, sees no reader, says nothing.
    [ ! -e "$ROOT/run/pcscd/pcscd.comm" ] || bad "[$name] /run/pcscd/pcscd.comm exists in the chroot"
    if in_root p11-kit list-modules >"$tmp/p11.out" 2>"$tmp/p11.err"; then
        if grep -A1 -x 'picohsm-pkcs11: libpicohsm_pkcs11.so' "$tmp/p11.out" |
            grep -qx '    library-description: Pico HSM / SmartCard-HSM + PKA'; then
            if [ -s "$tmp/p11.err" ]; then
                bad "[$name] p11-kit list-modules printed on stderr: $(tr '\n' ' ' <"$tmp/p11.err")"
            else
                ok "[$name] p11-kit list-modules (no pcscd running): module listed and loaded, stderr empty"
            fi
        else
            bad "[$name] p11-kit list-modules does not list the module (it lists: $(grep -v '^ ' "$tmp/p11.out" | tr '\n' ' '))"
        fi
    else
        bad "[$name] p11-kit list-modules exited non-zero: $(tr '\n' ' ' <"$tmp/p11.err")"
    fi
    out=$(chroot_pids | while read -r p; do tr '\0' ' ' <"/proc/$p/cmdline"; echo; done)
    [ -z "$out" ] && ok "[$name] no process runs in the chroot" || bad "[$name] processes run in the chroot: $out"

    # Purge, then what apt pulled in (autoremove).
    t0=$(now_ms)
    if ! apt_in_root purge -y -q "$PKG" >"$tmp/purge-$name.log" 2>&1; then
        tail -n 20 "$tmp/purge-$name.log"
        bad "[$name] apt-get purge -y $PKG"
        return
    fi
    local purge_s
    purge_s=$(since "$t0")
    t0=$(now_ms)
    if ! apt_in_root autoremove --purge -y -q >"$tmp/autoremove-$name.log" 2>&1; then
        tail -n 20 "$tmp/autoremove-$name.log"
        bad "[$name] apt-get autoremove --purge -y"
        return
    fi
    local autoremove_s
    autoremove_s=$(since "$t0")
    ok "[$name] apt-get purge: $purge_s s, autoremove --purge: $autoremove_s s"
    timings+=("purge ($name) $purge_s s + autoremove $autoremove_s s")
    [ -z "$(in_root dpkg-query -W -f='${db:Status-Abbrev}' "$PKG" 2>/dev/null | grep -v '^[up]n' || true)" ] ||
        bad "[$name] dpkg still knows $PKG after the purge"

    snapshot >"$tmp/files-after-$name"
    # Ours: the package's paths that were not there before, and anything
    # named *picohsm* anywhere (state, logs and caches included).
    left=$(
        cut -f1 "$tmp/files-after-$name" | LC_ALL=C sort | comm -12 "$tmp/dpkg-L-$name" - |
            comm -23 - <(cut -f1 "$tmp/files-before" | LC_ALL=C sort)
        find "$ROOT" -xdev -iname '*picohsm*' ! -path "$ROOT/tmp/picohsm-deb" ! -path "$ROOT/tmp/picohsm-deb/*" \
            -printf '/%P\n'
    )
    left=$(sort -u <<<"$left" | tr '\n' ' ')
    if [ -n "${left// /}" ]; then
        bad "[$name] left after purge: $left"
    else
        ok "[$name] nothing of $PKG left ($(wc -l <"$tmp/dpkg-L-$name") paths, /etc/picohsm-pkcs11 gone)"
    fi
    other=$(diff "$tmp/files-before" "$tmp/files-after-$name" | grep '^[<>]' || true)
    if [ -n "$other" ]; then
        echo "NOTE: [$name] other differences from the snapshot (< before, > after):"
        sed 's/^/    /' <<<"$other"
    else
        ok "[$name] file list identical to the snapshot"
    fi
    leftover_pkgs=$(packages | comm -13 "$tmp/packages-before" - | tr '\n' ' ')
    [ -z "$leftover_pkgs" ] && ok "[$name] no package left over after autoremove" ||
        echo "NOTE: [$name] packages left after purge and autoremove: $leftover_pkgs"
    local gone
    gone=$(packages | comm -23 "$tmp/packages-before" - | tr '\n' ' ')
    [ -z "$gone" ] || bad "[$name] packages of the clean system removed: $gone"
}

round no-recommends --no-install-recommends
round recommends

(IFS=,; echo "timings: ${timings[*]}" | sed 's/,/, /g')
finish

#!/usr/bin/env bash
# The Debian package's test (.ci/run runs it after scripts/test.sh):
#   1. builds the package (scripts/package.sh);
#   2. installs it with apt-get, as the README tells users;
#   3. checks every installed path: the programs run, man finds their pages,
#      p11-kit lists the module (quietly, with no settings file and no
#      pcscd), the completions and the conffile are there;
#   4. runs the client tests (Cargo.toml's clients_* test targets) against
#      the installed module and programs (PICOHSM_MODULE, PICOHSM_TOOL_BIN,
#      PICOHSM_VCARD_BIN);
#   5. purges the package and checks that none of its files or directories
#      remain.
# Whatever fails, the package (and any package apt pulled in with it) is
# purged on exit: the machine is left as it was found. It refuses to run
# where picohsm-pkcs11 is installed already (it would remove it).
#
# Steps 2-5 hold /tmp/picohsm-e2e.lock (the end-to-end tests' lock), or
# use the caller's if it holds it already: while the package is installed
# every p11-kit-aware program on the machine loads the module.
set -euo pipefail
cd "$(dirname "$0")/.."

PKG=picohsm-pkcs11
LOCK=/tmp/picohsm-e2e.lock
SUDO=()
[ "$(id -u)" -eq 0 ] || SUDO=(sudo)
export PATH="$HOME/.cargo/bin:$PATH"

step() { printf '\n==> package-test: %s\n' "$*"; }
fail() {
    printf '\npackage-test: FAILED: %s\n' "$*" >&2
    exit 1
}
now_ms() { echo $(($(date +%s%N) / 1000000)); }
# Seconds since a now_ms value, with tenths.
since() {
    local d=$(($(now_ms) - $1))
    printf '%d.%d' $((d / 1000)) $((d % 1000 / 100))
}
pkg_state() { dpkg-query -W -f='${db:Status-Abbrev}' "$PKG" 2>/dev/null || true; }
installed_packages() { dpkg-query -W -f='${binary:Package}\n' | sort; }

case "$(pkg_state)" in
    "" | "un "* | "pn "*) ;;
    *) fail "$PKG is installed on this machine already ($(pkg_state)); remove it first (apt-get purge $PKG)" ;;
esac

tmp=$(mktemp -d)
pulled_in="$tmp/pulled-in"
cleanup() {
    local status=$?
    if [ -n "$(pkg_state | grep -v '^[up]n' || true)" ]; then
        printf '\n==> package-test: cleanup: apt-get purge -y %s\n' "$PKG" >&2
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get purge -y "$PKG" >&2 || status=1
    fi
    # Packages apt installed along with ours (missing dependencies) go too.
    if [ -s "$pulled_in" ]; then
        local extra
        extra=$(tr '\n' ' ' <"$pulled_in")
        if [ -n "${extra// /}" ]; then
            printf '==> package-test: cleanup: apt-get purge -y %s(installed with %s)\n' "$extra" "$PKG" >&2
            # shellcheck disable=SC2086
            "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get purge -y $extra >&2 || status=1
        fi
    fi
    rm -rf "$tmp"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "scripts/package.sh"
t0=$SECONDS
deb=$(scripts/package.sh)
build_s=$((SECONDS - t0))
deb=$(realpath "$deb")
deb_kib=$(du -k "$deb" | cut -f1)
triplet=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
version=$(dpkg-deb -f "$deb" Version)
upstream_version=${version%-*}
echo "$deb: version $version, $deb_kib KiB, built in $build_s s"

# The client tests are built before the lock is taken (they run while the
# package is installed, under it).
mapfile -t client_tests < <(cargo metadata --format-version 1 --no-deps | python3 -c '
import json, sys
m = json.load(sys.stdin)
for p in m["packages"]:
    if p["name"] == "picohsm-pkcs11":
        for t in p["targets"]:
            if "test" in t["kind"] and t["name"].startswith("clients_"):
                print(t["name"])')
test_args=()
for t in "${client_tests[@]}"; do test_args+=(--test "$t"); done
if [ "${#client_tests[@]}" -gt 0 ]; then
    step "cargo test --no-run ${test_args[*]}"
    cargo test -p picohsm-pkcs11 --no-run "${test_args[@]}" || fail "building the client tests"
fi

# The lock: the caller's descriptor if it holds it already (flock(1) passes
# its descriptor to the command it runs), else a new one.
lock_fd=
for fd in /proc/$$/fd/*; do
    if [ "$(readlink "$fd" 2>/dev/null)" = "$LOCK" ]; then lock_fd=${fd##*/}; fi
done
if [ -z "$lock_fd" ]; then
    exec 9>>"$LOCK"
    lock_fd=9
fi
step "waiting for $LOCK"
flock "$lock_fd"

module=/usr/lib/$triplet/pkcs11/libpicohsm_pkcs11.so
expected=(
    "$module"
    /usr/share/p11-kit/modules/picohsm-pkcs11.module
    /usr/bin/picohsm-tool
    /usr/bin/picohsm-vcard
    /usr/include/picohsm-pkcs11/picohsm_pkcs11.h
    /etc/picohsm-pkcs11/config.toml.example
    /usr/share/man/man1/picohsm-tool.1.gz
    /usr/share/man/man1/picohsm-tool-pka-login.1.gz
    /usr/share/man/man1/picohsm-vcard.1.gz
    /usr/share/bash-completion/completions/picohsm-tool
    /usr/share/bash-completion/completions/picohsm-vcard
    /usr/share/zsh/vendor-completions/_picohsm-tool
    /usr/share/zsh/vendor-completions/_picohsm-vcard
    /usr/share/fish/vendor_completions.d/picohsm-tool.fish
    /usr/share/fish/vendor_completions.d/picohsm-vcard.fish
    /usr/share/doc/picohsm-pkcs11/copyright
    /usr/share/doc/picohsm-pkcs11/README.md
)
# Which of the package's directories exist before it is installed: the
# others must be gone after the purge.
dirs_before="$tmp/dirs-before"
dpkg-deb -c "$deb" | awk '$1 ~ /^d/ { print substr($NF, 2) }' | sed 's:/$::' | grep -v '^$' |
    while read -r d; do if [ -d "$d" ]; then echo "$d"; fi; done | sort >"$dirs_before"

step "apt-get install -y $deb"
installed_packages >"$tmp/packages-before"
t0=$(now_ms)
install_status=0
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y "$deb" || install_status=$?
install_s=$(since "$t0")
# What apt added besides our package (missing dependencies): the cleanup
# purges those too. Taken right around the install, so a package someone
# else installs meanwhile is not mistaken for one of ours.
installed_packages | comm -13 "$tmp/packages-before" - | grep -vx "$PKG" >"$pulled_in" || true
[ "$install_status" -eq 0 ] || fail "apt-get install $deb exited $install_status"
if [ -s "$pulled_in" ]; then echo "apt also installed: $(tr '\n' ' ' <"$pulled_in")"; fi
[ "$(pkg_state)" = "ii " ] || fail "after apt-get install, dpkg says '$(pkg_state)', not 'ii'"

step "installed paths"
listed="$tmp/dpkg-L"
dpkg -L "$PKG" | grep -vx '/\.' | sort >"$listed"
for p in "${expected[@]}"; do
    grep -qxF "$p" "$listed" || fail "dpkg -L $PKG does not list $p"
    [ -e "$p" ] || fail "$p is listed by dpkg but missing"
done
echo "${#expected[@]} expected paths installed; dpkg -L lists $(wc -l <"$listed")"
dpkg-query -W -f='${Conffiles}\n' "$PKG" | grep -q '^ /etc/picohsm-pkcs11/config.toml.example ' ||
    fail "/etc/picohsm-pkcs11/config.toml.example is not a conffile"
[ "$(stat -c %a "$module")" = 644 ] || fail "$module has mode $(stat -c %a "$module"), not 644"
file -L "$module" | grep -q 'shared object' || fail "$module is not a shared object: $(file -L "$module")"
file -L "$module" | grep -q 'not stripped' && fail "$module is not stripped"

for bin in picohsm-tool picohsm-vcard; do
    out=$("/usr/bin/$bin" --version) || fail "/usr/bin/$bin --version exited $?"
    [ "$out" = "$bin $upstream_version" ] || fail "/usr/bin/$bin --version printed '$out', not '$bin $upstream_version'"
    echo "$out"
done
for page in picohsm-tool picohsm-tool-pka-login picohsm-vcard; do
    where=$(man -w "$page") || fail "man -w $page finds no page"
    [ "$where" = "/usr/share/man/man1/$page.1.gz" ] || fail "man -w $page: $where"
    # The page renders and has its sections.
    text=$(man -P cat "$page" 2>/dev/null) || fail "man $page exited $?"
    grep -q '^SYNOPSIS' <<<"$text" || fail "man $page has no SYNOPSIS: $text"
done
echo "man pages: found and rendered"
# The bash completion works in a plain bash (no bash-completion package
# needed) and completes the subcommands.
words=$(bash -c 'set -e; source /usr/share/bash-completion/completions/picohsm-tool
    spec=$(complete -p picohsm-tool); fn=${spec#*-F }; fn=${fn%% *}
    COMP_WORDS=(picohsm-tool pk); COMP_CWORD=1; COMP_LINE="picohsm-tool pk"; COMP_POINT=${#COMP_LINE}
    "$fn" picohsm-tool pk picohsm-tool; echo "${COMPREPLY[*]}"') ||
    fail "sourcing the bash completion of picohsm-tool"
[ "$words" = pka ] || fail "bash completion of 'picohsm-tool pk' gave '$words', not 'pka'"
echo "bash completion: 'picohsm-tool pk<TAB>' -> $words"

# p11-kit loads the module for every p11-kit-aware program: listing it must
# work and say nothing on stderr, with no settings file anywhere (HOME and
# XDG_CONFIG_HOME empty directories) and with pcscd unreachable
# (PCSCLITE_CSOCK_NAME names no socket), as on a desk without a reader.
step "p11-kit list-modules"
home="$tmp/home"
mkdir -p "$home"
for pcscd in running unreachable; do
    env_extra=()
    [ "$pcscd" = unreachable ] && env_extra=(PCSCLITE_CSOCK_NAME="$tmp/no-pcscd.sock")
    t0=$(now_ms)
    env -u PICOHSM_PKCS11_CONFIG HOME="$home" XDG_CONFIG_HOME="$home/.config" "${env_extra[@]}" \
        p11-kit list-modules >"$tmp/p11.out" 2>"$tmp/p11.err" ||
        fail "p11-kit list-modules exited $? (pcscd $pcscd): $(cat "$tmp/p11.err")"
    list_ms=$(($(now_ms) - t0))
    # "picohsm-pkcs11: libpicohsm_pkcs11.so", then the module's own
    # description: p11-kit loaded and initialised it.
    grep -A1 -x 'picohsm-pkcs11: libpicohsm_pkcs11.so' "$tmp/p11.out" |
        grep -qx '    library-description: Pico HSM / SmartCard-HSM + PKA' ||
        fail "p11-kit list-modules (pcscd $pcscd) does not list the module:$(printf '\n%s' "$(cat "$tmp/p11.out")")"
    if grep -i picohsm "$tmp/p11.err"; then
        fail "p11-kit list-modules (pcscd $pcscd) printed the lines above on stderr"
    fi
    echo "pcscd $pcscd: module listed, nothing from it on stderr, ${list_ms} ms"
done
# GnuTLS loads every registered module too: listing tokens without pcscd
# works and says nothing about ours.
env -u PICOHSM_PKCS11_CONFIG HOME="$home" XDG_CONFIG_HOME="$home/.config" \
    PCSCLITE_CSOCK_NAME="$tmp/no-pcscd.sock" p11tool --list-tokens >"$tmp/p11tool.out" 2>"$tmp/p11tool.err" ||
    fail "p11tool --list-tokens without pcscd exited $?: $(cat "$tmp/p11tool.err")"
if grep -i picohsm "$tmp/p11tool.err"; then
    fail "p11tool --list-tokens without pcscd printed the lines above on stderr"
fi
echo "p11tool --list-tokens without pcscd: quiet"
# And from the installed path (p11-kit's debug log names it).
debug=$(P11_KIT_DEBUG=lib p11-kit list-modules 2>&1 >/dev/null) || fail "P11_KIT_DEBUG=lib p11-kit list-modules exited $?"
grep -q "loading module picohsm-pkcs11 from path: $module\$" <<<"$debug" ||
    fail "p11-kit does not load picohsm-pkcs11 from $module: $(grep -i picohsm <<<"$debug")"
echo "p11-kit loads $module"

step "client tests against the installed package"
if [ "${#client_tests[@]}" -eq 0 ]; then
    echo "NOTE: Cargo.toml has no clients_* test targets: no client test ran against the package"
else
    echo "clients_* targets: ${client_tests[*]}"
    PICOHSM_MODULE="$module" PICOHSM_TOOL_BIN=/usr/bin/picohsm-tool PICOHSM_VCARD_BIN=/usr/bin/picohsm-vcard \
        RUST_TEST_THREADS=1 cargo test -p picohsm-pkcs11 "${test_args[@]}" ||
        fail "the client tests (${client_tests[*]}) against the installed package"
fi

step "apt-get purge -y $PKG"
t0=$(now_ms)
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get purge -y "$PKG" || fail "apt-get purge $PKG"
purge_s=$(since "$t0")
[ -z "$(pkg_state | grep -v '^[up]n' || true)" ] || fail "after the purge dpkg still knows $PKG: '$(pkg_state)'"
left=()
while read -r p; do
    if [ -d "$p" ] && [ ! -L "$p" ]; then
        grep -qxF "$p" "$dirs_before" || left+=("$p/")
    elif [ -e "$p" ] || [ -L "$p" ]; then
        left+=("$p")
    fi
done <"$listed"
[ "${#left[@]}" -eq 0 ] || fail "left after the purge: ${left[*]}"
[ ! -e /etc/picohsm-pkcs11 ] || fail "/etc/picohsm-pkcs11 is left after the purge"
echo "nothing of the package's $(wc -l <"$listed") paths is left"

printf '\npackage-test: passed: build %ss, %s KiB, install %ss, purge %ss\n' \
    "$build_s" "$deb_kib" "$install_s" "$purge_s"

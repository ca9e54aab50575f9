#!/usr/bin/env bash
# Builds the Debian package picohsm-pkcs11 (cargo-deb; the contents are
# listed in Cargo.toml's [package.metadata.deb]):
#   0. cargo-deb from crates.io when it is missing;
#   1. a release build of the module, picohsm-tool and picohsm-vcard only;
#   2. man pages and shell completions from their clap definitions
#      (`cargo run --release -p xtask -- package-assets target/package`);
#   3. the module copied to target/release/multiarch/<triplet>/pkcs11/,
#      the triplet being this machine's (dpkg-architecture);
#   4. `cargo deb --no-build --strip`.
# Progress goes to stderr; the last line on stdout is the .deb's path.
# Install it with: sudo apt-get install ./target/debian/picohsm-pkcs11_*.deb
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '==> %s\n' "$*" >&2; }
die() { printf 'package.sh: %s\n' "$*" >&2; exit 1; }
start=$SECONDS

export PATH="$HOME/.cargo/bin:$PATH"
if ! cargo deb --version >/dev/null 2>&1; then
    # A fresh machine (CI's included) has no cargo-deb: crates.io has it.
    step "cargo install cargo-deb --locked --version ^3"
    cargo install cargo-deb --locked --version '^3' >&2 ||
        die "cargo-deb is missing and 'cargo install cargo-deb' failed"
fi
command -v dpkg-architecture >/dev/null ||
    die "dpkg-architecture is missing: apt-get install dpkg-dev"
triplet=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
target_dir=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')

step "cargo build --release -p picohsm-pkcs11 -p picohsm-tool -p picohsm-vcard"
cargo build --release -p picohsm-pkcs11 -p picohsm-tool -p picohsm-vcard >&2

# Generated into the source tree's target/package/, where Cargo.toml's
# asset paths (relative to the crate) look, whatever CARGO_TARGET_DIR is.
step "cargo run --release -p xtask -- package-assets target/package"
# --release: the libraries it needs are built already, in that profile.
cargo run -q --release -p xtask -- package-assets target/package >&2

step "module -> $target_dir/release/multiarch/$triplet/pkcs11/"
rm -rf "$target_dir/release/multiarch"
mkdir -p "$target_dir/release/multiarch/$triplet/pkcs11"
# A copy, not a link: cargo-deb strips the files it packages.
cp "$target_dir/release/libpicohsm_pkcs11.so" "$target_dir/release/multiarch/$triplet/pkcs11/"

# One .deb in target/debian/: `apt-get install ./target/debian/picohsm-pkcs11_*.deb`
# must not match an older version next to it.
rm -f "$target_dir"/debian/picohsm-pkcs11_*.deb
step "cargo deb -p picohsm-pkcs11 --no-build --strip"
out=$(cargo deb -p picohsm-pkcs11 --no-build --strip)
deb=$(printf '%s\n' "$out" | tail -n 1)
[ -f "$deb" ] || die "cargo deb did not report a .deb (its output: $out)"

step "$(du -k "$deb" | cut -f1) KiB, $((SECONDS - start)) s"
printf '%s\n' "$deb"

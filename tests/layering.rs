//! The layout docs/design.md describes, checked on the sources: imports go
//! down (the card driver and the PKA login use nothing of the core), no
//! global table is keyed by session handle (operations live in their
//! session), and the shipped module does not link the firmware.

use std::fs;
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out
}

/// The lines of `dir`'s sources (outside `#[cfg(test)]` parts) that
/// contain `needle`.
fn lines_with(dir: &str, needle: impl Fn(&str) -> bool) -> Vec<String> {
    let mut found = Vec::new();
    for f in rust_files(&root().join(dir)) {
        let text = fs::read_to_string(&f).unwrap();
        let code = text.find("#[cfg(test)]").map_or(&text[..], |i| &text[..i]);
        for (n, line) in code.lines().enumerate() {
            let l = line.trim_start();
            if !l.starts_with("//") && needle(l) {
                found.push(format!("{}:{}: {}", f.display(), n + 1, l));
            }
        }
    }
    found
}

#[test]
fn card_and_pka_import_nothing_from_the_core() {
    for dir in ["src/card", "src/pka"] {
        let found = lines_with(dir, |l| {
            l.contains("crate::core") || l.contains("super::super::core")
        });
        assert!(
            found.is_empty(),
            "{dir} reaches into the core:\n{}",
            found.join("\n")
        );
    }
}

/// Every `static` item of the module's sources, whole (up to its `;`).
fn statics() -> Vec<String> {
    let mut out = Vec::new();
    for f in rust_files(&root().join("src")) {
        let text = fs::read_to_string(&f).unwrap();
        let code = text.find("#[cfg(test)]").map_or(&text[..], |i| &text[..i]);
        let mut rest = code;
        while let Some(i) = rest.find("static ") {
            let line_start = rest[..i].rfind('\n').map_or(0, |n| n + 1);
            let before = rest[line_start..i].trim();
            let at_item = before.is_empty() || before.starts_with("pub");
            let end = rest[i..].find(';').map_or(rest.len(), |e| i + e);
            if at_item {
                out.push(format!("{}: {}", f.display(), &rest[i..end]));
            }
            rest = &rest[end.min(rest.len() - 1) + 1..];
        }
    }
    out
}

#[test]
fn no_global_map_keyed_by_session_handle() {
    let all = statics();
    assert!(
        all.iter().any(|s| s.contains("MODULE")),
        "the module's own static is found: {all:?}"
    );
    // A static of a type of ours counts with that type's definition.
    let sources: String = rust_files(&root().join("src"))
        .iter()
        .map(|f| fs::read_to_string(f).unwrap())
        .collect();
    let definition = |s: &str| -> String {
        let ty = s.split(':').nth(2).unwrap_or("").trim();
        let name: String = ty
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let head = format!("struct {name} ");
        match sources.find(&head) {
            Some(i) if !name.is_empty() => {
                let end = sources[i..].find("\n}").map_or(sources.len(), |e| i + e);
                sources[i..end].to_string()
            }
            _ => String::new(),
        }
    };
    let keyed = |t: &str| t.contains("CK_SESSION_HANDLE") && t.contains("Map");
    let found: Vec<&String> = all
        .iter()
        .filter(|s| keyed(s) || keyed(&definition(s)))
        .collect();
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn the_module_does_not_link_the_firmware() {
    let manifest = fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let deps = manifest
        .split("\n[dependencies]")
        .nth(1)
        .expect("a [dependencies] table")
        .split("\n[")
        .next()
        .unwrap();
    assert!(deps.contains("picohsm-wire"), "the table was found: {deps}");
    assert!(
        !deps.contains("picohsm-firmware"),
        "the module depends on the firmware:\n{deps}"
    );
}

#[test]
fn the_virtual_card_is_built_with_the_workspace() {
    // `cargo build --workspace` (and `cargo install --path vcard`) builds
    // picohsm-vcard: a workspace member whose binary needs no feature.
    let root_manifest = fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let members = root_manifest
        .lines()
        .find(|l| l.trim_start().starts_with("members"))
        .expect("a members list");
    assert!(members.contains("\"vcard\""), "{members}");
    let vcard = fs::read_to_string(root().join("vcard/Cargo.toml")).unwrap();
    assert!(vcard.contains("name = \"picohsm-vcard\""), "{vcard}");
    assert!(!vcard.contains("required-features"), "{vcard}");
    let firmware = fs::read_to_string(root().join("firmware/Cargo.toml")).unwrap();
    assert!(
        !firmware.contains("[[bin]]"),
        "the card crate stays a library"
    );
}

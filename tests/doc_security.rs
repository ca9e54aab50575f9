//! SECURITY.md's tables of attacks and of reliability cases are the lists
//! of their tests: every `attack_*` test of `tests/security_*.rs` has a
//! `/// Attack:` doc comment, every `survives_*` test of
//! `tests/reliability_*.rs` a `/// Reliability:` one, each has a row in
//! SECURITY.md, every row names a test that exists, and no row says an
//! attack went through or a case failed. `scripts/security-report.sh` and
//! `scripts/reliability.sh` rewrite the tables; this test keeps them from
//! going stale between two runs.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

/// `file::name` of every `fn_prefix*` test of `tests/file_prefix*.rs`,
/// checking each has a doc comment starting `tag`.
fn documented_tests(
    root: &Path,
    file_prefix: &str,
    fn_prefix: &str,
    tag: &str,
) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for entry in fs::read_dir(root.join("tests")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !(name.starts_with(file_prefix) && name.ends_with(".rs")) {
            continue;
        }
        let stem = name.trim_end_matches(".rs");
        let text = fs::read_to_string(&path).unwrap();
        let mut doc = String::new();
        for line in text.lines() {
            let s = line.trim();
            if let Some(d) = s.strip_prefix("///") {
                doc.push_str(d.trim());
                doc.push(' ');
                continue;
            }
            let f = s.strip_prefix("pub ").unwrap_or(s);
            if let Some(rest) = f.strip_prefix(&format!("fn {fn_prefix}")) {
                let fname: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                assert!(
                    doc.starts_with(tag),
                    "{name}: {fn_prefix}{fname} needs a doc comment starting '/// {tag}'"
                );
                out.insert(format!("{stem}::{fn_prefix}{fname}"));
                doc.clear();
            } else if !(s.starts_with("#[") || s.is_empty()) {
                doc.clear();
            }
        }
    }
    out
}

/// The `file::test` names the table rows of SECURITY.md cite, for tests
/// of `tests/file_prefix*.rs`.
fn listed(doc: &str, file_prefix: &str) -> BTreeSet<String> {
    let tick = format!("`{file_prefix}");
    doc.lines()
        .filter(|l| l.starts_with('|'))
        .filter_map(|l| {
            let start = l.find(&tick)? + 1;
            let len = l[start..].find('`')?;
            Some(l[start..start + len].to_string())
        })
        .collect()
}

fn assert_same(tests: &BTreeSet<String>, listed: &BTreeSet<String>, command: &str) {
    let missing: Vec<_> = tests.difference(listed).collect();
    let stale: Vec<_> = listed.difference(tests).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "SECURITY.md is out of date (run {command}): not listed {missing:?}, no such test {stale:?}"
    );
}

#[test]
fn security_md_lists_every_attack_test_and_only_those() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tests = documented_tests(root, "security_", "attack_", "Attack:");
    assert!(
        !tests.is_empty(),
        "no attack_* test found in tests/security_*.rs"
    );
    let doc = fs::read_to_string(root.join("SECURITY.md")).unwrap();
    assert_same(
        &tests,
        &listed(&doc, "security_"),
        "scripts/security-report.sh",
    );
    assert!(
        !doc.contains("NOT STOPPED"),
        "SECURITY.md records an attack that went through"
    );
}

#[test]
fn security_md_lists_every_reliability_case_and_only_those() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tests = documented_tests(root, "reliability_", "survives_", "Reliability:");
    assert!(
        !tests.is_empty(),
        "no survives_* test found in tests/reliability_*.rs"
    );
    let doc = fs::read_to_string(root.join("SECURITY.md")).unwrap();
    assert_same(
        &tests,
        &listed(&doc, "reliability_"),
        "scripts/reliability.sh",
    );
    assert!(
        !doc.contains("FAILS (test fails)"),
        "SECURITY.md records a reliability case that failed"
    );
}

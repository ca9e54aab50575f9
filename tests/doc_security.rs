//! SECURITY.md's table of attacks is the list of attack tests: every
//! `attack_*` test of `tests/security_*.rs` has a `/// Attack:` doc comment
//! and a row in SECURITY.md, every row names a test that exists, and no row
//! says an attack went through. `scripts/security-report.sh` rewrites the
//! table; this test keeps it from going stale between two runs of it.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

/// `file::attack_name` of every attack test, checking each has its doc.
fn attack_tests(root: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for entry in fs::read_dir(root.join("tests")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !(name.starts_with("security_") && name.ends_with(".rs")) {
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
            if let Some(rest) = f.strip_prefix("fn attack_") {
                let fname: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                assert!(
                    doc.starts_with("Attack:"),
                    "{name}: attack_{fname} needs a doc comment starting '/// Attack:'"
                );
                out.insert(format!("{stem}::attack_{fname}"));
                doc.clear();
            } else if !(s.starts_with("#[") || s.is_empty()) {
                doc.clear();
            }
        }
    }
    out
}

#[test]
fn security_md_lists_every_attack_test_and_only_those() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tests = attack_tests(root);
    assert!(
        !tests.is_empty(),
        "no attack_* test found in tests/security_*.rs"
    );
    let doc = fs::read_to_string(root.join("SECURITY.md")).unwrap();
    let listed: BTreeSet<String> = doc
        .lines()
        .filter(|l| l.starts_with('|'))
        .filter_map(|l| {
            let start = l.find("`security_")? + 1;
            let len = l[start..].find('`')?;
            Some(l[start..start + len].to_string())
        })
        .collect();
    let missing: Vec<_> = tests.difference(&listed).collect();
    let stale: Vec<_> = listed.difference(&tests).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "SECURITY.md is out of date (run scripts/security-report.sh): \
         not listed {missing:?}, no such test {stale:?}"
    );
    assert!(
        !doc.contains("NOT STOPPED"),
        "SECURITY.md records an attack that went through"
    );
}

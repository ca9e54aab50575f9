//! The wire format has one definition (`picohsm-wire`): outside it,
//! non-test code writes no APDU header and no status word as a literal.
//! This test reads the sources of the module (`src/`), `picohsm-tool`
//! (`tool/src/`), the card (`firmware/src/`) and the virtual card
//! (`vcard/src/`) and fails on either, naming the line.
//!
//! What counts: a 16-bit literal in the status-word ranges (`0x61xx` to
//! `0x6Fxx`, `0x9000`, `0x9001`), and the first bytes of a command APDU
//! (a CLA `0x00`/`0x80` followed by an instruction byte of the command
//! set) or an APDU builder called with literal header bytes. Test code
//! (after `#[cfg(test)]`, and files of tests) is not read.

use std::fs;
use std::path::{Path, PathBuf};

/// The instruction bytes of docs/protocol.md.
const INS: &[u8] = &[
    0x20, 0x22, 0x24, 0x2A, 0x2C, 0x46, 0x50, 0x52, 0x54, 0x58, 0x62, 0x68, 0x72, 0x74, 0x82, 0x84,
    0xA4, 0xB0, 0xB1, 0xC0, 0xD7, 0xE4,
];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if !name.contains("tests") && !name.ends_with("_test.rs") {
                out.push(p);
            }
        }
    }
}

/// The non-test part of a source file.
fn non_test(text: &str) -> &str {
    text.find("#[cfg(test)]").map_or(text, |i| &text[..i])
}

fn hex_literals(line: &str) -> Vec<(usize, u32, usize)> {
    // (position, value, number of hex digits)
    let b = line.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i + 2 < b.len() {
        let boundary = i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
        if boundary && b[i] == b'0' && (b[i + 1] == b'x' || b[i + 1] == b'X') {
            let start = i + 2;
            let mut j = start;
            while j < b.len() && (b[j].is_ascii_hexdigit() || b[j] == b'_') {
                j += 1;
            }
            let digits: String = line[start..j].chars().filter(|c| *c != '_').collect();
            if let Ok(v) = u32::from_str_radix(&digits, 16) {
                out.push((i, v, digits.len()));
            }
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

/// Why `line` writes the wire format by hand, if it does.
fn offence(line: &str) -> Option<String> {
    let code = line.split("//").next().unwrap_or("");
    let lits = hex_literals(code);
    for (_, v, n) in &lits {
        let sw = *n == 4 && ((0x6100..=0x6FFF).contains(v) || *v == 0x9000 || *v == 0x9001);
        if sw {
            return Some(format!("status word {v:04X} as a literal"));
        }
    }
    for w in lits.windows(2) {
        let ((p0, cla, n0), (p1, ins, n1)) = (w[0], w[1]);
        let adjacent = code[p0..p1].trim_end().ends_with(',') && p1 - p0 <= 8;
        if n0 == 2
            && n1 == 2
            && adjacent
            && (cla == 0x00 || cla == 0x80)
            && INS.contains(&(ins as u8))
        {
            let before = code[..p0].trim_end();
            if before.ends_with('[')
                || before.ends_with("build(")
                || before.ends_with("build_extended(")
            {
                return Some(format!("APDU header {cla:02X} {ins:02X} as a literal"));
            }
        }
    }
    None
}

#[test]
fn the_scanner_finds_what_it_looks_for() {
    // (line, whether it is an offence)
    for (line, offends) in [
        ("    match sw.0 { 0x6A82 => {} }", true),
        ("let a = [0x80, 0x54, 0x00, 0x00, 0x00];", true),
        (
            "exchange(l, &build(0x00, 0xA4, 0x04, 0x00, AID, 256))",
            true,
        ),
        ("let v = vec![0x00, 0x01]; // PKCS#1 block type", false),
        ("const MAX: usize = 0x6A82_0000;", false),
        ("// 0x6A82 in a comment", false),
        ("StatusWord::FILE_NOT_FOUND", false),
    ] {
        assert_eq!(offence(line).is_some(), offends, "{line}");
    }
}

#[test]
fn no_apdu_header_or_status_word_outside_wire() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    sources(&root.join("src"), &mut files);
    sources(&root.join("tool/src"), &mut files);
    sources(&root.join("firmware/src"), &mut files);
    sources(&root.join("vcard/src"), &mut files);
    assert!(
        files.len() > 20,
        "sources not found under {}",
        root.display()
    );
    let mut found = Vec::new();
    for f in &files {
        let text = fs::read_to_string(f).unwrap();
        for (n, line) in non_test(&text).lines().enumerate() {
            if let Some(why) = offence(line) {
                found.push(format!(
                    "{}:{}: {why}: {}",
                    f.strip_prefix(root).unwrap().display(),
                    n + 1,
                    line.trim()
                ));
            }
        }
    }
    assert!(
        found.is_empty(),
        "use picohsm_wire::cmd / StatusWord instead:\n{}",
        found.join("\n")
    );
}

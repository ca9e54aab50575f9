//! Every citation of `docs/protocol.md` names a heading that exists in it,
//! and no file cites a section without naming the document it belongs to.
//!
//! The rule, applied to every text file of the repository (`*.rs`, `*.md`,
//! `*.sh`, `*.h`, `*.c`, `*.toml`, found by walking the tree without
//! `target*` and hidden directories):
//!
//! * A citation is a *head*, whitespace, the section sign and a section
//!   number. The head names the document: `docs/protocol.md`, or one of the
//!   other specifications of [`EXTERNAL_HEADS`] (`PKCS#11 3.0`, `RFC 8017`,
//!   `ISO 7816-4`, `TR-03110`, ...). A line break and the comment leader of
//!   the next line (`//!`, `///`, `//`, `#`, `*`) count as whitespace, so a
//!   head may end one comment line and its section start the next.
//! * A list continues a citation: after a section, a separator (`,`, `-`,
//!   `–`, `/`, `and`, `or`, with spaces or not) and another section sign
//!   with a number belong to the same head. `docs/protocol.md §6.3-§6.6`
//!   cites 6.3 and 6.6; `docs/protocol.md §6.3, §6.7` cites 6.3 and 6.7.
//! * A section of `docs/protocol.md` is digits and dots (a trailing dot is
//!   the end of a sentence) and must be the number of one of its headings
//!   (`## 6. …`, `### 6.3 …`, `#### 6.7.1 …`: number first).
//! * Any other section sign is *bare* and an error: it cannot be told which
//!   document it means. Inside `docs/protocol.md` itself a bare section sign
//!   refers to its own headings and is checked as such.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// The section sign, written as an escape so that the test strings below
/// are not themselves scanned as citations.
const SECTION: char = '\u{a7}';

/// The document whose headings citations must name.
const PROTOCOL_DOC: &str = "docs/protocol.md";

/// Heads of citations of other specifications. A word is matched
/// literally except for `{n}` (digits), `{v}` (a version: digits and dots)
/// and `{id}` (letters, digits and dashes). PKCS#11 is always cited with its
/// version, because its chapters moved between 2.40 and 3.0.
const EXTERNAL_HEADS: &[&str] = &[
    "PKCS#11 {v}",
    "PKCS#11 {v} Mechanisms",
    "RFC {n}",
    "ISO {n}",
    "ISO {n}-{n}",
    "ISO/IEC {n}-{n}",
    "FIPS {n}",
    "FIPS {n}-{n}",
    "TR-03110",
    "TR-03110 part {n}",
    "X9.62",
    "X9.63",
    "SEC1",
    "SEC 1",
    "SEC 2",
    "draft-{id}",
];

/// Which document a section sign refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `docs/protocol.md`.
    Protocol,
    /// Another specification ([`EXTERNAL_HEADS`]).
    External,
    /// No head: an error.
    Bare,
}

/// One section sign found in a text.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Citation {
    /// 1-based line of the section sign.
    line: usize,
    kind: Kind,
    /// The section number as written (trailing dot removed).
    section: String,
}

/// The text with each line's leading whitespace and comment leader
/// replaced by the line break before it, as one space; each character with
/// its line number.
fn logical_text(text: &str) -> Vec<(char, usize)> {
    let mut out = Vec::with_capacity(text.len());
    for (i, line) in text.lines().enumerate() {
        let mut rest = line.trim_start();
        for leader in ["//!", "///", "//", "#", "*"] {
            if let Some(r) = rest.strip_prefix(leader) {
                rest = r;
                break;
            }
        }
        if i > 0 {
            out.push((' ', i + 1));
        }
        out.extend(rest.chars().map(|c| (c, i + 1)));
    }
    out
}

/// Whether `word` matches one word of a head pattern.
fn word_matches(word: &str, pattern: &str) -> bool {
    fn take(word: &str, class: &str) -> Option<usize> {
        let n = word
            .char_indices()
            .take_while(|(i, c)| match class {
                "{n}" => c.is_ascii_digit(),
                "{v}" => c.is_ascii_digit() || (*i > 0 && *c == '.'),
                _ => c.is_ascii_alphanumeric() || *c == '-',
            })
            .count();
        (n > 0).then_some(n)
    }
    if pattern.is_empty() {
        return word.is_empty();
    }
    for class in ["{n}", "{v}", "{id}"] {
        if let Some(rest) = pattern.strip_prefix(class) {
            // Placeholders are greedy; a pattern never needs backtracking
            // (a literal follows a placeholder only after a non-member).
            return take(word, class).is_some_and(|n| word_matches(&word[n..], rest));
        }
    }
    let c = pattern.chars().next().unwrap_or_default();
    word.starts_with(c) && word_matches(&word[c.len_utf8()..], &pattern[c.len_utf8()..])
}

/// Which head, if any, `before` (the text before a section sign) ends with.
fn head_kind(before: &str) -> Kind {
    let before = before.trim_end();
    if before.ends_with(PROTOCOL_DOC) {
        return Kind::Protocol;
    }
    let words: Vec<&str> = before.split_whitespace().collect();
    for head in EXTERNAL_HEADS {
        let pattern: Vec<&str> = head.split(' ').collect();
        if words.len() < pattern.len() {
            continue;
        }
        let tail = &words[words.len() - pattern.len()..];
        let matched = tail.iter().zip(&pattern).enumerate().all(|(i, (w, p))| {
            // The head may open a parenthesis or a quotation.
            let w = if i == 0 {
                w.trim_start_matches(['(', '[', '"', '\'', '`'])
            } else {
                w
            };
            word_matches(w, p)
        });
        if matched {
            return Kind::External;
        }
    }
    Kind::Bare
}

/// Whether the text between two section signs joins them into one list.
fn is_list_separator(between: &str) -> bool {
    matches!(
        between.trim(),
        "," | "-" | "–" | "—" | "/" | "and" | "or" | ", and" | ", or"
    )
}

/// Every section sign of `text` with the document it refers to.
/// `in_protocol_doc`: the text is `docs/protocol.md` itself, where a bare
/// section sign refers to its own headings.
fn scan(text: &str, in_protocol_doc: bool) -> Vec<Citation> {
    let t = logical_text(text);
    let chars: Vec<char> = t.iter().map(|(c, _)| *c).collect();
    let mut out = Vec::new();
    // End of the previous section number, and the kind it had.
    let mut previous: Option<(usize, Kind)> = None;
    for p in 0..chars.len() {
        if chars[p] != SECTION {
            continue;
        }
        let mut end = p + 1;
        while end < chars.len() && (chars[end].is_ascii_alphanumeric() || chars[end] == '.') {
            end += 1;
        }
        let section: String = chars[p + 1..end].iter().collect();
        let section = section.trim_end_matches('.').to_string();
        let continued = previous.and_then(|(e, kind)| {
            let between: String = chars[e..p].iter().collect();
            is_list_separator(&between).then_some(kind)
        });
        let kind = match continued {
            Some(kind) => kind,
            None => {
                let start = p.saturating_sub(80);
                let before: String = chars[start..p].iter().collect();
                match head_kind(&before) {
                    Kind::Bare if in_protocol_doc => Kind::Protocol,
                    k => k,
                }
            }
        };
        out.push(Citation {
            line: t[p].1,
            kind,
            section,
        });
        previous = Some((end, kind));
    }
    out
}

/// The section numbers of the headings of a Markdown text: `## 6. Title`,
/// `### 6.3 Title` give `6`, `6.3`.
fn headings(markdown: &str) -> BTreeSet<String> {
    markdown
        .lines()
        .filter_map(|l| {
            let rest = l.trim_start_matches('#');
            if rest.len() == l.len() || !rest.starts_with(' ') {
                return None;
            }
            let number = rest.trim_start().split(' ').next()?.trim_end_matches('.');
            let valid = !number.is_empty()
                && number
                    .split('.')
                    .all(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
            valid.then(|| number.to_string())
        })
        .collect()
}

/// The problems of one file's citations, as `path:line: message`.
fn check(path: &str, text: &str, known: &BTreeSet<String>) -> Vec<String> {
    let mut errors = Vec::new();
    for c in scan(text, path == PROTOCOL_DOC) {
        let at = format!("{path}:{}", c.line);
        match c.kind {
            Kind::Bare => errors.push(format!(
                "{at}: section {SECTION}{} without the name of its document \
                 (write `{PROTOCOL_DOC} {SECTION}N.N`, `PKCS#11 3.0 {SECTION}N.N`, `RFC NNNN {SECTION}N.N`, ...)",
                c.section
            )),
            Kind::Protocol if !known.contains(&c.section) => errors.push(format!(
                "{at}: {PROTOCOL_DOC} has no heading {SECTION}{}",
                c.section
            )),
            Kind::External if c.section.is_empty() => {
                errors.push(format!("{at}: a section sign without a number"))
            }
            _ => {}
        }
    }
    errors
}

/// The text files of the repository, relative to its root.
fn text_files(root: &Path) -> Vec<PathBuf> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                if !name.starts_with('.') && !name.starts_with("target") {
                    walk(root, &path, out);
                }
            } else if ["rs", "md", "sh", "h", "c", "toml"]
                .iter()
                .any(|ext| path.extension().is_some_and(|x| x == *ext))
            {
                out.push(path.strip_prefix(root).unwrap_or(&path).to_path_buf());
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

#[test]
fn every_citation_resolves_and_none_is_bare() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = fs::read_to_string(root.join(PROTOCOL_DOC)).expect("docs/protocol.md exists");
    let known = headings(&doc);
    for required in ["1.1", "1.4", "2.3", "3.3", "5.1", "6.7", "7.1", "10"] {
        assert!(
            known.contains(required),
            "no heading {required} in {PROTOCOL_DOC}"
        );
    }
    let files = text_files(root);
    assert!(
        files.iter().any(|f| f.ends_with("src/lib.rs")),
        "the walk found the sources"
    );
    let mut errors = Vec::new();
    let mut cited = 0usize;
    for f in &files {
        let Ok(text) = fs::read_to_string(root.join(f)) else {
            continue;
        };
        let path = f.to_string_lossy().replace('\\', "/");
        cited += scan(&text, path == PROTOCOL_DOC)
            .iter()
            .filter(|c| c.kind == Kind::Protocol && path != PROTOCOL_DOC)
            .count();
        errors.extend(check(&path, &text, &known));
    }
    assert!(
        errors.is_empty(),
        "{} citation problem(s):\n{}",
        errors.len(),
        errors.join("\n")
    );
    assert!(cited > 0, "the code cites {PROTOCOL_DOC}");
}

#[cfg(test)]
mod scanner {
    use super::*;

    fn known() -> BTreeSet<String> {
        headings("# Title\n## 5. PIN handling\n### 5.1 VERIFY (INS 20)\n### 6.3 PKA\n### 6.6 Export\n#### 6.7.1 Example\n")
    }

    fn kinds(text: &str) -> Vec<(Kind, String)> {
        scan(text, false)
            .into_iter()
            .map(|c| (c.kind, c.section))
            .collect()
    }

    #[test]
    fn headings_are_numbers_first() {
        let k = known();
        assert_eq!(
            k.into_iter().collect::<Vec<_>>(),
            ["5", "5.1", "6.3", "6.6", "6.7.1"]
        );
        assert!(headings("## Scope\n##5.1 no space\n#### 7.x title\n").is_empty());
    }

    #[test]
    fn a_good_citation_passes() {
        let text = "/// VERIFY (docs/protocol.md \u{a7}5.1): the status.\n";
        assert_eq!(kinds(text), [(Kind::Protocol, "5.1".to_string())]);
        assert!(check("x.rs", text, &known()).is_empty());
        // The end of a sentence is not part of the number.
        assert!(check("x.rs", "see docs/protocol.md \u{a7}6.7.1.", &known()).is_empty());
    }

    #[test]
    fn a_missing_heading_fails() {
        let errors = check("x.rs", "// docs/protocol.md \u{a7}99.1\n", &known());
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].starts_with("x.rs:1: docs/protocol.md has no heading"));
        assert_eq!(
            check("x.rs", "// docs/protocol.md \u{a7}5.9\n", &known()).len(),
            1
        );
    }

    #[test]
    fn a_bare_section_fails() {
        for bare in [
            "// the PIN (\u{a7}5.1)\n",
            "// protocol reference \u{a7}5.1\n",
            "// PKCS#11 \u{a7}5.2 (no version)\n",
            "\"\u{a7}3.5 end\"",
        ] {
            let errors = check("x.rs", bare, &known());
            assert_eq!(errors.len(), 1, "{bare:?}: {errors:?}");
            assert!(errors[0].contains("without the name of its document"));
        }
    }

    #[test]
    fn lists_belong_to_their_head() {
        assert_eq!(
            kinds("(docs/protocol.md \u{a7}6.3-\u{a7}6.6, \u{a7}5.1 and \u{a7}6.7.1)"),
            [
                (Kind::Protocol, "6.3".to_string()),
                (Kind::Protocol, "6.6".to_string()),
                (Kind::Protocol, "5.1".to_string()),
                (Kind::Protocol, "6.7.1".to_string()),
            ]
        );
        assert!(check(
            "x.rs",
            "docs/protocol.md \u{a7}6.3-\u{a7}6.6, \u{a7}5.1",
            &known()
        )
        .is_empty());
        // A list does not run across other words.
        assert_eq!(
            kinds("docs/protocol.md \u{a7}6.3 then \u{a7}6.6")[1].0,
            Kind::Bare
        );
        // PKCS#11 lists stay PKCS#11, whatever the numbers.
        assert_eq!(
            kinds("PKCS#11 3.0 \u{a7}5.8\u{2013}\u{a7}5.12"),
            [
                (Kind::External, "5.8".to_string()),
                (Kind::External, "5.12".to_string())
            ]
        );
    }

    #[test]
    fn other_specifications_are_named() {
        for ok in [
            "PKCS#11 3.0 \u{a7}5.2",
            "(PKCS#11 3.0 \u{a7}5.7)",
            "ISO 7816-4 \u{a7}5.1.3",
            "RFC 8017 \u{a7}9.2, note 1",
            "FIPS 186-4 \u{a7}6.4",
            "BSI TR-03110 \u{a7}A.6.4",
            "draft-irtf-cfrg-rsa-guidance \u{a7}7.2",
        ] {
            assert_eq!(kinds(ok)[0].0, Kind::External, "{ok}");
            assert!(check("x.rs", ok, &known()).is_empty(), "{ok}");
        }
    }

    #[test]
    fn a_head_may_end_the_previous_comment_line() {
        let text = "    /// the exact form of RFC 8017\n    /// \u{a7}9.2 note 1\n";
        assert_eq!(kinds(text), [(Kind::External, "9.2".to_string())]);
        assert_eq!(scan(text, false)[0].line, 2);
        let text = "//! (docs/protocol.md\n//! \u{a7}6.3)\n";
        assert!(check("x.rs", text, &known()).is_empty());
    }

    #[test]
    fn the_protocol_document_refers_to_itself() {
        let doc = "## 5. PIN handling\n### 5.1 VERIFY\nSee \u{a7}5.1 and PKCS#11 3.0 \u{a7}5.2; not \u{a7}5.3.\n";
        let errors = check(PROTOCOL_DOC, doc, &headings(doc));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("no heading \u{a7}5.3"));
    }
}

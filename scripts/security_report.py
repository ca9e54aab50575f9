#!/usr/bin/env python3
"""Regenerates the generated parts of SECURITY.md.

Reads every `attack_*` test of tests/security_*.rs with its `/// Attack:`
doc comment, the results of a test run (the output of `cargo test`, given as
files), and the fuzzing figures in fuzz/figures/*.txt, and rewrites the text
between the `<!-- generated: NAME -->` and `<!-- end: NAME -->` markers of
SECURITY.md. Everything outside the markers is left as written.

Usage: security_report.py [--results FILE]... (run by scripts/security-report.sh)
"""

import argparse
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
SECURITY = ROOT / "SECURITY.md"


def attacks():
    """(file stem, test name, description) for every documented attack test."""
    found = []
    for path in sorted((ROOT / "tests").glob("security_*.rs")):
        doc = []
        for line in path.read_text().splitlines():
            s = line.strip()
            if s.startswith("///"):
                doc.append(s[3:].strip())
                continue
            m = re.match(r"(?:pub\s+)?fn\s+(attack_\w+)", s)
            if m:
                text = " ".join(doc).strip()
                if not text.startswith("Attack:"):
                    sys.exit(f"{path.name}: {m.group(1)} has no '/// Attack:' doc comment")
                found.append((path.stem, m.group(1), text[len("Attack:"):].strip()))
                doc = []
            elif s.startswith("#[") or not s:
                continue
            else:
                doc = []
    return found


def results(files):
    """test name -> 'ok' / 'FAILED' / 'ignored', from cargo test output."""
    out = {}
    for f in files:
        for line in pathlib.Path(f).read_text(errors="replace").splitlines():
            m = re.match(r"test (\S+) \.\.\. (ok|FAILED|ignored)", line)
            if m:
                out[m.group(1).split("::")[-1]] = m.group(2)
    return out


def fuzz_figures():
    """One dict per line of fuzz/figures/TARGET.txt (key=value pairs, as
    scripts/fuzz.sh appends them)."""
    rows = []
    for path in sorted((ROOT / "fuzz" / "figures").glob("*.txt")):
        for line in path.read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                row = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
                row.setdefault("target", path.stem)
                rows.append(row)
    return rows


def attack_table(found, res):
    lines = [
        "| Attack | Test | Outcome |",
        "|---|---|---|",
    ]
    for stem, name, text in found:
        r = res.get(name)
        outcome = {
            "ok": "stopped (test passes)",
            "FAILED": "**NOT STOPPED (test fails)**",
            "ignored": "not run (ignored)",
            None: "not run in this report",
        }[r]
        lines.append(f"| {text.replace('|', '/')} | `{stem}::{name}` | {outcome} |")
    passed = sum(1 for _, n, _ in found if res.get(n) == "ok")
    lines.append("")
    lines.append(f"{passed} of {len(found)} attacks stopped in the run that produced this table.")
    return "\n".join(lines)


def fuzz_table(rows):
    if not rows:
        return "No fuzzing figures recorded yet (`scripts/fuzz.sh 1800` records them)."
    lines = [
        "| Target | Date | Seconds | Executions | Execs/s | Corpus | Crashes |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    total_s = 0
    total_x = 0
    for r in rows:
        secs = int(r.get("seconds", "0"))
        execs = int(r.get("executions", "0"))
        total_s += secs
        total_x += execs
        rate = execs // secs if secs else 0
        lines.append(
            f"| `{r.get('target', '?')}` | {r.get('date', '?')} | {secs} | {execs:,} | {rate:,} "
            f"| {r.get('corpus', '?')} | {r.get('crashes', '?')} |"
        )
    lines.append("")
    lines.append(
        f"In all: {total_s / 3600:.1f} hours, {total_x:,} executions, "
        f"{sum(int(r.get('crashes', '0')) for r in rows)} open crashes."
    )
    return "\n".join(lines)


def replace(text, name, body):
    start = f"<!-- generated: {name} -->"
    end = f"<!-- end: {name} -->"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        sys.exit(f"SECURITY.md has no '{start}' ... '{end}' block")
    return pattern.sub(lambda _: f"{start}\n{body}\n{end}", text)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", action="append", default=[])
    args = ap.parse_args()
    found = attacks()
    text = SECURITY.read_text()
    text = replace(text, "attacks", attack_table(found, results(args.results)))
    text = replace(text, "fuzzing", fuzz_table(fuzz_figures()))
    SECURITY.write_text(text)
    print(f"SECURITY.md: {len(found)} attacks, {len(fuzz_figures())} fuzzing runs")


if __name__ == "__main__":
    main()

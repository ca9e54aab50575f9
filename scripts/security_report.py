#!/usr/bin/env python3
"""Regenerates the generated parts of SECURITY.md.

Reads every `attack_*` test of tests/security_*.rs with its `/// Attack:`
doc comment, the results of a test run (the output of `cargo test`, given as
files), the fuzzing figures in fuzz/figures/*.txt, every `survives_*` test
of tests/reliability_*.rs with its `/// Reliability:` doc comment and the
figures of the reliability runs in tests/figures/reliability.txt, and
rewrites the text between the `<!-- generated: NAME -->` and
`<!-- end: NAME -->` markers of SECURITY.md. Everything outside the markers
is left as written.

Usage: security_report.py [--results FILE]... [--reliability RAW --mode MODE]
(run by scripts/security-report.sh and scripts/reliability.sh). RAW holds the
lines the reliability tests appended (`name<TAB>runs<TAB>ok<TAB>unit`); with
the cargo output in --results they replace those cases' rows of
tests/figures/reliability.txt.
"""

import datetime

import argparse
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
SECURITY = ROOT / "SECURITY.md"


FIGURES = ROOT / "tests" / "figures" / "reliability.txt"


def documented_tests(glob, prefix, tag):
    """(file stem, test name, description) for every `prefix*` test of the
    files matching `glob`, each with its `/// tag:` doc comment."""
    found = []
    for path in sorted((ROOT / "tests").glob(glob)):
        doc = []
        for line in path.read_text().splitlines():
            s = line.strip()
            if s.startswith("///"):
                doc.append(s[3:].strip())
                continue
            m = re.match(r"(?:pub\s+)?fn\s+(" + prefix + r"\w+)", s)
            if m:
                text = " ".join(doc).strip()
                if not text.startswith(tag + ":"):
                    sys.exit(f"{path.name}: {m.group(1)} has no '/// {tag}:' doc comment")
                found.append((path.stem, m.group(1), text[len(tag) + 1:].strip()))
                doc = []
            elif s.startswith("#[") or not s:
                continue
            else:
                doc = []
    return found


def attacks():
    """(file stem, test name, description) for every documented attack test."""
    return documented_tests("security_*.rs", "attack_", "Attack")


def reliability_cases():
    """(file stem, test name, description) for every reliability case."""
    return documented_tests("reliability_*.rs", "survives_", "Reliability")


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


def read_figures():
    """name -> dict(mode, date, runs, ok, unit, outcome), from FIGURES."""
    rows = {}
    if FIGURES.exists():
        for line in FIGURES.read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                row = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
                rows[row["case"]] = row
    return rows


def update_figures(raw, res, mode):
    """Replaces the rows of the cases in `raw` (lines the tests appended)."""
    rows = read_figures()
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    for line in pathlib.Path(raw).read_text().splitlines():
        parts = line.split("\t")
        if len(parts) != 4:
            continue
        name, runs, ok, unit = parts
        rows[name] = {
            "case": name,
            "mode": mode,
            "date": date,
            "runs": runs,
            "ok": ok,
            "unit": unit,
            "outcome": res.get(name, "not-run"),
        }
    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    keys = ["case", "mode", "date", "runs", "ok", "unit", "outcome"]
    body = "".join(" ".join(f"{k}={r[k]}" for k in keys) + "\n" for _, r in sorted(rows.items()))
    FIGURES.write_text(
        "# Written by scripts/reliability.sh (one line per case, the last run of each).\n" + body
    )


def reliability_table(found, rows):
    lines = [
        "| Case | Test | Run | Survived | Outcome |",
        "|---|---|---|---:|---|",
    ]
    for stem, name, text in found:
        r = rows.get(name)
        if r is None:
            run, survived, outcome = "not run yet", "", "not run in this report"
        else:
            run = f"{int(r['runs']):,} {r['unit']} ({r['mode']}, {r['date'][:10]})"
            survived = f"{int(r['ok']):,}"
            outcome = {"ok": "holds (test passes)", "FAILED": "**FAILS (test fails)**"}.get(
                r["outcome"], "not run in this report"
            )
        lines.append(
            f"| {text.replace('|', '/')} | `{stem}::{name}` | {run} | {survived} | {outcome} |"
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
    ap.add_argument("--reliability", help="lines appended by the reliability tests")
    ap.add_argument("--mode", default="long", help="short (CI counts) or long")
    args = ap.parse_args()
    res = results(args.results)
    text = SECURITY.read_text()
    if args.reliability:
        update_figures(args.reliability, res, args.mode)
    else:
        found = attacks()
        text = replace(text, "attacks", attack_table(found, res))
        text = replace(text, "fuzzing", fuzz_table(fuzz_figures()))
        print(f"SECURITY.md: {len(found)} attacks, {len(fuzz_figures())} fuzzing runs")
    cases = reliability_cases()
    text = replace(text, "reliability", reliability_table(cases, read_figures()))
    SECURITY.write_text(text)
    print(f"SECURITY.md: {len(cases)} reliability cases")


if __name__ == "__main__":
    main()

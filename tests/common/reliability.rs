//! Counts and results of the reliability tests (`tests/reliability_*.rs`).
//!
//! Each case runs a short version by default (what `.ci/run` runs) and the
//! long one with `PICOHSM_RELIABILITY=long` (`scripts/reliability.sh`).
//! With `PICOHSM_RELIABILITY_RESULTS=FILE` set, each case appends one line
//! to FILE — `name<TAB>runs<TAB>ok<TAB>unit` — which
//! `scripts/security_report.py` turns into SECURITY.md's reliability table.

use std::io::Write;

/// Whether the long runs were asked for (`PICOHSM_RELIABILITY=long`).
pub fn long() -> bool {
    std::env::var("PICOHSM_RELIABILITY").is_ok_and(|v| v == "long")
}

/// `short` normally, `long` with `PICOHSM_RELIABILITY=long`.
pub fn count(short: usize, long: usize) -> usize {
    if self::long() {
        long
    } else {
        short
    }
}

/// Records that the case `name` (the test function's name) ran `runs`
/// times (`unit`: "cycles", "calls", "operations"…) and survived `ok` of
/// them. Call it before the test's final assertions, so a failing run is
/// recorded too.
pub fn record(name: &str, runs: usize, ok: usize, unit: &str) {
    let Some(path) = std::env::var_os("PICOHSM_RELIABILITY_RESULTS") else {
        return;
    };
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("cannot open {path:?}: {e}"));
    writeln!(f, "{name}\t{runs}\t{ok}\t{unit}").expect("write the reliability result");
}

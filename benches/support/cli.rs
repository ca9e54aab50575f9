//! Command-line options shared by the benchmarks.

use std::path::{Path, PathBuf};

/// The results file: `--out FILE`, or `target/bench/<default>`.
pub fn out_path(args: &[String], default: &str) -> PathBuf {
    args.iter()
        .position(|a| a == "--out")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("target/bench")
                .join(default)
        })
}

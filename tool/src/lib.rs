//! The command line of `picohsm-tool`, as a library so that the packaging
//! generator (xtask) renders the man pages and shell completions from the
//! very definitions the binary parses. The commands themselves live in the
//! binary (src/main.rs).

pub mod cli;

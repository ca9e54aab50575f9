//! `cargo run -p xtask -- package-assets DIR`: writes the generated files the
//! Debian package ships (scripts/package.sh runs it before `cargo deb`):
//!
//! - `DIR/man/*.1`: picohsm-tool(1), one page per subcommand
//!   (picohsm-tool-pka-login(1), ...) and picohsm-vcard(1), rendered by
//!   clap_mangen from the clap definitions the binaries parse;
//! - `DIR/completions/{bash,zsh,fish}/`: each binary's completion script,
//!   from the same definitions (clap_complete).
//!
//! Generated rather than written by hand so that a new option shows up in
//! the manual and in tab completion without anyone remembering to add it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;

/// The name every page carries in its header, as Debian's own packages
/// put their project's name there.
const MANUAL: &str = "picohsm-pkcs11";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.as_slice() {
        [cmd, dir] if cmd == "package-assets" => package_assets(Path::new(dir)),
        _ => Err("usage: cargo run -p xtask -- package-assets DIR".to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The binaries' command lines.
fn commands() -> Vec<clap::Command> {
    vec![
        picohsm_tool::cli::Cli::command(),
        picohsm_vcard::cli::Args::command(),
    ]
}

fn package_assets(dir: &Path) -> Result<(), String> {
    let man = dir.join("man");
    let completions = dir.join("completions");
    // Fresh directories: a page of a removed subcommand must not linger
    // and be packaged by the glob in Cargo.toml.
    for d in [&man, &completions] {
        match std::fs::remove_dir_all(d) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot clear {}: {e}", d.display())),
        }
        create_dir(d)?;
    }
    let mut written = 0;
    for cmd in commands() {
        // Built (so subcommands carry their full names,
        // "picohsm-tool-pka-login", and usage lines), without the `help`
        // subcommand, which would get pages of its own.
        let mut built = cmd.clone().disable_help_subcommand(true);
        built.build();
        written += man_pages(&built, &man, &sibling_pages(&cmd))?;
        written += completion_scripts(cmd, &completions)?;
    }
    println!("xtask: {written} files in {}", dir.display());
    Ok(())
}

fn create_dir(d: &Path) -> Result<(), String> {
    std::fs::create_dir_all(d).map_err(|e| format!("cannot create {}: {e}", d.display()))
}

/// The other binaries' pages, for SEE ALSO.
fn sibling_pages(cmd: &clap::Command) -> Vec<String> {
    commands()
        .iter()
        .map(|c| c.get_name().to_string())
        .filter(|n| n != cmd.get_name())
        .collect()
}

/// Writes `cmd`'s page and, recursively, one per visible subcommand;
/// returns how many.
fn man_pages(cmd: &clap::Command, out: &Path, see_also: &[String]) -> Result<usize, String> {
    let name = page_name(cmd);
    let mut related: Vec<String> = Vec::new();
    // The parent page, for a subcommand (its name minus the last part).
    if let Some((parent, _)) = name.rsplit_once('-').filter(|_| name != cmd.get_name()) {
        related.push(parent.to_string());
    }
    let subs: Vec<&clap::Command> = cmd.get_subcommands().filter(|s| !s.is_hide_set()).collect();
    related.extend(subs.iter().map(|s| page_name(s)));
    related.extend(see_also.iter().cloned());

    let page = clap_mangen::Man::new(cmd.clone())
        .manual(MANUAL)
        .source(format!("{MANUAL} {}", env!("CARGO_PKG_VERSION")));
    let mut text = Vec::new();
    page.render(&mut text)
        .map_err(|e| format!("rendering {name}(1): {e}"))?;
    let mut roff = roff::Roff::new();
    roff.control("SH", ["SEE ALSO"]);
    let refs: Vec<String> = related.iter().map(|r| format!("{r}(1)")).collect();
    roff.text([roff::roman(refs.join(", "))]);
    // to_roff: the page's own render already defined the apostrophe string.
    text.extend_from_slice(roff.to_roff().as_bytes());
    let path = out.join(format!("{name}.1"));
    std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;

    let mut n = 1;
    for sub in subs {
        n += man_pages(sub, out, see_also)?;
    }
    Ok(n)
}

/// A page's name: the binary's, or "binary-sub-subsub" for a subcommand
/// (clap's display name after `build`).
fn page_name(cmd: &clap::Command) -> String {
    cmd.get_display_name()
        .unwrap_or_else(|| cmd.get_name())
        .to_string()
}

/// The completion scripts of one binary, under the names the shells look
/// for (scripts/package.sh maps them to the Debian directories).
fn completion_scripts(mut cmd: clap::Command, out: &Path) -> Result<usize, String> {
    let bin = cmd.get_name().to_string();
    let mut n = 0;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let d: PathBuf = out.join(shell.to_string());
        create_dir(&d)?;
        clap_complete::generate_to(shell, &mut cmd, &bin, &d)
            .map_err(|e| format!("{shell} completion of {bin}: {e}"))?;
        n += 1;
    }
    Ok(n)
}

//! The module's log: the `log` crate's records, to stderr or a file, at the
//! level `PICOHSM_PKCS11_LOG` names.
//!
//! `PICOHSM_PKCS11_LOG=<level>[,<file>]`, level one of `error`, `warn`,
//! `info`, `debug`, `trace` (`off` or unset: nothing, as a module loaded
//! into someone else's process should be quiet unless asked). With a file,
//! lines are appended to it; otherwise they go to stderr. Installed at the
//! first C_Initialize; if the application already installed a `log` logger
//! (a Rust program), the module's records go to that one instead.
//!
//! What is logged never holds a PIN or key material: call sites log
//! origins, handles, lengths and status words, never buffers.
//!
//! In a privileged process (AT_SECURE: set-uid, set-gid, file
//! capabilities) `PICOHSM_PKCS11_LOG` is ignored: the caller's environment
//! must not make the process create or append to a file with its rights.
//! The log file is opened without following a symbolic link at its last
//! component, and created with mode 0600 (an existing file keeps its mode).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::OnceLock;

use log::{LevelFilter, Log, Metadata, Record};
use std::sync::{Mutex, MutexGuard, PoisonError};

struct Logger {
    level: LevelFilter,
    /// A std mutex, not parking_lot's: the fork handlers unlock it in a
    /// forked child (`crate::core::fork`).
    file: Option<Mutex<File>>,
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = format!(
            "picohsm-pkcs11[{}] {} {}: {}\n",
            std::process::id(),
            record.level(),
            record.target(),
            record.args()
        );
        match &self.file {
            Some(f) => {
                let _ = lock(f).write_all(line.as_bytes());
            }
            None => {
                let _ = std::io::stderr().write_all(line.as_bytes());
            }
        }
    }

    fn flush(&self) {
        if let Some(f) = &self.file {
            let _ = lock(f).flush();
        }
    }
}

/// Level and file from a `PICOHSM_PKCS11_LOG` value.
fn parse(value: &str) -> (LevelFilter, Option<&str>) {
    let (level, file) = match value.split_once(',') {
        Some((l, f)) => (l.trim(), Some(f.trim()).filter(|f| !f.is_empty())),
        None => (value.trim(), None),
    };
    (level.parse().unwrap_or(LevelFilter::Off), file)
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

/// The `PICOHSM_PKCS11_LOG` value to honour: none under AT_SECURE
/// (`secure`).
fn setting(secure: bool, env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    if secure {
        return None;
    }
    env("PICOHSM_PKCS11_LOG")
}

/// Opens the log file: appending, never through a symbolic link, created
/// 0600.
fn open_log(path: &str) -> Option<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .ok()
}

/// The log file, locked, if the module logs to a file: the fork handlers
/// (`crate::core::fork`) hold it across a fork.
pub(crate) fn lock_file() -> Option<MutexGuard<'static, File>> {
    LOGGER.get().and_then(|l| l.file.as_ref()).map(lock)
}

/// Locks the log file (a thread that panicked while writing left a file
/// that is still fine to write to).
fn lock(file: &Mutex<File>) -> MutexGuard<'_, File> {
    file.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Installs the logger from the environment (once per process).
pub fn init() {
    let Some(value) = setting(crate::settings::secure_execution(), &|k| {
        std::env::var(k).ok()
    }) else {
        return;
    };
    let (level, path) = parse(&value);
    if level == LevelFilter::Off {
        return;
    }
    let logger = LOGGER.get_or_init(|| Logger {
        level,
        file: path.and_then(open_log).map(Mutex::new),
    });
    if log::set_logger(logger).is_ok() {
        log::set_max_level(level);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values() {
        assert_eq!(parse("info"), (LevelFilter::Info, None));
        assert_eq!(
            parse("debug,/tmp/x.log"),
            (LevelFilter::Debug, Some("/tmp/x.log"))
        );
        assert_eq!(parse("nonsense"), (LevelFilter::Off, None));
        assert_eq!(parse("warn, "), (LevelFilter::Warn, None));
    }

    #[test]
    fn the_environment_is_ignored_under_at_secure() {
        let env = |k: &str| (k == "PICOHSM_PKCS11_LOG").then(|| "trace,/tmp/x".to_string());
        assert_eq!(setting(false, &env).as_deref(), Some("trace,/tmp/x"));
        assert_eq!(setting(true, &env), None);
    }

    #[test]
    fn the_log_file_is_private_and_no_link_is_followed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("log");
        assert!(open_log(f.to_str().unwrap()).is_some());
        let mode = std::fs::metadata(&f).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let target = dir.path().join("target");
        std::fs::write(&target, b"").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(open_log(link.to_str().unwrap()).is_none());
    }
}

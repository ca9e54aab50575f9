//! A pseudo-terminal for the tests of the protected authentication path:
//! a program (pkcs11-tool) runs with a terminal of its own as stdin and
//! controlling terminal, as in a user's shell, so that the real
//! pinentry-tty the module starts prompts there; the test reads the
//! prompts from the terminal's other side and types the answers.
#![allow(dead_code)]

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The pinentry the tests drive (Debian package pinentry-tty).
pub const PINENTRY_TTY: &str = "/usr/bin/pinentry-tty";

/// How long a test waits for a prompt before it fails (a deadline on an
/// event, not a measurement).
pub const PROMPT_WAIT: Duration = Duration::from_secs(60);

/// The terminal side the test holds, and everything read from it.
pub struct Terminal {
    master: File,
    /// All output so far.
    pub output: String,
    /// Where the next [`Terminal::expect`] starts looking.
    seen: usize,
}

/// A new pseudo-terminal: the side the test holds (master) and the
/// terminal a program gets (slave), with default settings and size.
pub fn open_pty() -> (File, OwnedFd) {
    let (mut m, mut s) = (-1, -1);
    // SAFETY: openpty writes two descriptors; no name, termios or size.
    let r = unsafe {
        libc::openpty(
            &mut m,
            &mut s,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(r, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just opened and are owned here alone.
    unsafe { (File::from_raw_fd(m), OwnedFd::from_raw_fd(s)) }
}

/// Starts `cmd` with a new pseudo-terminal as its stdin and controlling
/// terminal (a session of its own); stdout and stderr are pipes, so the
/// program's answer stays apart from the prompts.
pub fn spawn_on_terminal(cmd: &mut Command) -> (Child, Terminal) {
    let (master, slave) = open_pty();
    let stdin = slave.try_clone().unwrap();
    cmd.stdin(Stdio::from(stdin))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::ioctl(0, libc::TIOCSCTTY as _, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().expect("spawn on the terminal");
    // The command keeps its stdin descriptor until it is dropped or
    // given another: the terminal reports its end only once no process
    // here holds it.
    cmd.stdin(Stdio::null());
    drop(slave);
    (
        child,
        Terminal {
            master,
            output: String::new(),
            seen: 0,
        },
    )
}

impl Terminal {
    /// Reads until `needle` appears after what earlier calls saw; returns
    /// the text up to and including it. Panics (with the whole output)
    /// when the terminal closes or [`PROMPT_WAIT`] passes first.
    pub fn expect(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + PROMPT_WAIT;
        loop {
            if let Some(i) = self.output[self.seen..].find(needle) {
                let end = self.seen + i + needle.len();
                let text = self.output[self.seen..end].to_string();
                self.seen = end;
                return text;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no {needle:?} on the terminal; it shows:\n{}",
                self.output
            );
            if !self.read_some(left) {
                panic!(
                    "the terminal closed before {needle:?}; it showed:\n{}",
                    self.output
                );
            }
        }
    }

    /// Reads what is there within `wait`; false once the other side is
    /// closed (every process holding it has exited).
    fn read_some(&mut self, wait: Duration) -> bool {
        let mut pfd = libc::pollfd {
            fd: self.master.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd owned by this frame.
        let n = unsafe { libc::poll(&mut pfd, 1, wait.as_millis().min(60_000) as i32) };
        if n <= 0 {
            return true;
        }
        let mut buf = [0u8; 4096];
        match self.master.read(&mut buf) {
            Ok(0) | Err(_) => false,
            Ok(k) => {
                self.output.push_str(&String::from_utf8_lossy(&buf[..k]));
                true
            }
        }
    }

    /// Types `keys` (a line ends with `\r`, as the Enter key sends it).
    pub fn type_keys(&mut self, keys: &str) {
        self.master.write_all(keys.as_bytes()).unwrap();
        self.master.flush().unwrap();
    }

    /// Reads the rest of the output until the program and its pinentry
    /// have closed the terminal (bounded by [`PROMPT_WAIT`]).
    pub fn drain(&mut self) -> &str {
        let deadline = Instant::now() + PROMPT_WAIT;
        while Instant::now() < deadline {
            if !self.read_some(Duration::from_millis(200)) {
                break;
            }
        }
        &self.output
    }
}

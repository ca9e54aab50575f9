//! A client of the pinentry programs (pinentry-tty, -curses, -gnome3, ...)
//! over the Assuan line protocol gpg-agent speaks to them: the PINs of a
//! login on a token that announces a protected authentication path, for
//! applications (browsers) that cannot ask for one.
//!
//! One program per PIN: spawned with pipes, greeted (`OK`), told the
//! terminal (`OPTION ttyname/ttytype/lc-ctype`, when there is one), the
//! texts (`SETTITLE`, `SETDESC`, `SETPROMPT`, `SETERROR` on a retry), then
//! `GETPIN`, whose answer is `D <percent-escaped PIN>` and `OK`, or
//! `ERR <code>` (cancelled: CKR_FUNCTION_CANCELED), and `BYE`.
//!
//! The PIN is only ever in [`Zeroizing`] buffers (the line read, the
//! decoded value) and never logged; the lines sent carry no secret. Every
//! read has a deadline, so a pinentry that hangs ends the login with
//! CKR_FUNCTION_CANCELED instead of holding it forever.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use cryptoki_sys::*;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// How long a pinentry may take to answer, when the settings say nothing.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The longest line an Assuan peer may send (its own limit is 1000 bytes).
const MAX_LINE: usize = 1000;

/// The texts of one prompt.
#[derive(Debug, Clone, Default)]
pub struct Prompt {
    /// The window title (`SETTITLE`).
    pub title: String,
    /// What the PIN is for, in a sentence or two (`SETDESC`).
    pub description: String,
    /// The short label before the entry field (`SETPROMPT`).
    pub prompt: String,
    /// Why the previous PIN was not accepted (`SETERROR`), on a retry.
    pub error: Option<String>,
}

/// A line from the pinentry, parsed.
#[derive(Debug, PartialEq, Eq)]
pub enum Response {
    /// `OK [text]`.
    Ok,
    /// `ERR <code> [text]`.
    Err(u32, String),
    /// `D <data>`, percent-decoded.
    Data(Zeroizing<Vec<u8>>),
    /// `S ...`, `# ...`, `INQUIRE ...` and anything else.
    Other,
}

/// The gpg-error code of a cancelled prompt (GPG_ERR_CANCELED), in the
/// low 16 bits of an `ERR` code (the high bits name the source:
/// `83886179` is pinentry's, 5 << 24 | 99).
const GPG_ERR_CANCELED: u32 = 99;
/// GPG_ERR_TIMEOUT: the pinentry's own timeout expired.
const GPG_ERR_TIMEOUT: u32 = 62;
/// GPG_ERR_FULLY_CANCELED.
const GPG_ERR_FULLY_CANCELED: u32 = 198;

/// Parses one response line (without its `\n`).
pub fn parse_line(line: &[u8]) -> Response {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line == b"OK" || line.starts_with(b"OK ") {
        return Response::Ok;
    }
    if let Some(rest) = line.strip_prefix(b"ERR ") {
        let text = String::from_utf8_lossy(rest);
        let (code, msg) = text.split_once(' ').unwrap_or((&text, ""));
        return Response::Err(code.trim().parse().unwrap_or(0), msg.to_string());
    }
    if line == b"D" {
        return Response::Data(Zeroizing::new(Vec::new()));
    }
    if let Some(data) = line.strip_prefix(b"D ") {
        return Response::Data(percent_decode(data));
    }
    Response::Other
}

/// Assuan's escaping undone: `%XX` is the byte XX; a `%` not followed by
/// two hex digits is kept as it is.
pub fn percent_decode(data: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(data.len()));
    let mut i = 0;
    while i < data.len() {
        if data[i] == b'%' && i + 2 < data.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(data[i + 1]), hex(data[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(data[i]);
        i += 1;
    }
    out
}

/// A parameter of a command as Assuan wants it: `%`, CR and LF escaped
/// (pinentry shows `%0A` as a line break), at most what fits a line.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '%' => out.push_str("%25"),
            '\n' => out.push_str("%0A"),
            '\r' => out.push_str("%0D"),
            c => out.push(c),
        }
        if out.len() > MAX_LINE - 20 {
            break;
        }
    }
    out
}

/// The terminal the pinentry should use, as gpg-agent finds it: GPG_TTY,
/// else the terminal of stdin, stdout or stderr, else the controlling
/// terminal when the process has one.
pub fn terminal() -> Option<String> {
    if let Some(t) = std::env::var_os("GPG_TTY").filter(|t| !t.is_empty()) {
        return Some(t.to_string_lossy().into_owned());
    }
    for fd in 0..3 {
        #[allow(unsafe_code)]
        // SAFETY: isatty only inspects the descriptor number.
        if unsafe { libc::isatty(fd) } == 1 {
            if let Ok(p) = std::fs::read_link(format!("/proc/self/fd/{fd}")) {
                return Some(p.to_string_lossy().into_owned());
            }
        }
    }
    std::fs::OpenOptions::new()
        .read(true)
        .open("/dev/tty")
        .ok()
        .map(|_| "/dev/tty".to_string())
}

/// One conversation with a pinentry program.
struct Session {
    child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
    /// Bytes read and not yet returned as lines (may hold a PIN).
    pending: Zeroizing<Vec<u8>>,
    deadline: Instant,
    program: PathBuf,
}

fn failed(program: &Path, why: impl std::fmt::Display) -> Error {
    log::warn!("pinentry {}: {why}", program.display());
    Error::new(CKR_FUNCTION_FAILED, "pinentry failed")
}

impl Session {
    fn start(program: &Path, timeout: Duration) -> Result<Session> {
        let mut child = Command::new(program)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| failed(program, format!("cannot start it: {e}")))?;
        let (stdin, stdout) = match (child.stdin.take(), child.stdout.take()) {
            (Some(i), Some(o)) => (i, o),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(failed(program, "no pipes"));
            }
        };
        Ok(Session {
            child,
            stdin,
            stdout,
            pending: Zeroizing::new(Vec::new()),
            deadline: Instant::now() + timeout,
            program: program.to_path_buf(),
        })
    }

    /// The next line, waiting at most until the deadline.
    fn read_line(&mut self) -> Result<Zeroizing<Vec<u8>>> {
        loop {
            if let Some(i) = self.pending.iter().position(|b| *b == b'\n') {
                let line = Zeroizing::new(self.pending[..i].to_vec());
                self.pending.drain(..=i);
                return Ok(line);
            }
            if self.pending.len() > MAX_LINE {
                return Err(failed(&self.program, "a line longer than Assuan allows"));
            }
            let left = self.deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                log::warn!(
                    "pinentry {}: no answer in time; the login is cancelled",
                    self.program.display()
                );
                return Err(Error::new(CKR_FUNCTION_CANCELED, "pinentry timed out"));
            }
            let mut pfd = libc::pollfd {
                fd: self.stdout.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = left.as_millis().min(i32::MAX as u128) as i32;
            #[allow(unsafe_code)]
            // SAFETY: one valid pollfd, owned by this frame.
            let n = unsafe { libc::poll(&mut pfd, 1, ms.max(1)) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(failed(&self.program, format!("poll: {e}")));
            }
            if n == 0 {
                continue;
            }
            let mut buf = Zeroizing::new([0u8; 256]);
            let got = match self.stdout.read(&mut buf[..]) {
                Ok(0) => return Err(failed(&self.program, "it closed the pipe")),
                Ok(k) => k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(failed(&self.program, format!("read: {e}"))),
            };
            self.pending.extend_from_slice(&buf[..got]);
        }
    }

    /// The next response that is not a status or comment line.
    fn response(&mut self) -> Result<Response> {
        loop {
            let line = self.read_line()?;
            match parse_line(&line) {
                Response::Other => continue,
                r => return Ok(r),
            }
        }
    }

    /// Sends `command` (no secret in it) and expects `OK`.
    fn command(&mut self, command: &str) -> Result<()> {
        self.send(command)?;
        match self.response()? {
            Response::Ok => Ok(()),
            Response::Err(code, text) => Err(self.error(command, code, &text)),
            Response::Data(_) | Response::Other => Err(failed(
                &self.program,
                format!("unexpected data after {command}"),
            )),
        }
    }

    fn send(&mut self, command: &str) -> Result<()> {
        let verb = command.split(' ').next().unwrap_or("");
        log::debug!("pinentry: > {verb}");
        self.stdin
            .write_all(format!("{command}\n").as_bytes())
            .and_then(|_| self.stdin.flush())
            .map_err(|e| failed(&self.program, format!("write {verb}: {e}")))
    }

    fn error(&self, command: &str, code: u32, text: &str) -> Error {
        let verb = command.split(' ').next().unwrap_or("");
        match code & 0xFFFF {
            GPG_ERR_CANCELED | GPG_ERR_FULLY_CANCELED => {
                log::info!("pinentry: the user cancelled the PIN prompt");
                Error::new(CKR_FUNCTION_CANCELED, "PIN prompt cancelled")
            }
            GPG_ERR_TIMEOUT => {
                log::info!("pinentry: the PIN prompt timed out");
                Error::new(CKR_FUNCTION_CANCELED, "PIN prompt timed out")
            }
            _ => failed(&self.program, format!("{verb} answered ERR {code} {text}")),
        }
    }

    /// `GETPIN`: the PIN.
    fn get_pin(&mut self) -> Result<Zeroizing<Vec<u8>>> {
        self.send("GETPIN")?;
        let mut pin = Zeroizing::new(Vec::new());
        loop {
            match self.response()? {
                Response::Data(d) => pin.extend_from_slice(&d),
                Response::Ok => return Ok(pin),
                Response::Err(code, text) => return Err(self.error("GETPIN", code, &text)),
                Response::Other => {}
            }
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // A pinentry that did not leave after BYE (or was never told to)
        // is ended: the child is ours.
        if !matches!(self.child.try_wait(), Ok(Some(_))) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Asks `program` for one PIN with `prompt`'s texts, within `timeout`.
/// CKR_FUNCTION_CANCELED when the user cancels or the time runs out,
/// CKR_FUNCTION_FAILED (and a log line) when the program does not work.
pub fn ask(program: &Path, prompt: &Prompt, timeout: Duration) -> Result<Zeroizing<Vec<u8>>> {
    let mut s = Session::start(program, timeout)?;
    match s.response()? {
        Response::Ok => {}
        Response::Err(code, text) => return Err(s.error("greeting", code, &text)),
        _ => return Err(failed(program, "no OK greeting")),
    }
    let tty = terminal();
    let display = ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|k| std::env::var_os(k).is_some_and(|v| !v.is_empty()));
    if tty.is_none() && !display {
        // Not an error: a pinentry may need neither (a script, a secret
        // store); a terminal or dialog pinentry will wait until the
        // timeout, and this line says why.
        log::warn!(
            "pinentry {}: this process has no terminal and no display; a terminal or dialog pinentry cannot prompt (set GPG_TTY, or use a pinentry that needs neither)",
            program.display()
        );
    }
    if let Some(tty) = tty {
        s.command(&format!("OPTION ttyname={}", percent_encode(&tty)))?;
        if let Some(t) = std::env::var_os("TERM").filter(|t| !t.is_empty()) {
            s.command(&format!(
                "OPTION ttytype={}",
                percent_encode(&t.to_string_lossy())
            ))?;
        }
    }
    let ctype = ["LC_ALL", "LC_CTYPE", "LANG"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()));
    if let Some(c) = ctype {
        // Older pinentries do not know the option: not an error.
        let _ = s.command(&format!("OPTION lc-ctype={}", percent_encode(&c)));
    }
    let secs = timeout.as_secs().max(1);
    // The pinentry's own timeout, so it tidies its terminal itself; ours
    // (the read deadline) still holds if it ignores it.
    let _ = s.command(&format!("SETTIMEOUT {secs}"));
    s.command(&format!("SETTITLE {}", percent_encode(&prompt.title)))?;
    s.command(&format!("SETDESC {}", percent_encode(&prompt.description)))?;
    s.command(&format!("SETPROMPT {}", percent_encode(&prompt.prompt)))?;
    if let Some(e) = &prompt.error {
        s.command(&format!("SETERROR {}", percent_encode(e)))?;
    }
    let pin = s.get_pin()?;
    let _ = s.send("BYE");
    Ok(pin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_parse() {
        assert_eq!(parse_line(b"OK Pleased to meet you"), Response::Ok);
        assert_eq!(parse_line(b"OK"), Response::Ok);
        assert_eq!(parse_line(b"OK\r"), Response::Ok);
        assert_eq!(
            parse_line(b"ERR 83886179 Operation cancelled <Pinentry>"),
            Response::Err(83886179, "Operation cancelled <Pinentry>".into())
        );
        assert_eq!(parse_line(b"ERR 5"), Response::Err(5, String::new()));
        assert_eq!(
            parse_line(b"D 12%2534"),
            Response::Data(Zeroizing::new(b"12%34".to_vec()))
        );
        assert_eq!(parse_line(b"D"), Response::Data(Zeroizing::new(vec![])));
        assert_eq!(parse_line(b"S PASSWORD_FROM_CACHE"), Response::Other);
        assert_eq!(parse_line(b"# a comment"), Response::Other);
        // "OKAY" is not OK, "Data" is not D.
        assert_eq!(parse_line(b"OKAY"), Response::Other);
        assert_eq!(parse_line(b"Data"), Response::Other);
    }

    #[test]
    fn percent_escapes_decode() {
        assert_eq!(&percent_decode(b"648219")[..], b"648219");
        assert_eq!(&percent_decode(b"a%25b%0Ac%0D")[..], b"a%b\nc\r");
        assert_eq!(&percent_decode(b"%3a%3A")[..], b"::");
        // A % without two hex digits after it stays.
        assert_eq!(&percent_decode(b"50%")[..], b"50%");
        assert_eq!(&percent_decode(b"%4")[..], b"%4");
        assert_eq!(&percent_decode(b"%zz1")[..], b"%zz1");
        assert_eq!(&percent_decode(b"%41")[..], b"A");
    }

    #[test]
    fn command_texts_are_escaped() {
        assert_eq!(percent_encode("100% sure\nnext"), "100%25 sure%0Anext");
        assert_eq!(percent_encode("a\rb"), "a%0Db");
        assert!(percent_encode(&"x".repeat(5000)).len() < MAX_LINE);
    }

    #[test]
    fn cancel_and_timeout_codes_are_cancellations() {
        let s = Session::start(Path::new("/bin/cat"), Duration::from_secs(5)).unwrap();
        assert_eq!(s.error("GETPIN", 83886179, "").rv, CKR_FUNCTION_CANCELED);
        assert_eq!(s.error("GETPIN", 83886142, "").rv, CKR_FUNCTION_CANCELED);
        assert_eq!(s.error("GETPIN", 83886081, "").rv, CKR_FUNCTION_FAILED);
    }

    /// A scripted peer (a shell script speaking Assuan) stands in for the
    /// program: the conversation, the decoding, the end of the child.
    fn script(dir: &Path, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join("fake-pinentry");
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700)).unwrap();
        p
    }

    #[test]
    fn a_conversation_returns_the_decoded_pin() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let p = script(
            dir.path(),
            &format!(
                r#"echo "OK hello"
while read -r cmd rest; do
  echo "$cmd" >> {log}
  case "$cmd" in
    GETPIN) echo "S info"; echo "D 12%253"; echo "D 4"; echo OK;;
    BYE) echo OK; exit 0;;
    *) echo OK;;
  esac
done"#,
                log = log.display()
            ),
        );
        let prompt = Prompt {
            title: "t".into(),
            description: "d\nx".into(),
            prompt: "PIN:".into(),
            error: Some("wrong".into()),
        };
        let pin = ask(&p, &prompt, Duration::from_secs(10)).unwrap();
        assert_eq!(&pin[..], b"12%34");
        let sent = std::fs::read_to_string(&log).unwrap();
        for verb in ["SETTITLE", "SETDESC", "SETPROMPT", "SETERROR", "GETPIN"] {
            assert!(sent.contains(verb), "{verb} not sent: {sent}");
        }
    }

    #[test]
    fn a_cancel_is_ckr_function_canceled() {
        let dir = tempfile::tempdir().unwrap();
        let p = script(
            dir.path(),
            r#"echo OK
while read -r cmd rest; do
  case "$cmd" in
    GETPIN) echo "ERR 83886179 Operation cancelled <Pinentry>";;
    *) echo OK;;
  esac
done"#,
        );
        let e = ask(&p, &Prompt::default(), Duration::from_secs(10)).unwrap_err();
        assert_eq!(e.rv, CKR_FUNCTION_CANCELED);
    }

    #[test]
    fn a_hung_pinentry_is_cancelled_at_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let p = script(dir.path(), "echo OK\nexec sleep 600");
        let t0 = Instant::now();
        let e = ask(&p, &Prompt::default(), Duration::from_millis(300)).unwrap_err();
        assert_eq!(e.rv, CKR_FUNCTION_CANCELED);
        assert!(t0.elapsed() < Duration::from_secs(60));
    }

    #[test]
    fn a_missing_program_fails() {
        let e = ask(
            Path::new("/nonexistent/pinentry"),
            &Prompt::default(),
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert_eq!(e.rv, CKR_FUNCTION_FAILED);
        let dir = tempfile::tempdir().unwrap();
        let p = script(dir.path(), "echo 'ERR 1 no'");
        assert_eq!(
            ask(&p, &Prompt::default(), Duration::from_secs(5))
                .unwrap_err()
                .rv,
            CKR_FUNCTION_FAILED
        );
    }
}

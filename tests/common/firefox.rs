//! Firefox ESR as the client tests run it: a headless browser with an
//! enterprise policy of the test's own, driven over Marionette (Firefox's
//! built-in remote protocol, no geckodriver), a TLS server that demands a
//! client certificate (`openssl s_server -Verify 1 -WWW`), the test PKI
//! behind both, and the terminal a pinentry asks its PINs on.
//!
//! Firefox reads `policies.json` only from `/etc/firefox/policies/` (the
//! Debian package's `/etc/firefox-esr/policies/`) or from the
//! `distribution/` directory of its installation; the pref
//! `browser.policies.alternatePath` is honoured only in automation and
//! Nightly builds. So that no test writes a system-wide file, each test
//! gets an installation of its own ([`FirefoxInstall`]): the launcher
//! binary copied (Firefox finds its installation from the real path of the
//! binary it runs) and every other file of `/usr/lib/firefox-esr`
//! symlinked, with a `distribution/policies.json` of the test's.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};

use super::pinentry::open_pty;
use super::pki::TestCa;
use super::*;

/// Where Debian's firefox-esr installs Firefox.
pub const FIREFOX_DIR: &str = "/usr/lib/firefox-esr";

/// How long a page may take to arrive (a deadline on an event, not a
/// measurement: a login with a pinentry takes a few seconds).
pub const PAGE_WAIT: Duration = Duration::from_secs(45);

/// The system-wide policy files that take precedence over an
/// installation's own (a test cannot run beside one).
const SYSTEM_POLICIES: [&str; 2] = [
    "/etc/firefox/policies/policies.json",
    "/etc/firefox-esr/policies/policies.json",
];

/// A private Firefox installation: the launcher copied, the rest linked
/// to [`FIREFOX_DIR`], and `distribution/policies.json` the test's.
pub struct FirefoxInstall {
    dir: tempfile::TempDir,
}

impl FirefoxInstall {
    /// An installation whose enterprise policy is `policies_json` (the
    /// whole file, `{"policies": {...}}`).
    pub fn with_policies(policies_json: &str) -> FirefoxInstall {
        for p in SYSTEM_POLICIES {
            assert!(
                !Path::new(p).exists(),
                "{p} exists: Firefox would read it instead of the test's policies"
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("picohsm-firefox-install-")
            .tempdir()
            .expect("temp dir");
        for entry in fs::read_dir(FIREFOX_DIR).expect("firefox-esr is installed") {
            let entry = entry.unwrap();
            let name = entry.file_name();
            let target = dir.path().join(&name);
            match name.to_str() {
                Some("distribution") | Some("firefox-bin") => {}
                Some("firefox-esr") => {
                    fs::copy(entry.path(), &target).expect("copy the Firefox launcher");
                }
                _ => std::os::unix::fs::symlink(entry.path(), &target).unwrap(),
            }
        }
        let dist = dir.path().join("distribution");
        fs::create_dir(&dist).unwrap();
        fs::write(dist.join("policies.json"), policies_json).unwrap();
        FirefoxInstall { dir }
    }

    /// The launcher of this installation.
    pub fn binary(&self) -> PathBuf {
        self.dir.path().join("firefox-esr")
    }
}

/// A JSON string literal for `s` (paths and names the tests write into
/// policies.json and Marionette commands).
pub fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The policies.json a user writes: the module as a security device named
/// "Pico HSM" (`module`: `None` leaves it out), the test CA trusted for
/// servers, and the client certificate chosen without asking.
pub fn policies(module: Option<&Path>, ca: &Path) -> String {
    let device = module
        .map(|m| {
            format!(
                "    \"SecurityDevices\": {{\"Add\": {{\"Pico HSM\": {}}}}},\n",
                json_str(&s(m))
            )
        })
        .unwrap_or_default();
    format!(
        "{{\n  \"policies\": {{\n{device}    \"Certificates\": {{\"Install\": [{}]}},\n    \"Preferences\": {{\n      \"security.default_personal_cert\": {{\"Value\": \"Select Automatically\", \"Status\": \"default\"}}\n    }}\n  }}\n}}\n",
        json_str(&s(ca))
    )
}

// ---------------------------------------------------------------------------
// The test PKI and the server

/// A CA, a server certificate for `localhost`/127.0.0.1 under it, in `dir`.
pub struct Pki {
    /// The CA certificate (PEM).
    pub ca: PathBuf,
    authority: TestCa,
    /// The server's certificate and key (PEM).
    pub server_cert: PathBuf,
    server_key: PathBuf,
}

impl Pki {
    /// Makes the CA and the server certificate with openssl.
    pub fn new(dir: &Path) -> Pki {
        let authority = TestCa::new(dir, "picohsm test CA");
        let (server_cert, server_key) = authority.server();
        Pki {
            ca: authority.cert.clone(),
            authority,
            server_cert,
            server_key,
        }
    }

    /// A client certificate (DER) for the public key `public_pem` with
    /// subject `/CN=<cn>`, issued by the CA.
    pub fn client_cert(&self, public_pem: &Path, cn: &str) -> PathBuf {
        self.authority.issue(public_pem, cn, "clientAuth")
    }
}

/// `openssl s_server -Verify 1 -WWW` on a loopback port, serving
/// `index.html` (`page`) only to clients with a certificate from the CA;
/// killed when dropped.
pub struct TlsServer {
    child: Child,
    /// The port on 127.0.0.1.
    pub port: u16,
    dir: tempfile::TempDir,
}

impl TlsServer {
    /// Starts the server and waits until it accepts connections.
    pub fn start(pki: &Pki, page: &str) -> TlsServer {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("index.html"), page).unwrap();
        // A port free now; s_server fails (and the wait below says so) in
        // the unlikely case another process takes it first.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let log = File::create(dir.path().join("s_server.log")).unwrap();
        let child = Command::new("openssl")
            .current_dir(dir.path())
            .args(["s_server", "-accept", &format!("127.0.0.1:{port}")])
            .args(["-cert", &s(&pki.server_cert), "-key", &s(&pki.server_key)])
            .args(["-CAfile", &s(&pki.ca), "-Verify", "1", "-WWW"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("openssl s_server");
        let mut server = TlsServer { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(st)) = server.child.try_wait() {
                panic!("openssl s_server exited with {st}:\n{}", server.log());
            }
            assert!(
                Instant::now() < deadline,
                "s_server did not listen:\n{}",
                server.log()
            );
            sleep(Duration::from_millis(50));
        }
        server
    }

    /// The URL of the page.
    pub fn url(&self) -> String {
        format!("https://localhost:{}/index.html", self.port)
    }

    /// What s_server printed.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("s_server.log")).unwrap_or_default()
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------
// The terminal a pinentry asks on

/// A pseudo-terminal the test holds: its name goes to `GPG_TTY`, where the
/// module's pinentry (pinentry-tty) asks; what it prints is collected by a
/// thread.
pub struct Terminal {
    master: File,
    /// The slave side stays open so that the terminal lives between
    /// prompts.
    _slave: OwnedFd,
    /// The device path (`/dev/pts/N`).
    pub name: PathBuf,
    output: Arc<Mutex<String>>,
}

impl Terminal {
    /// Opens a new pseudo-terminal.
    pub fn open() -> Terminal {
        let (master, slave) = open_pty();
        let name = fs::read_link(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&slave)
        ))
        .expect("the terminal's name");
        let output = Arc::new(Mutex::new(String::new()));
        let (mut reader, sink) = (master.try_clone().unwrap(), output.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // Ends with EIO when the terminal is closed.
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Terminal {
            master,
            _slave: slave,
            name,
            output,
        }
    }

    /// Everything printed so far.
    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Types `keys` (a line ends with `\r`, as the Enter key sends it).
    pub fn type_keys(&self, keys: &str) {
        (&self.master).write_all(keys.as_bytes()).unwrap();
    }
}

// ---------------------------------------------------------------------------
// Firefox and Marionette

/// A headless Firefox with a fresh profile and HOME, Marionette on, its
/// `DocLoader` log in the profile's directory (the test waits on it, see
/// [`Firefox::dialogs`]); killed when dropped.
pub struct Firefox {
    child: Child,
    dir: tempfile::TempDir,
    marionette: Option<TcpStream>,
    next_id: u32,
}

impl Firefox {
    /// Starts `install`'s Firefox with `env` added to its environment.
    pub fn start(install: &FirefoxInstall, env: &[(&str, &OsStr)]) -> Firefox {
        let dir = tempfile::Builder::new()
            .prefix("picohsm-firefox-")
            .tempdir()
            .unwrap();
        let (profile, home) = (dir.path().join("profile"), dir.path().join("home"));
        fs::create_dir_all(&profile).unwrap();
        fs::create_dir_all(&home).unwrap();
        // Marionette on a free port, written to MarionetteActivePort; no
        // first-run pages.
        fs::write(
            profile.join("user.js"),
            "user_pref(\"marionette.port\", 0);\n\
             user_pref(\"browser.shell.checkDefaultBrowser\", false);\n\
             user_pref(\"datareporting.policy.dataSubmissionEnabled\", false);\n\
             user_pref(\"toolkit.telemetry.reportingpolicy.firstRun\", false);\n",
        )
        .unwrap();
        let log = File::create(dir.path().join("firefox.log")).unwrap();
        let mut cmd = Command::new(install.binary());
        cmd.args(["--headless", "--marionette", "-no-remote", "-profile"])
            .arg(&profile)
            .env("HOME", &home)
            .env("MOZ_LOG", "DocLoader:5,sync")
            .env("MOZ_LOG_FILE", dir.path().join("moz"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start Firefox");
        let mut ff = Firefox {
            child,
            dir,
            marionette: None,
            next_id: 0,
        };
        ff.connect();
        ff
    }

    fn profile(&self) -> PathBuf {
        self.dir.path().join("profile")
    }

    /// Firefox's stdout and stderr.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("firefox.log")).unwrap_or_default()
    }

    /// The profile's `pkcs11.txt` (the modules NSS loads).
    pub fn pkcs11_txt(&self) -> String {
        fs::read_to_string(self.profile().join("pkcs11.txt")).unwrap_or_default()
    }

    /// A handle on Firefox's log that other threads can watch for its
    /// protected-authentication dialogs.
    pub fn dialogs(&self) -> Dialogs {
        Dialogs {
            log: self.dir.path().join("moz.moz_log"),
        }
    }

    /// Connects to Marionette (its port from MarionetteActivePort) and
    /// opens a session that does not wait for pages to load.
    fn connect(&mut self) {
        let port_file = self.profile().join("MarionetteActivePort");
        let deadline = Instant::now() + Duration::from_secs(30);
        let port: u16 = loop {
            if let Some(p) = fs::read_to_string(&port_file)
                .ok()
                .and_then(|t| t.trim().parse().ok())
            {
                break p;
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!("Firefox exited with {st}:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "no Marionette port:\n{}",
                self.log()
            );
            sleep(Duration::from_millis(100));
        };
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to Marionette");
        stream.set_read_timeout(Some(PAGE_WAIT)).unwrap();
        self.marionette = Some(stream);
        let hello = self.read_message();
        assert!(hello.contains("\"marionetteProtocol\":3"), "{hello}");
        let session = self.command("WebDriver:NewSession", "{\"pageLoadStrategy\":\"none\"}");
        assert!(session.contains("\"sessionId\""), "{session}");
    }

    fn read_message(&mut self) -> String {
        let m = self.marionette.as_mut().unwrap();
        let mut len = Vec::new();
        let mut b = [0u8; 1];
        loop {
            m.read_exact(&mut b).expect("a Marionette answer");
            if b[0] == b':' {
                break;
            }
            len.push(b[0]);
        }
        let n: usize = String::from_utf8(len).unwrap().parse().unwrap();
        let mut body = vec![0u8; n];
        m.read_exact(&mut body).expect("a Marionette answer");
        String::from_utf8(body).unwrap()
    }

    /// Sends a Marionette command (`params`: a JSON object) and returns
    /// the answer, `[1, id, error, result]` as JSON text.
    pub fn command(&mut self, name: &str, params: &str) -> String {
        self.next_id += 1;
        let msg = format!("[0,{},{},{}]", self.next_id, json_str(name), params);
        let m = self.marionette.as_mut().unwrap();
        m.write_all(format!("{}:{}", msg.len(), msg).as_bytes())
            .unwrap();
        self.read_message()
    }

    /// Opens `url` in the current tab (returns at once).
    pub fn navigate(&mut self, url: &str) {
        let r = self.command(
            "WebDriver:Navigate",
            &format!("{{\"url\":{}}}", json_str(url)),
        );
        assert!(r.starts_with(&format!("[1,{},null", self.next_id)), "{r}");
    }

    /// The current document's address and text, `[uri, text]` in
    /// Marionette's JSON answer (blocks while a modal dialog is up).
    pub fn document(&mut self) -> String {
        self.command(
            "WebDriver:ExecuteScript",
            "{\"script\":\"return [document.documentURI, document.body ? document.body.textContent : '']\",\"args\":[]}",
        )
    }
}

/// Firefox's `DocLoader` log, watched for its protected-authentication
/// dialogs.
pub struct Dialogs {
    log: PathBuf,
}

impl Dialogs {
    /// How many of Firefox's protected-authentication dialogs ("Please
    /// authenticate to the token...", opened while C_Login(CKU_USER, NULL)
    /// runs) have finished loading. Such a dialog closes itself when it
    /// hears that the login ended, but only if its script was listening
    /// by then: a login that ends first leaves it open and Firefox waiting
    /// on it for ever (seen with Firefox 153 ESR). So a prompt is answered
    /// only once its dialog is ready, as a person would, seeing it.
    pub fn ready(&self) -> usize {
        const OPENED: &str = "OnLocationChange to chrome://pippki/content/protectedAuth.xhtml";
        let log = fs::read_to_string(&self.log).unwrap_or_default();
        // Each dialog: its loader ("DocLoader [<ptr>] calling
        // ...->OnLocationChange to ...", once per listener) and whether
        // that loader has gone idle since (document and scripts in).
        let mut dialogs: Vec<(String, bool)> = Vec::new();
        for line in log.lines() {
            if line.contains(OPENED) {
                let Some(ptr) = line
                    .split("DocLoader [")
                    .nth(1)
                    .and_then(|r| r.split(']').next())
                else {
                    continue;
                };
                if dialogs.last().is_some_and(|(p, idle)| p == ptr && !idle) {
                    continue;
                }
                dialogs.push((ptr.to_string(), false));
            } else if line.contains(": Is now idle") {
                for (ptr, idle) in dialogs.iter_mut() {
                    if line.contains(&format!("DocLoader:{ptr}: Is now idle")) {
                        *idle = true;
                    }
                }
            }
        }
        dialogs.iter().filter(|(_, idle)| *idle).count()
    }
}

impl Drop for Firefox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! p11-kit, GnuTLS and OpenSSL's pkcs11 engine (libp11) as their users set
//! them up, for the client tests (tests/clients/): a p11-kit user module
//! file, `p11-kit server` with `p11-kit-client.so`, an openssl.cnf engine
//! section, a CA on disk issuing certificates for keys on a token, and
//! PKCS#11 URIs as `p11tool` prints them.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::pki::TestCa;
use super::*;

/// p11-kit's proxy module (what p11-kit-aware programs load).
pub const P11_KIT_PROXY: &str = "/usr/lib/x86_64-linux-gnu/p11-kit-proxy.so";
/// p11-kit's client module: a token served by `p11-kit server`, named by
/// `P11_KIT_SERVER_ADDRESS`.
pub const P11_KIT_CLIENT: &str = "/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so";
/// libp11's OpenSSL engine (package libengine-pkcs11-openssl), engine id `pkcs11`.
pub const PKCS11_ENGINE: &str = "/usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so";

/// How long `p11-kit server` may take to print its address.
const SERVER_TIMEOUT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------
// A p11-kit user configuration

/// A home directory whose p11-kit user configuration registers this
/// module (`~/.config/pkcs11/modules/picohsm.module`), as a user writes it.
pub struct UserHome {
    dir: tempfile::TempDir,
}

impl UserHome {
    /// A fresh home with `picohsm.module` holding `module: <module_path()>`
    /// and then `extra` (further `key: value` lines).
    ///
    /// The system's other modules (OpenSC's, SoftHSM's, p11-kit-trust) are
    /// disabled in the same directory, by files of their names: OpenSC's
    /// module SELECTs every card it finds, which would log out a login
    /// made through ours in the same process.
    pub fn new(extra: &str) -> UserHome {
        let dir = tempfile::Builder::new()
            .prefix("picohsm-p11kit-home-")
            .tempdir()
            .expect("temp dir");
        let modules = dir.path().join(".config/pkcs11/modules");
        fs::create_dir_all(&modules).unwrap();
        fs::write(
            modules.join("picohsm.module"),
            format!("module: {}\n{extra}", module_path().display()),
        )
        .unwrap();
        for system in ["/usr/share/p11-kit/modules", "/etc/pkcs11/modules"] {
            let Ok(entries) = fs::read_dir(system) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name();
                if name.to_string_lossy().ends_with(".module") && name != "picohsm.module" {
                    fs::write(
                        modules.join(&name),
                        "disable-in: p11-kit p11tool pkcs11-tool openssl\n",
                    )
                    .unwrap();
                }
            }
        }
        UserHome { dir }
    }

    /// The home directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `program` run as a user with this home. p11-kit reads no user
    /// configuration in a process running as root (as CI does): there the
    /// program runs as uid 1000 in a user namespace (pcscd still sees the
    /// caller through its socket's credentials).
    pub fn command(&self, program: &str) -> Command {
        let mut c = if running_as_root() {
            let mut c = Command::new("unshare");
            c.args(["--user", "--map-user=1000", "--map-group=1000", program]);
            c
        } else {
            Command::new(program)
        };
        c.env("HOME", self.path())
            .env("XDG_CONFIG_HOME", self.path().join(".config"));
        c
    }
}

/// Whether this process runs as root (uid 0), from /proc.
pub fn running_as_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|st| {
            st.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

// ---------------------------------------------------------------------------
// p11-kit server

/// `p11-kit server -f --provider MODULE -n SOCKET TOKEN-URI`, running in
/// the foreground; stopped with SIGTERM when dropped.
pub struct P11KitServer {
    child: Option<Child>,
    address: String,
    _dir: tempfile::TempDir,
}

impl P11KitServer {
    /// Serves the tokens matching `token_uri` of `provider`, with `env`
    /// added to the server's environment (the module's settings); returns
    /// once the server printed its address and its socket exists.
    pub fn start(provider: &Path, token_uri: &str, env: &[(&str, &OsStr)]) -> P11KitServer {
        let dir = tempfile::Builder::new()
            .prefix("picohsm-p11kit-server-")
            .tempdir()
            .expect("temp dir");
        let socket = dir.path().join("pkcs11");
        let mut cmd = Command::new("p11-kit");
        cmd.args(["server", "-f", "--provider"])
            .arg(provider)
            .arg("-n")
            .arg(&socket)
            .arg(token_uri)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start p11-kit server");
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // "P11_KIT_SERVER_ADDRESS=unix:path=/…/pkcs11; export P11_KIT_SERVER_ADDRESS;"
        let line = rx
            .recv_timeout(SERVER_TIMEOUT)
            .unwrap_or_else(|e| panic!("p11-kit server printed no address: {e}"));
        let address = line
            .strip_prefix("P11_KIT_SERVER_ADDRESS=")
            .and_then(|l| l.split(';').next())
            .unwrap_or_else(|| panic!("not an address line: {line:?}"))
            .to_string();
        assert_eq!(
            address,
            format!("unix:path={}", socket.display()),
            "the socket named by -n"
        );
        let deadline = Instant::now() + SERVER_TIMEOUT;
        while !socket.exists() {
            assert!(Instant::now() < deadline, "no socket {}", socket.display());
            std::thread::sleep(Duration::from_millis(20));
        }
        P11KitServer {
            child: Some(child),
            address,
            _dir: dir,
        }
    }

    /// The server's socket.
    pub fn socket(&self) -> PathBuf {
        PathBuf::from(self.address.trim_start_matches("unix:path="))
    }

    /// The value for `P11_KIT_SERVER_ADDRESS`, as the server printed it.
    pub fn address(&self) -> &str {
        &self.address
    }
}

impl Drop for P11KitServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(c.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

// ---------------------------------------------------------------------------
// OpenSSL with libp11

/// An openssl.cnf loading libp11's engine as its README tells users
/// (`engine_id = pkcs11`, `dynamic_path`, `MODULE_PATH`), written to
/// `dir/openssl.cnf`; `module` None leaves libp11's default, p11-kit's proxy.
pub fn engine_conf(dir: &Path, module: Option<&Path>) -> PathBuf {
    let module_line = module
        .map(|m| format!("MODULE_PATH = {}\n", m.display()))
        .unwrap_or_default();
    let conf = dir.join("openssl.cnf");
    fs::write(
        &conf,
        format!(
            "openssl_conf = openssl_init\n\n\
             [openssl_init]\nengines = engine_section\n\n\
             [engine_section]\npkcs11 = pkcs11_section\n\n\
             [pkcs11_section]\nengine_id = pkcs11\ndynamic_path = {PKCS11_ENGINE}\n\
             {module_line}init = 0\n"
        ),
    )
    .unwrap();
    conf
}

/// `openssl` (the command `c`, with its environment) made `pkeyutl -sign`
/// of the file `input` with the engine key `uri`, the PIN given with
/// `-passin`, into `sig`, under openssl.cnf `conf`.
pub fn engine_sign(
    mut c: Command,
    conf: &Path,
    uri: &str,
    pin: &str,
    input: &Path,
    sig: &Path,
) -> Command {
    c.env("OPENSSL_CONF", conf)
        .args([
            "pkeyutl", "-sign", "-engine", "pkcs11", "-keyform", "engine",
        ])
        .args(["-inkey", uri, "-passin"])
        .arg(format!("pass:{pin}"))
        .arg("-in")
        .arg(input)
        .arg("-out")
        .arg(sig);
    c
}

// ---------------------------------------------------------------------------
// Certificates for token keys

/// A token on `card` as a user prepares one for these clients: initialised
/// with `picohsm-tool init` (label `label`, the test PINs), a key pair of
/// `key_type` (as pkcs11-tool names it) with CKA_ID `id` made through this
/// module, and a certificate from `ca` for it (CN = `label`, extended key
/// usage `eku`) written to the token under the same CKA_ID. Returns the
/// certificate's PEM file.
pub fn token_with_certified_key(
    card: &VCard,
    label: &str,
    key_type: &str,
    id: &str,
    ca: &TestCa,
    eku: &str,
) -> PathBuf {
    tool_ok(
        card,
        &["init", "--so-pin", SO_PIN, "--pin", PIN, "--label", label],
    );
    add_certified_key(card, key_type, id, ca, label, eku)
}

/// A key pair of `key_type` with CKA_ID `id` made through this module on
/// an initialised `card` and a certificate `CN=<cn>` from `ca` for it,
/// written to the token with the same CKA_ID (no label: pkcs11-tool
/// --label on a certificate is another helper's fix, see issue 13).
/// Returns the certificate's PEM file.
pub fn add_certified_key(
    card: &VCard,
    key_type: &str,
    id: &str,
    ca: &TestCa,
    cn: &str,
    eku: &str,
) -> PathBuf {
    our_keypairgen(card, PIN, key_type, id);
    let public = public_pem_with(our_pkcs11_tool_command(card), id, &ca.dir);
    let der = ca.issue(&public, cn, eku);
    run_cmd(
        our_pkcs11_tool_command(card)
            .args(["--login", "--pin", PIN, "--write-object"])
            .arg(&der)
            .args(["--type", "cert", "--id", id]),
    );
    der.with_extension("pem")
}

/// The public key of certificate `cert_pem`, as PEM in `out`.
pub fn cert_public_key(cert_pem: &Path, out: &Path) -> PathBuf {
    let o = run_cmd(
        Command::new("openssl")
            .args(["x509", "-noout", "-pubkey", "-in"])
            .arg(cert_pem),
    );
    fs::write(out, &o.stdout).unwrap();
    out.to_path_buf()
}

// ---------------------------------------------------------------------------
// PKCS#11 URIs

/// The `URL:` lines of `p11tool --list-all` output, in order.
pub fn p11tool_urls(listing: &str) -> Vec<String> {
    listing
        .lines()
        .filter_map(|l| l.trim().strip_prefix("URL:"))
        .map(|u| u.trim().to_string())
        .collect()
}

/// The path attributes of a PKCS#11 URI (RFC 7512), percent-decoded:
/// `token`, `id`, `object`, `type`, ...; `id` stays bytes.
pub fn uri_attributes(uri: &str) -> BTreeMap<String, Vec<u8>> {
    let path = uri.strip_prefix("pkcs11:").expect("a pkcs11: URI");
    let path = path.split('?').next().unwrap();
    path.split(';')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_string(), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let h = std::str::from_utf8(&b[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(h, 16).expect("a %XX escape"));
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

// ---------------------------------------------------------------------------
// OpenSSH socket forwarding

/// An `sshd` of the test's own on a loopback port (key login only, its
/// own host key and authorized_keys in a temp dir), standing for the
/// other machine; stopped when dropped.
pub struct Sshd {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl Sshd {
    /// Starts sshd and waits until it listens.
    pub fn start() -> Sshd {
        let dir = tempfile::Builder::new()
            .prefix("picohsm-sshd-")
            .tempdir()
            .expect("temp dir");
        let d = dir.path();
        for key in ["host_key", "user_key"] {
            run_cmd(
                Command::new("ssh-keygen")
                    .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                    .arg(d.join(key)),
            );
        }
        fs::copy(d.join("user_key.pub"), d.join("authorized_keys")).unwrap();
        // A free port: bound by the kernel's choice, released, then given
        // to sshd (which takes no port 0).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let config = d.join("sshd_config");
        fs::write(
            &config,
            format!(
                "ListenAddress 127.0.0.1\nPort {port}\nHostKey {}\nAuthorizedKeysFile {}\n\
                 PermitRootLogin prohibit-password\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n\
                 AllowStreamLocalForwarding yes\nStreamLocalBindUnlink yes\nPidFile none\n",
                d.join("host_key").display(),
                d.join("authorized_keys").display()
            ),
        )
        .unwrap();
        let _ = fs::create_dir_all("/run/sshd");
        let mut child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start sshd (package openssh-server)");
        let err = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let want = format!("Server listening on 127.0.0.1 port {port}.");
        loop {
            match rx.recv_timeout(SERVER_TIMEOUT) {
                Ok(l) if l == want => break,
                Ok(_) => continue,
                Err(e) => panic!("sshd did not listen on port {port}: {e}"),
            }
        }
        Sshd {
            child: Some(child),
            port,
            dir,
        }
    }

    /// `ssh -N <forward> <forward-arg> user@127.0.0.1` (`-L` or `-R`, and
    /// `there:here` socket paths), running until dropped; returns once
    /// `socket` (the end the forwarding creates) exists.
    pub fn forward(&self, option: &str, spec: &str, socket: &Path) -> SshForward {
        let user = if running_as_root() {
            "root".to_string()
        } else {
            text(&run("id", ["-un"])).trim().to_string()
        };
        let mut child = Command::new("ssh")
            .args(["-F", "/dev/null", "-N", "-i"])
            .arg(self.dir.path().join("user_key"))
            .args(["-p", &self.port.to_string()])
            .args(["-o", "StrictHostKeyChecking=no"])
            .args(["-o", "UserKnownHostsFile=/dev/null"])
            .args(["-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes"])
            .args(["-o", "StreamLocalBindUnlink=yes", "-o", "LogLevel=ERROR"])
            .args([option, spec])
            .arg(format!("{user}@127.0.0.1"))
            .env("HOME", self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start ssh");
        let deadline = Instant::now() + SERVER_TIMEOUT;
        while !socket.exists() {
            if let Ok(Some(st)) = child.try_wait() {
                panic!("ssh {option} {spec} exited with {st}");
            }
            assert!(Instant::now() < deadline, "ssh {option} made no {socket:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
        SshForward { child: Some(child) }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A running `ssh -N` forwarding; ended when dropped.
pub struct SshForward {
    child: Option<Child>,
}

impl Drop for SshForward {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

//! OpenSSH with libpicohsm_pkcs11.so, as its users run it: `ssh-keygen -D`
//! lists the token's keys, and `ssh -I` (or `PKCS11Provider` in an
//! ssh_config) logs in to an `sshd` the test starts on a loopback port,
//! the token's PIN prompt answered through `SSH_ASKPASS` with
//! `SSH_ASKPASS_REQUIRE=force`. The token is a PKA token (1-of-1, no user
//! PIN, settings `login = "pka"`): the "PIN" ssh asks for is the
//! authenticator's PIN, and the module runs the PKA rounds on the
//! authenticator card.
//!
//! sshd runs as the current user; in CI that is root (sshd's privilege
//! separation wants root and the directory /run/sshd, made here if missing).

#[path = "../common/mod.rs"]
mod common;

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::pka_token::{askpass_script, prompts, PkaToken};
use common::*;

/// The token's keys: (pkcs11-tool key type, CKA_ID, label, ssh key type).
const KEYS: [(&str, &str, &str, &str); 2] = [
    ("EC:prime256v1", "01", "ssh-ec", "ecdsa-sha2-nistp256"),
    ("rsa:2048", "02", "ssh-rsa", "ssh-rsa"),
];

/// A PKA token with the keys of [`KEYS`] made on it through the module.
fn token_with_keys() -> PkaToken {
    let token = PkaToken::start();
    for (key_type, id, label, _) in KEYS {
        token.keypairgen(key_type, id, label);
    }
    token
}

/// "type base64" of the public key in `pem`, converted by ssh-keygen.
fn ssh_public_key(pem: &Path) -> String {
    let out = run("ssh-keygen", ["-i", "-m", "PKCS8", "-f", &s(pem)]);
    first_two_fields(&stdout(&out))
}

fn first_two_fields(line: &str) -> String {
    line.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The SHA256 fingerprint (`SHA256:…`) of the OpenSSH public key `line`.
fn fingerprint(dir: &Path, line: &str) -> String {
    let file = dir.join("fingerprint.pub");
    fs::write(&file, format!("{line}\n")).unwrap();
    let out = run("ssh-keygen", ["-l", "-E", "sha256", "-f", &s(&file)]);
    stdout(&out)
        .split_whitespace()
        .nth(1)
        .expect("fingerprint")
        .to_string()
}

/// The real public keys of the token's keys of [`KEYS`] (read through
/// OpenSC's module) in OpenSSH's format, by CKA_ID.
fn real_keys(token: &PkaToken, dir: &Path) -> Vec<(&'static str, String)> {
    KEYS.iter()
        .map(|(_, id, _, kind)| {
            let key = ssh_public_key(&token.opensc_public_pem(id, dir));
            assert!(key.starts_with(kind), "{id}: {key}");
            (*id, key)
        })
        .collect()
}

/// The user sshd lets in: the current user (root in CI).
fn user() -> String {
    stdout(&run("id", ["-un"])).trim().to_string()
}

/// 16 random hex digits.
fn random_hex() -> String {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).expect("random bytes");
    hex::encode(b)
}

/// An `sshd` of the test's own on a free loopback port, with its own host
/// key and `AuthorizedKeysFile`, in a temp dir; killed when dropped.
struct Sshd {
    dir: tempfile::TempDir,
    port: u16,
    child: Child,
}

impl Sshd {
    /// Starts sshd allowing the OpenSSH public keys `authorized`; returns
    /// once it accepts connections.
    fn start(authorized: &[&str]) -> Sshd {
        let dir = tempfile::Builder::new()
            .prefix("picohsm-sshd-")
            .tempdir()
            .expect("temp dir");
        let d = dir.path();
        // sshd's privilege separation directory (the package makes it at
        // service start, which a test's sshd skips).
        let _ = fs::create_dir_all("/run/sshd");
        let host_key = d.join("host_ed25519");
        run(
            "ssh-keygen",
            ["-q", "-t", "ed25519", "-N", "", "-f", &s(&host_key)],
        );
        let keys = d.join("authorized_keys");
        fs::write(&keys, authorized.join("\n") + "\n").unwrap();
        let port = free_port();
        let config = d.join("sshd_config");
        fs::write(
            &config,
            format!(
                "ListenAddress 127.0.0.1:{port}\n\
                 HostKey {}\n\
                 AuthorizedKeysFile {}\n\
                 PidFile {}\n\
                 StrictModes no\n\
                 UsePAM no\n\
                 PubkeyAuthentication yes\n\
                 PasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\n\
                 PermitRootLogin prohibit-password\n\
                 LogLevel VERBOSE\n",
                s(&host_key),
                s(&keys),
                s(&d.join("sshd.pid")),
            ),
        )
        .unwrap();
        let log = fs::File::create(d.join("sshd.log")).unwrap();
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f", &s(&config)])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start /usr/sbin/sshd");
        let mut sshd = Sshd { dir, port, child };
        sshd.wait_listening();
        sshd
    }

    fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("sshd exited with {status}:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "sshd not listening:\n{}",
                self.log()
            );
            sleep(Duration::from_millis(50));
        }
    }

    /// What sshd logged so far (`-e`: its log on stderr).
    fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    /// A known_hosts file in `dir` naming this sshd's host key, so that the
    /// client checks the host strictly.
    fn known_hosts(&self, dir: &Path) -> PathBuf {
        let key = fs::read_to_string(self.dir.path().join("host_ed25519.pub")).unwrap();
        let path = dir.join("known_hosts");
        fs::write(
            &path,
            format!("[127.0.0.1]:{} {}\n", self.port, first_two_fields(&key)),
        )
        .unwrap();
        path
    }

    /// Waits (at most 10 s) for sshd to log a line containing `needle`.
    fn wait_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.log();
            if let Some(line) = log.lines().find(|l| l.contains(needle)) {
                return line.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "sshd never logged {needle:?}:\n{log}"
            );
            sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port nothing listens on now.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().unwrap().port()
}

/// The client side: a HOME of its own, the askpass script answering
/// `secret`, and the module's settings and log.
struct Client {
    dir: tempfile::TempDir,
    askpass: PathBuf,
    settings: PathBuf,
}

impl Client {
    fn new(token: &PkaToken, secret: &str) -> Client {
        let dir = tempfile::Builder::new()
            .prefix("picohsm-ssh-client-")
            .tempdir()
            .expect("temp dir");
        let askpass = askpass_script(dir.path(), "token-pin", secret);
        Client {
            askpass,
            settings: token.settings.clone(),
            dir,
        }
    }

    /// `program` with the environment a user sets for an unattended PIN:
    /// `SSH_ASKPASS` and `SSH_ASKPASS_REQUIRE=force`; no agent.
    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("HOME", self.dir.path())
            .env("SSH_ASKPASS", &self.askpass)
            .env("SSH_ASKPASS_REQUIRE", "force")
            .env_remove("SSH_AUTH_SOCK")
            .env_remove("DISPLAY")
            .env("PICOHSM_PKCS11_CONFIG", &self.settings)
            .env(
                "PICOHSM_PKCS11_LOG",
                format!("info,{}", s(&self.dir.path().join("module.log"))),
            );
        c
    }

    /// How many times ssh ran the askpass script.
    fn times_asked(&self) -> usize {
        prompts(&self.askpass).len()
    }

    /// The prompts ssh showed through the askpass script.
    fn prompts(&self) -> Vec<String> {
        prompts(&self.askpass)
    }

    /// The module's log (for failure messages).
    fn module_log(&self) -> String {
        fs::read_to_string(self.dir.path().join("module.log")).unwrap_or_default()
    }

    /// `ssh -I <module> … -p PORT user@127.0.0.1 <remote>`, strict host
    /// checking against `sshd`'s key, public keys only.
    fn ssh_dash_i(&self, sshd: &Sshd, remote: &str) -> Output {
        self.ssh_dash_i_with(sshd, &[], remote)
    }

    /// [`Client::ssh_dash_i`] with more options (`["-o", "BatchMode=yes"]`).
    fn ssh_dash_i_with(&self, sshd: &Sshd, options: &[&str], remote: &str) -> Output {
        let mut ssh = self.command("ssh");
        ssh.arg("-I").arg(module_path()).args(options);
        self.ssh_to(sshd, &mut ssh, remote)
    }

    /// `ssh` (the client's, with the options and environment of the
    /// caller) run with no config file as `ssh -F /dev/null -T … -p PORT
    /// user@127.0.0.1 <remote>`, strict host checking against `sshd`'s key,
    /// public keys only.
    fn ssh_to(&self, sshd: &Sshd, ssh: &mut Command, remote: &str) -> Output {
        let known_hosts = sshd.known_hosts(self.dir.path());
        run_cmd_allow_fail(
            ssh.args(["-F", "/dev/null", "-T"])
                .args(["-o", "PreferredAuthentications=publickey"])
                .args(["-o", "StrictHostKeyChecking=yes"])
                .arg("-o")
                .arg(format!("UserKnownHostsFile={}", s(&known_hosts)))
                .args(["-p", &sshd.port.to_string()])
                .arg(format!("{}@127.0.0.1", user()))
                .arg(remote),
        )
    }

    /// Checks that ssh (`out`) logged in and ran `echo <word>`, and that
    /// `sshd` accepted the public key of the authorized_keys line `key`.
    fn assert_logged_in(&self, out: &Output, word: &str, sshd: &Sshd, key: &str) {
        assert!(
            out.status.success() && stdout(out).trim() == word,
            "ssh: {}\nsshd:\n{}\nmodule:\n{}",
            text(out),
            sshd.log(),
            self.module_log()
        );
        let accepted = sshd.wait_log("Accepted publickey");
        let print = fingerprint(self.dir.path(), key);
        assert!(accepted.contains(&print), "{print} accepted? {accepted}");
    }

    /// `ssh -F <config> hsm <remote>` with `PKCS11Provider` in the config
    /// file, as a user writes it in ~/.ssh/config.
    fn ssh_with_config(&self, sshd: &Sshd, remote: &str) -> Output {
        let known_hosts = sshd.known_hosts(self.dir.path());
        let config = self.dir.path().join("ssh_config");
        fs::write(
            &config,
            format!(
                "Host hsm\n\
                 \tHostName 127.0.0.1\n\
                 \tPort {}\n\
                 \tUser {}\n\
                 \tPKCS11Provider {}\n\
                 \tPreferredAuthentications publickey\n\
                 \tStrictHostKeyChecking yes\n\
                 \tUserKnownHostsFile {}\n",
                sshd.port,
                user(),
                s(&module_path()),
                s(&known_hosts),
            ),
        )
        .unwrap();
        run_cmd_allow_fail(
            self.command("ssh")
                .args(["-F", &s(&config), "-T", "hsm"])
                .arg(remote),
        )
    }
}

/// An `ssh-agent` of the test's own (`-D`, socket in a temp dir, the
/// module allowed with `-P`), in the client's environment: its
/// ssh-pkcs11-helper loads the module; killed when dropped.
struct Agent {
    dir: tempfile::TempDir,
    child: Child,
}

impl Agent {
    fn start(client: &Client) -> Agent {
        let dir = tempfile::Builder::new()
            .prefix("picohsm-ssh-agent-")
            .tempdir()
            .expect("temp dir");
        let module = fs::canonicalize(module_path()).expect("the module's real path");
        let child = client
            .command("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(dir.path().join("agent.sock"))
            .arg("-P")
            .arg(&module)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("start ssh-agent");
        let mut agent = Agent { dir, child };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !agent.socket().exists() {
            if let Ok(Some(status)) = agent.child.try_wait() {
                panic!("ssh-agent exited with {status}");
            }
            assert!(Instant::now() < deadline, "no ssh-agent socket");
            sleep(Duration::from_millis(20));
        }
        agent
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("agent.sock")
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A user runs `ssh-keygen -D libpicohsm_pkcs11.so` to get the lines for
/// authorized_keys: it lists the token's EC P-256 and RSA-2048 keys, each
/// exactly the public key of the key on the card (read through OpenSC's
/// module), with no login and no PIN prompt.
#[test]
fn ssh_keygen_d_lists_the_token_keys_as_their_public_keys() {
    let token = token_with_keys();
    let client = Client::new(&token, "not asked");
    let out = run_cmd_allow_fail(
        client
            .command("ssh-keygen")
            .arg("-D")
            .arg(module_path())
            .stdin(Stdio::null()),
    );
    assert!(out.status.success(), "ssh-keygen -D: {}", text(&out));
    let listed: Vec<String> = stdout(&out).lines().map(first_two_fields).collect();
    for (id, key) in real_keys(&token, client.dir.path()) {
        assert!(
            listed.contains(&key),
            "key {id} ({key}) not in ssh-keygen -D:\n{}",
            stdout(&out)
        );
    }
    assert_eq!(client.times_asked(), 0, "listing needs no PIN");
}

/// A user puts the token's key in the server's authorized_keys and runs
/// `ssh -I libpicohsm_pkcs11.so` (EC key) or `ssh hsm` with
/// `PKCS11Provider` in the ssh_config (RSA key); ssh asks the token's
/// "PIN" through SSH_ASKPASS, which on this PKA token is the
/// authenticator's PIN: the module runs the PKA login, the server accepts
/// the token key (by its fingerprint in sshd's log) and the remote command
/// runs.
#[test]
fn sshd_accepts_ssh_dash_i_and_pkcs11provider_after_a_pka_login() {
    let token = token_with_keys();
    let client = Client::new(&token, PIN);
    let keys = real_keys(&token, client.dir.path());
    for (i, (_, key)) in keys.iter().enumerate() {
        let sshd = Sshd::start(&[key]);
        let word = format!("authenticated-{}", random_hex());
        let out = if i == 0 {
            client.ssh_dash_i(&sshd, &format!("echo {word}"))
        } else {
            client.ssh_with_config(&sshd, &format!("echo {word}"))
        };
        client.assert_logged_in(&out, &word, &sshd, key);
        assert_eq!(client.times_asked(), i + 1, "ssh asked for the PIN");
        let prompt = &client.prompts()[i];
        assert!(prompt.starts_with("Enter PIN for '"), "{prompt}");
        assert!(
            client.module_log().contains("granted"),
            "the module logged a PKA login:\n{}",
            client.module_log()
        );
    }
}

/// The same ssh fails when the secret is wrong or the authenticator card
/// is missing: ssh asks for the PIN, the login fails, the server refuses
/// ("Permission denied (publickey)") and never runs the command. With
/// `BatchMode=yes` ssh asks no PIN at all, so the token key cannot sign.
#[test]
fn ssh_is_refused_with_a_wrong_pin_without_the_authenticator_or_in_batch_mode() {
    let mut token = token_with_keys();
    let dir = tempfile::tempdir().unwrap();
    let keys = real_keys(&token, dir.path());
    let sshd = Sshd::start(&[&keys[0].1]);

    let refused = |client: &Client, options: &[&str], what: &str| {
        let word = format!("authenticated-{}", random_hex());
        let out = client.ssh_dash_i_with(&sshd, options, &format!("echo {word}"));
        assert!(
            !out.status.success() && !stdout(&out).contains(&word),
            "{what}: ssh got in:\n{}",
            text(&out)
        );
        assert!(
            text(&out).contains("Permission denied (publickey)"),
            "{what}: {}",
            text(&out)
        );
        assert!(
            !sshd.log().contains("Accepted publickey"),
            "{what}: {}",
            sshd.log()
        );
    };

    let batch = Client::new(&token, PIN);
    refused(&batch, &["-o", "BatchMode=yes"], "batch mode");
    assert_eq!(batch.times_asked(), 0, "no PIN prompt in batch mode");

    let wrong = Client::new(&token, "000000");
    refused(&wrong, &[], "wrong PIN");
    assert_eq!(wrong.times_asked(), 1, "ssh asked for the PIN once");
    assert!(
        wrong.module_log().contains("refused its PIN"),
        "the authenticator refused the PIN:\n{}",
        wrong.module_log()
    );

    token.authenticator().stop();
    let right = Client::new(&token, PIN);
    refused(&right, &[], "no authenticator");
    assert_eq!(right.times_asked(), 1, "ssh asked for the PIN once");
    // "no authenticator token is connected", or, with other cards in the
    // readers, "no connected authenticator holds a key registered …".
    assert!(
        right
            .module_log()
            .lines()
            .any(|l| l.contains("PKA login: no") && l.contains("authenticator")),
        "the module said the authenticator is missing:\n{}",
        right.module_log()
    );
}

/// A user loads the token's keys into ssh-agent with `ssh-add -s
/// libpicohsm_pkcs11.so` (the PIN asked once, through SSH_ASKPASS: the
/// authenticator's PIN on this PKA token); `ssh-add -L` lists both keys,
/// and ssh through the agent logs in with no further PIN prompt.
#[test]
fn ssh_add_s_loads_the_token_keys_into_ssh_agent_for_ssh() {
    let token = token_with_keys();
    let client = Client::new(&token, PIN);
    let keys = real_keys(&token, client.dir.path());
    let agent = Agent::start(&client);
    let out = run_cmd_allow_fail(
        client
            .command("ssh-add")
            .env("SSH_AUTH_SOCK", agent.socket())
            .arg("-s")
            .arg(module_path()),
    );
    assert!(
        out.status.success(),
        "ssh-add -s: {}\nmodule:\n{}",
        text(&out),
        client.module_log()
    );
    assert_eq!(
        client.prompts(),
        ["Enter passphrase for PKCS#11: "],
        "ssh-add asked for the PIN"
    );
    let out = run_cmd_allow_fail(
        client
            .command("ssh-add")
            .env("SSH_AUTH_SOCK", agent.socket())
            .arg("-L"),
    );
    let listed: Vec<String> = stdout(&out).lines().map(first_two_fields).collect();
    for (id, key) in &keys {
        assert!(
            listed.contains(key),
            "key {id} not in ssh-add -L:\n{}",
            text(&out)
        );
    }

    let sshd = Sshd::start(&[&keys[1].1]);
    let word = format!("authenticated-{}", random_hex());
    let out = client.ssh_to(
        &sshd,
        client.command("ssh").env("SSH_AUTH_SOCK", agent.socket()),
        &format!("echo {word}"),
    );
    client.assert_logged_in(&out, &word, &sshd, &keys[1].1);
    assert_eq!(client.times_asked(), 1, "no second PIN prompt");
}

//! End-to-end test harness: Pico HSM virtual cards (`picohsm-vcard`) behind
//! the real pcscd + vsmartcard vpcd, and wrappers for OpenSC's tools.
//!
//! Needs the environment of `scripts/setup-env.sh`: pcscd running with 8 vpcd
//! readers on TCP 35963..=35970 (see [`READERS`]). Up to 8 cards can run at
//! once, across test threads and test processes: a port is taken with an
//! exclusive `flock` on a lock file in the system temp directory.
//!
//! OpenSC's PKCS#11 module shows only 4 readers unless told otherwise; the
//! harness writes an OpenSC configuration with more virtual slots and points
//! `OPENSC_CONF` at it, both for the tools it runs and (from the first
//! [`VCard`] started) for the test process itself, so that `opensc-pkcs11.so`
//! loaded in-process sees every reader too.
//!
//! The module verifies a primary's device chain before a PKA login, and a
//! picohsm-vcard's chain is under a test PKI the module trusts only with
//! `allow-test-chains = true`: from the first [`VCard`] started, the test
//! process (and so every module, tool and example it runs) gets
//! `PICOHSM_PKCS11_CONFIG` pointing at [`harness_settings`] unless a test
//! set it already. A test that writes settings of its own puts
//! [`TEST_CHAINS`] in them.
//!
//! Run these tests one at a time (`RUST_TEST_THREADS=1`, as
//! `scripts/test.sh` does): every process that loads OpenSC's PKCS#11
//! module connects to every card in every reader and SELECTs the applet,
//! which logs each card out, so a neighbouring test's login can vanish.
#![allow(dead_code)]

pub mod ffi;
pub mod firefox;
pub mod p11kit;
pub mod pinentry;
pub mod pka;
pub mod pka_token;
pub mod pki;
pub mod reliability;
pub mod removal;
pub mod softhsm;
pub mod tools;
pub mod vcard_life;

use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// vpcd TCP port ↔ PC/SC reader name, as configured by `scripts/setup-env.sh`
/// (port = vpcd CHANNELID + slot; found by experiment on Debian 12 with
/// pcsc-lite 1.9.9 and vsmartcard-vpcd 3.3).
pub const READERS: [(u16, &str); 8] = [
    (35963, "Virtual PCD 00 00"),
    (35964, "Virtual PCD 00 01"),
    (35965, "Virtual PCD 8C7D 00 00"),
    (35966, "Virtual PCD 8C7D 00 01"),
    (35967, "Virtual PCD 8C7F 00 00"),
    (35968, "Virtual PCD 8C7F 00 01"),
    (35969, "Virtual PCD 8C81 00 00"),
    (35970, "Virtual PCD 8C81 00 01"),
];

/// The SO-PIN the tests initialise cards with.
pub const SO_PIN: &str = "1234567890123456";
/// The user PIN the tests initialise cards with.
pub const PIN: &str = "648219";

/// How long a card may take to show up in (or leave) its reader.
const PRESENCE_TIMEOUT: Duration = Duration::from_secs(20);
/// How long to wait for free ports when all 8 are in use.
const PORT_TIMEOUT: Duration = Duration::from_secs(300);

/// The reader name for a vpcd port.
pub fn reader_for_port(port: u16) -> &'static str {
    READERS
        .iter()
        .find(|(p, _)| *p == port)
        .map(|(_, r)| *r)
        .unwrap_or_else(|| panic!("port {port} is not one of the vpcd readers"))
}

// ---------------------------------------------------------------------------
// Running commands

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

fn output_text(out: &Output) -> String {
    format!(
        "status: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `cmd` to completion (stdin closed) and returns its output, whatever
/// its exit status.
pub fn run_cmd_allow_fail(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", describe(cmd)))
}

/// Runs `cmd`; panics with its stdout and stderr unless it exits with 0.
pub fn run_cmd(cmd: &mut Command) -> Output {
    let out = run_cmd_allow_fail(cmd);
    if !out.status.success() {
        panic!("command failed: {}\n{}", describe(cmd), output_text(&out));
    }
    out
}

/// Runs `program args…`; panics with its stdout and stderr on failure.
pub fn run<I, S>(program: &str, args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run_cmd(Command::new(program).args(args))
}

/// Runs `program args…` and returns its output whatever the exit status.
pub fn run_allow_fail<I, S>(program: &str, args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run_cmd_allow_fail(Command::new(program).args(args))
}

/// Stdout as a `String` (lossy).
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

// ---------------------------------------------------------------------------
// OpenSC

/// The OpenSC configuration used by the tests: enough PKCS#11 virtual slots
/// for 8 readers (the default, 16 slots at 4 per reader, covers 4).
pub fn opensc_conf() -> &'static Path {
    static CONF: OnceLock<PathBuf> = OnceLock::new();
    CONF.get_or_init(|| {
        let text = "# picohsm-pkcs11 test harness (tests/common/mod.rs)\n\
                    app default {\n\tframework pkcs15 {\n\t}\n}\n\
                    app opensc-pkcs11 {\n\tpkcs11 {\n\t\tmax_virtual_slots = 64;\n\t\tslots_per_card = 4;\n\t}\n}\n";
        let path = std::env::temp_dir().join("picohsm-pkcs11-test-opensc.conf");
        if fs::read_to_string(&path).ok().as_deref() != Some(text) {
            // Written aside and renamed: other test processes may be reading it.
            let tmp = path.with_extension(format!("conf.{}", std::process::id()));
            fs::write(&tmp, text).expect("write the OpenSC test configuration");
            fs::rename(&tmp, &path).expect("install the OpenSC test configuration");
        }
        path
    })
}

/// Points this test process's `OPENSC_CONF` at [`opensc_conf`] (once).
pub fn use_opensc_conf_in_process() {
    static SET: OnceLock<()> = OnceLock::new();
    SET.get_or_init(|| std::env::set_var("OPENSC_CONF", opensc_conf()));
}

/// A path as a string argument.
pub fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// A command's stdout and stderr, for assertions and messages.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Checks that `text` contains each of `parts`.
pub fn assert_contains(text: &str, parts: &[&str]) {
    for part in parts {
        assert!(text.contains(part), "{part:?} missing in:\n{text}");
    }
}

/// Runs openssl; panics with its output unless it succeeds.
pub fn openssl_ok<S: AsRef<OsStr> + std::fmt::Debug>(args: &[S]) {
    let out = run_allow_fail("openssl", args);
    assert!(
        out.status.success(),
        "openssl {args:?} failed:\n{}",
        text(&out)
    );
}

/// Runs openssl; panics if it succeeds (a check that can fail did fail).
pub fn openssl_fails<S: AsRef<OsStr> + std::fmt::Debug>(args: &[S]) {
    let out = run_allow_fail("openssl", args);
    assert!(!out.status.success(), "openssl {args:?} should have failed");
}

/// Path of OpenSC's PKCS#11 module.
pub fn opensc_pkcs11_path() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let mut candidates: Vec<PathBuf> = vec![
            "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so".into(),
            "/usr/lib/x86_64-linux-gnu/pkcs11/opensc-pkcs11.so".into(),
        ];
        for base in ["/usr/lib", "/usr/lib64", "/usr/local/lib", "/lib"] {
            candidates.push(Path::new(base).join("opensc-pkcs11.so"));
            candidates.push(Path::new(base).join("pkcs11/opensc-pkcs11.so"));
            if let Ok(entries) = fs::read_dir(base) {
                let mut dirs: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
                dirs.sort();
                for d in dirs {
                    candidates.push(d.join("opensc-pkcs11.so"));
                    candidates.push(d.join("pkcs11/opensc-pkcs11.so"));
                }
            }
        }
        candidates
            .into_iter()
            .find(|p| p.is_file())
            .expect("opensc-pkcs11.so not found; run scripts/setup-env.sh (package opensc-pkcs11)")
    })
    .clone()
}

/// `pkcs11-tool --module opensc-pkcs11.so --slot-description READER` with
/// `OPENSC_CONF` set, ready for more arguments.
pub fn pkcs11_tool_command(vcard: &VCard) -> Command {
    let mut c = Command::new("pkcs11-tool");
    // No settings from the developer's machine: a test that wants a config
    // file sets PICOHSM_PKCS11_CONFIG itself.
    let xdg = vcard.dir().join("xdg");
    let _ = fs::create_dir_all(&xdg);
    c.env("OPENSC_CONF", opensc_conf())
        .env_remove("PICOHSM_PKCS11_CONFIG")
        .env("XDG_CONFIG_HOME", xdg)
        .arg("--module")
        .arg(opensc_pkcs11_path())
        .arg("--slot-description")
        .arg(vcard.reader_name());
    c
}

/// `sc-hsm-tool --reader READER` (the exact reader name; an index also works
/// but depends on pcscd's reader order).
pub fn sc_hsm_tool_command(vcard: &VCard) -> Command {
    let mut c = Command::new("sc-hsm-tool");
    c.env("OPENSC_CONF", opensc_conf())
        .arg("--reader")
        .arg(vcard.reader_name());
    c
}

/// `opensc-tool --reader READER`.
pub fn opensc_tool_command(vcard: &VCard) -> Command {
    let mut c = Command::new("opensc-tool");
    c.env("OPENSC_CONF", opensc_conf())
        .arg("--reader")
        .arg(vcard.reader_name());
    c
}

/// Runs pkcs11-tool on the vcard's slot; panics on failure.
pub fn pkcs11_tool<I, S>(vcard: &VCard, args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run_cmd(pkcs11_tool_command(vcard).args(args))
}

/// Runs sc-hsm-tool on the vcard's reader; panics on failure.
pub fn sc_hsm_tool<I, S>(vcard: &VCard, args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run_cmd(sc_hsm_tool_command(vcard).args(args))
}

/// Runs opensc-tool on the vcard's reader; panics on failure.
pub fn opensc_tool<I, S>(vcard: &VCard, args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run_cmd(opensc_tool_command(vcard).args(args))
}

/// `(reader name, card present)` for every reader pcscd knows, from
/// `opensc-tool -l`.
pub fn reader_states() -> Vec<(String, bool)> {
    let out = run_allow_fail("opensc-tool", ["-l"]);
    let mut v = Vec::new();
    for line in stdout(&out).lines() {
        // "2    Yes             Virtual PCD 8C7D 00 00"
        let mut it = line.split_whitespace();
        let (Some(nr), Some(card)) = (it.next(), it.next()) else {
            continue;
        };
        if nr.parse::<u32>().is_err() || !(card == "Yes" || card == "No") {
            continue;
        }
        let rest = line.trim_start();
        let rest = rest[nr.len()..].trim_start();
        let name = rest[card.len()..].trim();
        v.push((name.to_string(), card == "Yes"));
    }
    v
}

fn card_present(reader: &str) -> Option<bool> {
    reader_states()
        .into_iter()
        .find(|(n, _)| n == reader)
        .map(|(_, p)| p)
}

fn check_readers() {
    static CHECKED: OnceLock<()> = OnceLock::new();
    CHECKED.get_or_init(|| {
        let states = reader_states();
        let missing: Vec<&str> = READERS
            .iter()
            .map(|(_, r)| *r)
            .filter(|r| !states.iter().any(|(n, _)| n == r))
            .collect();
        assert!(
            missing.is_empty(),
            "pcscd does not show the vpcd readers {missing:?} (it shows {states:?}); \
             run scripts/setup-env.sh"
        );
    });
}

// ---------------------------------------------------------------------------
// The picohsm-vcard binary

pub fn target_profile_dir() -> PathBuf {
    // The test executable is target/<profile>/deps/<name>-<hash>.
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().and_then(Path::parent).map(Path::to_path_buf);
    match dir {
        Some(d) if d.join("deps").is_dir() => d,
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("target/debug"),
    }
}

/// Builds `artefact` of this workspace into [`target_profile_dir`] with
/// `cargo build <args>` (a no-op when it is up to date), so that tests run
/// the current code; `what` names it in messages. A build that fails over
/// an existing artefact only warns (a change elsewhere in the tree may not
/// compile yet).
fn cargo_built(what: &str, artefact: &str, args: &[&str]) -> PathBuf {
    let dir = target_profile_dir();
    let path = dir.join(artefact);
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut cmd = Command::new(cargo);
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("build")
        .args(args);
    if dir.file_name() == Some(OsStr::new("release")) {
        cmd.arg("--release");
    }
    let out = run_cmd_allow_fail(&mut cmd);
    if !out.status.success() {
        assert!(
            path.is_file(),
            "cannot build {what}:\n{}",
            output_text(&out)
        );
        eprintln!(
            "warning: cannot rebuild {what}, using the existing {}",
            path.display()
        );
    }
    assert!(path.is_file(), "{} missing after the build", path.display());
    path
}

/// A binary `name` of this workspace: the path in the environment variable
/// `var` if set, else built once per test process from `package` (the
/// arguments that choose it, for `cargo build`).
fn workspace_binary(cell: &OnceLock<PathBuf>, var: &str, name: &str, package: &[&str]) -> PathBuf {
    cell.get_or_init(|| match std::env::var_os(var) {
        Some(p) => PathBuf::from(p),
        None => cargo_built(name, name, &[package, &["--bin", name]].concat()),
    })
    .clone()
}

/// `picohsm-tool --reader <card's reader> args…`, whatever its exit status.
pub fn tool_on<S: AsRef<OsStr>>(card: &VCard, args: &[S]) -> Output {
    let mut c = Command::new(tool_binary());
    c.arg("--reader").arg(card.reader_name()).args(args);
    run_cmd_allow_fail(&mut c)
}

/// As [`tool_on`], asserting success.
pub fn tool_ok<S: AsRef<OsStr>>(card: &VCard, args: &[S]) -> String {
    let out = tool_on(card, args);
    assert!(
        out.status.success(),
        "picohsm-tool {:?} failed:\n{}",
        args.iter()
            .map(|a| a.as_ref().to_string_lossy().into_owned())
            .collect::<Vec<_>>(),
        text(&out)
    );
    text(&out)
}

/// As [`tool_on`], asserting exit code `code`; returns stdout + stderr.
pub fn tool_fails<S: AsRef<OsStr>>(card: &VCard, args: &[S], code: i32) -> String {
    let out = tool_on(card, args);
    assert_eq!(
        out.status.code(),
        Some(code),
        "expected exit {code}:\n{}",
        text(&out)
    );
    text(&out)
}

/// `picohsm-tool keygen --pin PIN --label LABEL` on `card`: the new key's
/// name (the `CHR` of the report).
pub fn tool_keygen(card: &VCard, label: &str, extra: &[&str]) -> String {
    let mut args = vec!["keygen", "--pin", PIN, "--label", label];
    args.extend_from_slice(extra);
    let report = tool_ok(card, &args);
    report
        .lines()
        .find_map(|l| l.trim().strip_prefix("CHR"))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("no CHR in:\n{report}"))
}

/// `picohsm-tool pka export --key-label LABEL` on `card`, into `name` in the
/// card's directory: the file and the tool's report.
pub fn tool_export(card: &VCard, label: &str, name: &str) -> (PathBuf, String) {
    let file = card.dir().join(name);
    let args = ["pka", "export", "--key-label", label, "-o", &s(&file)];
    let report = tool_ok(card, &args);
    (file, report)
}

/// Path of `picohsm-tool`; `PICOHSM_TOOL_BIN` overrides it.
pub fn tool_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    let package = ["-p", "picohsm-tool"];
    workspace_binary(&BIN, "PICOHSM_TOOL_BIN", "picohsm-tool", &package)
}

/// Path of `picohsm-vcard`; `PICOHSM_VCARD_BIN` overrides it.
pub fn vcard_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    let package = ["-p", "picohsm-vcard"];
    workspace_binary(&BIN, "PICOHSM_VCARD_BIN", "picohsm-vcard", &package)
}

/// Path of this project's module, `libpicohsm_pkcs11.so`, built first
/// (`cargo build --lib`) so tests always load the current code.
/// `PICOHSM_MODULE` overrides it (the installed package's module, when
/// scripts/package-test.sh runs the client tests against the .deb).
pub fn module_path() -> PathBuf {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| match std::env::var_os("PICOHSM_MODULE") {
        Some(p) => PathBuf::from(p),
        None => cargo_built(
            "the module",
            "libpicohsm_pkcs11.so",
            &["-p", "picohsm-pkcs11", "--lib"],
        ),
    })
    .clone()
}

/// The settings line that lets the module trust picohsm-vcard's test
/// chains (docs/protocol.md §3.3): every settings file a test writes for
/// a PKA login through vcards starts with it.
pub const TEST_CHAINS: &str = "allow-test-chains = true\n";

/// The harness's settings file: [`TEST_CHAINS`] only (authenticators found
/// on their own, `login = "auto"`), in a directory of its own with mode
/// 0700 and the file 0600, as the module wants settings files.
pub fn harness_settings() -> &'static Path {
    static FILE: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &FILE
        .get_or_init(|| {
            use std::os::unix::fs::PermissionsExt;
            let dir = tempfile::Builder::new()
                .prefix("picohsm-harness-settings-")
                .tempdir()
                .expect("temp dir");
            let path = dir.path().join("config.toml");
            fs::write(&path, TEST_CHAINS).expect("write the harness settings");
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
            (dir, path)
        })
        .1
}

/// Writes the settings file `path` (TOML, [`TEST_CHAINS`] first) with mode
/// 0600, as the module accepts it whatever the umask.
pub fn write_settings(path: &Path, toml: &str) {
    use std::os::unix::fs::PermissionsExt;
    fs::write(path, format!("{TEST_CHAINS}{toml}")).expect("write settings");
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
}

/// Points this process's `PICOHSM_PKCS11_CONFIG` at [`harness_settings`]
/// unless it is set already (children inherit it).
pub fn use_harness_settings_in_process() {
    if std::env::var_os("PICOHSM_PKCS11_CONFIG").is_none() {
        std::env::set_var("PICOHSM_PKCS11_CONFIG", harness_settings());
    }
}

/// `pkcs11-tool --module libpicohsm_pkcs11.so --slot-description READER`.
pub fn our_pkcs11_tool_command(vcard: &VCard) -> Command {
    let mut c = Command::new("pkcs11-tool");
    c.env("OPENSC_CONF", opensc_conf())
        .env("PICOHSM_PKCS11_CONFIG", harness_settings())
        .arg("--module")
        .arg(module_path())
        .arg("--slot-description")
        .arg(vcard.reader_name());
    c
}

// ---------------------------------------------------------------------------
// Port allocation

fn lock_dir() -> PathBuf {
    let d = std::env::temp_dir().join("picohsm-vcard-ports");
    fs::create_dir_all(&d).expect("create the port lock directory");
    d
}

/// An exclusive hold on one vpcd port (flock; released when dropped, or when
/// the process dies).
struct PortLock {
    port: u16,
    _file: File,
}

fn try_lock_port(port: u16) -> Option<PortLock> {
    let path = lock_dir().join(format!("{port}.lock"));
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    match file.try_lock() {
        Ok(()) => Some(PortLock { port, _file: file }),
        Err(_) => None,
    }
}

/// Takes `n` ports at once (all or none, so that tests needing several cards
/// cannot deadlock each other), skipping readers that already hold a card
/// not started by this harness.
fn acquire_ports(n: usize) -> Vec<PortLock> {
    assert!((1..=READERS.len()).contains(&n), "between 1 and 8 cards");
    // Serialise allocation inside this process; flock does the rest.
    static ALLOC: Mutex<()> = Mutex::new(());
    let deadline = Instant::now() + PORT_TIMEOUT;
    loop {
        {
            let _g = ALLOC.lock().unwrap_or_else(|e| e.into_inner());
            let states = reader_states();
            let mut got = Vec::new();
            for (port, reader) in READERS {
                if got.len() == n {
                    break;
                }
                let busy = states.iter().any(|(r, present)| r == reader && *present);
                if busy {
                    continue;
                }
                if let Some(l) = try_lock_port(port) {
                    got.push(l);
                }
            }
            if got.len() == n {
                return got;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no {n} free vpcd ports within {PORT_TIMEOUT:?}"
        );
        sleep(Duration::from_millis(250));
    }
}

// ---------------------------------------------------------------------------
// VCard

/// How to start a [`VCard`].
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Flash image; default: `card.flash` in the card's temp dir.
    pub flash: Option<PathBuf>,
    /// `--chain FILE`.
    pub chain: Option<PathBuf>,
    /// `--device-name NAME`.
    pub device_name: Option<String>,
    /// `--latency-ms N`: every response held N ms after its command
    /// arrived (0, the default, passes nothing).
    pub latency_ms: u32,
    /// `--profile NAME` (e.g. `rp2040`): the device's compute time for
    /// SIGN on top of the latency.
    pub profile: Option<String>,
    /// Further arguments for `picohsm-vcard`.
    pub extra_args: Vec<OsString>,
}

/// A running `picohsm-vcard` in one vpcd reader. Dropping it kills the
/// process and frees the reader.
pub struct VCard {
    lock: PortLock,
    reader: &'static str,
    dir: tempfile::TempDir,
    flash: PathBuf,
    opts: Options,
    child: Option<Child>,
}

impl VCard {
    /// A blank card (fresh flash image in a temp dir) in a free reader.
    pub fn start() -> VCard {
        VCard::start_with(Options::default())
    }

    /// A card on an existing (or to-be-created) flash image.
    pub fn start_with_flash(path: impl AsRef<Path>) -> VCard {
        VCard::start_with(Options {
            flash: Some(path.as_ref().to_path_buf()),
            ..Options::default()
        })
    }

    /// A card with the given options.
    pub fn start_with(opts: Options) -> VCard {
        VCard::start_many_with(vec![opts]).pop().unwrap()
    }

    /// `n` blank cards in `n` different readers.
    pub fn start_many(n: usize) -> Vec<VCard> {
        VCard::start_many_with(vec![Options::default(); n])
    }

    /// One card per `Options`, each in its own reader.
    pub fn start_many_with(opts: Vec<Options>) -> Vec<VCard> {
        check_readers();
        use_opensc_conf_in_process();
        use_harness_settings_in_process();
        let bin = vcard_binary();
        let locks = acquire_ports(opts.len());
        let mut cards: Vec<VCard> = locks
            .into_iter()
            .zip(opts)
            .map(|(lock, opts)| {
                let dir = tempfile::Builder::new()
                    .prefix(&format!("picohsm-vcard-{}-", lock.port))
                    .tempdir()
                    .expect("temp dir");
                let flash = opts
                    .flash
                    .clone()
                    .unwrap_or_else(|| dir.path().join("card.flash"));
                VCard {
                    reader: reader_for_port(lock.port),
                    lock,
                    dir,
                    flash,
                    opts,
                    child: None,
                }
            })
            .collect();
        for c in &mut cards {
            c.spawn(&bin);
        }
        for c in &mut cards {
            c.wait_presence(true);
        }
        cards
    }

    fn spawn(&mut self, bin: &Path) {
        assert!(self.child.is_none(), "already running");
        let stderr = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.stderr_path())
            .expect("vcard stderr log");
        let mut cmd = Command::new(bin);
        cmd.arg("--flash")
            .arg(&self.flash)
            .arg("--port")
            .arg(self.port().to_string())
            .arg("--apdu-log")
            .arg(self.apdu_log_path());
        if let Some(name) = &self.opts.device_name {
            cmd.arg("--device-name").arg(name);
        }
        if let Some(chain) = &self.opts.chain {
            cmd.arg("--chain").arg(chain);
        }
        if self.opts.latency_ms != 0 {
            cmd.arg("--latency-ms")
                .arg(self.opts.latency_ms.to_string());
        }
        if let Some(profile) = &self.opts.profile {
            cmd.arg("--profile").arg(profile);
        }
        cmd.args(&self.opts.extra_args)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        self.child = Some(
            cmd.spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display())),
        );
    }

    /// Waits until pcscd reports the card present (or absent) in its reader.
    fn wait_presence(&mut self, present: bool) {
        let deadline = Instant::now() + PRESENCE_TIMEOUT;
        loop {
            if card_present(self.reader) == Some(present) {
                return;
            }
            if present {
                if let Some(status) = self
                    .child
                    .as_mut()
                    .and_then(|c| c.try_wait().ok().flatten())
                {
                    panic!(
                        "picohsm-vcard on port {} exited with {status} before its card showed up\n{}",
                        self.port(),
                        self.stderr_log()
                    );
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "card {} in reader {:?} (port {}) within {PRESENCE_TIMEOUT:?}; readers: {:?}\n\
                     picohsm-vcard stderr:\n{}",
                    if present {
                        "did not appear"
                    } else {
                        "did not leave"
                    },
                    self.reader,
                    self.port(),
                    reader_states(),
                    self.stderr_log()
                );
            }
            sleep(Duration::from_millis(100));
        }
    }

    /// The PC/SC reader name (what `--slot-description`/`--reader` take).
    pub fn reader_name(&self) -> &str {
        self.reader
    }

    /// The vpcd TCP port.
    pub fn port(&self) -> u16 {
        self.lock.port
    }

    /// The flash image (`FILE`); the OTP image is [`VCard::otp_path`].
    pub fn flash_path(&self) -> &Path {
        &self.flash
    }

    /// The OTP image, `FILE.otp`.
    pub fn otp_path(&self) -> PathBuf {
        let mut s = self.flash.clone().into_os_string();
        s.push(".otp");
        PathBuf::from(s)
    }

    /// The card's private temp dir (APDU log, stderr, default flash image).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The `--apdu-log` file.
    pub fn apdu_log_path(&self) -> PathBuf {
        self.dir.path().join("apdu.log")
    }

    /// The APDU log so far, one entry per line (`> 00 A4 …`, `< 90 00`).
    pub fn apdu_log(&self) -> Vec<String> {
        fs::read_to_string(self.apdu_log_path())
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Empties the APDU log (the card appends, so this is safe while it runs).
    pub fn clear_apdu_log(&self) {
        if let Ok(f) = OpenOptions::new().write(true).open(self.apdu_log_path()) {
            f.set_len(0).expect("truncate the APDU log");
        }
    }

    fn stderr_path(&self) -> PathBuf {
        self.dir.path().join("vcard.stderr")
    }

    /// What `picohsm-vcard` wrote to stderr (all runs).
    pub fn stderr_log(&self) -> String {
        fs::read_to_string(self.stderr_path()).unwrap_or_default()
    }

    /// Whether the process is running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    fn terminate(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let status = child.wait().ok();
                panic!(
                    "picohsm-vcard on port {} ignored SIGTERM for 10 s (killed: {status:?})\n{}",
                    self.port(),
                    self.stderr_log()
                );
            }
            sleep(Duration::from_millis(20));
        }
    }

    /// Stops the card with SIGTERM, checks it exited with 0 and waits until
    /// pcscd sees the reader empty. The reader stays reserved: see
    /// [`VCard::start_again`].
    pub fn stop(&mut self) {
        if let Some(status) = self.terminate() {
            assert!(
                status.success(),
                "picohsm-vcard on port {} exited with {status}\n{}",
                self.port(),
                self.stderr_log()
            );
        }
        self.wait_presence(false);
    }

    /// Starts a stopped card again on the same files and reader.
    pub fn start_again(&mut self) {
        self.spawn(&vcard_binary());
        self.wait_presence(true);
    }

    /// Starts a stopped card again on the same files, expecting
    /// `picohsm-vcard` to refuse to start: waits (at most 10 s) for it to
    /// exit and returns its exit status and what this run wrote to stderr.
    /// The reader stays reserved, as after [`VCard::stop`].
    pub fn start_again_expecting_failure(&mut self) -> (ExitStatus, String) {
        let before = self.stderr_log().len();
        self.spawn(&vcard_binary());
        let mut child = self.child.take().expect("just spawned");
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for picohsm-vcard") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "picohsm-vcard on port {} kept running where it should have refused to start\n{}",
                    self.port(),
                    self.stderr_log()
                );
            }
            sleep(Duration::from_millis(20));
        };
        let log = self.stderr_log();
        (status, log.get(before..).unwrap_or_default().to_string())
    }

    /// The `--chain` file of the next [`VCard::start_again`].
    pub fn set_chain(&mut self, chain: Option<PathBuf>) {
        self.opts.chain = chain;
    }

    /// [`VCard::stop`] then [`VCard::start_again`]: a power cycle with the
    /// flash kept; all volatile card state (PIN status, selected applet) is lost.
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    /// Kills the process with SIGKILL (no clean shutdown) and waits until the
    /// reader is empty.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.wait_presence(false);
    }
}

impl Drop for VCard {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Free the reader only once pcscd has seen the card go, so that the
        // next user of this port does not mistake it for its own card.
        let deadline = Instant::now() + Duration::from_secs(5);
        while card_present(self.reader) == Some(true) && Instant::now() < deadline {
            sleep(Duration::from_millis(100));
        }
        if std::env::var_os("PICOHSM_KEEP_VCARD_DIRS").is_some() {
            let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir"));
            eprintln!("keeping {}", dir.keep().display());
        }
    }
}

// ---------------------------------------------------------------------------
// Our module through the `cryptoki` crate

/// The tests of one file that must take turns (C_Initialize is per
/// process, and a slot scan logs out every card it SELECTs): each holds
/// this while it runs.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// The CK_RV of a `cryptoki` error; panics on any other error.
pub fn rv(e: cryptoki::error::Error) -> cryptoki::error::RvError {
    match e {
        cryptoki::error::Error::Pkcs11(rv, _) => rv,
        other => panic!("not a PKCS#11 error: {other:?}"),
    }
}

/// libpicohsm_pkcs11.so loaded with `cryptoki` and initialised (OS locking).
pub fn our_module() -> cryptoki::context::Pkcs11 {
    use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
    let p11 = Pkcs11::new(module_path()).expect("load libpicohsm_pkcs11.so");
    p11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .expect("C_Initialize");
    p11
}

/// C_GenerateKeyPair of an EC P-256 token key pair that signs, with
/// CKA_ID `[id]` and, when given, `label` on both halves: (public,
/// private).
pub fn p256_key_pair(
    session: &cryptoki::session::Session,
    id: u8,
    label: Option<&str>,
) -> cryptoki::error::Result<(
    cryptoki::object::ObjectHandle,
    cryptoki::object::ObjectHandle,
)> {
    use cryptoki::mechanism::Mechanism;
    use cryptoki::object::Attribute;
    let params = picohsm_wire::curve::Curve::P256.oid_der().to_vec();
    let mut public = vec![
        Attribute::Token(true),
        Attribute::EcParams(params),
        Attribute::Id(vec![id]),
        Attribute::Verify(true),
    ];
    let mut private = vec![
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Id(vec![id]),
        Attribute::Sign(true),
    ];
    if let Some(l) = label {
        public.push(Attribute::Label(l.into()));
        private.push(Attribute::Label(l.into()));
    }
    session.generate_key_pair(&Mechanism::EccKeyPairGen, &public, &private)
}

/// A read-write session on `slot`, logged in as the user with [`PIN`].
pub fn user_session(
    p11: &cryptoki::context::Pkcs11,
    slot: cryptoki::slot::Slot,
) -> cryptoki::session::Session {
    let session = p11.open_rw_session(slot).expect("C_OpenSession");
    session
        .login(
            cryptoki::session::UserType::User,
            Some(&cryptoki::types::AuthPin::from(PIN)),
        )
        .expect("C_Login");
    session
}

/// C_CreateObject of the X.509 certificate `der` on the token, with
/// CKA_ID `[id]` (a key's, when it has one) and `label`.
pub fn store_certificate(session: &cryptoki::session::Session, id: u8, label: &str, der: &[u8]) {
    use cryptoki::object::{Attribute, CertificateType, ObjectClass};
    session
        .create_object(&[
            Attribute::Class(ObjectClass::CERTIFICATE),
            Attribute::CertificateType(CertificateType::X_509),
            Attribute::Token(true),
            Attribute::Id(vec![id]),
            Attribute::Label(label.into()),
            Attribute::Value(der.to_vec()),
        ])
        .unwrap_or_else(|e| panic!("C_CreateObject certificate {id:02x}: {e}"));
}

/// The objects of `class` with CKA_ID `[id]`.
pub fn find_by_id(
    session: &cryptoki::session::Session,
    class: cryptoki::object::ObjectClass,
    id: u8,
) -> Vec<cryptoki::object::ObjectHandle> {
    use cryptoki::object::Attribute;
    let template = [Attribute::Class(class), Attribute::Id(vec![id])];
    session.find_objects(&template).expect("C_FindObjects")
}

/// The slot of `card`'s reader.
pub fn slot_of(p11: &cryptoki::context::Pkcs11, card: &VCard) -> cryptoki::slot::Slot {
    p11.get_all_slots()
        .expect("C_GetSlotList")
        .into_iter()
        .find(|s| {
            p11.get_slot_info(*s)
                .is_ok_and(|i| i.slot_description() == card.reader_name())
        })
        .unwrap_or_else(|| panic!("no slot for {:?}", card.reader_name()))
}

/// The public key with CKA_ID `id` (hex) as PEM in `dir`, read with
/// `pkcs11-tool --read-object` through `tool` (a pkcs11-tool command with
/// its module and slot chosen) and converted by openssl.
pub fn public_pem_with(mut tool: Command, id: &str, dir: &Path) -> PathBuf {
    let der = dir.join(format!("pub{id}.der"));
    let pem = dir.join(format!("pub{id}.pem"));
    run_cmd(
        tool.args(["--read-object", "--type", "pubkey", "--id", id, "-o"])
            .arg(&der),
    );
    run_cmd(
        Command::new("openssl")
            .args(["pkey", "-pubin", "-inform", "DER", "-in"])
            .arg(&der)
            .arg("-out")
            .arg(&pem),
    );
    pem
}

/// An ECDH peer made by openssl in `dir`: its P-256 private key (PEM) and
/// public key (DER SubjectPublicKeyInfo).
pub fn openssl_p256_peer(dir: &Path) -> (PathBuf, PathBuf) {
    let (peer, public) = (dir.join("peer.pem"), dir.join("peer_pub.der"));
    run_cmd(
        Command::new("openssl")
            .args(["genpkey", "-algorithm", "EC", "-pkeyopt"])
            .args(["ec_paramgen_curve:P-256", "-out"])
            .arg(&peer),
    );
    run_cmd(
        Command::new("openssl")
            .args(["pkey", "-in"])
            .arg(&peer)
            .args(["-pubout", "-outform", "DER", "-out"])
            .arg(&public),
    );
    (peer, public)
}

/// openssl's ECDH secret of private key `peer` (PEM) with `public` (PEM).
pub fn openssl_derive(peer: &Path, public: &Path) -> Vec<u8> {
    let out = peer.with_extension("z");
    run_cmd(
        Command::new("openssl")
            .args(["pkeyutl", "-derive", "-inkey"])
            .arg(peer)
            .arg("-peerkey")
            .arg(public)
            .arg("-out")
            .arg(&out),
    );
    fs::read(out).expect("openssl's secret")
}

/// A key pair generated through our module with pkcs11-tool (`key_type` as
/// pkcs11-tool names it), after `--login --pin pin`; checks it was made.
pub fn our_keypairgen(card: &VCard, pin: &str, key_type: &str, id: &str) {
    let out = text(&run_cmd(our_pkcs11_tool_command(card).args([
        "--login",
        "--pin",
        pin,
        "--keypairgen",
        "--key-type",
        key_type,
        "--id",
        id,
    ])));
    assert!(out.contains("Key pair generated"), "{out}");
}

// ---------------------------------------------------------------------------
// A card of the test's own, in-process

/// A [`picohsm_vcard::VirtualCard`] of the test's own (a rogue or broken
/// card) served to pcscd from a thread of the test process, in a free vpcd
/// reader. Dropping it takes the card out and frees the reader.
pub struct RogueCard {
    lock: PortLock,
    reader: &'static str,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RogueCard {
    /// Plugs `card` into a free reader and waits until pcscd sees it.
    pub fn start<C: picohsm_vcard::VirtualCard + Send + 'static>(card: C) -> RogueCard {
        check_readers();
        use_opensc_conf_in_process();
        use_harness_settings_in_process();
        let lock = acquire_ports(1).pop().unwrap();
        let reader = reader_for_port(lock.port);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut client = picohsm_vcard::Client::new(card, "127.0.0.1", lock.port, stop.clone());
        let thread = std::thread::spawn(move || client.run());
        let deadline = Instant::now() + PRESENCE_TIMEOUT;
        while card_present(reader) != Some(true) {
            assert!(
                Instant::now() < deadline,
                "the rogue card did not appear in {reader:?}"
            );
            sleep(Duration::from_millis(100));
        }
        RogueCard {
            lock,
            reader,
            stop,
            thread: Some(thread),
        }
    }

    /// The PC/SC reader name.
    pub fn reader_name(&self) -> &str {
        self.reader
    }

    /// The vpcd port.
    pub fn port(&self) -> u16 {
        self.lock.port
    }
}

impl Drop for RogueCard {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let deadline = Instant::now() + PRESENCE_TIMEOUT;
        while card_present(self.reader) == Some(true) && Instant::now() < deadline {
            sleep(Duration::from_millis(100));
        }
    }
}

/// The slot of the reader named `reader`.
pub fn slot_of_reader(p11: &cryptoki::context::Pkcs11, reader: &str) -> cryptoki::slot::Slot {
    p11.get_all_slots()
        .expect("C_GetSlotList")
        .into_iter()
        .find(|s| {
            p11.get_slot_info(*s)
                .is_ok_and(|i| i.slot_description() == reader)
        })
        .unwrap_or_else(|| panic!("no slot for {reader:?}"))
}

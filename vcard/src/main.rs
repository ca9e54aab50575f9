//! `picohsm-vcard`: a Pico HSM as a virtual smart card behind pcscd.
//!
//! Connects to the vsmartcard `vpcd` driver loaded by pcscd (TCP, port 35963
//! for the first reader) and serves the card until SIGTERM or SIGINT: it
//! answers the APDU in progress, however busy its clients keep it, and exits
//! with status 0 (a second signal during a long APDU exits at once, status
//! 1). The card's flash image is `--flash FILE`, its OTP area (the device
//! secret) `FILE.otp`; both are replaced atomically and durably on every
//! write, before the command's response leaves, so a kill at any moment
//! keeps every acknowledged write. An image that cannot be read stops the
//! program with a sentence naming the file, as a refused one does. A flash image that the firmware refuses (not a picohsm image, the
//! old unauthenticated format, truncated, altered, sealed under another
//! device secret, or present without its OTP file) stops the program before
//! the card starts: one line on stderr names the file and the reason, the
//! exit status is 1, and neither file is touched.

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use clap::Parser;
use picohsm_firmware::{Card, CardConfig, Storage};
use picohsm_vcard::cli::Args;
use picohsm_vcard::{ApduLog, Client, FileStorage, Latency};

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(suffix);
    PathBuf::from(name)
}

fn run(args: Args) -> Result<(), String> {
    if let Some(dir) = args.flash.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create the directory {}: {e}", dir.display()))?;
    }

    // One process per image: two cards writing the same file would lose data.
    let lock_path = with_suffix(&args.flash, ".lock");
    let lock = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&lock_path)
        .map_err(|e| format!("cannot open {}: {e}", lock_path.display()))?;
    lock.try_lock().map_err(|_| {
        format!(
            "{} is in use by another picohsm-vcard (lock {} is held); stop that one first",
            args.flash.display(),
            lock_path.display()
        )
    })?;

    let flash = FileStorage::new(&args.flash);
    let otp = FileStorage::new(with_suffix(&args.flash, ".otp"));
    for s in [&flash, &otp] {
        s.check()
            .map_err(|e| format!("cannot read {}: {e}", s.path().display()))?;
    }

    let device_chain = match &args.chain {
        Some(p) => Some(
            std::fs::read(p).map_err(|e| format!("cannot read the chain {}: {e}", p.display()))?,
        ),
        None => None,
    };

    let apdu_log = match &args.apdu_log {
        Some(p) => Some(
            ApduLog::open(p)
                .map_err(|e| format!("cannot open the APDU log {}: {e}", p.display()))?,
        ),
        None => None,
    };

    // The first SIGTERM or SIGINT stops the card after the APDU in
    // progress (answered, its image stored); a second one while that APDU
    // still runs (a long key generation) exits at once with status 1, which
    // the atomic image replacement makes safe too.
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register_conditional_shutdown(sig, 1, stop.clone())
            .and_then(|_| signal_hook::flag::register(sig, stop.clone()))
            .map_err(|e| format!("cannot install the signal handler: {e}"))?;
    }

    let flash: Box<dyn Storage> = Box::new(flash);
    let otp: Box<dyn Storage> = Box::new(otp);
    let rng = Box::new(rand_core::UnwrapErr(getrandom::SysRng));
    let config = CardConfig {
        device_chain,
        device_name: args.device_name.map(String::into_bytes),
    };
    let otp_path = with_suffix(&args.flash, ".otp");
    let card = Card::new(flash, otp, rng, config).map_err(|e| {
        format!(
            "cannot start the card on {} (device secret in {}): {e}",
            args.flash.display(),
            otp_path.display()
        )
    })?;
    log::info!("card ready, flash image {}", args.flash.display());
    if apdu_log.is_some() {
        log::warn!("APDU log enabled: it records PINs in clear");
    }

    let latency = Latency::new(args.latency_ms, args.profile);
    if latency != Latency::default() {
        log::info!(
            "modelled device: responses held {} ms after their command{}",
            args.latency_ms,
            args.profile.map_or(String::new(), |p| format!(
                ", plus {} compute time for SIGN",
                p.name()
            ))
        );
    }
    let mut client = Client::new(card, args.host, args.port, stop).with_latency(latency);
    if let Some(l) = apdu_log {
        client = client.with_apdu_log(l);
    }
    client.run();
    drop(lock);
    Ok(())
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("picohsm-vcard: {msg}");
            ExitCode::FAILURE
        }
    }
}

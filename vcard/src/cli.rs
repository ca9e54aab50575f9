//! The command line of `picohsm-vcard` (clap derive), in the library so
//! that the packaging generator (xtask) renders its man page and shell
//! completions from the very definition the binary parses.

use std::path::PathBuf;

use clap::Parser;

pub use crate::latency::Profile;

/// Runs a Pico HSM (SmartCard-HSM command set) as a virtual smart card for
/// pcscd's vsmartcard vpcd driver.
#[derive(Parser, Debug)]
#[command(
    name = "picohsm-vcard",
    version,
    after_help = "Connection events are logged to stderr; set RUST_LOG (error, warn, info, debug) \
                  to choose how much. Stop with SIGTERM or SIGINT (exit status 0, after the \
                  APDU in progress; a second signal exits at once with status 1)."
)]
pub struct Args {
    /// The card's flash image (created on first start). The OTP area that
    /// holds the device secret is kept next to it in FILE.otp; together they
    /// are the card: keep them private and back them up together.
    #[arg(long, value_name = "FILE")]
    pub flash: PathBuf,

    /// TCP port of the vpcd reader slot (35963 = first slot of the default
    /// vpcd configuration, 35964 = second).
    #[arg(long, default_value_t = 35963)]
    pub port: u16,

    /// Host where pcscd with the vpcd driver runs.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,

    /// Append every command APDU ("> 00 A4 ...") and response ("< 90 00") to
    /// FILE. WARNING: this log contains PINs, SO PINs and any other secret
    /// sent to the card, in clear. Use it for tests and debugging only.
    #[arg(long, value_name = "FILE")]
    pub apdu_log: Option<PathBuf>,

    /// A CV certificate chain (device certificate first, binary) to install
    /// as the device chain in EF 2F02.
    #[arg(long, value_name = "FILE")]
    pub chain: Option<PathBuf>,

    /// The device name: the CHR of the device certificate, 8 to 16 capital
    /// letters and digits (e.g. ESPICOHSMTRAAAA1, as upstream Pico HSMs
    /// share the serial ESPICOHSMTR). The card's test chain is issued for
    /// it; without it a new card takes a random ZZPHSM…00001.
    #[arg(long, value_name = "NAME")]
    pub device_name: Option<String>,

    /// Hold every response until N ms after its command arrived, as a
    /// device on USB takes (a Pico HSM: about 2 ms). The card's own compute
    /// time counts toward it. 0: answer at once.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub latency_ms: u32,

    /// Add a device's compute time for SIGN on top of --latency-ms: rp2040
    /// (ECDSA 250 ms, an estimate; RSA-1024 1 s, 2048 3 s, 3072 7 s, 4096
    /// 15 s). Key generation is not modelled (RSA-2048 takes about 2 min on
    /// the device).
    #[arg(long, value_name = "NAME")]
    pub profile: Option<Profile>,
}

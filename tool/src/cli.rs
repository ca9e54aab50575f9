//! The command line (clap derive). Values that can be checked without a
//! card (PIN lengths, the SO-PIN's 16 hex digits, key types) are checked
//! here, so a mistake is a usage error (exit 2) before anything is sent.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use picohsm_pkcs11::card::keys::KeySpec;
use picohsm_wire::curve::Curve;
use zeroize::Zeroizing;

const AFTER_HELP: &str = "\
Devices are addressed by reader name: --reader takes a part of the name
or a glob (\"Nitrokey*\"). Without it the tool uses the only SmartCard-HSM
present and lists the readers when there is none or more than one. The
tool sends SELECT (which logs out other applications using the card) only
to a card whose applet is not selected yet.

Exit codes:
  0  success
  1  the card refused or failed the operation (the message gives the
     status word, its meaning and what to do)
  2  usage error (bad or missing arguments)
  3  no device: pcscd not reachable, no reader or no SmartCard-HSM found,
     the reader named by --reader does not exist or holds no card
  4  wrong PIN or PIN blocked (the message gives the tries left)

With --json the result, or the error with its exit code, status word and
tries left, is one JSON object on stdout (argument errors excepted: they
are reported by the parser); progress and step reports go to stderr.";

/// Administration of Pico HSM / SmartCard-HSM tokens: initialisation,
/// keys, PINs and Public Key Authentication (PKA).
#[derive(Debug, Parser)]
#[command(name = "picohsm-tool", version, after_help = AFTER_HELP)]
pub struct Cli {
    /// The reader of the device: part of its name, or a glob.
    #[arg(short, long, global = true, value_name = "NAME")]
    pub reader: Option<String>,
    /// Print the result as one JSON object (for scripts).
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Readers and devices: device name, serial, version, PIN and PKA state.
    List,
    /// Initialise a device: SO-PIN, user PIN, PKA n-of-m, DKEK shares and
    /// label, in one step. Erases every key, certificate and object.
    Init(InitArgs),
    /// Generate a key pair on the device (as OpenSC lays it out, named for PKA).
    Keygen(KeygenArgs),
    /// Public Key Authentication: export, register, status, login.
    #[command(subcommand)]
    Pka(PkaCommand),
    /// Change or unblock a PIN.
    #[command(subcommand)]
    Pin(PinCommand),
}

/// `pka` subcommands.
#[derive(Debug, Subcommand)]
pub enum PkaCommand {
    /// Export a public key for registration on a PKA device: from a
    /// SmartCard-HSM key (the file sc-hsm-tool --export-for-pub-key-auth
    /// writes), or from a key in a PKCS#11 token (a self-signed request).
    Export(ExportArgs),
    /// Register an exported public key on this device (needs the user PIN,
    /// or the SO-PIN on a device without user PIN; once m keys are
    /// registered, also a PKA login, run first with --auth-pin).
    Register(RegisterArgs),
    /// The PKA state: authenticated keys, scheme, registered keys.
    Status,
    /// A test login: one PKA round per authenticator until the quorum,
    /// reporting each step; the device is logged out again at the end.
    Login(LoginArgs),
}

/// `pin` subcommands.
#[derive(Debug, Subcommand)]
pub enum PinCommand {
    /// Change the user PIN (or, with --so, the SO-PIN).
    Change(ChangeArgs),
    /// Unblock the user PIN with the SO-PIN (and set a new one).
    Unblock(UnblockArgs),
}

/// A user PIN as typed: 1 to 16 bytes (the card's limit).
#[derive(Clone)]
pub struct Pin(pub Zeroizing<Vec<u8>>);

impl std::fmt::Debug for Pin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pin(…)")
    }
}

/// The SO-PIN: 16 hex digits, 8 bytes on the wire (docs/protocol.md §4.1 tag 82).
#[derive(Clone)]
pub struct SoPin(pub Zeroizing<[u8; 8]>);

impl std::fmt::Debug for SoPin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SoPin(…)")
    }
}

fn parse_pin(s: &str) -> Result<Pin, String> {
    if s.is_empty() || s.len() > 16 {
        return Err("a PIN has 1 to 16 characters".into());
    }
    Ok(Pin(Zeroizing::new(s.as_bytes().to_vec())))
}

/// A PIN to set: 6 to 16 characters, as OpenSC's sc-hsm driver requires.
fn parse_new_pin(s: &str) -> Result<Pin, String> {
    if !(6..=16).contains(&s.len()) {
        return Err("a new PIN has 6 to 16 characters".into());
    }
    parse_pin(s)
}

fn parse_so_pin(s: &str) -> Result<SoPin, String> {
    let bytes = Zeroizing::new(
        hex::decode(s).map_err(|_| "the SO-PIN is 16 hexadecimal digits".to_string())?,
    );
    let arr: [u8; 8] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| "the SO-PIN is 16 hexadecimal digits".to_string())?;
    Ok(SoPin(Zeroizing::new(arr)))
}

/// An identifier given in hex (CKA_ID). A newtype, because clap reads an
/// `Option<Vec<u8>>` field as a list of numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HexId(pub Vec<u8>);

impl std::ops::Deref for HexId {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.0
    }
}

fn parse_hex(s: &str) -> Result<HexId, String> {
    let v = hex::decode(s).map_err(|_| format!("{s:?} is not hexadecimal"))?;
    if v.is_empty() || v.len() > 255 {
        return Err("1 to 255 bytes".into());
    }
    Ok(HexId(v))
}

/// The curves by the names OpenSSL, OpenSC and the SEC/RFC standards use.
pub fn curve_by_name(name: &str) -> Option<Curve> {
    let n = name.to_ascii_lowercase().replace(['-', '_'], "");
    Some(match n.as_str() {
        "prime256v1" | "secp256r1" | "p256" | "nistp256" => Curve::P256,
        "secp384r1" | "p384" | "nistp384" => Curve::P384,
        "secp521r1" | "p521" | "nistp521" => Curve::P521,
        "secp256k1" => Curve::Secp256k1,
        "brainpoolp256r1" => Curve::BrainpoolP256r1,
        _ => return None,
    })
}

fn parse_key_type(s: &str) -> Result<KeySpec, String> {
    let (kind, param) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?}: use ec:<curve> or rsa:<bits>"))?;
    match kind.to_ascii_lowercase().as_str() {
        "ec" => curve_by_name(param).map(KeySpec::Ec).ok_or_else(|| {
            format!(
                "unknown curve {param:?}: secp256r1 (prime256v1), secp384r1, secp521r1, secp256k1, brainpoolP256r1"
            )
        }),
        "rsa" => match param.parse::<usize>() {
            Ok(b) if (1024..=4096).contains(&b) && b % 8 == 0 => Ok(KeySpec::rsa(b)),
            _ => Err("RSA sizes are 1024 to 4096 bits, a multiple of 8".into()),
        },
        _ => Err(format!("{s:?}: use ec:<curve> or rsa:<bits>")),
    }
}

/// `init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The SO-PIN (16 hex digits). On an initialised device it must be the
    /// current one.
    #[arg(long, value_name = "HEX16", value_parser = parse_so_pin)]
    pub so_pin: SoPin,
    /// The user PIN (6 to 16 characters). Without it the device is
    /// PKA-only, and its keys are sealed under a device key instead.
    #[arg(long, value_parser = parse_new_pin)]
    pub pin: Option<Pin>,
    /// Tries before the user PIN blocks (1 to 10).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=10))]
    pub pin_retries: u8,
    /// PKA: the number of public keys that can be registered (n, 1 to 8 on
    /// a Pico HSM).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..=90))]
    pub pka_keys: Option<u8>,
    /// PKA: the number of keys needed per login (m, at most n).
    #[arg(long, value_name = "M", requires = "pka_keys", value_parser = clap::value_parser!(u8).range(1..=90))]
    pub pka_required: Option<u8>,
    /// The number of DKEK shares to import later (0: the device makes a
    /// random DKEK itself; absent: no DKEK).
    #[arg(long, value_name = "N")]
    pub dkek_shares: Option<u8>,
    /// The token label (EF.TokenInfo). Written only to devices that accept
    /// it (this project's firmware); others are left with theirs.
    #[arg(long)]
    pub label: Option<String>,
    /// Allow replacing a registered PKA key later (option 0008).
    #[arg(long)]
    pub replace_pka: bool,
    /// Do not allow the SO to reset the user PIN (clears option 0001).
    #[arg(long)]
    pub no_pin_reset: bool,
    /// Allow resetting the user PIN's counter without a new PIN (option 0020).
    #[arg(long)]
    pub reset_counter_only: bool,
    /// Initialise a device that is already initialised (erasing its keys).
    #[arg(long)]
    pub force: bool,
}

/// `keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// The user PIN.
    #[arg(long, value_parser = parse_pin)]
    pub pin: Pin,
    /// ec:<curve> (secp256r1, brainpoolP256r1, secp384r1, secp521r1,
    /// secp256k1) or rsa:<bits> (1024 to 4096).
    #[arg(long, default_value = "ec:secp256r1", value_parser = parse_key_type)]
    pub key_type: KeySpec,
    /// The key's label (CKA_LABEL).
    #[arg(long, default_value = "Authentication")]
    pub label: String,
    /// The key's CKA_ID in hex (default: OpenSC's, a hash of the public key).
    #[arg(long, value_name = "HEX", value_parser = parse_hex)]
    pub id: Option<HexId>,
    /// The key's name (CHR) for PKA (default: a name made from the whole
    /// device name, unique across devices that share a serial, and a
    /// sequence number no other key of the device has).
    #[arg(long)]
    pub chr: Option<String>,
}

/// `pka export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Where to write the PKA file.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// SmartCard-HSM: the key reference (as sc-hsm-tool -i takes it).
    #[arg(long, conflicts_with = "pkcs11_module")]
    pub key_ref: Option<u8>,
    /// The key's label (CKA_LABEL).
    #[arg(long)]
    pub key_label: Option<String>,
    /// SmartCard-HSM: the key's CHR.
    #[arg(long, conflicts_with = "pkcs11_module")]
    pub chr: Option<String>,
    /// Export from a key in this PKCS#11 module instead of a SmartCard-HSM.
    #[arg(long, value_name = "PATH")]
    pub pkcs11_module: Option<PathBuf>,
    /// PKCS#11: the token's label.
    #[arg(long, requires = "pkcs11_module")]
    pub token_label: Option<String>,
    /// PKCS#11: the key's CKA_ID in hex.
    #[arg(long, value_name = "HEX", requires = "pkcs11_module", value_parser = parse_hex)]
    pub key_id: Option<HexId>,
    /// PKCS#11: the token's user PIN (the key signs its own request).
    #[arg(long, requires = "pkcs11_module", value_parser = parse_pin)]
    pub pin: Option<Pin>,
}

/// `pka register`.
#[derive(Debug, Args)]
pub struct RegisterArgs {
    /// The PKA file (from `pka export` or sc-hsm-tool --export-for-pub-key-auth).
    pub file: PathBuf,
    /// The user PIN: registration needs it (or the SO-PIN) verified.
    #[arg(long, value_parser = parse_pin, required_unless_present = "so_pin")]
    pub pin: Option<Pin>,
    /// The SO-PIN instead of the user PIN (a PKA-only device has no user PIN).
    #[arg(long, value_name = "HEX16", value_parser = parse_so_pin)]
    pub so_pin: Option<SoPin>,
    /// Replace the key in this slot (needs option 0008: init --replace-pka).
    #[arg(long, value_name = "SLOT")]
    pub replace: Option<u8>,
    /// Register even when a key of the same name (CHR) is registered
    /// already. The device addresses registered keys by name, so the newer
    /// one may never be usable; this firmware refuses it anyway (6A89).
    #[arg(long)]
    pub force: bool,
    /// The authenticators' PIN: once the device has m keys registered, a
    /// further key is registered only after a PKA login (the quorum) in
    /// the same card session, which the tool runs first, as `pka login`.
    #[arg(long, value_parser = parse_pin)]
    pub auth_pin: Option<Pin>,
    /// Where the authenticators are, for that login.
    #[command(flatten)]
    pub authenticators: AuthenticatorArgs,
}

/// The authenticators of a PKA login (`pka login`, `pka register`).
#[derive(Debug, Args)]
pub struct AuthenticatorArgs {
    /// Authenticator: a SmartCard-HSM in a reader matching this glob
    /// (default: the module's configuration, else any other SmartCard-HSM).
    #[arg(long, value_name = "GLOB")]
    pub authenticator_reader: Vec<String>,
    /// Authenticator: a key in this PKCS#11 module.
    #[arg(long, value_name = "PATH")]
    pub authenticator_module: Option<PathBuf>,
    /// PKCS#11 authenticator: the token's label.
    #[arg(long, requires = "authenticator_module")]
    pub authenticator_token_label: Option<String>,
    /// The authenticator key's label.
    #[arg(long)]
    pub authenticator_key_label: Option<String>,
    /// How long to wait for the next authenticator token, in seconds.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub wait: u64,
    /// Trust picohsm-vcard's test PKI and self-signed device certificates
    /// for the device's chain (the module's `allow-test-chains`): for
    /// tests only.
    #[arg(long)]
    pub allow_test_chain: bool,
    /// A CV certificate of a root the device's chain must lead to (the
    /// module's `device-roots`; repeatable).
    #[arg(long, value_name = "FILE")]
    pub device_root: Vec<PathBuf>,
}

/// `pka login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The authenticators' PIN.
    #[arg(long, value_parser = parse_pin)]
    pub pin: Pin,
    /// The device's user PIN, verified after the quorum (it unlocks the
    /// keys on a PKA + PIN device).
    #[arg(long, value_parser = parse_pin)]
    pub primary_pin: Option<Pin>,
    /// Where the authenticators are.
    #[command(flatten)]
    pub authenticators: AuthenticatorArgs,
}

/// `pin change`.
#[derive(Debug, Args)]
pub struct ChangeArgs {
    /// Change the SO-PIN (16 hex digits each) instead of the user PIN.
    #[arg(long)]
    pub so: bool,
    /// The current PIN.
    #[arg(long)]
    pub old: String,
    /// The new PIN.
    #[arg(long)]
    pub new: String,
}

/// `pin unblock`.
#[derive(Debug, Args)]
pub struct UnblockArgs {
    /// The SO-PIN.
    #[arg(long, value_name = "HEX16", value_parser = parse_so_pin)]
    pub so_pin: SoPin,
    /// The new user PIN (without it only the counter is reset, which needs
    /// init --reset-counter-only).
    #[arg(long, value_parser = parse_new_pin)]
    pub new_pin: Option<Pin>,
}

/// A PIN's bytes, wiped when dropped.
pub type Secret = Zeroizing<Vec<u8>>;

/// Checks a `pin change` argument: `so` wants 16 hex digits, else 1-16
/// characters (6-16 for the new one).
pub fn change_values(a: &ChangeArgs) -> Result<(Secret, Secret), String> {
    if a.so {
        let old = parse_so_pin(&a.old)?;
        let new = parse_so_pin(&a.new)?;
        Ok((
            Zeroizing::new(old.0.to_vec()),
            Zeroizing::new(new.0.to_vec()),
        ))
    } else {
        Ok((parse_pin(&a.old)?.0, parse_new_pin(&a.new)?.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn hex_ids_are_one_value() {
        let cli =
            Cli::try_parse_from(["picohsm-tool", "keygen", "--pin", "123456", "--id", "0A1B"])
                .unwrap();
        let Command::Keygen(k) = cli.command else {
            panic!("keygen")
        };
        assert_eq!(k.id, Some(HexId(vec![0x0A, 0x1B])));
        let cli = Cli::try_parse_from([
            "picohsm-tool",
            "pka",
            "export",
            "-o",
            "f",
            "--pkcs11-module",
            "/m.so",
            "--key-id",
            "02",
        ])
        .unwrap();
        let Command::Pka(PkaCommand::Export(e)) = cli.command else {
            panic!("export")
        };
        assert_eq!(e.key_id, Some(HexId(vec![2])));
    }

    #[test]
    fn the_cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn values_are_checked_before_any_card_is_touched() {
        assert!(parse_so_pin("3537363231383830").is_ok());
        assert!(parse_so_pin("35373632313838").is_err());
        assert!(parse_so_pin("zz37363231383830").is_err());
        assert!(parse_new_pin("12345").is_err());
        assert_eq!(
            parse_key_type("EC:prime256v1").unwrap(),
            KeySpec::Ec(Curve::P256)
        );
        assert_eq!(
            parse_key_type("ec:brainpoolP256r1").unwrap(),
            KeySpec::Ec(Curve::BrainpoolP256r1)
        );
        assert_eq!(parse_key_type("rsa:4096").unwrap(), KeySpec::rsa(4096));
        assert!(parse_key_type("rsa:512").is_err());
        assert!(parse_key_type("ec:sect163k1").is_err());
    }
}

//! pkcs11-tool and openssl as the end-to-end tests run them: one way to
//! call pkcs11-tool on a card through either module, and the argument
//! lists the tests share (key generation, signing, openssl's checks).
#![allow(dead_code)]

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::*;

/// `sc-hsm-tool --initialize` with the test PINs and `extra` options, as
/// the Pico documentation gives it.
pub fn initialize(card: &VCard, extra: &[&str]) {
    let mut args = vec!["--initialize", "--so-pin", SO_PIN, "--pin", PIN];
    args.extend_from_slice(extra);
    sc_hsm_tool(card, args);
}

/// A card initialised with the test PINs.
pub fn initialised_card() -> VCard {
    let card = VCard::start();
    initialize(&card, &[]);
    card
}

/// The PKCS#11 module pkcs11-tool loads.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Module {
    /// libpicohsm_pkcs11.so.
    Ours,
    /// OpenSC's opensc-pkcs11.so.
    OpenSc,
}

/// pkcs11-tool on one card: which module, and the PIN it logs in with.
#[derive(Clone, Copy, Debug)]
pub struct P11<'a> {
    module: Module,
    pin: Option<&'a str>,
}

/// pkcs11-tool through this project's module, not logged in.
pub const OURS: P11<'static> = P11 {
    module: Module::Ours,
    pin: None,
};

/// pkcs11-tool through OpenSC's module, not logged in.
pub const THEIRS: P11<'static> = P11 {
    module: Module::OpenSc,
    pin: None,
};

impl<'a> P11<'a> {
    /// pkcs11-tool through `module`, not logged in.
    pub fn with(module: Module) -> P11<'static> {
        P11 { module, pin: None }
    }

    /// Logged in with the test PIN.
    pub fn login(self) -> P11<'a> {
        self.login_with(PIN)
    }

    /// Logged in with `pin` (`--login --pin pin`).
    pub fn login_with<'b>(self, pin: &'b str) -> P11<'b> {
        P11 {
            module: self.module,
            pin: Some(pin),
        }
    }

    /// The command on `card`'s slot, logged in if asked, ready for more
    /// arguments.
    pub fn command(&self, card: &VCard) -> Command {
        let mut c = match self.module {
            Module::Ours => our_pkcs11_tool_command(card),
            Module::OpenSc => pkcs11_tool_command(card),
        };
        if let Some(pin) = self.pin {
            c.args(["--login", "--pin", pin]);
        }
        c
    }

    /// Runs pkcs11-tool with `args`, whatever its exit status.
    pub fn run_allow_fail<I, S>(&self, card: &VCard, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run_cmd_allow_fail(self.command(card).args(args))
    }

    /// Runs pkcs11-tool with `args`; panics on failure, with the card's
    /// last APDUs. Returns stdout and stderr.
    pub fn run<I, S>(&self, card: &VCard, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<S> = args.into_iter().collect();
        let out = self.run_allow_fail(card, &args);
        if !out.status.success() {
            let log = card.apdu_log();
            let tail = &log[log.len().saturating_sub(40)..];
            let shown: Vec<_> = args.iter().map(|a| a.as_ref().to_owned()).collect();
            panic!(
                "pkcs11-tool ({:?}) {shown:?}: {}\nAPDUs:\n{}",
                self.module,
                text(&out),
                tail.join("\n")
            );
        }
        text(&out)
    }

    /// The public key with CKA_ID `id` as PEM in `dir` (see
    /// [`public_pem_with`]).
    pub fn public_pem(&self, card: &VCard, id: &str, dir: &Path) -> PathBuf {
        public_pem_with(self.command(card), id, dir)
    }
}

/// Strings as arguments.
fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|x| x.to_string()).collect()
}

/// pkcs11-tool's arguments to generate a key pair (`key_type` as
/// pkcs11-tool names it) with CKA_ID `id` and CKA_LABEL `label`.
pub fn keypairgen(key_type: &str, id: &str, label: &str) -> Vec<String> {
    args(&[
        "--keypairgen",
        "--key-type",
        key_type,
        "--id",
        id,
        "--label",
        label,
    ])
}

/// Generates key pairs on `card` with `p11`, one per `(key type, id,
/// label)`; checks each was made.
pub fn keypairgens(p11: P11, card: &VCard, keys: &[(&str, &str, &str)]) {
    for (key_type, id, label) in keys {
        let out = p11.run(card, keypairgen(key_type, id, label));
        assert!(out.contains("Key pair generated"), "{key_type}: {out}");
    }
}

/// `--signature-format openssl`: ECDSA signatures in DER, as openssl reads
/// them.
pub const OPENSSL_FORMAT: &[&str] = &["--signature-format", "openssl"];

/// pkcs11-tool's arguments for an operation with a key: `flag` (`--sign`,
/// `--decrypt`, `--derive`) with `mechanism` and key `id`, from `input`
/// into `out`, then `extra`.
pub fn op(
    flag: &str,
    mechanism: &str,
    id: &str,
    input: &Path,
    out: &Path,
    extra: &[&str],
) -> Vec<String> {
    let mut a = args(&[flag, "--mechanism", mechanism, "--id", id]);
    a.extend(["-i".into(), s(input), "-o".into(), s(out)]);
    a.extend(args(extra));
    a
}

/// pkcs11-tool's arguments to verify `sig` over `input` with key `id` and
/// `mechanism` (the module's C_Verify), then `extra`.
pub fn verify(mechanism: &str, id: &str, input: &Path, sig: &Path, extra: &[&str]) -> Vec<String> {
    let mut a = args(&["--verify", "--mechanism", mechanism, "--id", id]);
    a.extend(["-i".into(), s(input), "--signature-file".into(), s(sig)]);
    a.extend(args(extra));
    a
}

/// pkcs11-tool's arguments to read object `kind` ("cert", "data",
/// "pubkey") named by `by` (`["--id", "01"]`, `["--label", "x"]`) into
/// `out`.
pub fn read_object(kind: &str, by: [&str; 2], out: &Path) -> Vec<String> {
    let mut a = args(&["--read-object", "--type", kind, by[0], by[1], "-o"]);
    a.push(s(out));
    a
}

/// pkcs11-tool's arguments to write `file` as an object of `kind`
/// ("cert", "data") with `attributes` (`["--id", "20", "--label", "x"]`).
pub fn write_object(file: &Path, kind: &str, attributes: &[&str]) -> Vec<String> {
    let mut a = vec!["--write-object".to_string(), s(file)];
    a.extend(args(&["--type", kind]));
    a.extend(args(attributes));
    a
}

/// pkcs11-tool's arguments to delete the object of `kind` named by `by`
/// (`["--id", "01"]`, `["--label", "x"]`).
pub fn delete_object<'a>(kind: &'a str, by: [&'a str; 2]) -> [&'a str; 5] {
    ["--delete-object", "--type", kind, by[0], by[1]]
}

/// pkcs11-tool's arguments to set a new user PIN as the SO.
pub fn so_init_pin(new_pin: &str) -> [&str; 8] {
    [
        "--login",
        "--login-type",
        "so",
        "--so-pin",
        SO_PIN,
        "--init-pin",
        "--new-pin",
        new_pin,
    ]
}

/// `pkcs11-tool --test --login` with `module` on a fresh card with an EC
/// P-256 key (id 01) and an RSA-1024 key (id 02) made through the same
/// module.
pub fn self_test(module: Module) -> Output {
    let card = initialised_card();
    let p11 = P11::with(module).login();
    for (key_type, id, label) in [("EC:prime256v1", "01", "ec"), ("rsa:1024", "02", "rsa")] {
        p11.run(&card, keypairgen(key_type, id, label));
    }
    p11.run_allow_fail(&card, ["--test"])
}

/// The blocks of a pkcs11-tool listing, each from an unindented line to
/// the next.
pub fn listing_blocks(listing: &str) -> Vec<&str> {
    let mut starts: Vec<usize> = listing
        .match_indices('\n')
        .map(|(i, _)| i + 1)
        .filter(|i| {
            listing[*i..]
                .chars()
                .next()
                .is_some_and(|c| !c.is_whitespace())
        })
        .collect();
    starts.insert(0, 0);
    starts.push(listing.len());
    starts.windows(2).map(|w| &listing[w[0]..w[1]]).collect()
}

/// The block of a pkcs11-tool listing for the object of kind `kind`
/// ("Public Key Object", "Certificate Object", ...) whose field `name`
/// ("label:", "ID:") is `value`.
pub fn listing_block<'a>(listing: &'a str, kind: &str, name: &str, value: &str) -> Option<&'a str> {
    listing_blocks(listing).into_iter().find(|b| {
        b.starts_with(kind)
            && b.lines().any(|l| {
                l.trim()
                    .strip_prefix(name)
                    .map(|v| v.trim().trim_matches('\''))
                    == Some(value)
            })
    })
}

/// A `name:` field of a listing block, as text.
pub fn listing_field<'a>(block: &'a str, name: &str) -> &'a str {
    block
        .lines()
        .find_map(|l| l.trim().strip_prefix(name))
        .unwrap_or_else(|| panic!("{name} in {block}"))
        .trim()
}

/// The EC public key of a listing block as PEM SPKI (see [`ec_pem`]).
pub fn listed_ec_pem(block: &str, dir: &Path, name: &str) -> PathBuf {
    let field = |n| hex::decode(listing_field(block, n)).unwrap();
    ec_pem(&field("EC_PARAMS:"), &field("EC_POINT:"), dir, name)
}

/// openssl's arguments to check `sig` over `data` with `pem`:
/// `dgst <hash> <options> -verify pem -signature sig data`.
pub fn dgst_verify(
    hash: &str,
    options: &[&str],
    pem: &Path,
    sig: &Path,
    data: &Path,
) -> Vec<String> {
    let mut a = vec!["dgst".to_string(), hash.into()];
    a.extend(options.iter().map(|o| o.to_string()));
    a.extend([
        "-verify".into(),
        s(pem),
        "-signature".into(),
        s(sig),
        s(data),
    ]);
    a
}

/// openssl's arguments to check `sig` over `input` (a hash, a DigestInfo)
/// with `pem`: `pkeyutl -verify … <options>`.
pub fn pkeyutl_verify(pem: &Path, options: &[&str], input: &Path, sig: &Path) -> Vec<String> {
    let mut a = args(&["pkeyutl", "-verify", "-pubin", "-inkey"]);
    a.push(s(pem));
    a.extend(options.iter().map(|o| o.to_string()));
    a.extend(["-in".into(), s(input), "-sigfile".into(), s(sig)]);
    a
}

/// Encrypts `msg` into `ct` for the RSA key in `pem` with openssl, each of
/// `options` given as `-pkeyopt`.
pub fn openssl_encrypt(pem: &Path, options: &[&str], msg: &Path, ct: &Path) {
    let mut a = vec!["pkeyutl".to_string(), "-encrypt".into(), "-pubin".into()];
    a.extend(["-inkey".into(), s(pem), "-in".into(), s(msg)]);
    a.extend(["-out".into(), s(ct)]);
    for o in options {
        a.extend(["-pkeyopt".into(), o.to_string()]);
    }
    run("openssl", &a);
}

/// Converts a DER SubjectPublicKeyInfo into PEM with openssl.
pub fn der_to_pem(der: &Path, pem: &Path) {
    run_cmd(
        Command::new("openssl")
            .args(["pkey", "-pubin", "-inform", "DER", "-in"])
            .arg(der)
            .arg("-out")
            .arg(pem),
    );
}

/// The EC public key with CKA_EC_PARAMS `params` and CKA_EC_POINT
/// `point_octet_string` (as pkcs11-tool lists them) as PEM SPKI, written
/// to `dir` as `name.der` and `name.pem`. pkcs11-tool 0.23's `--read-object
/// --type pubkey` cannot export every curve (secp384r1 fails with "cannot
/// create EVP_PKEY").
pub fn ec_pem(params: &[u8], point_octet_string: &[u8], dir: &Path, name: &str) -> PathBuf {
    use picohsm_wire::tlv;
    let (point, rest) = tlv::parse_one(point_octet_string).unwrap();
    assert!(rest.is_empty() && point.tag == 0x04);
    // id-ecPublicKey.
    let mut alg = tlv::encode(0x06, &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01]);
    alg.extend_from_slice(params);
    let mut bits = vec![0u8];
    bits.extend_from_slice(point.value);
    let mut spki = tlv::encode(0x30, &alg);
    spki.extend_from_slice(&tlv::encode(0x03, &bits));
    let (der, pem) = (
        dir.join(format!("{name}.der")),
        dir.join(format!("{name}.pem")),
    );
    fs::write(&der, tlv::encode(0x30, &spki)).unwrap();
    der_to_pem(&der, &pem);
    pem
}

/// A self-signed P-256 certificate for `subject` made by openssl: its DER
/// file (the key is written beside it).
pub fn self_signed_cert(dir: &Path, name: &str, subject: &str) -> PathBuf {
    let (der, key) = (
        dir.join(format!("{name}.der")),
        dir.join(format!("{name}.key")),
    );
    run_cmd(
        Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:P-256", "-nodes", "-subj", subject])
            .args(["-days", "30", "-keyout"])
            .arg(&key)
            .args(["-outform", "DER", "-out"])
            .arg(&der),
    );
    der
}

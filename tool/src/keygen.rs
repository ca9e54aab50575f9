//! `keygen`: a key pair generated on the device (docs/protocol.md §7.1), with OpenSC's PrKD
//! so OpenSC and the module list it, and a CHR of its own with CAR = CHR,
//! so it can be exported for PKA and checked by any firmware (docs/protocol.md §6.7).

use picohsm_pkcs11::card::keys::KeySpec;
use picohsm_pkcs11::card::pka::fresh_chr;
use picohsm_wire::codes::pin_ref;
use picohsm_wire::cvc::AuthRequest;
use serde_json::{json, Value};

use crate::cli::{Cli, KeygenArgs};
use crate::device::Device;
use crate::fail::{Failure, Res};
use crate::out::{Out, Progress};

fn describe(spec: &KeySpec) -> String {
    match spec {
        KeySpec::Ec(c) => format!("EC {}", c.name()),
        KeySpec::Rsa { bits, .. } => format!("RSA {bits}"),
    }
}

/// Runs `keygen`.
pub fn run(cli: &Cli, a: &KeygenArgs, out: &mut Out) -> Res<Value> {
    if let Some(c) = &a.chr {
        if c.is_empty() || c.len() > 16 || !c.is_ascii() {
            return Err(Failure::usage("a CHR is 1 to 16 ASCII characters")
                .hint("e.g. ZZPKAKEY00001: country, holder mnemonic, 5-character sequence"));
        }
    }
    let (_pcsc, mut dev) = Device::open(cli.reader.as_deref())?;
    let what = describe(&a.key_type);
    let key = {
        let _p = Progress::start(format!(
            "generating an {what} key on the device in \"{}\"",
            dev.reader
        ));
        dev.run_session(|c, _| {
            c.verify(pin_ref::USER, &a.pin.0)?;
            let chr = match &a.chr {
                Some(c) => c.as_bytes().to_vec(),
                None => {
                    let name = c.device_name()?.unwrap_or_default();
                    let taken: Vec<Vec<u8>> = c.keys()?.into_iter().filter_map(|k| k.chr).collect();
                    fresh_chr(&name, &taken, 1)
                }
            };
            // CAR = CHR: a request that names itself is one the upstream
            // firmware can check at PKA login (docs/protocol.md §6.7).
            c.generate_key(
                &a.key_type,
                &chr,
                &chr,
                &a.label,
                a.id.as_ref().map(|i| i.0.as_slice()),
            )
        })?
    };
    let req = AuthRequest::parse(&key.request).ok();
    let public = req.as_ref().and_then(|r| {
        r.cert
            .key_field(0x86)
            .or_else(|| r.cert.key_field(0x81))
            .map(hex::encode_upper)
    });
    let chr = String::from_utf8_lossy(&key.chr).into_owned();
    out.line(format!(
        "Generated an {what} key on the device in \"{}\":",
        dev.reader
    ));
    out.line(format!("  key reference {}", key.key_ref));
    out.line(format!("  label         {}", a.label));
    out.line(format!("  CKA_ID        {}", hex::encode_upper(&key.id)));
    out.line(format!("  CHR           {chr}"));
    out.line(format!(
        "Export it for PKA: picohsm-tool pka export --key-ref {} -o FILE",
        key.key_ref
    ));
    Ok(json!({
        "reader": dev.reader,
        "key_ref": key.key_ref,
        "label": a.label,
        "id": hex::encode_upper(&key.id),
        "chr": chr,
        "key_type": what,
        "public_key": public,
    }))
}

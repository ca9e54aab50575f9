//! Public Key Authentication on the card (docs/protocol.md §6): the login
//! commands (status, the registered keys, MSE SET AT, EXTERNAL
//! AUTHENTICATE), the registration of a key with the device chain before
//! it, and the PKA file layouts `sc-hsm-tool` writes and reads.

use picohsm_wire::cmd::pka::{self as cmd, Status};
use picohsm_wire::codes::fid;
use picohsm_wire::cvc::{self, AuthRequest, Cvc};
use picohsm_wire::sw::StatusWord;
use picohsm_wire::tlv;
use sha2::{Digest, Sha256};

use super::keys::key_fid;
use super::{Card, CardError, CardResult};

/// One registered key (MANAGE PKA enumerate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    /// The slot.
    pub slot: u8,
    /// Its CHR.
    pub chr: Vec<u8>,
    /// Accepted since the last challenge (SW 9001).
    pub authenticated: bool,
}

impl Card<'_> {
    /// One GET CHALLENGE of `len` bytes for a PKA login: the card keeps
    /// the challenge of its last GET CHALLENGE only, so this never splits
    /// it into several commands; what the card answers is the challenge.
    /// An answer shorter than 8 bytes is refused (the module would sign a
    /// challenge that can be replayed).
    pub fn pka_challenge(&mut self, len: usize) -> CardResult<Vec<u8>> {
        let apdu = picohsm_wire::cmd::key::get_challenge(len.min(256));
        let d = self.ok(&apdu)?;
        if d.len() < 8 {
            return Err(CardError::Malformed {
                command: apdu.cmd,
                what: "a challenge shorter than 8 bytes",
            });
        }
        Ok(d)
    }

    /// The PKA status, or `None` when the token has no PKA.
    pub fn pka_status(&mut self) -> CardResult<Option<Status>> {
        let apdu = cmd::status();
        let (d, sw) = self.exchange(&apdu)?;
        if sw == StatusWord::OK {
            return Status::parse(&d).map(Some).ok_or(CardError::Malformed {
                command: apdu.cmd,
                what: "short PKA status",
            });
        }
        if cmd::no_pka(sw) {
            return Ok(None);
        }
        Err(CardError::Status {
            command: apdu.cmd,
            sw,
        })
    }

    /// The registered keys of a scheme of `total` slots (empty slots left
    /// out).
    pub fn pka_registered(&mut self, total: u8) -> CardResult<Vec<Registered>> {
        let mut out = Vec::new();
        for slot in 0..total {
            let apdu = cmd::enumerate(slot);
            let (d, sw) = self.exchange(&apdu)?;
            match sw {
                StatusWord::OK | StatusWord::OK_AUTHENTICATED => out.push(Registered {
                    slot,
                    chr: d,
                    authenticated: sw == StatusWord::OK_AUTHENTICATED,
                }),
                StatusWord::REF_NOT_FOUND => {}
                StatusWord::WRONG_P1P2 => break,
                _ => {
                    return Err(CardError::Status {
                        command: apdu.cmd,
                        sw,
                    })
                }
            }
        }
        Ok(out)
    }

    /// MSE SET AT: selects the registered key the next EXTERNAL
    /// AUTHENTICATE is checked against. `6985`: already accepted in this
    /// round; `6A88`: not registered.
    pub fn select_pka_key(&mut self, chr: &[u8]) -> CardResult<()> {
        self.ok(&cmd::mse_set_at(chr)).map(drop)
    }

    /// EXTERNAL AUTHENTICATE with the authenticator's raw signature.
    pub fn external_authenticate(&mut self, signature: &[u8]) -> CardResult<()> {
        self.ok(&cmd::external_authenticate(signature)).map(drop)
    }

    /// MSE SET DST: makes the certificate named `name` the issuer for the
    /// next PSO VERIFY CERTIFICATE (and, on this firmware, for the outer
    /// signature of a registered request). `Ok(false)`: the card does not
    /// know it (6A88).
    pub fn mse_set_dst(&mut self, name: &[u8]) -> CardResult<bool> {
        let apdu = cmd::mse_set_dst(name);
        let (_, sw) = self.exchange(&apdu)?;
        match sw {
            StatusWord::OK => Ok(true),
            StatusWord::REF_NOT_FOUND => Ok(false),
            _ => Err(CardError::Status {
                command: apdu.cmd,
                sw,
            }),
        }
    }

    /// PSO VERIFY CERTIFICATE of a `7F21` certificate against the issuer
    /// MSE SET DST chose; the card keeps it (6985 bad signature, 6984
    /// unparsable).
    pub fn pso_verify_certificate(&mut self, certificate: &[u8]) -> CardResult<()> {
        let content = match tlv::parse_one(certificate) {
            Ok((t, _)) if t.tag == cvc::TAG_CVC => t.value,
            _ => certificate,
        };
        self.ok(&cmd::pso_verify_certificate(content)).map(drop)
    }

    /// MANAGE PKA register of `request` (the content of tag 67) into the
    /// first empty slot, or into `slot` (needs option `0008`). Needs the
    /// user PIN or SO-PIN verified in this card session (6982); 6A84: all
    /// slots taken; 6A89: a key of that CHR is registered; 6A82: no PKA.
    pub fn pka_register(&mut self, request: &[u8], slot: Option<u8>) -> CardResult<Status> {
        let apdu = cmd::register(request, slot);
        let d = self.ok(&apdu)?;
        Status::parse(&d).ok_or(CardError::Malformed {
            command: apdu.cmd,
            what: "short PKA status",
        })
    }

    /// The registration as sc-hsm-tool does it (docs/protocol.md §6.5), with the PIN verified
    /// beforehand by the caller: make the device certificate known (MSE SET DST
    /// on its issuer, PSO VERIFY CERTIFICATE) unless the card knows it, select
    /// it (MSE SET DST on the outer CAR), then MANAGE PKA register. The chain
    /// steps matter for a genuine SmartCard-HSM, which checks the request
    /// against it; the Pico does not (docs/protocol.md §6.3), so a chain the card cannot verify
    /// is reported through `say` and the registration goes on — the card has
    /// the last word. A self-signed request has no chain.
    pub fn register(
        &mut self,
        file: &PkaFile,
        slot: Option<u8>,
        say: &mut dyn FnMut(String),
    ) -> CardResult<Registration> {
        let req = file.parsed()?;
        let chr = req.cert.chr.to_vec();
        if let Some(device) = &file.device {
            let (dev, _) = Cvc::parse(device)
                .map_err(|_| CardError::Invalid("bad device certificate".into()))?;
            let dev_name = String::from_utf8_lossy(dev.chr).into_owned();
            // The issuers first, root side last in the file: verify from the
            // root down, skipping those the card knows.
            for issuer in file.issuers.iter().rev() {
                let (c, _) = Cvc::parse(issuer)
                    .map_err(|_| CardError::Invalid("bad issuer certificate".into()))?;
                if c.is_self_described() || self.mse_set_dst(c.chr)? {
                    continue;
                }
                let name = String::from_utf8_lossy(c.chr).into_owned();
                match c.car {
                    Some(car) if self.mse_set_dst(car)? => {
                        match self.pso_verify_certificate(issuer) {
                            Ok(()) => say(format!("issuer {name}: verified and stored")),
                            Err(e) => say(format!("issuer {name}: not accepted ({e})")),
                        }
                    }
                    _ => say(format!(
                        "issuer {name}: its issuer is unknown to this device"
                    )),
                }
            }
            if self.mse_set_dst(dev.chr)? {
                say(format!("device certificate {dev_name}: already known"));
            } else {
                match dev.car {
                    Some(car) if self.mse_set_dst(car)? => {
                        match self.pso_verify_certificate(device) {
                            Ok(()) => say(format!("device certificate {dev_name}: verified")),
                            Err(e) => {
                                say(format!("device certificate {dev_name}: not accepted ({e})"))
                            }
                        }
                    }
                    _ => say(format!(
                        "device certificate {dev_name}: its issuer is unknown to this device"
                    )),
                }
            }
            if req.outer_car == dev.chr && !self.mse_set_dst(req.outer_car)? {
                say("the request's device is not known: registering without the chain".into());
            }
        }
        let status = self.pka_register(&file.request, slot)?;
        Ok(Registration { status, chr })
    }

    /// The PKA file of key `key_ref` as `sc-hsm-tool --export-for-pub-key-auth`
    /// makes it (docs/protocol.md §6.6): the request in `CExx` and the chain
    /// in EF.C_DevAut. No PIN, no change to the card.
    pub fn export(&mut self, key_ref: u8) -> CardResult<PkaFile> {
        let ce = self
            .read_ef(key_fid(fid::EE_CERT_PREFIX, key_ref))?
            .ok_or_else(|| {
                CardError::Invalid(format!("key {key_ref} has no request in CE{key_ref:02X}"))
            })?;
        let (first, _) = tlv::parse_one(&ce)
            .map_err(|_| CardError::Invalid(format!("CE{key_ref:02X} is not TLV")))?;
        if first.tag != cvc::TAG_AUTH_REQUEST {
            return Err(CardError::Invalid(format!(
                "CE{key_ref:02X} holds a certificate, not the key's request: it cannot be exported for PKA"
            )));
        }
        AuthRequest::parse(first.value)
            .map_err(|_| CardError::Invalid(format!("CE{key_ref:02X}: bad request")))?;
        let chain = self.read_ef(fid::EF_DEVAUT)?.unwrap_or_default();
        let certs = cvc::parse_chain(&chain)
            .map_err(|_| CardError::Invalid("EF.C_DevAut (2F02) does not parse".into()))?;
        let mut it = certs.into_iter().map(|c| c.raw.to_vec());
        Ok(PkaFile {
            request: first.value.to_vec(),
            device: it.next(),
            issuers: it.collect(),
        })
    }
}

/// A PKA file: the authenticated request of the key, with the chain of the
/// device that made it (none for a self-signed request, docs/protocol.md §6.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkaFile {
    /// The content of tag 67 (what the register command carries).
    pub request: Vec<u8>,
    /// The device certificate (`7F21` TLV), if any.
    pub device: Option<Vec<u8>>,
    /// Its issuers (DICA first, then the root if present), `7F21` TLVs.
    pub issuers: Vec<Vec<u8>>,
}

/// OID 1.3.6.1.4.1.24991.4.3.1 of CardContact's PKA file layout (docs/protocol.md §6.5).
pub const PKA_FILE_OID: &[u8] = &[
    0x2B, 0x06, 0x01, 0x04, 0x01, 0x81, 0xC3, 0x1F, 0x04, 0x03, 0x01,
];

impl PkaFile {
    /// Parses either layout of docs/protocol.md §6.5: `30 { 67 request, 7F21 device,
    /// 7F21 DICA, … }` (sc-hsm-tool's) or `30 { 06 OID, 61 { DICA },
    /// 62 { device }, 63 { 67 request } }` (CardContact's). A bare `67`
    /// TLV is accepted too.
    pub fn parse(file: &[u8]) -> CardResult<PkaFile> {
        let bad = |what: &str| CardError::Invalid(format!("not a PKA file: {what}"));
        let (outer, _) = tlv::parse_one(file).map_err(|_| bad("not TLV"))?;
        if outer.tag == cvc::TAG_AUTH_REQUEST {
            AuthRequest::parse(outer.value).map_err(|_| bad("bad request"))?;
            return Ok(PkaFile {
                request: outer.value.to_vec(),
                device: None,
                issuers: Vec::new(),
            });
        }
        if outer.tag != 0x30 {
            return Err(bad("neither a SEQUENCE nor a request"));
        }
        let items = tlv::parse_all(outer.value).map_err(|_| bad("bad SEQUENCE"))?;
        let (request, device, issuers) = match items.first().map(|t| t.tag) {
            Some(0x67) => {
                let certs: Vec<Vec<u8>> = items[1..]
                    .iter()
                    .filter(|t| t.tag == cvc::TAG_CVC)
                    .map(|t| t.raw.to_vec())
                    .collect();
                let mut it = certs.into_iter();
                (items[0].value.to_vec(), it.next(), it.collect::<Vec<_>>())
            }
            Some(0x06) => {
                if items[0].value != PKA_FILE_OID {
                    return Err(bad("unknown OID"));
                }
                let inner = |tag: u16| -> Option<Vec<u8>> {
                    items
                        .iter()
                        .find(|t| t.tag == tag)
                        .and_then(|t| tlv::parse_one(t.value).ok())
                        .map(|(i, _)| match i.tag {
                            0x67 => i.value.to_vec(),
                            _ => i.raw.to_vec(),
                        })
                };
                let request = inner(0x63).ok_or_else(|| bad("no request (63)"))?;
                (request, inner(0x62), inner(0x61).into_iter().collect())
            }
            _ => return Err(bad("unknown layout")),
        };
        AuthRequest::parse(&request).map_err(|_| bad("bad request"))?;
        for c in device.iter().chain(issuers.iter()) {
            Cvc::parse(c).map_err(|_| bad("bad certificate"))?;
        }
        Ok(PkaFile {
            request,
            device,
            issuers,
        })
    }

    /// The file sc-hsm-tool writes (docs/protocol.md §6.6): `30 { 67 request, device
    /// certificate, issuers… }`.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = tlv::encode(cvc::TAG_AUTH_REQUEST, &self.request);
        if let Some(d) = &self.device {
            v.extend_from_slice(d);
        }
        for c in &self.issuers {
            v.extend_from_slice(c);
        }
        tlv::encode(0x30, &v)
    }

    /// The parsed request.
    pub fn parsed(&self) -> CardResult<AuthRequest<'_>> {
        AuthRequest::parse(&self.request)
            .map_err(|_| CardError::Invalid("not a PKA file: bad request".into()))
    }

    /// The key's name (inner CHR), as it is registered.
    pub fn chr(&self) -> CardResult<Vec<u8>> {
        Ok(self.parsed()?.cert.chr.to_vec())
    }

    /// Whether the request is self-signed (outer CAR = CHR): a key with no
    /// device behind it, exported from a PKCS#11 token.
    pub fn self_signed(&self) -> bool {
        self.parsed()
            .is_ok_and(|r| r.outer_car == r.cert.chr && self.device.is_none())
    }
}

/// What [`Card::register`] did (for the CLI's report).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The PKA status after the registration.
    pub status: Status,
    /// The registered key's CHR.
    pub chr: Vec<u8>,
}

/// The first 11 characters of the CHRs this device gives its keys: the
/// device name's country code and 4 characters of its holder mnemonic, then
/// 5 characters of SHA-256 of the whole device name. Every upstream Pico HSM
/// has the serial `ESPICOHSMTR`, so a name from the serial alone
/// (`ESPICOHSMTR00001`) is the same on every device; one from the whole
/// device name is not (docs/protocol.md §3.3, §6.2).
pub fn key_name_prefix(device_name: &str) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let b = device_name.as_bytes();
    let mut s: String = (0..6)
        .map(|i| match b.get(i) {
            Some(c) if c.is_ascii_alphanumeric() => c.to_ascii_uppercase() as char,
            _ => 'X',
        })
        .collect();
    let h = Sha256::digest(b);
    let bits = u32::from_be_bytes([h[0], h[1], h[2], h[3]]) >> 7;
    for i in (0..5).rev() {
        s.push(ALPHABET[((bits >> (5 * i)) & 31) as usize] as char);
    }
    s
}

/// A CHR for a new key of the device named `device_name`:
/// [`key_name_prefix`] and the first sequence number from `start` that no
/// key of the card uses (`taken`). The upstream firmware names a key after
/// its key-generation template, so the name given here is the one the
/// key keeps; OpenSC gives them all `<serial>00001`, which a PKA login
/// cannot tell apart.
pub fn fresh_chr(device_name: &str, taken: &[Vec<u8>], start: u32) -> Vec<u8> {
    let prefix = key_name_prefix(device_name);
    let name = |n: u32| format!("{prefix}{:05}", n % 100_000).into_bytes();
    (start..start + 100_000)
        .map(name)
        .find(|c| c != device_name.as_bytes() && !taken.contains(c))
        .unwrap_or_else(|| name(start))
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::vendor;
    use picohsm_wire::apdu::build_extended;
    use picohsm_wire::curve::Curve;
    use picohsm_wire::cvc::oid;

    #[test]
    fn status_and_enumerate_decode_the_lab_answers() {
        // docs/protocol.md §6.3 lab: status 01 00 01 00, slot 0
        // "PKAKEYB00001" not authenticated.
        let mut l = Script(vec![
            (vec![0x80, 0x54, 0, 0, 0], vec![1, 0, 1, 0, 0x90, 0]),
            (
                vec![0x80, 0x54, 2, 0, 0],
                [b"PKAKEYB00001".as_slice(), &[0x90, 0x00]].concat(),
            ),
        ]);
        let mut c = Card::new(&mut l);
        let st = c.pka_status().unwrap().unwrap();
        assert_eq!(
            st,
            Status {
                total: 1,
                missing: 0,
                required: 1,
                authenticated: 0
            }
        );
        assert!(!st.granted());
        let r = c.pka_registered(1).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].chr, b"PKAKEYB00001");
        assert!(!r[0].authenticated);
    }

    #[test]
    fn no_pka_and_refusals_have_their_own_codes() {
        let mut l = Script(vec![
            (vec![0x80, 0x54, 0, 0, 0], vec![0x6A, 0x86]),
            (
                [&[0x00, 0x22, 0x81, 0xA4, 0x04, 0x83, 0x02][..], b"AB"].concat(),
                vec![0x6A, 0x88],
            ),
            (
                [&[0x00, 0x22, 0x81, 0xA4, 0x04, 0x83, 0x02][..], b"AB"].concat(),
                vec![0x69, 0x85],
            ),
            (vec![0x00, 0x82, 0, 0, 2, 1, 2], vec![0x69, 0x85]),
        ]);
        let mut c = Card::new(&mut l);
        assert_eq!(c.pka_status().unwrap(), None);
        assert_eq!(
            c.select_pka_key(b"AB").unwrap_err().rv(),
            vendor::CKR_PICOHSM_KEY_NOT_REGISTERED
        );
        assert_eq!(
            c.select_pka_key(b"AB").unwrap_err().rv(),
            vendor::CKR_PICOHSM_ALREADY_AUTHENTICATED
        );
        assert_eq!(
            c.external_authenticate(&[1, 2]).unwrap_err().rv(),
            vendor::CKR_PICOHSM_SIGNATURE_REFUSED
        );
    }

    fn request(car: &[u8], chr: &[u8], outer: &[u8]) -> Vec<u8> {
        let mut point = vec![4u8];
        point.extend_from_slice(&[7u8; 64]);
        let pk = cvc::ec_public_key(oid::ECDSA_SHA256, Curve::P256, &point);
        let body = cvc::build_body(Some(car), &pk, chr, &[]);
        let c = cvc::build_cvc(&body, &[1u8; 64]);
        cvc::build_auth_request(&c, outer, &[2u8; 64])
    }

    fn cert(car: &[u8], chr: &[u8]) -> Vec<u8> {
        let pk = cvc::rsa_public_key(oid::RSA_V15_SHA256, &[0xC1; 16], &[3]);
        cvc::build_cvc(&cvc::build_body(Some(car), &pk, chr, &[]), &[9; 8])
    }

    #[test]
    fn pka_files_in_both_layouts() {
        let req = request(b"KEY00001", b"KEY00001", b"DEV00001");
        let dev = cert(b"DICA0001", b"DEV00001");
        let dica = cert(b"ROOT0001", b"DICA0001");
        let old = tlv::encode(0x30, &[req.clone(), dev.clone(), dica.clone()].concat());
        let f = PkaFile::parse(&old).unwrap();
        assert_eq!(f.request, tlv::parse_one(&req).unwrap().0.value);
        assert_eq!(f.device.as_deref(), Some(dev.as_slice()));
        assert_eq!(f.issuers, vec![dica.clone()]);
        assert_eq!(f.encode(), old);
        assert_eq!(f.chr().unwrap(), b"KEY00001");
        assert!(!f.self_signed());

        let mut new = tlv::encode(0x06, PKA_FILE_OID);
        new.extend(tlv::encode(0x61, &dica));
        new.extend(tlv::encode(0x62, &dev));
        new.extend(tlv::encode(0x63, &req));
        assert_eq!(PkaFile::parse(&tlv::encode(0x30, &new)).unwrap(), f);

        let own = request(b"ZZSELF00001", b"ZZSELF00001", b"ZZSELF00001");
        let g = PkaFile::parse(&tlv::encode(0x30, &own)).unwrap();
        assert!(g.self_signed());
        assert_eq!(PkaFile::parse(&own).unwrap(), g);
        assert!(PkaFile::parse(&[0x30, 0x02, 0x05, 0x00]).is_err());
    }

    #[test]
    fn registration_makes_the_device_known_first() {
        // docs/protocol.md §6.5: the DICA is known, the device certificate
        // is not.
        let req = request(b"KEY00001", b"KEY00001", b"DEV00001");
        let dev = cert(b"DICA0001", b"DEV00001");
        let dica = cert(b"ROOT0001", b"DICA0001");
        let f = PkaFile {
            request: tlv::parse_one(&req).unwrap().0.value.to_vec(),
            device: Some(dev.clone()),
            issuers: vec![dica],
        };
        let dst = |n: &[u8]| {
            [
                hex("00 22 81 B6"),
                vec![n.len() as u8 + 2, 0x83, n.len() as u8],
                n.to_vec(),
            ]
            .concat()
        };
        let dev_content = tlv::parse_one(&dev).unwrap().0.value.to_vec();
        let mut l = Script(vec![
            (dst(b"DICA0001"), hex("90 00")),
            (dst(b"DEV00001"), hex("6A 88")),
            (dst(b"DICA0001"), hex("90 00")),
            (
                build_extended(0, 0x2A, 0, 0xBE, &dev_content, 0),
                hex("90 00"),
            ),
            (dst(b"DEV00001"), hex("90 00")),
            (
                build_extended(0x80, 0x54, 0, 0, &f.request, 4),
                hex("01 00 01 00 90 00"),
            ),
        ]);
        let mut said = Vec::new();
        let r = Card::new(&mut l)
            .register(&f, None, &mut |s| said.push(s))
            .unwrap();
        assert_eq!(r.status.missing, 0);
        assert_eq!(r.chr, b"KEY00001");
        assert_eq!(
            said,
            vec!["device certificate DEV00001: verified".to_string()]
        );
        assert!(l.0.is_empty());
    }

    #[test]
    fn fresh_chrs_differ_across_devices_of_one_serial_and_avoid_taken_names() {
        let a = fresh_chr("ESPICOHSMTRAAAA1", &[], 1);
        let b = fresh_chr("ESPICOHSMTRBBBB2", &[], 1);
        assert_ne!(a, b, "two devices of the shared serial");
        for c in [&a, &b] {
            assert_eq!(c.len(), 16);
            assert!(c.starts_with(b"ESPICO") && c.ends_with(b"00001"));
            assert!(!c.starts_with(b"ESPICOHSMTR"), "not the bare serial");
        }
        let prefix = key_name_prefix("ESPICOHSMTRAAAA1").into_bytes();
        let taken = vec![[prefix.clone(), b"00001".to_vec()].concat()];
        assert_eq!(
            fresh_chr("ESPICOHSMTRAAAA1", &taken, 1),
            [prefix.clone(), b"00002".to_vec()].concat()
        );
        assert_eq!(
            fresh_chr("ESPICOHSMTRAAAA1", &[], 7),
            [prefix, b"00007".to_vec()].concat()
        );
        assert_eq!(key_name_prefix("").len(), 11);
        // The README's example.
        assert_eq!(key_name_prefix("ESPICOHSMTRAAAA1"), "ESPICO4CWCW");
    }
}

//! `module_card_data`: the module's readers of card data, fed by a card
//! the input describes.
//!
//! Input: a flags byte, then files (count, then FID selector, FID byte and
//! content each), a chunk size and then scripted answers. The fake card
//! serves SELECT, the version query, ENUMERATE OBJECTS and READ BINARY from
//! the files (or, with flag 1, everything from the script), splits answers
//! longer than the chunk size into `61xx` + GET RESPONSE chains, and answers
//! every other command with the next scripted answer (`6D00` once the
//! script is used up).
//!
//! Then it runs what a token does with a card: the applet selection, the
//! object listing (PrKD, CD, DCOD, X.509 certificates, requests), token
//! info, device name, the key list, the PKA status and registered keys,
//! a PKA export, a challenge; and each file's content goes through the
//! standalone parsers (X.509, CVC, PKCS#15, the PKA file). Checked: no
//! panic, and the GET RESPONSE gathering never grows past its cap.

use std::collections::{BTreeMap, VecDeque};

use picohsm_pkcs11::card::{self, files::TokenInfo, pka::PkaFile, pkcs15, x509, Card};
use picohsm_pkcs11::error::{Error, Result};
use picohsm_pkcs11::transport::Link;
use picohsm_wire::apdu::Command;
use picohsm_wire::cmd::file;
use picohsm_wire::codes::ins;
use picohsm_wire::cvc;

use crate::Reader;

/// FID prefixes worth aiming at: keys, PrKDs, certificates/requests, CDs,
/// DCODs, CA certificates, data objects.
const PREFIXES: [u8; 8] = [0xCC, 0xC4, 0xCE, 0xC8, 0xC9, 0xCA, 0xCF, 0xCD];

/// What the module may gather from one command plus a little slack: the
/// harness fails if an exchange returns more.
const MAX_EXCHANGE: usize = 65536 + 256 + 65536;

struct FakeCard<'a> {
    scripted_only: bool,
    files: BTreeMap<u16, Vec<u8>>,
    chunk: usize,
    script: Reader<'a>,
    pending: VecDeque<u8>,
    exchanges: usize,
}

impl FakeCard<'_> {
    fn scripted(&mut self) -> Vec<u8> {
        if self.script.is_empty() {
            return vec![0x6D, 0x00];
        }
        self.script.long().to_vec()
    }

    /// The answer before chaining.
    fn answer(&mut self, apdu: &[u8]) -> Vec<u8> {
        if self.scripted_only {
            return self.scripted();
        }
        let Ok(c) = Command::parse(apdu) else {
            return vec![0x67, 0x00];
        };
        let ok = |mut d: Vec<u8>| {
            d.extend_from_slice(&[0x90, 0x00]);
            d
        };
        match (c.cla, c.ins) {
            (0x00, ins::SELECT) => ok(hex_fcp()),
            (0x80, ins::INITIALIZE) if c.data.is_empty() => {
                ok(vec![0x00, 0x10, 0x00, 0x00, 0x00, 0x06, 0x06])
            }
            (0x80, ins::LIST_KEYS) => ok(file::encode_enumerate(self.files.keys().copied())),
            (0x00, ins::READ_BINARY_ODD) => {
                let fid = u16::from_be_bytes([c.p1, c.p2]);
                let Some(content) = self.files.get(&fid) else {
                    return vec![0x6A, 0x82];
                };
                let offset = file::parse_offset(c.data).unwrap_or(0);
                if offset >= content.len() && offset > 0 {
                    return vec![0x62, 0x82];
                }
                let end = content.len().min(offset + c.ne.max(1));
                ok(content[offset.min(end)..end].to_vec())
            }
            (0x00, ins::GET_RESPONSE) => unreachable!("handled by transmit"),
            _ => self.scripted(),
        }
    }
}

fn hex_fcp() -> Vec<u8> {
    vec![
        0x62, 0x22, 0x81, 0x02, 0x00, 0x00, 0x82, 0x01, 0x01, 0x83, 0x02, 0x00, 0x00, 0x84, 0x0B,
        0x2B, 0x06, 0x01, 0x04, 0x01, 0x81, 0xC3, 0x1F, 0x02, 0x01, 0x00, 0x8A, 0x01, 0x05, 0x85,
        0x05, 0x00, 0x01, 0xFF, 0x06, 0x06,
    ]
}

impl Link for FakeCard<'_> {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>> {
        self.exchanges += 1;
        if self.exchanges > 100_000 {
            // The module must not talk to one card for ever.
            panic!("more than 100000 APDUs in one run");
        }
        if !self.scripted_only && apdu.get(1) == Some(&ins::GET_RESPONSE) {
            if self.pending.is_empty() {
                return Ok(vec![0x69, 0x85]);
            }
            return Ok(self.deliver());
        }
        let mut a = self.answer(apdu);
        if self.scripted_only || self.chunk == 0 || a.len() < 2 || a.len() - 2 <= self.chunk {
            return Ok(a);
        }
        let sw = a.split_off(a.len() - 2);
        if sw != [0x90, 0x00] {
            return Ok([a, sw].concat());
        }
        self.pending = a.into();
        Ok(self.deliver())
    }
}

impl FakeCard<'_> {
    fn deliver(&mut self) -> Vec<u8> {
        let n = self.chunk.max(1).min(self.pending.len());
        let mut out: Vec<u8> = self.pending.drain(..n).collect();
        if self.pending.is_empty() {
            out.extend_from_slice(&[0x90, 0x00]);
        } else {
            out.extend_from_slice(&[0x61, self.pending.len().min(255) as u8]);
        }
        out
    }
}

/// A link that fails once the script ends, for [`card::exchange`] alone.
struct Broken;

impl Link for Broken {
    fn transmit(&mut self, _: &[u8]) -> Result<Vec<u8>> {
        Err(Error::new(0x30, "card removed"))
    }
}

/// Runs the standalone parsers over one file's content.
fn parse_content(d: &[u8]) {
    if let Ok(f) = x509::parse(d) {
        let _ = (f.subject.len(), f.spki.len());
    }
    let _ = pkcs15::PrivateKeyDesc::parse(d).map(|p| p.encode());
    let _ = pkcs15::CertDesc::parse(d).map(|p| p.encode());
    let _ = pkcs15::DataDesc::parse(d).map(|p| p.encode());
    let _ = cvc::parse_chain(d);
    let _ = cvc::AuthRequest::parse(d);
    let _ = cvc::first_chr(d);
    let _ = TokenInfo::parse(d);
    if let Ok(f) = PkaFile::parse(d) {
        let enc = f.encode();
        let _ = (f.chr(), f.self_signed(), PkaFile::parse(&enc));
    }
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let mut r = Reader::new(data);
    let flags = r.u8();
    let mut files = BTreeMap::new();
    for _ in 0..r.u8() % 12 {
        let sel = r.u8();
        let id = r.u8();
        let fid = match sel % 12 {
            0 => 0x2F02,
            1 => 0x2F03,
            2 => u16::from_be_bytes([id, r.u8()]),
            n => u16::from_be_bytes([PREFIXES[(n - 3) as usize % PREFIXES.len()], id]),
        };
        let content = r.long().to_vec();
        parse_content(&content);
        files.insert(fid, content);
    }
    let chunk = match r.u8() % 4 {
        0 => 0,
        1 => 1 + r.u8() as usize,
        2 => 256,
        _ => 1024,
    };
    let mut link = FakeCard {
        scripted_only: flags & 1 != 0,
        files,
        chunk,
        script: Reader::new(r.rest()),
        pending: VecDeque::new(),
        exchanges: 0,
    };
    if let Ok((d, _)) = card::exchange(&mut link, &[0x00, 0x84, 0x00, 0x00, 0x08]) {
        assert!(d.len() <= MAX_EXCHANGE, "{} bytes gathered", d.len());
    }
    let _ = card::exchange(&mut Broken, &[0x00, 0x84, 0x00, 0x00, 0x08]);
    {
        let mut c = Card::new(&mut link);
        let _ = c.ensure_selected();
        let _ = c.select_applet();
        let _ = c.version();
    }
    let _ = picohsm_pkcs11::fuzzing::load_objects(&mut link);
    let mut c = Card::new(&mut link);
    let _ = c.token_info();
    let _ = c.tokeninfo_writable();
    if let Ok(Some(name)) = c.device_name() {
        let _ = card::files::serial_of(&name);
        let _ = card::pka::key_name_prefix(&name);
        let _ = card::pka::fresh_chr(&name, &[], 1);
    }
    let _ = c.keys();
    let total = match c.pka_status() {
        Ok(Some(s)) => {
            let _ = s.granted();
            s.total.min(16)
        }
        _ => 2,
    };
    let _ = c.pka_registered(total);
    if flags & 2 != 0 {
        let _ = c.export(1 + (flags >> 4));
    }
    let _ = c.challenge(8 + (flags as usize >> 2));
    let _ = c.free_key_ref();
}

//! `wire_codecs`: the shared wire format, parsed and re-encoded.
//!
//! Input: a selector byte, then the bytes for that codec. Checked besides
//! "no panic": a TLV re-encoded from its tag and value parses back to the
//! same (and, for DER, to the same bytes); an APDU parses back to the
//! fields it was built from (and one that parses rebuilds to the same
//! fields); a CV certificate rebuilt from its body and signature parses to
//! the same fields; every answer layout with an encoder decodes its own
//! encoding; a PKCS#15 description re-encoded parses to itself.

use picohsm_wire::apdu::{self, Command};
use picohsm_wire::cmd::device::{AppletInfo, InitParams, Version};
use picohsm_wire::cmd::dkek::DomainStatus;
use picohsm_wire::cmd::pin::PinState;
use picohsm_wire::cmd::{file, pka};
use picohsm_wire::curve::Curve;
use picohsm_wire::cvc::{self, AuthRequest, Cvc};
use picohsm_wire::pkcs15;
use picohsm_wire::sw::StatusWord;
use picohsm_wire::tlv;

use crate::Reader;

/// Runs one input.
pub fn run(data: &[u8]) {
    let mut r = Reader::new(data);
    match r.u8() % 8 {
        0 => tlv_parse(r.rest()),
        1 => tlv_build(&mut r),
        2 => apdu_parse(r.rest()),
        3 => apdu_build(&mut r),
        4 => cvc_parse(r.rest()),
        5 => layouts(&mut r),
        6 => pkcs15_parse(r.rest()),
        _ => {
            let d = r.rest();
            let _ = Curve::from_prime(d);
            let _ = Curve::from_oid_der(d);
            let _ = StatusWord::from_response(d);
            let _ = file::parse_offset(d);
            let _ = file::parse_update_body(d);
            let _ = file::parse_enumerate(d);
        }
    }
}

/// The length of a TLV's header as DER writes it.
fn der_header(tag: u16, len: usize) -> Vec<u8> {
    let mut h = Vec::new();
    tlv::push(&mut h, tag, &[]);
    h.pop();
    tlv::push_len(&mut h, len);
    h
}

fn tlv_parse(d: &[u8]) {
    if let Ok((t, rest)) = tlv::parse_one(d) {
        assert_eq!(t.raw.len() + rest.len(), d.len());
        assert!(t.raw.ends_with(t.value));
        let again = tlv::encode(t.tag, t.value);
        let (u, tail) = tlv::parse_one(&again).expect("a re-encoded TLV parses");
        assert_eq!((u.tag, u.value, tail.len()), (t.tag, t.value, 0));
        match tlv::parse_one_der(d) {
            Ok((v, _)) => {
                assert_eq!(v, t);
                assert_eq!(again, t.raw, "DER TLV re-encodes to other bytes");
            }
            Err(_) => assert_ne!(
                der_header(t.tag, t.value.len()).len() + t.value.len(),
                t.raw.len(),
                "minimal TLV refused as DER"
            ),
        }
    }
    let all = tlv::parse_all(d);
    let items: Vec<_> = tlv::iter(d).collect();
    match &all {
        Ok(v) => {
            assert_eq!(v.len(), items.len());
            let joined: Vec<u8> = v.iter().flat_map(|t| t.raw.iter().copied()).collect();
            assert_eq!(joined, d);
        }
        Err(_) => assert!(matches!(items.last(), Some(Err(_)))),
    }
    for t in tlv::iter(d).flatten() {
        let _ = tlv::find(t.value, 0x5F20);
        let _ = tlv::parse_all(t.value);
    }
}

fn tlv_build(r: &mut Reader<'_>) {
    let hi = r.u8();
    let lo = r.u8();
    let tag = if hi & 1 == 0 {
        let t = lo as u16;
        if t & 0x1F == 0x1F {
            return;
        }
        t
    } else {
        (((lo | 0x1F) as u16) << 8) | (r.u8() & 0x7F) as u16
    };
    // Lengths past one APDU too (the host parses X.509 of any size).
    let n = r.u16() as usize * (1 + (hi as usize >> 6));
    let v: Vec<u8> = r.rest().iter().copied().cycle().take(n).collect();
    let e = tlv::encode(tag, &v);
    let (t, rest) = tlv::parse_one_der(&e).expect("an encoded TLV parses as DER");
    assert_eq!(
        (t.tag, t.value, t.raw, rest.len()),
        (tag, &v[..], &e[..], 0)
    );
}

fn apdu_parse(d: &[u8]) {
    let Ok(c) = Command::parse(d) else { return };
    assert!(d.len() >= 4);
    assert!(c.data.len() <= 65535 && c.ne <= 65536);
    // The same command, built again, parses to the same fields.
    let ne = if c.data.is_empty() && c.ne == 256 && !c.extended {
        0
    } else {
        c.ne
    };
    for b in [
        apdu::build(c.cla, c.ins, c.p1, c.p2, c.data, ne),
        apdu::build_extended(c.cla, c.ins, c.p1, c.p2, c.data, ne),
    ] {
        let c2 = Command::parse(&b).expect("a rebuilt APDU parses");
        assert_eq!(
            (c2.cla, c2.ins, c2.p1, c2.p2, c2.data, c2.ne),
            (c.cla, c.ins, c.p1, c.p2, c.data, c.ne),
            "{d:02X?} rebuilt as {b:02X?}"
        );
    }
}

fn apdu_build(r: &mut Reader<'_>) {
    let h = [r.u8(), r.u8(), r.u8(), r.u8()];
    let ne = match r.u8() % 4 {
        0 => 0,
        1 => 1 + r.u8() as usize,
        2 => 65536,
        _ => 1 + r.u16() as usize,
    };
    let data = r.bytes(65535);
    for b in [
        apdu::build(h[0], h[1], h[2], h[3], data, ne),
        apdu::build_extended(h[0], h[1], h[2], h[3], data, ne),
    ] {
        let c = Command::parse(&b).expect("a built APDU parses");
        let want = if ne == 0 && data.is_empty() { 256 } else { ne };
        assert_eq!((c.cla, c.ins, c.p1, c.p2), (h[0], h[1], h[2], h[3]));
        assert_eq!((c.data, c.ne), (data, want), "{b:02X?}");
    }
}

fn cvc_parse(d: &[u8]) {
    if let Ok((c, _)) = Cvc::parse(d) {
        for tag in 0x81..=0x87 {
            let _ = c.key_field(tag);
        }
        let _ = c.is_self_described();
        let rebuilt = cvc::build_cvc(c.body, c.signature);
        let (c2, rest) = Cvc::parse(&rebuilt).expect("a rebuilt CVC parses");
        assert!(rest.is_empty());
        assert_eq!(
            (
                c2.body,
                c2.car,
                c2.chr,
                c2.public_key,
                c2.algorithm,
                c2.signature
            ),
            (c.body, c.car, c.chr, c.public_key, c.algorithm, c.signature)
        );
    }
    let _ = cvc::parse_chain(d);
    let _ = cvc::first_chr(d);
    if let Ok(a) = AuthRequest::parse(d) {
        let rebuilt = cvc::build_auth_request(a.cert.raw, a.outer_car, a.outer_signature);
        let b = AuthRequest::parse(&rebuilt).expect("a rebuilt request parses");
        assert_eq!(
            (b.cert, b.outer_car, b.outer_signature),
            (a.cert, a.outer_car, a.outer_signature)
        );
        // (outer_signed keeps the CAR's length bytes as they were sent, which
        // the rebuild writes in the shortest form: not compared.)
    }
}

fn layouts(r: &mut Reader<'_>) {
    let d = r.rest();
    if let Some(a) = AppletInfo::parse(d) {
        let fcp = tlv::encode(0x62, &tlv::encode(0x85, &a.encode_proprietary()));
        assert_eq!(AppletInfo::parse(&fcp), Some(a));
    }
    if let Some(v) = Version::parse(d) {
        assert_eq!(Version::parse(&v.encode()), Some(v));
    }
    if let Some(s) = pka::Status::parse(d) {
        assert_eq!(pka::Status::parse(&s.encode()), Some(s));
        let _ = s.granted();
    }
    if let Some(s) = DomainStatus::parse(d) {
        assert_eq!(DomainStatus::parse(&s.encode()), Some(s));
    }
    if d.len() >= 2 {
        let sw = StatusWord(u16::from_be_bytes([d[0], d[1]]));
        let _ = PinState::of(sw);
        let _ = pka::no_pka(sw);
        let _ = sw.pin_tries();
    }
    let fids = file::parse_enumerate(d);
    assert_eq!(
        file::parse_enumerate(&file::encode_enumerate(fids.clone())),
        fids
    );
    // INITIALIZE's data from fuzzed parameters: a TLV sequence with the SO-PIN.
    let mut q = Reader::new(d);
    let mut p = InitParams::with_so_pin([q.u8(); 8]);
    p.options = q.u16();
    let f = q.u8();
    p.user_pin = (f & 1 != 0).then(|| q.short().to_vec());
    p.dkek_shares = (f & 2 != 0).then(|| q.u8());
    p.pka = (f & 4 != 0).then(|| (q.u8(), q.u8()));
    p.key_domains = (f & 8 != 0).then(|| q.u8());
    let enc = p.encode();
    let items = tlv::parse_all(&enc).expect("INITIALIZE data is TLV");
    assert!(items.iter().any(|t| t.tag == 0x82 && t.value == p.so_pin));
    let _ = p.command();
    // UPDATE BINARY's body round trip.
    let fid = q.u16();
    let off = q.u16();
    let chunk = q.bytes(4096);
    let u = file::update_binary(fid, off, chunk);
    let c = Command::parse(u.bytes()).expect("UPDATE BINARY parses");
    assert_eq!(
        file::parse_update_body(c.data),
        Some((off as usize, chunk)),
        "update body"
    );
}

fn pkcs15_parse(d: &[u8]) {
    if let Ok(p) = pkcs15::PrivateKeyDesc::parse(d) {
        let again = pkcs15::PrivateKeyDesc::parse(&p.encode()).expect("PrKD re-parses");
        assert_eq!(again, p);
    }
    if let Ok(p) = pkcs15::CertDesc::parse(d) {
        let again = pkcs15::CertDesc::parse(&p.encode()).expect("CD re-parses");
        assert_eq!(again, p);
    }
    if let Ok(p) = pkcs15::DataDesc::parse(d) {
        let again = pkcs15::DataDesc::parse(&p.encode()).expect("DCOD re-parses");
        assert_eq!(again, p);
    }
}

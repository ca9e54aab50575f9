//! Unit tests of `pkcs15`, with descriptors taken from the recorded traces
//! (`tests/fixtures/traces/`: READ BINARY / UPDATE BINARY of `C4xx`,
//! `C8xx`), docs/protocol.md §7.1, and DCOD/CD entries captured
//! from OpenSC writing to picohsm-vcard (see `opensc_dcod`).

use super::*;
use alloc::vec;
use alloc::vec::Vec;

fn h(s: &str) -> Vec<u8> {
    crate::test_hex(s)
}

/// t_kg.apdu.txt (and every other trace): READ BINARY of `C400`, the
/// device key's PrKD written by the card. ID = 20 zero bytes.
const C400_DEVICE: &str = "A0 38 30 0D 0C 0B 45 53 50 49 43 4F 48 53 4D 54 52
    30 1B 04 14 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
    03 03 07 20 80 A1 0A 30 08 30 02 04 00 02 02 01 00";

/// t_kg.apdu.txt: OpenSC's UPDATE BINARY of `C401` after generating an EC
/// P-256 key labelled "authkey" (also docs/protocol.md §7.1).
const C401_EC_OPENSC: &str = "A0 2B 30 10 0C 07 61 75 74 68 6B 65 79 03 02 06 C0
    04 01 01 30 0B 04 01 01 03 03 07 30 80 02 01 01
    A1 0A 30 08 30 02 04 00 02 02 01 00";

/// t_kgrsa.apdu.txt: OpenSC's UPDATE BINARY of `C402` after generating an
/// RSA-2048 key labelled "rsakey".
const C402_RSA_OPENSC: &str = "30 29 30 0F 0C 06 72 73 61 6B 65 79 03 02 06 C0
    04 01 01 30 0A 04 01 02 03 02 04 70 02 01 02 A1 0A 30 08 30 02 04 00 02 02 08 00";

/// t_bad.apdu.txt: READ BINARY of `C403` ("pkaauth", EC, key 3).
const C403_EC_OPENSC: &str = "A0 2B 30 10 0C 07 70 6B 61 61 75 74 68 03 02 06 C0
    04 01 01 30 0B 04 01 03 03 03 07 30 80 02 01 03
    A1 0A 30 08 30 02 04 00 02 02 01 00";

/// t_bad.apdu.txt: READ BINARY of `C404`, the firmware's default PrKD of an
/// EC key (empty label, ID = ASCII "4").
const C404_EC_FIRMWARE: &str = "A0 1A 30 02 0C 00 30 08 04 01 34 03 03 07 20 80
    A1 0A 30 08 30 02 04 00 02 02 01 00";

/// t_bad.apdu.txt: READ BINARY of `C800`, the CD of CA certificate `CA00`.
const C800_CD: &str = "30 3A 30 16 0C 10 45 53 50 49 43 4F 48 53 4D 54 52 42 42 42 42 42
    03 02 06 40 30 16 04 14 D2 1E 72 1E 6D 83 0D FE C5 D7 7B 54 30 B3 6A 14 75 15 17 D8
    A1 08 30 06 30 04 04 02 CA 00";

#[test]
fn device_key_c400() {
    let d = PrivateKeyDesc::parse(&h(C400_DEVICE)).unwrap();
    assert_eq!(d.label, "ESPICOHSMTR");
    assert_eq!(d.id, vec![0u8; 20]);
    assert_eq!(d.usage, USAGE_SIGN | USAGE_DERIVE);
    assert_eq!(d.kind, KeyKind::Ec);
    assert_eq!(d.key_bits, 256);
    assert_eq!(d.key_reference, None);
    assert_eq!(d.auth_id, None);
    assert!(!d.private && !d.modifiable);
    assert_eq!(d.encode(), h(C400_DEVICE));
}

#[test]
fn opensc_ec_prkd_protocol_7_1() {
    let d = PrivateKeyDesc::parse(&h(C401_EC_OPENSC)).unwrap();
    let want = PrivateKeyDesc {
        label: "authkey".into(),
        id: vec![1],
        usage: USAGE_SIGN | USAGE_SIGN_RECOVER | USAGE_DERIVE,
        kind: KeyKind::Ec,
        key_bits: 256,
        key_reference: Some(1),
        auth_id: Some(vec![1]),
        private: true,
        modifiable: true,
    };
    assert_eq!(d, want);
    assert_eq!(want.encode(), h(C401_EC_OPENSC));

    let d = PrivateKeyDesc::parse(&h(C403_EC_OPENSC)).unwrap();
    assert_eq!(d.label, "pkaauth");
    assert_eq!((d.id.as_slice(), d.key_reference), (&[3u8][..], Some(3)));
    assert_eq!(d.encode(), h(C403_EC_OPENSC));
}

#[test]
fn opensc_rsa_prkd() {
    let d = PrivateKeyDesc::parse(&h(C402_RSA_OPENSC)).unwrap();
    let want = PrivateKeyDesc {
        label: "rsakey".into(),
        id: vec![2],
        usage: USAGE_DECRYPT | USAGE_SIGN | USAGE_SIGN_RECOVER,
        kind: KeyKind::Rsa,
        key_bits: 2048,
        key_reference: Some(2),
        auth_id: Some(vec![1]),
        private: true,
        modifiable: true,
    };
    assert_eq!(d, want);
    assert_eq!(want.encode(), h(C402_RSA_OPENSC));
}

#[test]
fn firmware_default_prkd() {
    // As read from the card (t_bad.apdu.txt).
    let d = PrivateKeyDesc::parse(&h(C404_EC_FIRMWARE)).unwrap();
    assert_eq!(d.label, "");
    assert_eq!(d.id, b"4".to_vec());
    assert_eq!(d.usage, USAGE_SIGN | USAGE_DERIVE);
    assert_eq!(
        (d.kind, d.key_bits, d.key_reference),
        (KeyKind::Ec, 256, None)
    );
    assert!(!d.private && !d.modifiable && d.auth_id.is_none());
    // OpenSC leaves an empty label out: `30 00` instead of `30 02 0C 00`.
    let mut want = h(C404_EC_FIRMWARE);
    want.splice(0..6, h("A0 18 30 00"));
    assert_eq!(d.encode(), want);
    assert_eq!(PrivateKeyDesc::parse(&d.encode()).unwrap(), d);

    // As our firmware's prkd() builds them.
    let ec = card_default_prkd(KeyKind::Ec, b"", b"7", 384);
    assert_eq!(ec, {
        let mut v = h(C404_EC_FIRMWARE);
        v[10] = b'7';
        v[27] = 0x80;
        v[26] = 0x01;
        v
    });
    let d = PrivateKeyDesc::parse(&ec).unwrap();
    assert_eq!(
        (d.kind, d.key_bits, d.id.clone()),
        (KeyKind::Ec, 384, b"7".to_vec())
    );

    let rsa = card_default_prkd(KeyKind::Rsa, b"fw", b"12", 4096);
    let d = PrivateKeyDesc::parse(&rsa).unwrap();
    assert_eq!(d.label, "fw");
    assert_eq!(d.id, b"12".to_vec());
    assert_eq!(
        d.usage,
        USAGE_DECRYPT | USAGE_SIGN | USAGE_SIGN_RECOVER | USAGE_UNWRAP
    );
    assert_eq!((d.kind, d.key_bits), (KeyKind::Rsa, 4096));
    // With a non-empty label and no flags the firmware's form is OpenSC's.
    assert_eq!(d.encode(), rsa);
}

#[test]
fn prkd_optional_fields_are_skipped() {
    // native FALSE, accessFlags, keyReference 0x81 (two bytes), a
    // CommonPrivateKeyAttributes subclass, a 3-byte path and RSA keyInfo,
    // then two trailing bytes after the object (ignored).
    let v = h("30 36 30 06 0C 01 6B 03 01 00
        30 13 04 02 AB CD 03 02 02 74 01 01 00 03 02 03 B8 02 02 00 81
        A0 04 30 02 31 00
        A1 11 30 0F 30 05 04 03 3F 00 01 02 02 04 00 02 02 00 05
        00 00");
    let d = PrivateKeyDesc::parse(&v).unwrap();
    assert_eq!(d.label, "k");
    assert_eq!(d.id, vec![0xAB, 0xCD]);
    assert_eq!(
        d.usage,
        USAGE_DECRYPT | USAGE_SIGN | USAGE_SIGN_RECOVER | USAGE_UNWRAP
    );
    assert_eq!(d.key_reference, Some(0x81));
    assert_eq!((d.kind, d.key_bits), (KeyKind::Rsa, 1024));
    assert!(!d.private && !d.modifiable && d.auth_id.is_none());
    // Encoding: keyReference 0x81 needs a leading zero; usage 0 gives 03 01 00.
    let mut e = d.clone();
    e.usage = 0;
    assert_eq!(
        e.encode(),
        h("30 1E 30 03 0C 01 6B 30 0B 04 02 AB CD 03 01 00 02 02 00 81
           A1 0A 30 08 30 02 04 00 02 02 04 00")
    );
    assert_eq!(PrivateKeyDesc::parse(&e.encode()).unwrap(), e);
}

#[test]
fn ec_prkd_without_field_size() {
    let v = h("A0 14 30 00 30 08 04 01 09 03 03 07 20 80 A1 06 30 04 30 02 04 00");
    let d = PrivateKeyDesc::parse(&v).unwrap();
    assert_eq!((d.kind, d.key_bits), (KeyKind::Ec, 0));
}

#[test]
fn opensc_cd_c800() {
    let d = CertDesc::parse(&h(C800_CD)).unwrap();
    let want = CertDesc {
        label: "ESPICOHSMTRBBBBB".into(),
        id: h("D2 1E 72 1E 6D 83 0D FE C5 D7 7B 54 30 B3 6A 14 75 15 17 D8"),
        authority: false,
        fid: 0xCA00,
    };
    assert_eq!(d, want);
    assert_eq!(want.encode(), h(C800_CD));

    // authority TRUE is written as 01 01 FF right after the iD.
    let ca = CertDesc {
        label: "root".into(),
        id: vec![0x42],
        authority: true,
        fid: 0xCA05,
    };
    let enc = ca.encode();
    assert_eq!(
        enc,
        h(
            "30 1E 30 0A 0C 04 72 6F 6F 74 03 02 06 40 30 06 04 01 42 01 01 FF
           A1 08 30 06 30 04 04 02 CA 05"
        )
    );
    assert_eq!(CertDesc::parse(&enc).unwrap(), ca);
}

// No reference trace writes a C9xx, so these were captured from OpenSC
// 0.23.0 (Debian 12) writing to picohsm-vcard (--apdu-log), with
//   sc-hsm-tool --initialize --so-pin 3537363231383830 --pin 648219
//   pkcs11-tool --login --pin 648219 --write-object data.bin --type data \
//       --label mydo --application-label my-app            -> CF00, C900
//   ... --type data --label secret --private \
//       --application-id 1.3.6.1.4.1.24991.31              -> CD01, C901
//   ... --type data                                        -> CF02, C902
//   ... --write-object ec.der --type cert --label caroot --id 42  -> CA00, C800
// (the UPDATE BINARY data of C9xx / C8xx).

/// Public data object with label and application name.
const C900_DCOD_PUBLIC: &str = "30 1E 30 0A 0C 04 6D 79 64 6F 03 02 06 40
    30 08 0C 06 6D 79 2D 61 70 70 A1 06 30 04 04 02 CF 00";

/// Private data object with an application OID (application name = label).
const C901_DCOD_PRIVATE: &str = "30 2E 30 0F 0C 06 73 65 63 72 65 74 03 02 06 C0 04 01 01
    30 13 0C 06 73 65 63 72 65 74 06 09 2B 06 01 04 01 81 C3 1F 1F
    A1 06 30 04 04 02 CD 01";

/// Data object without label or application.
const C902_DCOD_EMPTY: &str = "30 10 30 04 03 02 06 40 30 00 A1 06 30 04 04 02 CF 02";

/// CA certificate description written by `pkcs11-tool --write-object`.
const C800_CD_OPENSC: &str = "30 1D 30 0C 0C 06 63 61 72 6F 6F 74 03 02 06 40
    30 03 04 01 42 A1 08 30 06 30 04 04 02 CA 00";

#[test]
fn opensc_dcod() {
    let d = DataDesc {
        label: "mydo".into(),
        app_label: "my-app".into(),
        app_oid: None,
        fid: 0xCF00,
        private: false,
        auth_id: None,
    };
    assert_eq!(DataDesc::parse(&h(C900_DCOD_PUBLIC)).unwrap(), d);
    assert_eq!(d.encode(), h(C900_DCOD_PUBLIC));

    let p = DataDesc {
        label: "secret".into(),
        app_label: "secret".into(),
        app_oid: Some(h("2B 06 01 04 01 81 C3 1F 1F")),
        fid: 0xCD01,
        private: true,
        auth_id: Some(vec![1]),
    };
    assert_eq!(DataDesc::parse(&h(C901_DCOD_PRIVATE)).unwrap(), p);
    assert_eq!(p.encode(), h(C901_DCOD_PRIVATE));

    // Empty label and application name: both left out, the SEQUENCE stays.
    let e = DataDesc {
        label: String::new(),
        app_label: String::new(),
        app_oid: None,
        fid: 0xCF02,
        private: false,
        auth_id: None,
    };
    assert_eq!(DataDesc::parse(&h(C902_DCOD_EMPTY)).unwrap(), e);
    assert_eq!(e.encode(), h(C902_DCOD_EMPTY));

    // A malformed OID is refused.
    let mut bad = h(C901_DCOD_PRIVATE);
    bad[39] = 0x9F; // last OID byte with the continuation bit
    assert_eq!(
        DataDesc::parse(&bad).unwrap_err().message(),
        "bad applicationOID"
    );
}

#[test]
fn opensc_cd_written_by_pkcs11_tool() {
    let c = CertDesc {
        label: "caroot".into(),
        id: vec![0x42],
        authority: false,
        fid: 0xCA00,
    };
    assert_eq!(CertDesc::parse(&h(C800_CD_OPENSC)).unwrap(), c);
    assert_eq!(c.encode(), h(C800_CD_OPENSC));
}

#[test]
fn bit_fields() {
    assert_eq!(encode_bit_field(0), vec![0x00]);
    assert_eq!(encode_bit_field(FLAG_MODIFIABLE), vec![0x06, 0x40]);
    assert_eq!(encode_bit_field(FLAG_PRIVATE), vec![0x07, 0x80]);
    assert_eq!(
        encode_bit_field(USAGE_SIGN | USAGE_DERIVE),
        vec![0x07, 0x20, 0x80]
    );
    assert_eq!(
        encode_bit_field(USAGE_NON_REPUDIATION),
        vec![0x06, 0x00, 0x40]
    );
    assert_eq!(encode_bit_field(0xFF), vec![0x00, 0xFF]);
    for v in [0u32, 1, 2, 3, 0x274, 0x80, 0x100, 0xFFFF_FFFF, 0x8000_0000] {
        assert_eq!(decode_bit_field(&encode_bit_field(v)).unwrap(), v);
    }
    // Padding bits are ignored; over-long and malformed strings rejected.
    assert_eq!(
        decode_bit_field(&[0x07, 0x20, 0xFF]).unwrap(),
        USAGE_SIGN | USAGE_DERIVE
    );
    assert!(decode_bit_field(&[]).is_err());
    assert!(decode_bit_field(&[0x08, 0x00]).is_err());
    assert!(decode_bit_field(&[0x01]).is_err());
    assert!(decode_bit_field(&[0x00, 1, 2, 3, 4, 5]).is_err());
}

#[test]
fn integers() {
    assert_eq!(encode_uint(0), vec![0]);
    assert_eq!(encode_uint(1), vec![1]);
    assert_eq!(encode_uint(0x80), vec![0, 0x80]);
    assert_eq!(encode_uint(256), vec![1, 0]);
    assert_eq!(encode_uint(521), vec![2, 9]);
    assert_eq!(decode_uint(&[0, 0, 1, 0]).unwrap(), 256);
    assert!(decode_uint(&[]).is_err());
    assert!(decode_uint(&[0xFF]).is_err());
    assert!(decode_uint(&[1, 0, 0, 0, 0]).is_err());
}

#[test]
fn wrong_kinds_and_garbage() {
    // AES key description (A8) and GOST (A4) are not private keys we handle.
    let aes = h("A8 14 30 00 30 08 04 01 09 03 03 07 20 80 A1 06 30 04 30 02 04 00");
    assert_eq!(
        PrivateKeyDesc::parse(&aes).unwrap_err().message(),
        "secret key description (A8), not a private key"
    );
    assert!(PrivateKeyDesc::parse(&h("A4 00")).is_err());
    assert!(CertDesc::parse(&h(C401_EC_OPENSC)).is_err());
    assert!(DataDesc::parse(&h(C401_EC_OPENSC)).is_err());
    // CDs whose path is too short for a FID.
    assert!(CertDesc::parse(&h("30 10 30 00 30 03 04 01 01 A1 07 30 05 30 03 04 01 CA")).is_err());
    assert!(CertDesc::parse(&h("30 0F 30 00 30 03 04 01 01 A1 06 30 04 30 02 04 00")).is_err());
    // A PrKD with keyReference > 255.
    let big = h("A0 18 30 00 30 0C 04 01 09 03 03 07 20 80 02 02 01 00 A1 06 30 04 30 02 04 00");
    assert_eq!(
        PrivateKeyDesc::parse(&big).unwrap_err().message(),
        "keyReference > 255"
    );
}

/// Every prefix, and every single-byte corruption, of the trace vectors
/// must give an error or a value, never a panic.
#[test]
fn no_panics_on_malformed_input() {
    let inputs = [
        C400_DEVICE,
        C401_EC_OPENSC,
        C402_RSA_OPENSC,
        C403_EC_OPENSC,
        C404_EC_FIRMWARE,
        C800_CD,
        C900_DCOD_PUBLIC,
        C901_DCOD_PRIVATE,
        C902_DCOD_EMPTY,
        C800_CD_OPENSC,
    ];
    for s in inputs {
        let v = h(s);
        for n in 0..v.len() {
            let _ = PrivateKeyDesc::parse(&v[..n]);
            let _ = CertDesc::parse(&v[..n]);
            let _ = DataDesc::parse(&v[..n]);
        }
        for i in 0..v.len() {
            for x in [0x00u8, 0x01, 0x7F, 0x80, 0x81, 0x82, 0x83, 0xFF] {
                let mut w = v.clone();
                w[i] = x;
                let _ = PrivateKeyDesc::parse(&w);
                let _ = CertDesc::parse(&w);
                let _ = DataDesc::parse(&w);
            }
        }
    }
}

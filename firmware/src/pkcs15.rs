//! Default PKCS#15 descriptions the card writes itself (protocol reference
//! §7.1): a PrKD for a generated or unwrapped key, in the form OpenSC's
//! sc-hsm emulator reads. OpenSC replaces it with its own after key
//! generation; sc-hsm-tool restores the original after an unwrap.

use alloc::vec::Vec;
use picohsm_wire::tlv;

/// A private key description: `A0` (EC) or `30` (RSA) with the label, the
/// key ID, usage flags and the key size in bits.
pub fn prkd(ec: bool, label: &[u8], id: &[u8], bits: usize) -> Vec<u8> {
    let mut common = Vec::new();
    tlv::push(&mut common, 0x0C, label);
    let mut key_attrs = Vec::new();
    tlv::push(&mut key_attrs, 0x04, id);
    // KeyUsageFlags: sign, signRecover / decrypt, derive.
    if ec {
        tlv::push(&mut key_attrs, 0x03, &[0x07, 0x20, 0x80]);
    } else {
        tlv::push(&mut key_attrs, 0x03, &[0x02, 0x74]);
    }
    let mut size = Vec::new();
    tlv::push(&mut size, 0x30, &tlv::encode(0x04, &[]));
    tlv::push(&mut size, 0x02, &(bits as u16).to_be_bytes());
    let type_attrs = tlv::encode(0xA1, &tlv::encode(0x30, &size));
    let mut body = Vec::new();
    tlv::push(&mut body, 0x30, &common);
    tlv::push(&mut body, 0x30, &key_attrs);
    body.extend_from_slice(&type_attrs);
    tlv::encode(if ec { 0xA0 } else { 0x30 }, &body)
}

//! The file commands (docs/protocol.md §2.3, §3.5-§3.8): SELECT of the
//! applet, READ BINARY and UPDATE BINARY of an EF by FID with the offset
//! data object `54`, DELETE FILE and ENUMERATE OBJECTS.

use alloc::vec::Vec;

use super::{Apdu, Cmd, CLA_ISO, CLA_PROPRIETARY};
use crate::codes::{ins, AID};
use crate::sw::StatusWord;
use crate::tlv;

/// Tag of the offset data object of READ/UPDATE BINARY (docs/protocol.md §3.5).
pub const TAG_OFFSET: u16 = 0x54;
/// Tag of the data of UPDATE BINARY (docs/protocol.md §3.6).
pub const TAG_DATA: u16 = 0x53;
/// Le of a whole-file read: the card answers what it has, up to its buffer.
pub const READ_ALL: usize = 65536;
/// Bytes of file data the host puts in one UPDATE BINARY.
pub const WRITE_CHUNK: usize = 1024;
/// The longest UPDATE BINARY body the host sends as one chained command
/// (docs/protocol.md §1.2, §3.6): an upstream Pico HSM joins the parts in a
/// 4 KiB buffer and runs the command from its 4 KiB receive buffer, so
/// 4000 bytes leave room for the APDU and CCID headers.
pub const CHAINED_WRITE_MAX: usize = 4000;

/// SELECT of the SmartCard-HSM applet by AID, asking for the FCP.
pub fn select_applet() -> Apdu {
    Apdu::new(
        Cmd::SelectApplet,
        [CLA_ISO, ins::SELECT, 0x04, 0x00],
        AID,
        256,
    )
}

/// READ BINARY (odd form, `B1`) of EF `fid` from `offset`.
pub fn read_binary(fid: u16, offset: u16) -> Apdu {
    let [hi, lo] = fid.to_be_bytes();
    Apdu::extended(
        Cmd::ReadBinary,
        [CLA_ISO, ins::READ_BINARY_ODD, hi, lo],
        &tlv::encode(TAG_OFFSET, &offset.to_be_bytes()),
        READ_ALL,
    )
}

/// What a READ BINARY answer means for a whole-file read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadStatus {
    /// Data follows; there may be more.
    Data,
    /// The offset is past the end of the file (`6282`).
    End,
    /// The file does not exist (`6A82`).
    Missing,
    /// Another status word: a failure.
    Failed,
}

impl ReadStatus {
    /// The meaning of `sw` after READ BINARY.
    pub fn of(sw: StatusWord) -> ReadStatus {
        match sw {
            StatusWord::OK => ReadStatus::Data,
            StatusWord::END_OF_FILE => ReadStatus::End,
            StatusWord::FILE_NOT_FOUND => ReadStatus::Missing,
            _ => ReadStatus::Failed,
        }
    }
}

/// UPDATE BINARY (odd form, `D7`) of `chunk` at `offset` of EF `fid`,
/// creating the file if needed.
pub fn update_binary(fid: u16, offset: u16, chunk: &[u8]) -> Apdu {
    let [hi, lo] = fid.to_be_bytes();
    let mut body = Vec::with_capacity(chunk.len() + 10);
    tlv::push(&mut body, TAG_OFFSET, &offset.to_be_bytes());
    tlv::push(&mut body, TAG_DATA, chunk);
    Apdu::extended(
        Cmd::UpdateBinary,
        [CLA_ISO, ins::UPDATE_BINARY_ODD, hi, lo],
        &body,
        0,
    )
}

/// The offset of a READ or UPDATE BINARY body (the card's side): `0`
/// without a body, else the offset data object of 1 to 4 bytes; `None` if
/// it is malformed or missing.
pub fn parse_offset(body: &[u8]) -> Option<usize> {
    if body.is_empty() {
        return Some(0);
    }
    let off = tlv::find(body, TAG_OFFSET).ok().flatten()?.value;
    if off.is_empty() || off.len() > 4 {
        return None;
    }
    Some(off.iter().fold(0usize, |a, b| (a << 8) | *b as usize))
}

/// UPDATE BINARY of the whole content `data` of EF `fid` (offset 0, which
/// replaces the content) as one command sent in parts of at most
/// [`WRITE_CHUNK`] bytes with command chaining (CLA bit `10` on every part
/// but the last, docs/protocol.md §1.2): the card runs it once, when the
/// last part arrives, so a write of several APDUs is still all or nothing.
/// `None` when the body is longer than [`CHAINED_WRITE_MAX`].
pub fn update_binary_chained(fid: u16, data: &[u8]) -> Option<Vec<Apdu>> {
    let [hi, lo] = fid.to_be_bytes();
    let mut body = Vec::with_capacity(data.len() + 10);
    tlv::push(&mut body, TAG_OFFSET, &[0, 0]);
    tlv::push(&mut body, TAG_DATA, data);
    if body.len() > CHAINED_WRITE_MAX {
        return None;
    }
    let parts: Vec<&[u8]> = body.chunks(WRITE_CHUNK).collect();
    let last = parts.len() - 1;
    Some(
        parts
            .iter()
            .enumerate()
            .map(|(i, part)| {
                let cla = if i < last {
                    CLA_ISO | crate::apdu::CLA_CHAINING
                } else {
                    CLA_ISO
                };
                Apdu::extended(
                    Cmd::UpdateBinary,
                    [cla, ins::UPDATE_BINARY_ODD, hi, lo],
                    part,
                    0,
                )
            })
            .collect(),
    )
}

/// The offset and data of an UPDATE BINARY body (the card's side).
pub fn parse_update_body(body: &[u8]) -> Option<(usize, &[u8])> {
    let offset = parse_offset(body)?;
    let data = tlv::find(body, TAG_DATA).ok().flatten()?.value;
    Some((offset, data))
}

/// DELETE FILE of EF `fid` (P1 `02`: by FID).
pub fn delete_file(fid: u16) -> Apdu {
    Apdu::new(
        Cmd::DeleteFile,
        [CLA_ISO, ins::DELETE_FILE, 0x02, 0x00],
        &fid.to_be_bytes(),
        0,
    )
}

/// ENUMERATE OBJECTS: every key and descriptor FID.
pub fn enumerate() -> Apdu {
    Apdu::extended(
        Cmd::Enumerate,
        [CLA_PROPRIETARY, ins::LIST_KEYS, 0x00, 0x00],
        &[],
        READ_ALL,
    )
}

/// The FIDs of an ENUMERATE OBJECTS answer.
pub fn parse_enumerate(data: &[u8]) -> Vec<u16> {
    data.chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect()
}

/// The answer to ENUMERATE OBJECTS (the card's side).
pub fn encode_enumerate(fids: impl IntoIterator<Item = u16>) -> Vec<u8> {
    fids.into_iter().flat_map(u16::to_be_bytes).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_hex as hex;

    #[test]
    fn bytes_as_the_traces_have_them() {
        assert_eq!(
            select_applet().bytes(),
            hex("00 A4 04 00 0B E8 2B 06 01 04 01 81 C3 1F 02 01 00")
        );
        assert_eq!(
            read_binary(0x2F02, 0).bytes(),
            hex("00 B1 2F 02 00 00 04 54 02 00 00 00 00")
        );
        assert_eq!(enumerate().bytes(), hex("80 58 00 00 00 00 00"));
        assert_eq!(delete_file(0xC901).bytes(), hex("00 E4 02 00 02 C9 01"));
        let u = update_binary(0xCF01, 2, &[0xAA]);
        assert_eq!(u.bytes(), hex("00 D7 CF 01 00 00 07 54 02 00 02 53 01 AA"));
        assert_eq!(parse_update_body(&u.bytes()[7..]), Some((2, &[0xAA][..])));
    }

    #[test]
    fn a_chained_write_is_one_body_in_parts() {
        let data: Vec<u8> = (0..2500u32).map(|i| i as u8).collect();
        let parts = update_binary_chained(0xCE05, &data).unwrap();
        assert_eq!(parts.len(), 3);
        let mut body = Vec::new();
        for (i, p) in parts.iter().enumerate() {
            let b = p.bytes();
            let chained = if i < 2 { 0x10 } else { 0x00 };
            assert_eq!(&b[..5], &[chained, 0xD7, 0xCE, 0x05, 0x00]);
            let n = u16::from_be_bytes([b[5], b[6]]) as usize;
            assert_eq!(b.len(), 7 + n, "no Le");
            assert!(n <= WRITE_CHUNK);
            body.extend_from_slice(&b[7..]);
        }
        assert_eq!(parse_update_body(&body), Some((0, &data[..])));
        // One part when it fits; none past what a device's buffer takes.
        assert_eq!(
            update_binary_chained(0xCE05, &data[..900]).unwrap().len(),
            1
        );
        assert!(update_binary_chained(0xCE05, &[0; CHAINED_WRITE_MAX]).is_none());
    }

    #[test]
    fn enumerate_round_trip() {
        let fids = [0xCC00, 0xC401, 0xCE01];
        assert_eq!(parse_enumerate(&encode_enumerate(fids)), fids);
        assert_eq!(ReadStatus::of(StatusWord(0x6282)), ReadStatus::End);
    }
}

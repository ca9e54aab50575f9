//! Command APDUs (ISO 7816-4 §5.1): parsing on the card, building on the host.
//! Short and extended lengths as docs/protocol.md §1.1 describes them.

use alloc::vec::Vec;

use crate::sw::StatusWord;

/// A command APDU split into its fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command<'a> {
    /// Class byte (bit 0x10: command chaining; bits 0x0C: secure messaging).
    pub cla: u8,
    /// Instruction.
    pub ins: u8,
    /// Parameter 1.
    pub p1: u8,
    /// Parameter 2.
    pub p2: u8,
    /// Command data (Nc bytes).
    pub data: &'a [u8],
    /// Ne: the most response bytes the host accepts; `0` when no Le was sent
    /// (case 1 and 3). A 4-byte APDU counts as Ne = 256, as on the Pico.
    pub ne: usize,
    /// Whether the APDU used extended lengths.
    pub extended: bool,
}

/// CLA bit for command chaining (ISO 7816-4 §5.1.1).
pub const CLA_CHAINING: u8 = 0x10;

impl<'a> Command<'a> {
    /// Parses a command APDU. A length that does not match the bytes present
    /// is `6700` (the upstream firmware drops such APDUs silently; answering
    /// lets the host tell what went wrong).
    pub fn parse(apdu: &'a [u8]) -> Result<Self, StatusWord> {
        if apdu.len() < 4 {
            return Err(StatusWord::WRONG_LENGTH);
        }
        let (cla, ins, p1, p2) = (apdu[0], apdu[1], apdu[2], apdu[3]);
        let body = &apdu[4..];
        let mut cmd = Command {
            cla,
            ins,
            p1,
            p2,
            data: &[],
            ne: 0,
            extended: false,
        };
        match body.len() {
            0 => cmd.ne = 256,
            1 => cmd.ne = if body[0] == 0 { 256 } else { body[0] as usize },
            _ if body[0] == 0 && body.len() >= 3 => {
                cmd.extended = true;
                let n = u16::from_be_bytes([body[1], body[2]]) as usize;
                if body.len() == 3 {
                    cmd.ne = if n == 0 { 65536 } else { n };
                } else {
                    if n == 0 {
                        return Err(StatusWord::WRONG_LENGTH);
                    }
                    let rest = &body[3..];
                    if rest.len() == n {
                        cmd.data = rest;
                    } else if rest.len() == n + 2 {
                        cmd.data = &rest[..n];
                        let le = u16::from_be_bytes([rest[n], rest[n + 1]]) as usize;
                        cmd.ne = if le == 0 { 65536 } else { le };
                    } else {
                        return Err(StatusWord::WRONG_LENGTH);
                    }
                }
            }
            _ => {
                let n = body[0] as usize;
                let rest = &body[1..];
                if n == 0 {
                    return Err(StatusWord::WRONG_LENGTH);
                }
                if rest.len() == n {
                    cmd.data = rest;
                } else if rest.len() == n + 1 {
                    cmd.data = &rest[..n];
                    cmd.ne = if rest[n] == 0 { 256 } else { rest[n] as usize };
                } else {
                    return Err(StatusWord::WRONG_LENGTH);
                }
            }
        }
        Ok(cmd)
    }

    /// Whether more commands of this chain follow.
    pub fn is_chained(&self) -> bool {
        self.cla & CLA_CHAINING != 0
    }
}

/// Builds a command APDU, choosing short or extended encoding: extended when
/// the data exceeds 255 bytes or `ne` exceeds 256.
///
/// `ne = 0` means no Le field; `ne = 256` (short) or `65536` (extended) is
/// encoded as `00`/`0000`.
pub fn build(cla: u8, ins: u8, p1: u8, p2: u8, data: &[u8], ne: usize) -> Vec<u8> {
    if data.len() > 255 || ne > 256 {
        return build_extended(cla, ins, p1, p2, data, ne);
    }
    let mut v = Vec::with_capacity(data.len() + 6);
    v.extend_from_slice(&[cla, ins, p1, p2]);
    if !data.is_empty() {
        v.push(data.len() as u8);
        v.extend_from_slice(data);
    }
    if ne > 0 {
        v.push((ne & 0xFF) as u8);
    }
    v
}

/// Builds a command APDU that always uses extended lengths when it has data
/// or Le, as OpenSC does towards a SmartCard-HSM.
pub fn build_extended(cla: u8, ins: u8, p1: u8, p2: u8, data: &[u8], ne: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(data.len() + 9);
    v.extend_from_slice(&[cla, ins, p1, p2]);
    if data.is_empty() && ne == 0 {
        return v;
    }
    v.push(0);
    if !data.is_empty() {
        v.extend_from_slice(&(data.len() as u16).to_be_bytes());
        v.extend_from_slice(data);
    }
    if ne > 0 {
        v.extend_from_slice(&((ne & 0xFFFF) as u16).to_be_bytes());
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases() {
        let c = Command::parse(&[0x80, 0x50, 0, 0]).unwrap();
        assert_eq!((c.data.len(), c.ne), (0, 256));
        let c = Command::parse(&[0, 0x84, 0, 0, 8]).unwrap();
        assert_eq!(c.ne, 8);
        let c = Command::parse(&[0, 0x84, 0, 0, 0]).unwrap();
        assert_eq!(c.ne, 256);
        let c = Command::parse(&[0x80, 0x58, 0, 0, 0, 0, 0]).unwrap();
        assert_eq!((c.ne, c.extended), (65536, true));
        let c = Command::parse(&[0, 0xA4, 0, 0, 2, 0x2F, 0x02, 0]).unwrap();
        assert_eq!((c.data, c.ne), (&[0x2F, 0x02][..], 256));
        let c = Command::parse(&[0, 0x20, 0, 0x81, 2, 0x31, 0x32]).unwrap();
        assert_eq!((c.data, c.ne), (&[0x31, 0x32][..], 0));
        let c = Command::parse(&[0x80, 0x68, 1, 0x73, 0, 0, 2, 0xAA, 0xBB, 2, 0]).unwrap();
        assert_eq!((c.data, c.ne), (&[0xAA, 0xBB][..], 512));
        let c = Command::parse(&[0x80, 0x68, 1, 0x73, 0, 0, 2, 0xAA, 0xBB]).unwrap();
        assert_eq!((c.data, c.ne), (&[0xAA, 0xBB][..], 0));
    }

    #[test]
    fn malformed_lengths() {
        for bad in [
            &[0u8][..],
            &[0, 0xA4, 0][..],
            &[0, 0xA4, 0, 0, 3, 1][..],
            &[0, 0xA4, 0, 0, 1, 1, 2, 3][..],
            &[0, 0xA4, 0, 0, 0, 0, 5, 1][..],
            &[0, 0xA4, 0, 0, 0, 0, 0, 1][..],
        ] {
            assert_eq!(
                Command::parse(bad),
                Err(StatusWord::WRONG_LENGTH),
                "{bad:02X?}"
            );
        }
    }

    #[test]
    fn build_parse_round_trip() {
        for (len, ne) in [
            (0, 0),
            (0, 8),
            (3, 0),
            (3, 256),
            (300, 0),
            (300, 65536),
            (10, 512),
        ] {
            let data = alloc::vec![7u8; len];
            for apdu in [
                build(0x80, 0x68, 1, 2, &data, ne),
                build_extended(0x80, 0x68, 1, 2, &data, ne),
            ] {
                let c = Command::parse(&apdu).unwrap();
                assert_eq!(c.data, &data[..]);
                let want = if ne == 0 && len == 0 { 256 } else { ne };
                assert_eq!(c.ne, want, "len {len} ne {ne} {apdu:02X?}");
            }
        }
    }
}

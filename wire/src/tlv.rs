//! BER-TLV as the SmartCard-HSM uses it: one- or two-byte tags
//! (`5F20`, `7F21`, ...) and definite lengths in the short, `81 xx` and
//! `82 xx xx` forms (ISO 7816-4 §5.2, docs/protocol.md §3.6, §6.2).

use alloc::vec::Vec;

/// A TLV that could not be parsed: truncated, bad length form, or trailing bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlvError;

/// One parsed TLV: its tag (one or two bytes, big-endian in a `u16`), its
/// value, and the complete encoding (tag, length and value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    /// `0x5F20` for a two-byte tag, `0x42` for a one-byte tag.
    pub tag: u16,
    /// The value bytes.
    pub value: &'a [u8],
    /// Tag, length and value, as they stand in the input.
    pub raw: &'a [u8],
}

/// A structure read from TLVs that does not have its layout: what it is
/// and what was wrong, in a few words (never the data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeError {
    of: &'static str,
    what: &'static str,
}

impl DecodeError {
    /// `what` was wrong with a structure of kind `of`.
    pub const fn new(of: &'static str, what: &'static str) -> Self {
        DecodeError { of, what }
    }

    /// What was wrong, in a few words.
    pub fn message(&self) -> &'static str {
        self.what
    }
}

impl core::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}: {}", self.of, self.what)
    }
}

impl core::error::Error for DecodeError {}

/// Reads one TLV from the front of `input`; returns it and the rest.
pub fn parse_one(input: &[u8]) -> Result<(Tlv<'_>, &[u8]), TlvError> {
    let first = *input.first().ok_or(TlvError)?;
    let mut pos = 1;
    let mut tag = first as u16;
    if first & 0x1F == 0x1F {
        let second = *input.get(1).ok_or(TlvError)?;
        if second & 0x80 != 0 {
            // Three-byte tags do not occur in this protocol.
            return Err(TlvError);
        }
        tag = (tag << 8) | second as u16;
        pos = 2;
    }
    let l0 = *input.get(pos).ok_or(TlvError)?;
    pos += 1;
    let len = match l0 {
        0x00..=0x7F => l0 as usize,
        0x81 => {
            let l = *input.get(pos).ok_or(TlvError)? as usize;
            pos += 1;
            l
        }
        // Up to four length bytes (X.509 structures on the host may be
        // longer than a card file); indefinite lengths are not DER.
        0x82..=0x84 => {
            let n = (l0 & 0x7F) as usize;
            let bytes = input.get(pos..pos + n).ok_or(TlvError)?;
            pos += n;
            bytes.iter().fold(0usize, |a, &b| (a << 8) | b as usize)
        }
        _ => return Err(TlvError),
    };
    let end = pos.checked_add(len).ok_or(TlvError)?;
    if end > input.len() {
        return Err(TlvError);
    }
    Ok((
        Tlv {
            tag,
            value: &input[pos..end],
            raw: &input[..end],
        },
        &input[end..],
    ))
}

/// As [`parse_one`], for DER: the length must be in its shortest form.
pub fn parse_one_der(input: &[u8]) -> Result<(Tlv<'_>, &[u8]), TlvError> {
    let (t, rest) = parse_one(input)?;
    let mut header = Vec::with_capacity(6);
    if t.tag > 0xFF {
        header.push((t.tag >> 8) as u8);
    }
    header.push(t.tag as u8);
    push_len(&mut header, t.value.len());
    if t.raw.len() != header.len() + t.value.len() {
        return Err(TlvError);
    }
    Ok((t, rest))
}

/// Iterates over a sequence of TLVs; yields an error once and stops if the
/// input is malformed.
pub fn iter(input: &[u8]) -> TlvIter<'_> {
    TlvIter {
        rest: input,
        failed: false,
    }
}

/// Iterator returned by [`iter`].
pub struct TlvIter<'a> {
    rest: &'a [u8],
    failed: bool,
}

impl<'a> Iterator for TlvIter<'a> {
    type Item = Result<Tlv<'a>, TlvError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() || self.failed {
            return None;
        }
        match parse_one(self.rest) {
            Ok((tlv, rest)) => {
                self.rest = rest;
                Some(Ok(tlv))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// Parses the whole input as a sequence of TLVs.
pub fn parse_all(input: &[u8]) -> Result<Vec<Tlv<'_>>, TlvError> {
    iter(input).collect()
}

/// Finds the first TLV with `tag` at the top level of `input`.
pub fn find(input: &[u8], tag: u16) -> Result<Option<Tlv<'_>>, TlvError> {
    for t in iter(input) {
        let t = t?;
        if t.tag == tag {
            return Ok(Some(t));
        }
    }
    Ok(None)
}

/// Appends the encoding of a length.
pub fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else if len < 0x100 {
        out.push(0x81);
        out.push(len as u8);
    } else {
        let bytes = (len as u32).to_be_bytes();
        let first = bytes.iter().position(|&b| b != 0).unwrap_or(3);
        out.push(0x80 | (4 - first) as u8);
        out.extend_from_slice(&bytes[first..]);
    }
}

/// Appends a complete TLV.
pub fn push(out: &mut Vec<u8>, tag: u16, value: &[u8]) {
    if tag > 0xFF {
        out.push((tag >> 8) as u8);
    }
    out.push(tag as u8);
    push_len(out, value.len());
    out.extend_from_slice(value);
}

/// Encodes one TLV.
pub fn encode(tag: u16, value: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(value.len() + 4);
    push(&mut v, tag, value);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_round_trip() {
        for n in [0x80usize, 0x100, 0xFFFF, 0x1_0000, 70_000] {
            let v = alloc::vec![0xA5u8; n];
            let t = encode(0x04, &v);
            let (back, rest) = parse_one_der(&t).unwrap();
            assert_eq!((back.value.len(), rest.len()), (n, 0), "{n}");
        }
    }

    #[test]
    fn der_lengths_are_the_shortest() {
        assert!(parse_one_der(&[0x02, 0x01, 0x05]).is_ok());
        assert!(parse_one_der(&[0x02, 0x81, 0x01, 0x05]).is_err());
        assert!(parse_one(&[0x02, 0x81, 0x01, 0x05]).is_ok());
        let long = encode(0x04, &[0u8; 300]);
        assert!(parse_one_der(&long).is_ok());
    }

    #[test]
    fn round_trip_all_length_forms() {
        for len in [0usize, 1, 0x7F, 0x80, 0xFF, 0x100, 0x1234] {
            let value = alloc::vec![0xAB; len];
            for tag in [0x42u16, 0x5F20, 0x7F21] {
                let enc = encode(tag, &value);
                let (t, rest) = parse_one(&enc).unwrap();
                assert_eq!(t.tag, tag);
                assert_eq!(t.value, &value[..]);
                assert_eq!(t.raw, &enc[..]);
                assert!(rest.is_empty());
            }
        }
    }

    #[test]
    fn malformed_is_an_error_not_a_panic() {
        for bad in [
            &[][..],
            &[0x5F][..],
            &[0x42][..],
            &[0x42, 0x02, 0x01][..],
            &[0x42, 0x83, 0, 0, 1][..],
            &[0x42, 0x81][..],
            &[0x42, 0x82, 0x01][..],
            &[0x5F, 0x81, 0x01, 0x00][..],
        ] {
            assert!(parse_one(bad).is_err(), "{bad:02X?}");
        }
        assert!(parse_all(&[0x42, 0x01, 0x00, 0x43]).is_err());
    }

    #[test]
    fn find_top_level() {
        let mut v = Vec::new();
        push(&mut v, 0x80, &[0, 1]);
        push(&mut v, 0x81, b"648219");
        assert_eq!(find(&v, 0x81).unwrap().unwrap().value, b"648219");
        assert!(find(&v, 0x82).unwrap().is_none());
    }
}

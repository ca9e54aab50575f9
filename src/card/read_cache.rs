//! The card's public files, kept per connection.
//!
//! The module reads a token's PKCS#15 files (key descriptions, certificates
//! and requests, data objects) once and keeps what it parsed, until the
//! card changes. When this module changes the card (a key, a certificate,
//! a label), it parses the files again; without this cache that meant
//! reading every description and every certificate again: a key pair and
//! its certificate on a token of N keys cost about 3 N APDUs (N + 5 for
//! the key, N + 3 for the certificate, N − 1 to list the certificates
//! after). Here each READ BINARY of a public file is answered from its
//! earlier answer, and each command that changes files drops what it
//! changes: only what this module wrote is read again.
//!
//! What a command changes comes from the command itself, whatever code
//! sent it (docs/protocol.md §3.5-§3.9): UPDATE BINARY and DELETE FILE name
//! their file, GENERATE and UNWRAP their key (its `CC`, `CE` and `C4`
//! files), INITIALIZE with data starts the card afresh; a command this
//! module does not know empties the cache. Only public files are kept
//! (descriptions `C4` `C8` `C9`, certificates and requests `CA` `CE`,
//! public data `CF`, the device chain `2F02` and token info `2F03`): a
//! protected data object (`CD`) is read from the card every time, so the
//! card decides every time whether the login allows it. Files another
//! application changes are seen once this module connects again, as the
//! parsed objects always were.

use std::collections::HashMap;

use picohsm_wire::apdu::Command;
use picohsm_wire::codes::{fid, ins};
use picohsm_wire::sw::StatusWord;

use crate::error::Result;
use crate::transport::{Link, Transport};

/// What a command does to the files the cache keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Effect {
    /// A READ BINARY of this public file: answered from the cache if it
    /// can be.
    Read,
    /// Reads or changes nothing kept.
    Nothing,
    /// Changes these files.
    Changes(Vec<u16>),
    /// May change any file.
    Everything,
}

/// Whether the file `f` is public: kept.
fn public(f: u16) -> bool {
    let [prefix, _] = f.to_be_bytes();
    matches!(
        prefix,
        fid::PRKD_PREFIX
            | fid::CD_PREFIX
            | fid::DCOD_PREFIX
            | fid::CA_CERT_PREFIX
            | fid::EE_CERT_PREFIX
            | fid::DATA_PREFIX
    ) || f == fid::EF_DEVAUT
        || f == fid::EF_TOKENINFO
}

/// The files of key `id`: the key, its request or certificate, its PrKD.
fn key_files(id: u8) -> Vec<u16> {
    [fid::KEY_PREFIX, fid::EE_CERT_PREFIX, fid::PRKD_PREFIX]
        .iter()
        .map(|p| u16::from_be_bytes([*p, id]))
        .collect()
}

fn effect(apdu: &[u8]) -> Effect {
    let Ok(c) = Command::parse(apdu) else {
        return Effect::Everything;
    };
    let named = u16::from_be_bytes([c.p1, c.p2]);
    match c.ins {
        ins::READ_BINARY_ODD if public(named) => Effect::Read,
        ins::UPDATE_BINARY_ODD => Effect::Changes(vec![named]),
        ins::DELETE_FILE => match c.data {
            [hi, lo] => Effect::Changes(vec![u16::from_be_bytes([*hi, *lo])]),
            _ => Effect::Everything,
        },
        ins::KEYPAIR_GEN | ins::UNWRAP_KEY => Effect::Changes(key_files(c.p1)),
        // Without data, the version and free memory (docs/protocol.md §4.1).
        ins::INITIALIZE if c.data.is_empty() => Effect::Nothing,
        ins::READ_BINARY
        | ins::READ_BINARY_ODD
        | ins::SELECT
        | ins::VERIFY
        | ins::CHANGE_PIN
        | ins::RESET_RETRY
        | ins::LIST_KEYS
        | ins::CHALLENGE
        | ins::SIGNATURE
        | ins::DECRYPT_ASYM
        | ins::WRAP_KEY
        | ins::GET_RESPONSE
        | ins::MSE
        | ins::PSO
        | ins::EXTERNAL_AUTH
        | ins::PUK_AUTH => Effect::Nothing,
        _ => Effect::Everything,
    }
}

/// Answers of READ BINARY of public files, by the whole command (file and
/// offset).
#[derive(Default)]
pub struct ReadCache {
    answers: HashMap<Vec<u8>, Vec<u8>>,
}

impl ReadCache {
    /// `link` with this cache in front of it.
    pub fn link<'a>(&'a mut self, link: &'a mut dyn Link) -> CachedLink<'a> {
        CachedLink { cache: self, link }
    }

    fn forget(&mut self, files: &[u16]) {
        self.answers
            .retain(|cmd, _| !files.iter().any(|f| cmd[2..4] == f.to_be_bytes()));
    }
}

/// A [`Link`] through a [`ReadCache`].
pub struct CachedLink<'a> {
    cache: &'a mut ReadCache,
    link: &'a mut dyn Link,
}

impl Link for CachedLink<'_> {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>> {
        match effect(apdu) {
            Effect::Read => {
                if let Some(a) = self.cache.answers.get(apdu) {
                    return Ok(a.clone());
                }
                let answer = self.link.transmit(apdu)?;
                // Kept: data, the end of the file, no such file (a file
                // this module creates later is dropped by its UPDATE).
                let kept = [
                    StatusWord::OK,
                    StatusWord::END_OF_FILE,
                    StatusWord::FILE_NOT_FOUND,
                ];
                if StatusWord::from_response(&answer).is_some_and(|sw| kept.contains(&sw)) {
                    self.cache.answers.insert(apdu.to_vec(), answer.clone());
                }
                Ok(answer)
            }
            Effect::Nothing => self.link.transmit(apdu),
            // Dropped before the command: a card that fails halfway may
            // have changed the file all the same.
            Effect::Changes(files) => {
                self.cache.forget(&files);
                self.link.transmit(apdu)
            }
            Effect::Everything => {
                self.cache.answers.clear();
                self.link.transmit(apdu)
            }
        }
    }
}

/// A card connection with a [`ReadCache`] in front of it: every exchange
/// of the token's operations goes through the cache.
pub struct Cached<T> {
    /// The connection.
    pub inner: T,
    cache: ReadCache,
}

impl<T> Cached<T> {
    /// `inner` with an empty cache.
    pub fn new(inner: T) -> Self {
        Cached {
            inner,
            cache: ReadCache::default(),
        }
    }
}

impl<T: Transport> Transport for Cached<T> {
    fn transact<R>(&mut self, f: impl FnOnce(&mut dyn Link) -> Result<R>) -> Result<R> {
        let cache = &mut self.cache;
        self.inner.transact(|l| f(&mut cache.link(l)))
    }

    fn exchange_alone<R>(&mut self, mut f: impl FnMut(&mut dyn Link) -> Result<R>) -> Result<R> {
        let cache = &mut self.cache;
        self.inner.exchange_alone(|l| f(&mut cache.link(l)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::card::testing::{hex, Script};
    use picohsm_wire::cmd::{file, key};

    const OK: &str = "90 00";

    fn read(f: u16) -> Vec<u8> {
        file::read_binary(f, 0).bytes().to_vec()
    }

    fn answer(data: &str) -> Vec<u8> {
        hex(&format!("{data} {OK}"))
    }

    #[test]
    fn a_public_file_is_read_once() {
        let mut cache = ReadCache::default();
        let mut card = Script(vec![(read(0xC401), answer("A0 01"))]);
        for _ in 0..3 {
            assert_eq!(
                cache.link(&mut card).transmit(&read(0xC401)).unwrap(),
                answer("A0 01")
            );
        }
    }

    #[test]
    fn an_update_or_a_deletion_drops_that_file_only() {
        let mut cache = ReadCache::default();
        let update = file::update_binary(0xC401, 0, &[1]).bytes().to_vec();
        let delete = file::delete_file(0xC402).bytes().to_vec();
        let mut card = Script(vec![
            (read(0xC401), answer("01")),
            (read(0xC402), answer("02")),
            (read(0xC403), answer("03")),
            (update.clone(), hex(OK)),
            (delete.clone(), hex(OK)),
            (read(0xC401), answer("11")),
            (read(0xC402), hex("6A 82")),
        ]);
        let mut l = cache.link(&mut card);
        for f in [0xC401, 0xC402, 0xC403] {
            l.transmit(&read(f)).unwrap();
        }
        l.transmit(&update).unwrap();
        l.transmit(&delete).unwrap();
        assert_eq!(l.transmit(&read(0xC401)).unwrap(), answer("11"));
        assert_eq!(l.transmit(&read(0xC402)).unwrap(), hex("6A 82"));
        assert_eq!(l.transmit(&read(0xC403)).unwrap(), answer("03"));
        assert!(card.0.is_empty());
    }

    #[test]
    fn a_new_key_drops_its_request_and_description() {
        let mut cache = ReadCache::default();
        let mut generate = vec![0x00, ins::KEYPAIR_GEN, 0x05, 0x00, 0x01, 0x00];
        generate.push(0x00);
        let mut card = Script(vec![
            (read(0xCE05), hex("6A 82")),
            (read(0xCE06), hex("6A 82")),
            (generate.clone(), hex(OK)),
            (read(0xCE05), answer("7F 21")),
        ]);
        let mut l = cache.link(&mut card);
        l.transmit(&read(0xCE05)).unwrap();
        l.transmit(&read(0xCE06)).unwrap();
        l.transmit(&generate).unwrap();
        assert_eq!(l.transmit(&read(0xCE05)).unwrap(), answer("7F 21"));
        assert_eq!(l.transmit(&read(0xCE06)).unwrap(), hex("6A 82"));
        assert!(card.0.is_empty());
    }

    #[test]
    fn an_unknown_command_drops_everything() {
        let mut cache = ReadCache::default();
        let unknown = hex("80 FE 00 00");
        let mut card = Script(vec![
            (read(0xC801), answer("01")),
            (unknown.clone(), hex(OK)),
            (read(0xC801), answer("02")),
        ]);
        let mut l = cache.link(&mut card);
        l.transmit(&read(0xC801)).unwrap();
        l.transmit(&unknown).unwrap();
        assert_eq!(l.transmit(&read(0xC801)).unwrap(), answer("02"));
    }

    #[test]
    fn protected_data_refusals_and_signatures_are_never_kept() {
        let mut cache = ReadCache::default();
        let sign = key::sign(1, 0x70, &[0x5A; 32]).bytes().to_vec();
        let mut card = Script(vec![
            (read(0xCD01), answer("01")),
            (read(0xCD01), hex("69 82")),
            (read(0xC901), hex("69 82")),
            (read(0xC901), answer("30 00")),
            (sign.clone(), answer("30 44")),
            (sign.clone(), answer("30 45")),
        ]);
        let mut l = cache.link(&mut card);
        l.transmit(&read(0xCD01)).unwrap();
        assert_eq!(l.transmit(&read(0xCD01)).unwrap(), hex("69 82"));
        l.transmit(&read(0xC901)).unwrap();
        assert_eq!(l.transmit(&read(0xC901)).unwrap(), answer("30 00"));
        l.transmit(&sign).unwrap();
        assert_eq!(l.transmit(&sign).unwrap(), answer("30 45"));
        assert!(card.0.is_empty());
    }

    #[test]
    fn the_version_query_keeps_the_cache_and_initialize_empties_it() {
        assert_eq!(effect(&hex("80 50 00 00 00")), Effect::Nothing);
        assert_eq!(effect(&hex("80 50 00 00 02 80 02")), Effect::Everything);
    }
}

//! The applet and its files (docs/protocol.md §2.3-§2.5, §3): SELECT, the
//! version query, whole-EF reads and writes, DELETE FILE, ENUMERATE
//! OBJECTS, EF.TokenInfo and the device name.

use picohsm_wire::cmd::device::{self, AppletInfo, Version};
use picohsm_wire::cmd::file::{self, ReadStatus, WRITE_CHUNK};
use picohsm_wire::cmd::Cmd;
use picohsm_wire::codes::fid;
use picohsm_wire::cvc;
use picohsm_wire::sw::StatusWord;
use picohsm_wire::tlv;

use super::{Card, CardError, CardResult};

/// Whether an ATR is a SmartCard-HSM's: its historical bytes carry
/// `THSM1` (docs/protocol.md §2.1).
pub fn is_smartcard_hsm_atr(atr: &[u8]) -> bool {
    atr.windows(5).any(|w| w == b"THSM1")
}

/// The serial OpenSC shows for a device: its name without the last 5
/// characters (docs/protocol.md §3.3). Counted in characters, so a card
/// that names itself with non-ASCII bytes cannot make a caller panic.
pub fn serial_of(device_name: &str) -> String {
    let n = device_name.chars().count();
    device_name.chars().take(n.saturating_sub(5)).collect()
}

/// Tags of EF.TokenInfo that the module reads and writes (PKCS#15).
pub mod tokeninfo {
    /// The token label.
    pub const LABEL: u16 = 0x80;
    /// The manufacturer.
    pub const MANUFACTURER: u16 = 0x0C;
    /// The version.
    pub const VERSION: u16 = 0x02;
    /// The token flags.
    pub const FLAGS: u16 = 0x03;
    /// The manufacturer this project's firmware writes: it takes writes
    /// of EF.TokenInfo, which the upstream firmware does not.
    pub const OUR_MANUFACTURER: &[u8] = b"picohsm-pkcs11";
}

/// What EF.TokenInfo holds for the module.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenInfo {
    /// Tag 80.
    pub label: Option<Vec<u8>>,
    /// Tag 0C.
    pub manufacturer: Option<Vec<u8>>,
}

impl TokenInfo {
    /// Reads the label and manufacturer of an EF.TokenInfo.
    pub fn parse(ti: &[u8]) -> TokenInfo {
        let mut out = TokenInfo::default();
        if let Ok((seq, _)) = tlv::parse_one(ti) {
            for t in tlv::iter(seq.value).flatten() {
                match t.tag {
                    tokeninfo::LABEL => out.label = Some(t.value.to_vec()),
                    tokeninfo::MANUFACTURER => out.manufacturer = Some(t.value.to_vec()),
                    _ => {}
                }
            }
        }
        out
    }
}

impl Card<'_> {
    /// SELECT of the SmartCard-HSM applet, with its FCP. This is a logout
    /// (docs/protocol.md §2.3): only when connecting, never while logged
    /// in. A card that refuses it is no SmartCard-HSM.
    pub fn select_applet(&mut self) -> CardResult<AppletInfo> {
        let fcp = self.ok(&file::select_applet())?;
        AppletInfo::parse(&fcp).ok_or(CardError::Malformed {
            command: Cmd::SelectApplet,
            what: "FCP without tag 85",
        })
    }

    /// The version query: `None` when the card does not answer it, which
    /// is also how a card whose applet is not selected answers.
    pub fn version(&mut self) -> CardResult<Option<Version>> {
        let (d, sw) = self.exchange(&device::version_query())?;
        Ok(if sw == StatusWord::OK {
            Version::parse(&d)
        } else {
            None
        })
    }

    /// Makes sure the applet is selected, sending SELECT only when it is
    /// not (a SELECT logs out whoever uses the card, docs/protocol.md
    /// §2.3). Returns the version and whether a SELECT was sent.
    pub fn ensure_selected(&mut self) -> CardResult<(Version, bool)> {
        if let Some(v) = self.version()? {
            return Ok((v, false));
        }
        let info = self.select_applet()?;
        let v = self.version()?.unwrap_or(Version {
            free: 0,
            major: info.version.0,
            minor: info.version.1,
        });
        Ok((v, true))
    }

    /// Reads a whole EF by FID; `None` if it does not exist. Small files
    /// take one APDU: a short answer to an extended Le is the end.
    pub fn read_ef(&mut self, fid: u16) -> CardResult<Option<Vec<u8>>> {
        let mut out = Vec::new();
        loop {
            let apdu = file::read_binary(fid, out.len() as u16);
            let (d, sw) = self.exchange(&apdu)?;
            match ReadStatus::of(sw) {
                ReadStatus::Data => {}
                ReadStatus::Missing if out.is_empty() => return Ok(None),
                ReadStatus::End => return Ok(Some(out)),
                _ => {
                    return Err(CardError::Status {
                        command: apdu.cmd,
                        sw,
                    })
                }
            }
            let n = d.len();
            out.extend_from_slice(&d);
            // Cards answer up to their I/O buffer; anything shorter than that
            // and than what was asked is the end.
            if n == 0 || n < WRITE_CHUNK || out.len() >= 0xFFFF {
                return Ok(Some(out));
            }
        }
    }

    /// Writes a whole EF, creating it or replacing its content (offset 0
    /// replaces, docs/protocol.md §3.6: no DELETE first, so the old content
    /// stays until the new one is there).
    ///
    /// All or nothing up to [`file::CHAINED_WRITE_MAX`] bytes: content of
    /// one APDU goes in one, longer content as one UPDATE BINARY in chained
    /// parts, which the card runs once the last part is in. A card that
    /// refuses the first chained part gets the content in 1024-byte writes at
    /// increasing offsets, as does content too long to chain: then a card
    /// reset or kill between two of them leaves the file cut short (readers
    /// skip such certificates, `core/object.rs`).
    pub fn write_ef(&mut self, fid: u16, data: &[u8]) -> CardResult<()> {
        if data.len() > WRITE_CHUNK {
            match file::update_binary_chained(fid, data) {
                Some(parts) => {
                    let (_, sw) = self.exchange(&parts[0])?;
                    if sw.is_ok() {
                        for p in &parts[1..] {
                            self.ok(p)?;
                        }
                        return Ok(());
                    }
                    log::debug!(
                        "EF {fid:04X}: chained UPDATE BINARY refused ({:04X}); writing in parts",
                        sw.0
                    );
                }
                None => log::debug!(
                    "EF {fid:04X}: {} bytes, too long for one command; writing in parts",
                    data.len()
                ),
            }
        }
        self.write_ef_in_parts(fid, data)
    }

    /// Writes a whole EF in chunks of [`WRITE_CHUNK`] at increasing offsets.
    fn write_ef_in_parts(&mut self, fid: u16, data: &[u8]) -> CardResult<()> {
        let mut offset = 0usize;
        loop {
            let end = (offset + WRITE_CHUNK).min(data.len());
            self.ok(&file::update_binary(fid, offset as u16, &data[offset..end]))?;
            offset = end;
            if offset >= data.len() {
                return Ok(());
            }
        }
    }

    /// Deletes an EF; a missing one is not an error.
    pub fn delete_ef(&mut self, fid: u16) -> CardResult<()> {
        let apdu = file::delete_file(fid);
        let (_, sw) = self.exchange(&apdu)?;
        if sw.is_ok() || sw == StatusWord::FILE_NOT_FOUND {
            Ok(())
        } else {
            Err(CardError::Status {
                command: apdu.cmd,
                sw,
            })
        }
    }

    /// ENUMERATE OBJECTS: the FIDs of keys and descriptors.
    pub fn enumerate(&mut self) -> CardResult<Vec<u16>> {
        Ok(file::parse_enumerate(&self.ok(&file::enumerate())?))
    }

    /// EF.TokenInfo's label and manufacturer (empty if there is none).
    pub fn token_info(&mut self) -> CardResult<TokenInfo> {
        Ok(self
            .read_ef(fid::EF_TOKENINFO)?
            .map(|ti| TokenInfo::parse(&ti))
            .unwrap_or_default())
    }

    /// The content of EF.C_DevAut (2F02): the device certificate chain
    /// (docs/protocol.md §3.3), empty when there is none.
    pub fn device_chain(&mut self) -> CardResult<Vec<u8>> {
        Ok(self.read_ef(fid::EF_DEVAUT)?.unwrap_or_default())
    }

    /// The device name, exactly as the card stores it: the raw CHR of the
    /// first certificate in EF.C_DevAut (docs/protocol.md §3.3); `None`
    /// without a chain.
    pub fn device_name_raw(&mut self) -> CardResult<Option<Vec<u8>>> {
        let chain = self.device_chain()?;
        Ok(cvc::first_chr(&chain).map(<[u8]>::to_vec))
    }

    /// The device name: the CHR of the first certificate in EF.C_DevAut
    /// (docs/protocol.md §3.3), read as text (lossily: for display);
    /// `None` without a chain.
    pub fn device_name(&mut self) -> CardResult<Option<String>> {
        let chain = self.read_ef(fid::EF_DEVAUT)?.unwrap_or_default();
        Ok(cvc::first_chr(&chain).map(|c| String::from_utf8_lossy(c).into_owned()))
    }

    /// Whether EF.TokenInfo may be written: this project's firmware says
    /// so by its manufacturer string; the upstream Pico firmware serves
    /// 2F03 from a function and crashed when OpenSC wrote it
    /// (docs/protocol.md §2.5).
    pub fn tokeninfo_writable(&mut self) -> CardResult<bool> {
        Ok(self.token_info()?.manufacturer.as_deref() == Some(tokeninfo::OUR_MANUFACTURER))
    }

    /// Writes the token label into EF.TokenInfo (tag 80, where OpenSC and
    /// this module read it), keeping the other fields the card generated.
    /// Needs the user state (right after INITIALIZE it is there).
    pub fn write_label(&mut self, label: &str) -> CardResult<()> {
        let current = self.read_ef(fid::EF_TOKENINFO)?.unwrap_or_default();
        let items: Vec<(u16, Vec<u8>)> = tlv::parse_one(&current)
            .ok()
            .filter(|(t, _)| t.tag == 0x30)
            .map(|(t, _)| {
                tlv::iter(t.value)
                    .flatten()
                    .map(|i| (i.tag, i.value.to_vec()))
                    .collect()
            })
            .unwrap_or_default();
        let mut v = Vec::new();
        let mut labelled = false;
        for (tag, value) in &items {
            if *tag == tokeninfo::LABEL {
                tlv::push(&mut v, tokeninfo::LABEL, label.as_bytes());
                labelled = true;
            } else if *tag == tokeninfo::FLAGS && !labelled {
                // TokenInfo order: label [0] comes before tokenflags.
                tlv::push(&mut v, tokeninfo::LABEL, label.as_bytes());
                labelled = true;
                tlv::push(&mut v, *tag, value);
            } else {
                tlv::push(&mut v, *tag, value);
            }
        }
        if !labelled {
            tlv::push(&mut v, tokeninfo::LABEL, label.as_bytes());
        }
        self.write_ef(fid::EF_TOKENINFO, &tlv::encode(0x30, &v))
    }

    /// A fresh EF.TokenInfo with only `label`, as sc-hsm-tool writes it
    /// after INITIALIZE (version 0, tokenflags `02 04`).
    pub fn write_new_token_info(&mut self, label: &str) -> CardResult<()> {
        let mut ti = Vec::new();
        tlv::push(&mut ti, tokeninfo::VERSION, &[0]);
        tlv::push(&mut ti, tokeninfo::LABEL, label.as_bytes());
        tlv::push(&mut ti, tokeninfo::FLAGS, &[0x02, 0x04]);
        self.write_ef(fid::EF_TOKENINFO, &tlv::encode(0x30, &ti))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn serials_are_cut_by_characters() {
        assert_eq!(serial_of("ESPICOHSMTRAAAA1"), "ESPICOHSMTR");
        assert_eq!(serial_of("ABC"), "");
        // A name with multi-byte characters (a card's bytes read lossily).
        assert_eq!(serial_of("ÉÉÉÉÉÉ\u{FFFD}1234"), "ÉÉÉÉÉÉ");
    }

    #[test]
    fn version_query_tells_whether_the_applet_is_selected() {
        let mut l = Script(vec![
            (hex("80 50 00 00"), hex("69 85")),
            (
                [
                    hex("00 A4 04 00 0B"),
                    picohsm_wire::codes::AID.to_vec(),
                    vec![0x00],
                ]
                .concat(),
                hex("62 0A 85 05 00 01 FF 06 06 8A 01 05 90 00"),
            ),
            (hex("80 50 00 00"), hex("00 10 00 00 00 06 06 90 00")),
        ]);
        let (v, selected) = Card::new(&mut l).ensure_selected().unwrap();
        assert!(selected);
        assert_eq!((v.major, v.minor, v.free), (6, 6, 0x0010_0000));
    }
}

//! Instruction codes, algorithm bytes, file identifiers and fixed values of
//! the SmartCard-HSM command set (docs/protocol.md §2-§7).

/// The SmartCard-HSM application identifier (docs/protocol.md §2.3).
pub const AID: &[u8] = &[
    0xE8, 0x2B, 0x06, 0x01, 0x04, 0x01, 0x81, 0xC3, 0x1F, 0x02, 0x01,
];

/// The Pico HSM ATR (docs/protocol.md §2.1): T=1, historical bytes carry "THSM1".
pub const ATR: &[u8] = &[
    0x3B, 0xFE, 0x18, 0x00, 0x00, 0x81, 0x31, 0xFE, 0x45, 0x80, 0x31, 0x81, 0x54, 0x48, 0x53, 0x4D,
    0x31, 0x73, 0x80, 0x21, 0x40, 0x81, 0x07, 0xFA,
];

/// Firmware version reported in the FCP and by the INITIALIZE query (docs/protocol.md §2.4).
pub const VERSION: (u8, u8) = (6, 6);

/// Instruction bytes.
pub mod ins {
    /// VERIFY (docs/protocol.md §5.1).
    pub const VERIFY: u8 = 0x20;
    /// MANAGE SECURITY ENVIRONMENT (docs/protocol.md §6.4, §6.7).
    pub const MSE: u8 = 0x22;
    /// CHANGE REFERENCE DATA (docs/protocol.md §5.2).
    pub const CHANGE_PIN: u8 = 0x24;
    /// PERFORM SECURITY OPERATION: VERIFY CERTIFICATE (docs/protocol.md §6.4).
    pub const PSO: u8 = 0x2A;
    /// RESET RETRY COUNTER (docs/protocol.md §5.3).
    pub const RESET_RETRY: u8 = 0x2C;
    /// GENERATE ASYMMETRIC KEY PAIR (docs/protocol.md §7.1).
    pub const KEYPAIR_GEN: u8 = 0x46;
    /// INITIALIZE DEVICE (docs/protocol.md §4).
    pub const INITIALIZE: u8 = 0x50;
    /// KEY DOMAIN / DKEK share (docs/protocol.md §7.4).
    pub const KEY_DOMAIN: u8 = 0x52;
    /// MANAGE PUBLIC KEY AUTHENTICATION (docs/protocol.md §6.3).
    pub const PUK_AUTH: u8 = 0x54;
    /// ENUMERATE OBJECTS (docs/protocol.md §3.8).
    pub const LIST_KEYS: u8 = 0x58;
    /// DECIPHER / ECDH (docs/protocol.md §7.3).
    pub const DECRYPT_ASYM: u8 = 0x62;
    /// SIGN (docs/protocol.md §7.2).
    pub const SIGNATURE: u8 = 0x68;
    /// WRAP KEY (docs/protocol.md §7.5).
    pub const WRAP_KEY: u8 = 0x72;
    /// UNWRAP KEY (docs/protocol.md §7.5).
    pub const UNWRAP_KEY: u8 = 0x74;
    /// EXTERNAL AUTHENTICATE (docs/protocol.md §6.7).
    pub const EXTERNAL_AUTH: u8 = 0x82;
    /// GET CHALLENGE (docs/protocol.md §6.7).
    pub const CHALLENGE: u8 = 0x84;
    /// SELECT (docs/protocol.md §2.3, §3.4).
    pub const SELECT: u8 = 0xA4;
    /// READ BINARY, even form (docs/protocol.md §3.5).
    pub const READ_BINARY: u8 = 0xB0;
    /// READ BINARY, odd form with offset DO (docs/protocol.md §3.5).
    pub const READ_BINARY_ODD: u8 = 0xB1;
    /// GET RESPONSE (docs/protocol.md §1.2).
    pub const GET_RESPONSE: u8 = 0xC0;
    /// UPDATE BINARY, odd form (docs/protocol.md §3.6).
    pub const UPDATE_BINARY_ODD: u8 = 0xD7;
    /// DELETE FILE (docs/protocol.md §3.7).
    pub const DELETE_FILE: u8 = 0xE4;
}

/// Algorithm bytes of SIGN (P2, docs/protocol.md §7.2) and DECIPHER (P2, docs/protocol.md §7.3).
pub mod algo {
    /// RSA raw private-key operation (sign).
    pub const RSA_RAW: u8 = 0x20;
    /// RSA raw decrypt.
    pub const RSA_DECRYPT_RAW: u8 = 0x21;
    /// RSA PKCS#1 v1.5 decrypt.
    pub const RSA_DECRYPT_PKCS1: u8 = 0x22;
    /// RSA OAEP (SHA-256) decrypt.
    pub const RSA_DECRYPT_OAEP: u8 = 0x23;
    /// RSA PKCS#1 v1.5 over a DigestInfo.
    pub const RSA_PKCS1: u8 = 0x30;
    /// RSA PKCS#1 v1.5 with SHA-1; 0x32..0x35 = SHA-224/256/384/512.
    pub const RSA_PKCS1_SHA1: u8 = 0x31;
    /// RSA PKCS#1 v1.5 with SHA-512.
    pub const RSA_PKCS1_SHA512: u8 = 0x35;
    /// RSA-PSS over a hash or DigestInfo.
    pub const RSA_PSS: u8 = 0x40;
    /// RSA-PSS with SHA-1; 0x42..0x45 = SHA-224/256/384/512.
    pub const RSA_PSS_SHA1: u8 = 0x41;
    /// RSA-PSS with SHA-512.
    pub const RSA_PSS_SHA512: u8 = 0x45;
    /// ECDSA over a hash.
    pub const ECDSA: u8 = 0x70;
    /// ECDSA with SHA-1; 0x72..0x75 = SHA-224/256/384/512.
    pub const ECDSA_SHA1: u8 = 0x71;
    /// ECDSA with SHA-512.
    pub const ECDSA_SHA512: u8 = 0x75;
    /// ECDH (DECIPHER).
    pub const ECDH: u8 = 0x80;
    /// WRAP KEY with the DKEK.
    pub const WRAP: u8 = 0x92;
    /// UNWRAP KEY with the DKEK.
    pub const UNWRAP: u8 = 0x93;
}

/// File identifier prefixes (high byte) and fixed files (docs/protocol.md §3.1, §3.2).
pub mod fid {
    /// Private key `CCxx`.
    pub const KEY_PREFIX: u8 = 0xCC;
    /// PKCS#15 private key description `C4xx`.
    pub const PRKD_PREFIX: u8 = 0xC4;
    /// PKCS#15 certificate description `C8xx`.
    pub const CD_PREFIX: u8 = 0xC8;
    /// PKCS#15 data object description `C9xx`.
    pub const DCOD_PREFIX: u8 = 0xC9;
    /// CA certificate `CAxx`.
    pub const CA_CERT_PREFIX: u8 = 0xCA;
    /// Private data object `CDxx` (read needs authentication).
    pub const PROT_DATA_PREFIX: u8 = 0xCD;
    /// End-entity certificate or key request `CExx`.
    pub const EE_CERT_PREFIX: u8 = 0xCE;
    /// Public data object `CFxx`.
    pub const DATA_PREFIX: u8 = 0xCF;
    /// EF.DIR.
    pub const EF_DIR: u16 = 0x2F00;
    /// EF.ATR.
    pub const EF_ATR: u16 = 0x2F01;
    /// EF.C_DevAut: the device certificate chain.
    pub const EF_DEVAUT: u16 = 0x2F02;
    /// EF.TokenInfo.
    pub const EF_TOKENINFO: u16 = 0x2F03;
    /// Staging file for UNWRAP.
    pub const EF_UNWRAP: u16 = 0x2F10;
    /// The device key `CC00`.
    pub const DEVICE_KEY: u16 = 0xCC00;
}

/// Device option bits (INITIALIZE tag 80, docs/protocol.md §4.2).
pub mod opt {
    /// RESET RETRY COUNTER with SO-PIN allowed.
    pub const RRC: u16 = 0x0001;
    /// The user PIN is a transport PIN.
    pub const TRANSPORT_PIN: u16 = 0x0002;
    /// MANAGE PKA replace allowed.
    pub const REPLACE_PKA: u16 = 0x0008;
    /// PIN and PKA both required.
    pub const COMBINED_AUTH: u16 = 0x0010;
    /// RESET RETRY COUNTER variants that only reset the counter.
    pub const RRC_RESET_ONLY: u16 = 0x0020;
}

/// PIN references (VERIFY P2).
pub mod pin_ref {
    /// User PIN.
    pub const USER: u8 = 0x81;
    /// SO-PIN.
    pub const SO: u8 = 0x88;
}

//! Conversions between the C structures and the core's Rust types:
//! templates, mechanisms with their parameters, C_Initialize's arguments,
//! and C_GetAttributeValue's per-attribute protocol (PKCS#11 3.0 §5.7).

use std::ffi::CStr;
use std::ops::Deref;

use cryptoki_sys::*;
use zeroize::{Zeroize, Zeroizing};

use crate::core::api::{Attr, AttrValue, InitArgs};
use crate::core::mech::{Ecdh, Hash, HashUse, Kdf, Mechanism, Oaep, Pss};
use crate::error::{fail, Error, Result};

use super::args::{ref_in, slice_in};
use super::wrap::Note;

/// A template converted from C: the attribute values are zeroized when it
/// is dropped (a template may carry key material or a PIN-like value).
#[derive(Debug, Default)]
pub(crate) struct Template(Vec<Attr>);

impl Deref for Template {
    type Target = [Attr];
    fn deref(&self) -> &[Attr] {
        &self.0
    }
}

impl Drop for Template {
    fn drop(&mut self) {
        for a in &mut self.0 {
            a.value.zeroize();
        }
    }
}

/// A CK_ATTRIBUTE array as a [`Template`]. A NULL array with count 0 is
/// an empty template; NULL with count > 0, or an attribute with a NULL
/// `pValue` and `ulValueLen > 0`, is `CKR_ARGUMENTS_BAD`. The types (only)
/// go to the trace note.
///
/// # Safety
/// `p` must be NULL or point at `n` CK_ATTRIBUTEs whose `pValue`s are NULL
/// or valid for reading `ulValueLen` bytes.
pub(crate) unsafe fn template(
    p: *const CK_ATTRIBUTE,
    n: CK_ULONG,
    note: &mut Note,
) -> Result<Template> {
    // SAFETY: forwarded to our caller's promise.
    let attrs = unsafe { slice_in(p, n) }?;
    note.attr_types(attrs.iter().map(|a| a.type_));
    let mut out = Template(Vec::with_capacity(attrs.len()));
    for a in attrs {
        // SAFETY: `pValue` is NULL or valid for `ulValueLen` bytes (our
        // caller's promise); `slice_in` rejects NULL with a length.
        let v = unsafe { slice_in(a.pValue as *const u8, a.ulValueLen) }.map_err(|_| {
            Error::new(CKR_ARGUMENTS_BAD, "attribute with NULL pValue and a length")
        })?;
        out.0.push(Attr {
            kind: a.type_,
            value: v.to_vec(),
        });
    }
    Ok(out)
}

/// The SHA-3 RSA-PSS mechanisms: the module does not offer them, but their
/// parameter's shape is checked like that of the others.
const SHA3_PSS: &[CK_MECHANISM_TYPE] = &[
    CKM_SHA3_224_RSA_PKCS_PSS,
    CKM_SHA3_256_RSA_PKCS_PSS,
    CKM_SHA3_384_RSA_PKCS_PSS,
    CKM_SHA3_512_RSA_PKCS_PSS,
];

fn param_invalid<T>(origin: &'static str) -> Result<T> {
    fail(CKR_MECHANISM_PARAM_INVALID, origin)
}

/// Reads the parameter of `m` as a `T`, which must be exactly its size.
///
/// # Safety
/// A non-NULL `pParameter` must be valid for reading `ulParameterLen` bytes.
unsafe fn param_struct<T: Copy>(m: &CK_MECHANISM, what: &'static str) -> Result<T> {
    if m.pParameter.is_null() || usize::try_from(m.ulParameterLen).ok() != Some(size_of::<T>()) {
        return param_invalid(what);
    }
    // SAFETY: `pParameter` holds `size_of::<T>()` readable bytes (checked
    // length, caller's promise); read_unaligned copes with any alignment and
    // T is plain old data (integers and raw pointers).
    Ok(unsafe { (m.pParameter as *const T).read_unaligned() })
}

/// Bytes `(p, n)` inside a mechanism parameter: NULL with `n > 0` is
/// `CKR_MECHANISM_PARAM_INVALID`.
///
/// # Safety
/// A non-NULL `p` must be valid for reading `n` bytes.
unsafe fn param_bytes(p: *const u8, n: CK_ULONG, what: &'static str) -> Result<Vec<u8>> {
    // SAFETY: forwarded to our caller's promise.
    unsafe { slice_in(p, n) }
        .map(<[u8]>::to_vec)
        .or(param_invalid(what))
}

/// A CK_MECHANISM as a [`Mechanism`]: RSA-PSS (CKM_RSA_PKCS_PSS and the
/// CKM_SHA*_RSA_PKCS_PSS), RSA-OAEP and ECDH1 (plain and cofactor) with
/// their parameter structures decoded; every other mechanism through
/// [`Mechanism::plain`], with the raw bytes of a non-empty parameter. A
/// parameter of the wrong size, or with NULL data and a length, is
/// `CKR_MECHANISM_PARAM_INVALID`; a NULL mechanism is `CKR_ARGUMENTS_BAD`.
/// What the parameter's values mean (a hash the module does not compute,
/// a KDF it does not offer) is for the operation to judge.
///
/// # Safety
/// `p` must be NULL or point at a CK_MECHANISM whose pointers are valid for
/// their stated lengths.
pub(crate) unsafe fn mechanism(p: *const CK_MECHANISM, note: &mut Note) -> Result<Mechanism> {
    // SAFETY: forwarded to our caller's promise.
    let m = unsafe { ref_in(p, "NULL mechanism") }?;
    note.mechanism(m.mechanism);
    let kind = m.mechanism;
    // SAFETY: what `pss`, `oaep`, `ecdh` and `raw` need is our caller's
    // promise on pParameter and the pointers inside it.
    let mech = unsafe {
        match (kind, Hash::from_number(HashUse::RsaPss, kind)) {
            (CKM_RSA_PKCS_PSS, _) => Mechanism::Pss(pss(m)?),
            (_, Some(h)) => Mechanism::PssHash(h, pss(m)?),
            _ if SHA3_PSS.contains(&kind) => {
                pss(m)?;
                Mechanism::Other {
                    kind,
                    param: raw(m)?,
                }
            }
            (CKM_RSA_PKCS_OAEP, _) => Mechanism::Oaep(oaep(m)?),
            (CKM_ECDH1_DERIVE | CKM_ECDH1_COFACTOR_DERIVE, _) => Mechanism::Ecdh(ecdh(m)?),
            _ => Mechanism::plain(kind, raw(m)?),
        }
    };
    Ok(mech)
}

/// A CK_RSA_PKCS_PSS_PARAMS.
///
/// # Safety
/// As [`param_struct`].
unsafe fn pss(m: &CK_MECHANISM) -> Result<Pss> {
    // SAFETY: forwarded to our caller's promise.
    let p: CK_RSA_PKCS_PSS_PARAMS = unsafe { param_struct(m, "CK_RSA_PKCS_PSS_PARAMS expected") }?;
    Ok(Pss {
        hash: Hash::from_number(HashUse::Digest, p.hashAlg),
        mgf: Hash::from_number(HashUse::Mgf1, p.mgf),
        salt_len: usize::try_from(p.sLen).or(param_invalid("sLen out of range"))?,
    })
}

/// A CK_RSA_PKCS_OAEP_PARAMS.
///
/// # Safety
/// As [`param_struct`], and `pSourceData` valid for `ulSourceDataLen` bytes.
unsafe fn oaep(m: &CK_MECHANISM) -> Result<Oaep> {
    // SAFETY: forwarded to our caller's promise.
    let p: CK_RSA_PKCS_OAEP_PARAMS =
        unsafe { param_struct(m, "CK_RSA_PKCS_OAEP_PARAMS expected") }?;
    let label = match p.source {
        CKZ_DATA_SPECIFIED => {
            // SAFETY: pSourceData is valid for ulSourceDataLen bytes
            // (caller's promise on the parameter's pointers).
            unsafe { param_bytes(p.pSourceData as *const u8, p.ulSourceDataLen, "OAEP label") }?
        }
        // Some callers leave the source at 0 when there is no label.
        0 if p.ulSourceDataLen == 0 => Vec::new(),
        _ => return param_invalid("OAEP source must be CKZ_DATA_SPECIFIED"),
    };
    Ok(Oaep {
        hash: Hash::from_number(HashUse::Digest, p.hashAlg),
        mgf: Hash::from_number(HashUse::Mgf1, p.mgf),
        label,
    })
}

/// A CK_ECDH1_DERIVE_PARAMS, for CKM_ECDH1_DERIVE or
/// CKM_ECDH1_COFACTOR_DERIVE.
///
/// # Safety
/// As [`param_struct`], and the two data pointers valid for their lengths.
unsafe fn ecdh(m: &CK_MECHANISM) -> Result<Ecdh> {
    // SAFETY: forwarded to our caller's promise.
    let p: CK_ECDH1_DERIVE_PARAMS = unsafe { param_struct(m, "CK_ECDH1_DERIVE_PARAMS expected") }?;
    Ok(Ecdh {
        cofactor: m.mechanism == CKM_ECDH1_COFACTOR_DERIVE,
        kdf: match p.kdf {
            CKD_NULL => Some(Kdf::Null),
            k => Hash::from_number(HashUse::Kdf, k).map(Kdf::X963),
        },
        // SAFETY: the two buffers are valid for their lengths (caller's
        // promise on the parameter's pointers).
        shared_data: unsafe { param_bytes(p.pSharedData, p.ulSharedDataLen, "ECDH shared data") }?,
        // SAFETY: as above.
        public_data: unsafe { param_bytes(p.pPublicData, p.ulPublicDataLen, "ECDH public data") }?,
    })
}

/// The bytes of a parameter no structure is known for (empty when its
/// length is 0, whatever the pointer).
///
/// # Safety
/// A non-NULL `pParameter` must be valid for reading `ulParameterLen` bytes.
unsafe fn raw(m: &CK_MECHANISM) -> Result<Vec<u8>> {
    if m.ulParameterLen == 0 {
        return Ok(Vec::new());
    }
    // SAFETY: forwarded to our caller's promise.
    unsafe {
        param_bytes(
            m.pParameter as *const u8,
            m.ulParameterLen,
            "NULL parameter",
        )
    }
}

/// C_Initialize's argument: NULL → defaults. Otherwise the four mutex
/// callbacks must be all set or all NULL (`CKR_ARGUMENTS_BAD`); callbacks
/// without CKF_OS_LOCKING_OK are `CKR_CANT_LOCK`, since the module only
/// uses its own locks; a non-NULL `pReserved` is read as a NUL-terminated
/// UTF-8 string (p11-kit's `x-init-reserved`; not UTF-8 →
/// `CKR_ARGUMENTS_BAD`).
///
/// # Safety
/// `p` must be NULL or point at a CK_C_INITIALIZE_ARGS whose `pReserved`
/// is NULL or a NUL-terminated string.
pub(crate) unsafe fn init_args(p: *const CK_C_INITIALIZE_ARGS) -> Result<InitArgs> {
    if p.is_null() {
        return Ok(InitArgs::default());
    }
    // SAFETY: non-NULL; the caller's promise.
    let a = unsafe { ref_in(p, "misaligned CK_C_INITIALIZE_ARGS") }?;
    let set = [
        a.CreateMutex.is_some(),
        a.DestroyMutex.is_some(),
        a.LockMutex.is_some(),
        a.UnlockMutex.is_some(),
    ];
    let mutex_callbacks = set.iter().all(|s| *s);
    if !mutex_callbacks && set.iter().any(|s| *s) {
        return fail(CKR_ARGUMENTS_BAD, "some but not all mutex callbacks");
    }
    let os_locking_ok = a.flags & CKF_OS_LOCKING_OK != 0;
    if mutex_callbacks && !os_locking_ok {
        return fail(CKR_CANT_LOCK, "only OS locking is offered");
    }
    let reserved = if a.pReserved.is_null() {
        None
    } else {
        // SAFETY: non-NULL; a NUL-terminated string by the caller's promise.
        let s = unsafe { CStr::from_ptr(a.pReserved as *const std::ffi::c_char) };
        Some(
            s.to_str()
                .map_err(|_| Error::new(CKR_ARGUMENTS_BAD, "pReserved is not UTF-8"))?
                .to_owned(),
        )
    };
    Ok(InitArgs {
        os_locking_ok,
        mutex_callbacks,
        reserved,
    })
}

/// Whether C_GetAttributeValue refuses `kind` outright: attributes whose
/// value is an array of attributes (CKA_WRAP_TEMPLATE, CKA_UNWRAP_TEMPLATE,
/// CKA_DERIVE_TEMPLATE, …) are not supported. CKA_ALLOWED_MECHANISMS has the
/// array bit too but is a plain array of mechanism types: it is allowed.
fn is_attribute_array(kind: CK_ATTRIBUTE_TYPE) -> bool {
    kind & CKF_ARRAY_ATTRIBUTE != 0 && kind != CKA_ALLOWED_MECHANISMS
}

/// C_GetAttributeValue over `template`, fetching each attribute with
/// `fetch` (one core call per attribute), as PKCS#11 3.0 §5.7 says:
/// - sensitive or invalid attribute (or an attribute array): `ulValueLen`
///   = CK_UNAVAILABLE_INFORMATION;
/// - `pValue` NULL: `ulValueLen` = the length;
/// - `pValue` large enough: the value is copied, `ulValueLen` = its length;
/// - else `ulValueLen` = CK_UNAVAILABLE_INFORMATION.
///
/// Every attribute is processed. The return value then is, by this fixed
/// precedence: CKR_ATTRIBUTE_SENSITIVE if any attribute was sensitive, else
/// CKR_ATTRIBUTE_TYPE_INVALID if any was invalid, else CKR_BUFFER_TOO_SMALL
/// if any buffer was too small, else CKR_OK. (The spec lets a module return
/// any of the applicable codes; the most informative one about what the
/// caller cannot fix by retrying comes first.) Any other error from `fetch`
/// (session or object handle invalid, device error…) stops at once and is
/// returned.
///
/// # Safety
/// Every `pValue` must be NULL or valid for writing `ulValueLen` bytes.
pub(crate) unsafe fn get_attribute_values(
    template: &mut [CK_ATTRIBUTE],
    mut fetch: impl FnMut(CK_ATTRIBUTE_TYPE) -> Result<AttrValue>,
) -> Result<()> {
    let (mut sensitive, mut invalid, mut too_small) = (false, false, false);
    for a in template.iter_mut() {
        let value = if is_attribute_array(a.type_) {
            AttrValue::Invalid
        } else {
            fetch(a.type_)?
        };
        match value {
            AttrValue::Sensitive => {
                sensitive = true;
                a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
            }
            AttrValue::Invalid => {
                invalid = true;
                a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
            }
            AttrValue::Value(v) => {
                let v = Zeroizing::new(v);
                let len =
                    CK_ULONG::try_from(v.len()).or(fail(CKR_GENERAL_ERROR, "value too long"))?;
                if a.pValue.is_null() {
                    a.ulValueLen = len;
                } else if a.ulValueLen >= len {
                    // SAFETY: pValue holds ulValueLen >= v.len() writable
                    // bytes (caller's promise); our Vec cannot overlap it.
                    unsafe {
                        std::ptr::copy_nonoverlapping(v.as_ptr(), a.pValue as *mut u8, v.len())
                    };
                    a.ulValueLen = len;
                } else {
                    too_small = true;
                    a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
                }
            }
        }
    }
    if sensitive {
        fail(CKR_ATTRIBUTE_SENSITIVE, "sensitive attribute")
    } else if invalid {
        fail(CKR_ATTRIBUTE_TYPE_INVALID, "attribute type invalid")
    } else if too_small {
        fail(CKR_BUFFER_TOO_SMALL, "attribute buffer too small")
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::c_void;
    use std::ptr::{null, null_mut};

    fn attr(t: CK_ATTRIBUTE_TYPE, v: &mut [u8]) -> CK_ATTRIBUTE {
        CK_ATTRIBUTE {
            type_: t,
            pValue: v.as_mut_ptr() as *mut c_void,
            ulValueLen: v.len() as CK_ULONG,
        }
    }

    #[test]
    fn templates() {
        let mut note = Note::default();
        let mut class = CKO_PRIVATE_KEY.to_ne_bytes();
        let mut id = [1u8, 2];
        let t = [
            attr(CKA_CLASS, &mut class),
            attr(CKA_ID, &mut id),
            CK_ATTRIBUTE {
                type_: CKA_LABEL,
                pValue: null_mut(),
                ulValueLen: 0,
            },
        ];
        // SAFETY: every pointer is into a live local of the stated length.
        let got = unsafe { template(t.as_ptr(), 3, &mut note) }.unwrap();
        assert_eq!(
            &*got,
            &[
                Attr {
                    kind: CKA_CLASS,
                    value: CKO_PRIVATE_KEY.to_ne_bytes().to_vec()
                },
                Attr {
                    kind: CKA_ID,
                    value: vec![1, 2]
                },
                Attr {
                    kind: CKA_LABEL,
                    value: vec![]
                },
            ]
        );
        // SAFETY: NULL with count 0 is read as nothing.
        assert!(unsafe { template(null(), 0, &mut note) }
            .unwrap()
            .is_empty());
        // SAFETY: NULL with a count is rejected before any read.
        let e = unsafe { template(null(), 2, &mut note) }.unwrap_err();
        assert_eq!(e.rv, CKR_ARGUMENTS_BAD);
        let bad = [CK_ATTRIBUTE {
            type_: CKA_VALUE,
            pValue: null_mut(),
            ulValueLen: 4,
        }];
        // SAFETY: the NULL pValue is rejected before any read.
        let e = unsafe { template(bad.as_ptr(), 1, &mut note) }.unwrap_err();
        assert_eq!(e.rv, CKR_ARGUMENTS_BAD);
    }

    fn mech<T>(kind: CK_MECHANISM_TYPE, p: &mut T, len: usize) -> CK_MECHANISM {
        CK_MECHANISM {
            mechanism: kind,
            pParameter: p as *mut T as *mut c_void,
            ulParameterLen: len as CK_ULONG,
        }
    }

    fn conv(m: &CK_MECHANISM) -> Result<Mechanism> {
        // SAFETY: the tests build mechanisms over live locals.
        unsafe { mechanism(m, &mut Note::default()) }
    }

    #[test]
    fn pss_parameters() {
        let mut p = CK_RSA_PKCS_PSS_PARAMS {
            hashAlg: CKM_SHA256,
            mgf: CKG_MGF1_SHA256,
            sLen: 32,
        };
        let want = Pss {
            hash: Some(Hash::Sha256),
            mgf: Some(Hash::Sha256),
            salt_len: 32,
        };
        for (kind, decoded) in [
            (CKM_RSA_PKCS_PSS, Mechanism::Pss(want.clone())),
            (
                CKM_SHA256_RSA_PKCS_PSS,
                Mechanism::PssHash(Hash::Sha256, want.clone()),
            ),
            (
                CKM_SHA512_RSA_PKCS_PSS,
                Mechanism::PssHash(Hash::Sha512, want.clone()),
            ),
        ] {
            let m = mech(kind, &mut p, size_of::<CK_RSA_PKCS_PSS_PARAMS>());
            assert_eq!(conv(&m).unwrap(), decoded);
            let m = mech(kind, &mut p, 16);
            assert_eq!(conv(&m).unwrap_err().rv, CKR_MECHANISM_PARAM_INVALID);
        }
        let none = CK_MECHANISM {
            mechanism: CKM_RSA_PKCS_PSS,
            pParameter: null_mut(),
            ulParameterLen: 0,
        };
        assert_eq!(conv(&none).unwrap_err().rv, CKR_MECHANISM_PARAM_INVALID);
    }

    #[test]
    fn oaep_parameters() {
        let mut label = *b"label";
        let mut p = CK_RSA_PKCS_OAEP_PARAMS {
            hashAlg: CKM_SHA256,
            mgf: CKG_MGF1_SHA256,
            source: CKZ_DATA_SPECIFIED,
            pSourceData: label.as_mut_ptr() as *mut c_void,
            ulSourceDataLen: 5,
        };
        let n = size_of::<CK_RSA_PKCS_OAEP_PARAMS>();
        let m = mech(CKM_RSA_PKCS_OAEP, &mut p, n);
        assert_eq!(
            conv(&m).unwrap(),
            Mechanism::Oaep(Oaep {
                hash: Some(Hash::Sha256),
                mgf: Some(Hash::Sha256),
                label: b"label".to_vec()
            })
        );
        p.pSourceData = null_mut();
        let m = mech(CKM_RSA_PKCS_OAEP, &mut p, n);
        assert_eq!(conv(&m).unwrap_err().rv, CKR_MECHANISM_PARAM_INVALID);
        p.ulSourceDataLen = 0;
        let m = mech(CKM_RSA_PKCS_OAEP, &mut p, n);
        assert_eq!(
            conv(&m).unwrap(),
            Mechanism::Oaep(Oaep {
                hash: Some(Hash::Sha256),
                mgf: Some(Hash::Sha256),
                label: vec![]
            })
        );
        let m = mech(CKM_RSA_PKCS_OAEP, &mut p, n + 1);
        assert_eq!(conv(&m).unwrap_err().rv, CKR_MECHANISM_PARAM_INVALID);
    }

    #[test]
    fn ecdh_parameters() {
        let mut point = [4u8; 65];
        let mut p = CK_ECDH1_DERIVE_PARAMS {
            kdf: CKD_NULL,
            ulSharedDataLen: 0,
            pSharedData: null_mut(),
            ulPublicDataLen: 65,
            pPublicData: point.as_mut_ptr(),
        };
        let n = size_of::<CK_ECDH1_DERIVE_PARAMS>();
        for kind in [CKM_ECDH1_DERIVE, CKM_ECDH1_COFACTOR_DERIVE] {
            let m = mech(kind, &mut p, n);
            assert_eq!(
                conv(&m).unwrap(),
                Mechanism::Ecdh(Ecdh {
                    cofactor: kind == CKM_ECDH1_COFACTOR_DERIVE,
                    kdf: Some(Kdf::Null),
                    shared_data: vec![],
                    public_data: vec![4; 65]
                })
            );
            assert_eq!(
                conv(&mech(kind, &mut p, n - 8)).unwrap_err().rv,
                CKR_MECHANISM_PARAM_INVALID
            );
        }
        p.ulSharedDataLen = 3;
        assert_eq!(
            conv(&mech(CKM_ECDH1_DERIVE, &mut p, n)).unwrap_err().rv,
            CKR_MECHANISM_PARAM_INVALID
        );
    }

    #[test]
    fn other_parameters() {
        let m = CK_MECHANISM {
            mechanism: CKM_ECDSA,
            pParameter: null_mut(),
            ulParameterLen: 0,
        };
        assert_eq!(conv(&m).unwrap(), Mechanism::EcdsaRaw);
        let mut iv = [9u8; 16];
        let m = mech(CKM_AES_CBC, &mut iv, 16);
        assert_eq!(
            conv(&m).unwrap(),
            Mechanism::Other {
                kind: CKM_AES_CBC,
                param: vec![9; 16]
            }
        );
        let m = CK_MECHANISM {
            mechanism: CKM_AES_CBC,
            pParameter: null_mut(),
            ulParameterLen: 16,
        };
        assert_eq!(conv(&m).unwrap_err().rv, CKR_MECHANISM_PARAM_INVALID);
        // SAFETY: NULL is rejected before any read.
        let e = unsafe { mechanism(null(), &mut Note::default()) }.unwrap_err();
        assert_eq!(e.rv, CKR_ARGUMENTS_BAD);
    }

    unsafe extern "C" fn create(_: *mut *mut c_void) -> CK_RV {
        CKR_OK
    }
    unsafe extern "C" fn other(_: *mut c_void) -> CK_RV {
        CKR_OK
    }

    fn args(flags: CK_FLAGS, all: bool, reserved: *mut c_void) -> CK_C_INITIALIZE_ARGS {
        CK_C_INITIALIZE_ARGS {
            CreateMutex: Some(create),
            DestroyMutex: Some(other),
            LockMutex: Some(other),
            UnlockMutex: if all { Some(other) } else { None },
            flags,
            pReserved: reserved,
        }
    }

    fn init(a: Option<&CK_C_INITIALIZE_ARGS>) -> Result<InitArgs> {
        // SAFETY: NULL or a live local whose pReserved is NULL or a C string.
        unsafe { init_args(a.map_or(null(), |a| a as *const _)) }
    }

    #[test]
    fn initialize_arguments() {
        let d = init(None).unwrap();
        assert!(!d.os_locking_ok && !d.mutex_callbacks && d.reserved.is_none());
        assert_eq!(
            init(Some(&args(CKF_OS_LOCKING_OK, false, null_mut())))
                .unwrap_err()
                .rv,
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(
            init(Some(&args(0, true, null_mut()))).unwrap_err().rv,
            CKR_CANT_LOCK
        );
        let a = init(Some(&args(CKF_OS_LOCKING_OK, true, null_mut()))).unwrap();
        assert!(a.os_locking_ok && a.mutex_callbacks);
        let mut s = *b"config=/etc/x.conf\0";
        let mut none = args(CKF_OS_LOCKING_OK, true, s.as_mut_ptr() as *mut c_void);
        none.CreateMutex = None;
        none.DestroyMutex = None;
        none.LockMutex = None;
        none.UnlockMutex = None;
        let a = init(Some(&none)).unwrap();
        assert!(a.os_locking_ok && !a.mutex_callbacks);
        assert_eq!(a.reserved.as_deref(), Some("config=/etc/x.conf"));
        let mut bad = *b"\xff\xfe\0";
        none.pReserved = bad.as_mut_ptr() as *mut c_void;
        assert_eq!(init(Some(&none)).unwrap_err().rv, CKR_ARGUMENTS_BAD);
    }

    #[test]
    fn attribute_values() {
        let mut id = [0u8; 8];
        let mut small = [0u8; 1];
        let mut t = [
            attr(CKA_ID, &mut id),
            CK_ATTRIBUTE {
                type_: CKA_LABEL,
                pValue: null_mut(),
                ulValueLen: 0,
            },
            attr(CKA_MODULUS, &mut small),
            CK_ATTRIBUTE {
                type_: CKA_VALUE,
                pValue: null_mut(),
                ulValueLen: 0,
            },
            CK_ATTRIBUTE {
                type_: CKA_WRAP_TEMPLATE,
                pValue: null_mut(),
                ulValueLen: 0,
            },
            CK_ATTRIBUTE {
                type_: CKA_START_DATE,
                pValue: null_mut(),
                ulValueLen: 0,
            },
        ];
        let mut fetched = Vec::new();
        let fetch = |k| {
            fetched.push(k);
            Ok(match k {
                CKA_ID => AttrValue::Value(vec![1, 2, 3]),
                CKA_LABEL => AttrValue::Value(b"key".to_vec()),
                CKA_MODULUS => AttrValue::Value(vec![0xAA; 256]),
                CKA_VALUE => AttrValue::Sensitive,
                _ => AttrValue::Invalid,
            })
        };
        // SAFETY: every pValue is NULL or a live local of ulValueLen bytes.
        let e = unsafe { get_attribute_values(&mut t, fetch) }.unwrap_err();
        assert_eq!(e.rv, CKR_ATTRIBUTE_SENSITIVE);
        assert_eq!(
            fetched,
            [CKA_ID, CKA_LABEL, CKA_MODULUS, CKA_VALUE, CKA_START_DATE],
            "no core call for arrays"
        );
        let lens: Vec<CK_ULONG> = t.iter().map(|a| a.ulValueLen).collect();
        let u = CK_UNAVAILABLE_INFORMATION;
        assert_eq!(lens, [3, 3, u, u, u, u]);
        assert_eq!(id[..3], [1, 2, 3]);
        assert_eq!(small, [0]);

        // Precedence without a sensitive attribute: invalid, then too small.
        let mut small = [0u8; 1];
        let mut t = [
            attr(CKA_MODULUS, &mut small),
            CK_ATTRIBUTE {
                type_: CKA_START_DATE,
                pValue: null_mut(),
                ulValueLen: 0,
            },
        ];
        let f = |k| {
            Ok(if k == CKA_MODULUS {
                AttrValue::Value(vec![1, 2])
            } else {
                AttrValue::Invalid
            })
        };
        // SAFETY: as above.
        let e = unsafe { get_attribute_values(&mut t, f) }.unwrap_err();
        assert_eq!(e.rv, CKR_ATTRIBUTE_TYPE_INVALID);
        let mut small = [0u8; 1];
        let mut t = [attr(CKA_MODULUS, &mut small)];
        // SAFETY: as above.
        let e = unsafe { get_attribute_values(&mut t, |_| Ok(AttrValue::Value(vec![1, 2]))) }
            .unwrap_err();
        assert_eq!(e.rv, CKR_BUFFER_TOO_SMALL);
        // Other errors stop at once.
        let mut t = [CK_ATTRIBUTE {
            type_: CKA_ID,
            pValue: null_mut(),
            ulValueLen: 0,
        }];
        // SAFETY: as above.
        let e = unsafe { get_attribute_values(&mut t, |_| fail(CKR_OBJECT_HANDLE_INVALID, "t")) }
            .unwrap_err();
        assert_eq!(e.rv, CKR_OBJECT_HANDLE_INVALID);
        // All fine.
        let mut v = [0u8; 4];
        let mut t = [attr(CKA_ALLOWED_MECHANISMS, &mut v)];
        // SAFETY: as above.
        unsafe { get_attribute_values(&mut t, |_| Ok(AttrValue::Value(vec![5; 4]))) }.unwrap();
        assert_eq!((v, t[0].ulValueLen), ([5; 4], 4));
    }
}

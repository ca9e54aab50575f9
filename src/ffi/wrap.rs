//! The one wrapper every exported function goes through, and the names of
//! the return values for the log.

use std::any::Any;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};

use cryptoki_sys::*;

use crate::core::api;
use crate::error::Result;

/// Whether an entry point may only be called after `C_Initialize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Init {
    /// `CKR_CRYPTOKI_NOT_INITIALIZED` unless `api::is_initialized()` says
    /// yes (an `Err` from it counts as "not initialised").
    Required,
    /// `C_Initialize`, `C_GetFunctionList`, `C_GetInterfaceList`,
    /// `C_GetInterface`.
    NotRequired,
}

/// What the trace line tells about a call besides its name, handles and
/// result: only types, never values.
#[derive(Debug, Default)]
pub(crate) struct Note {
    mechanism: Option<CK_MECHANISM_TYPE>,
    attrs: Vec<CK_ATTRIBUTE_TYPE>,
}

impl Note {
    /// Records the mechanism type of the call.
    pub(crate) fn mechanism(&mut self, kind: CK_MECHANISM_TYPE) {
        self.mechanism = Some(kind);
    }

    /// Records attribute types of a template (appended: calls with two
    /// templates list both).
    pub(crate) fn attr_types(&mut self, types: impl IntoIterator<Item = CK_ATTRIBUTE_TYPE>) {
        if log::log_enabled!(log::Level::Trace) {
            self.attrs.extend(types);
        }
    }
}

/// `name=value` pairs of handles, slot ids, flags and user types.
struct Handles<'a>(&'a [(&'static str, CK_ULONG)]);

impl fmt::Display for Handles<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (n, v)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{n}={v}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(m) = self.mechanism {
            write!(f, " mechanism={m:#x}")?;
        }
        if !self.attrs.is_empty() {
            f.write_str(" attributes=[")?;
            for (i, a) in self.attrs.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{a:#x}")?;
            }
            f.write_str("]")?;
        }
        Ok(())
    }
}

fn panic_message(p: &(dyn Any + Send)) -> &str {
    if let Some(s) = p.downcast_ref::<&'static str>() {
        s
    } else if let Some(s) = p.downcast_ref::<String>() {
        s
    } else {
        "(no message)"
    }
}

/// Runs the body of the exported function `name`: catches a panic
/// (`CKR_GENERAL_ERROR`), checks initialisation when `init` requires it,
/// runs `body` (which does the NULL checks and conversions, then calls the
/// core) and turns its result into a CK_RV. `handles` are logged with the
/// result; `body` may add mechanism and attribute types to the [`Note`].
///
/// Nothing outside the `catch_unwind` can panic except the logger itself,
/// and that call is guarded too.
pub(crate) fn run<F>(
    name: &'static str,
    init: Init,
    handles: &[(&'static str, CK_ULONG)],
    body: F,
) -> CK_RV
where
    F: FnOnce(&mut Note) -> Result<()>,
{
    let mut note = Note::default();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        if init == Init::Required && !matches!(api::is_initialized(), Ok(true)) {
            return Err(crate::error::Error::new(
                CKR_CRYPTOKI_NOT_INITIALIZED,
                "C_Initialize not called",
            ));
        }
        body(&mut note)
    }));
    let (rv, origin) = match &outcome {
        Ok(Ok(())) => (CKR_OK, ""),
        Ok(Err(e)) => (e.rv, e.origin),
        Err(_) => (CKR_GENERAL_ERROR, "panic"),
    };
    // The logger is foreign code: guard it as well, and ignore its panics.
    let _ = catch_unwind(AssertUnwindSafe(|| {
        if let Err(p) = &outcome {
            log::error!("{name}: panic caught: {}", panic_message(p.as_ref()));
        }
        if rv == CKR_OK {
            log::trace!("{name}({}){note} -> CKR_OK", Handles(handles));
        } else {
            // A failure is worth a line at debug level: the application
            // often shows only the number.
            log::debug!(
                "{name}({}){note} -> {} {rv:#x} ({origin})",
                Handles(handles),
                rv_name(rv)
            );
        }
    }));
    rv
}

/// The name of a CK_RV, e.g. `"CKR_PIN_INCORRECT"`; `"CKR_VENDOR_DEFINED"`
/// for vendor codes and `"CKR_(unknown)"` for values PKCS#11 does not
/// define.
pub(crate) fn rv_name(rv: CK_RV) -> &'static str {
    macro_rules! names {
        ($($n:ident,)*) => {
            match rv {
                $($n => stringify!($n),)*
                r if r >= CKR_VENDOR_DEFINED => crate::vendor::rv_name(r).unwrap_or("CKR_VENDOR_DEFINED"),
                _ => "CKR_(unknown)",
            }
        };
    }
    names! {
        CKR_OK,
        CKR_CANCEL,
        CKR_HOST_MEMORY,
        CKR_SLOT_ID_INVALID,
        CKR_GENERAL_ERROR,
        CKR_FUNCTION_FAILED,
        CKR_ARGUMENTS_BAD,
        CKR_NO_EVENT,
        CKR_NEED_TO_CREATE_THREADS,
        CKR_CANT_LOCK,
        CKR_ATTRIBUTE_READ_ONLY,
        CKR_ATTRIBUTE_SENSITIVE,
        CKR_ATTRIBUTE_TYPE_INVALID,
        CKR_ATTRIBUTE_VALUE_INVALID,
        CKR_ACTION_PROHIBITED,
        CKR_DATA_INVALID,
        CKR_DATA_LEN_RANGE,
        CKR_DEVICE_ERROR,
        CKR_DEVICE_MEMORY,
        CKR_DEVICE_REMOVED,
        CKR_ENCRYPTED_DATA_INVALID,
        CKR_ENCRYPTED_DATA_LEN_RANGE,
        CKR_AEAD_DECRYPT_FAILED,
        CKR_FUNCTION_CANCELED,
        CKR_FUNCTION_NOT_PARALLEL,
        CKR_FUNCTION_NOT_SUPPORTED,
        CKR_KEY_HANDLE_INVALID,
        CKR_KEY_SIZE_RANGE,
        CKR_KEY_TYPE_INCONSISTENT,
        CKR_KEY_NOT_NEEDED,
        CKR_KEY_CHANGED,
        CKR_KEY_NEEDED,
        CKR_KEY_INDIGESTIBLE,
        CKR_KEY_FUNCTION_NOT_PERMITTED,
        CKR_KEY_NOT_WRAPPABLE,
        CKR_KEY_UNEXTRACTABLE,
        CKR_MECHANISM_INVALID,
        CKR_MECHANISM_PARAM_INVALID,
        CKR_OBJECT_HANDLE_INVALID,
        CKR_OPERATION_ACTIVE,
        CKR_OPERATION_NOT_INITIALIZED,
        CKR_PIN_INCORRECT,
        CKR_PIN_INVALID,
        CKR_PIN_LEN_RANGE,
        CKR_PIN_EXPIRED,
        CKR_PIN_LOCKED,
        CKR_SESSION_CLOSED,
        CKR_SESSION_COUNT,
        CKR_SESSION_HANDLE_INVALID,
        CKR_SESSION_PARALLEL_NOT_SUPPORTED,
        CKR_SESSION_READ_ONLY,
        CKR_SESSION_EXISTS,
        CKR_SESSION_READ_ONLY_EXISTS,
        CKR_SESSION_READ_WRITE_SO_EXISTS,
        CKR_SIGNATURE_INVALID,
        CKR_SIGNATURE_LEN_RANGE,
        CKR_TEMPLATE_INCOMPLETE,
        CKR_TEMPLATE_INCONSISTENT,
        CKR_TOKEN_NOT_PRESENT,
        CKR_TOKEN_NOT_RECOGNIZED,
        CKR_TOKEN_WRITE_PROTECTED,
        CKR_UNWRAPPING_KEY_HANDLE_INVALID,
        CKR_UNWRAPPING_KEY_SIZE_RANGE,
        CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT,
        CKR_USER_ALREADY_LOGGED_IN,
        CKR_USER_NOT_LOGGED_IN,
        CKR_USER_PIN_NOT_INITIALIZED,
        CKR_USER_TYPE_INVALID,
        CKR_USER_ANOTHER_ALREADY_LOGGED_IN,
        CKR_USER_TOO_MANY_TYPES,
        CKR_WRAPPED_KEY_INVALID,
        CKR_WRAPPED_KEY_LEN_RANGE,
        CKR_WRAPPING_KEY_HANDLE_INVALID,
        CKR_WRAPPING_KEY_SIZE_RANGE,
        CKR_WRAPPING_KEY_TYPE_INCONSISTENT,
        CKR_RANDOM_SEED_NOT_SUPPORTED,
        CKR_RANDOM_NO_RNG,
        CKR_DOMAIN_PARAMS_INVALID,
        CKR_CURVE_NOT_SUPPORTED,
        CKR_BUFFER_TOO_SMALL,
        CKR_SAVED_STATE_INVALID,
        CKR_INFORMATION_SENSITIVE,
        CKR_STATE_UNSAVEABLE,
        CKR_CRYPTOKI_NOT_INITIALIZED,
        CKR_CRYPTOKI_ALREADY_INITIALIZED,
        CKR_MUTEX_BAD,
        CKR_MUTEX_NOT_LOCKED,
        CKR_NEW_PIN_MODE,
        CKR_NEXT_OTP,
        CKR_EXCEEDED_MAX_ITERATIONS,
        CKR_FIPS_SELF_TEST_FAILED,
        CKR_LIBRARY_LOAD_FAILED,
        CKR_PIN_TOO_WEAK,
        CKR_PUBLIC_KEY_INVALID,
        CKR_FUNCTION_REJECTED,
        CKR_TOKEN_RESOURCE_EXCEEDED,
        CKR_OPERATION_CANCEL_FAILED,
        CKR_KEY_EXHAUSTED,
        CKR_PENDING,
        CKR_SESSION_ASYNC_NOT_SUPPORTED,
        CKR_SEED_RANDOM_REQUIRED,
        CKR_OPERATION_NOT_VALIDATED,
        CKR_TOKEN_NOT_INITIALIZED,
        CKR_PARAMETER_SET_NOT_SUPPORTED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{fail, Error};

    #[test]
    fn rv_names() {
        assert_eq!(rv_name(CKR_OK), "CKR_OK");
        assert_eq!(rv_name(CKR_BUFFER_TOO_SMALL), "CKR_BUFFER_TOO_SMALL");
        assert_eq!(rv_name(CKR_PIN_INCORRECT), "CKR_PIN_INCORRECT");
        assert_eq!(
            rv_name(CKR_CRYPTOKI_NOT_INITIALIZED),
            "CKR_CRYPTOKI_NOT_INITIALIZED"
        );
        assert_eq!(rv_name(CKR_VENDOR_DEFINED + 7), "CKR_VENDOR_DEFINED");
        assert_eq!(rv_name(0x7fff_fff0), "CKR_(unknown)");
    }

    #[test]
    fn results_become_return_values() {
        assert_eq!(run("t", Init::NotRequired, &[], |_| Ok(())), CKR_OK);
        assert_eq!(
            run("t", Init::NotRequired, &[("session", 3)], |_| fail(
                CKR_PIN_LOCKED,
                "x"
            )),
            CKR_PIN_LOCKED
        );
        assert_eq!(
            run("t", Init::NotRequired, &[], |_| Err(Error::new(
                CKR_ARGUMENTS_BAD,
                "y"
            ))),
            CKR_ARGUMENTS_BAD
        );
    }

    #[test]
    fn a_panic_becomes_general_error() {
        let rv = run("t", Init::NotRequired, &[], |_| -> Result<()> {
            panic!("boom")
        });
        assert_eq!(rv, CKR_GENERAL_ERROR);
        #[allow(clippy::useless_vec)]
        let v = vec![1u8];
        let rv = run("t", Init::NotRequired, &[], |_| {
            let i = v.len() + 3;
            std::hint::black_box(v[i]);
            Ok(())
        });
        assert_eq!(rv, CKR_GENERAL_ERROR);
    }

    #[test]
    fn note_lists_types_only() {
        let mut n = Note::default();
        n.mechanism(CKM_ECDSA);
        // Trace may be off in tests: the attribute list is then not kept.
        n.attr_types([CKA_CLASS, CKA_ID]);
        assert!(n.to_string().starts_with(" mechanism=0x1041"));
        assert_eq!(
            Handles(&[("session", 1), ("key", 2)]).to_string(),
            "session=1, key=2"
        );
    }
}

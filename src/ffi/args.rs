//! Checked access to the caller's pointers: NULL and alignment checks
//! (`CKR_ARGUMENTS_BAD`), input slices, single-value outputs and the
//! variable-length output protocol of PKCS#11 3.0 §5.2.

use std::marker::PhantomData;
use std::ptr::NonNull;

use cryptoki_sys::*;
use zeroize::Zeroizing;

use crate::error::{fail, Result};

use crate::core::api::Output;

/// `CKR_ARGUMENTS_BAD` unless `p` is non-NULL and aligned for `T`.
pub(crate) fn check_ptr<T>(p: *const T, what: &'static str) -> Result<()> {
    if p.is_null() || !p.is_aligned() {
        return fail(CKR_ARGUMENTS_BAD, what);
    }
    Ok(())
}

/// A count from C as `usize` (`CKR_ARGUMENTS_BAD` if it does not fit).
pub(crate) fn count(n: CK_ULONG) -> Result<usize> {
    usize::try_from(n).or(fail(CKR_ARGUMENTS_BAD, "count out of range"))
}

/// A length or count for C.
pub(crate) fn to_ulong(n: usize) -> Result<CK_ULONG> {
    CK_ULONG::try_from(n).or(fail(CKR_GENERAL_ERROR, "length does not fit a CK_ULONG"))
}

/// An input array `(p, n)`: `n == 0` gives an empty slice whatever `p` is;
/// NULL (or misaligned) `p` with `n > 0` is `CKR_ARGUMENTS_BAD`, as is a
/// length no allocation can have.
///
/// # Safety
/// When `p` is non-NULL and `n > 0`, `p` must point at `n` initialised
/// `T`s that stay valid and unmodified for `'a` (the PKCS#11 caller's
/// promise for input arguments).
pub(crate) unsafe fn slice_in<'a, T>(p: *const T, n: CK_ULONG) -> Result<&'a [T]> {
    let n = count(n)?;
    if n == 0 {
        return Ok(&[]);
    }
    check_ptr(p, "NULL or misaligned input array")?;
    if n.checked_mul(size_of::<T>())
        .is_none_or(|b| b > isize::MAX as usize)
    {
        return fail(CKR_ARGUMENTS_BAD, "input length out of range");
    }
    // SAFETY: `p` is non-NULL and aligned; the caller guarantees `n`
    // initialised elements valid for `'a`; the byte size fits an isize.
    Ok(unsafe { std::slice::from_raw_parts(p, n) })
}

/// Like [`slice_in`] for an in/out array the function updates in place
/// (C_GetAttributeValue's template).
///
/// # Safety
/// As [`slice_in`], and nothing else may access the array during `'a`.
pub(crate) unsafe fn slice_in_out<'a, T>(p: *mut T, n: CK_ULONG) -> Result<&'a mut [T]> {
    let n = count(n)?;
    if n == 0 {
        return Ok(&mut []);
    }
    check_ptr(p, "NULL or misaligned array")?;
    if n.checked_mul(size_of::<T>())
        .is_none_or(|b| b > isize::MAX as usize)
    {
        return fail(CKR_ARGUMENTS_BAD, "array length out of range");
    }
    // SAFETY: as in `slice_in`; exclusive access is the caller's promise.
    Ok(unsafe { std::slice::from_raw_parts_mut(p, n) })
}

/// A PIN `(p, n)`: NULL gives `None` (PKCS#11's "protected authentication
/// path"), whatever `n` says.
///
/// # Safety
/// As [`slice_in`].
pub(crate) unsafe fn pin_in<'a>(p: *const CK_UTF8CHAR, n: CK_ULONG) -> Result<Option<&'a [u8]>> {
    if p.is_null() {
        return Ok(None);
    }
    // SAFETY: forwarded to the caller of this function.
    unsafe { slice_in(p, n) }.map(Some)
}

/// A reference to one input value (`CKR_ARGUMENTS_BAD` when NULL).
///
/// # Safety
/// A non-NULL `p` must point at an initialised `T` valid for `'a`.
pub(crate) unsafe fn ref_in<'a, T>(p: *const T, what: &'static str) -> Result<&'a T> {
    check_ptr(p, what)?;
    // SAFETY: non-NULL and aligned; validity is the caller's promise.
    Ok(unsafe { &*p })
}

/// A place for one output value, checked non-NULL before any work is done.
pub(crate) struct Out<'a, T> {
    p: NonNull<T>,
    _life: PhantomData<&'a mut T>,
}

impl<'a, T> Out<'a, T> {
    /// Checks `p` (`CKR_ARGUMENTS_BAD` when NULL or misaligned).
    ///
    /// # Safety
    /// A non-NULL `p` must be valid for writing a `T` during `'a`.
    pub(crate) unsafe fn new(p: *mut T, what: &'static str) -> Result<Self> {
        match NonNull::new(p) {
            Some(p) if p.as_ptr().is_aligned() => Ok(Out {
                p,
                _life: PhantomData,
            }),
            _ => fail(CKR_ARGUMENTS_BAD, what),
        }
    }

    /// Writes the value (without dropping whatever the memory held).
    pub(crate) fn set(self, v: T) {
        // SAFETY: `new` checked the pointer; its caller promised it writable.
        unsafe { self.p.as_ptr().write(v) }
    }
}

/// A variable-length output: the buffer (NULL for a size query) and its
/// length cell (in elements: bytes, slot ids, mechanism types, handles).
pub(crate) struct OutBuf<'a, T> {
    buf: Option<NonNull<T>>,
    len: Out<'a, CK_ULONG>,
    cap: usize,
}

impl<'a, T: Copy> OutBuf<'a, T> {
    /// Checks the length pointer (`CKR_ARGUMENTS_BAD` when NULL) and reads
    /// the capacity when `buf` is non-NULL.
    ///
    /// # Safety
    /// `len` must be NULL or valid for reading and writing a CK_ULONG; a
    /// non-NULL `buf` must be valid for writing `*len` elements during `'a`.
    pub(crate) unsafe fn new(buf: *mut T, len: *mut CK_ULONG) -> Result<Self> {
        check_ptr(len, "NULL length pointer")?;
        // SAFETY: non-NULL, aligned, readable by the caller's promise.
        let cap = count(unsafe { len.read() })?;
        let buf = match NonNull::new(buf) {
            None => None,
            Some(b) if b.as_ptr().is_aligned() => Some(b),
            Some(_) => return fail(CKR_ARGUMENTS_BAD, "misaligned output buffer"),
        };
        // SAFETY: checked above; writable by the caller's promise.
        let len = unsafe { Out::new(len, "NULL length pointer") }?;
        Ok(OutBuf { buf, len, cap })
    }

    /// The capacity, or `None` for a size query (NULL buffer).
    pub(crate) fn capacity(&self) -> Option<usize> {
        self.buf.map(|_| self.cap)
    }

    /// The PKCS#11 3.0 §5.2 protocol for a result the caller can ask for again at no
    /// cost (slot and mechanism lists): NULL buffer → the length and
    /// CKR_OK; too small → the length and CKR_BUFFER_TOO_SMALL; else copy.
    pub(crate) fn put(self, data: &[T]) -> Result<()> {
        match self.buf {
            None => {
                self.len.set(to_ulong(data.len())?);
                Ok(())
            }
            Some(_) if self.cap < data.len() => {
                self.len.set(to_ulong(data.len())?);
                fail(CKR_BUFFER_TOO_SMALL, "output buffer too small")
            }
            Some(b) => {
                // SAFETY: the caller's buffer holds `cap >= data.len()`
                // elements (`new`'s contract) and cannot overlap our slice.
                unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), b.as_ptr(), data.len()) };
                self.len.set(to_ulong(data.len())?);
                Ok(())
            }
        }
    }
}

impl OutBuf<'_, u8> {
    /// Hands out what the core gave for this buffer's
    /// [`capacity`](Self::capacity): the length (CKR_OK for a NULL buffer,
    /// CKR_BUFFER_TOO_SMALL for one too small), or the bytes, zeroized when
    /// dropped after the copy.
    pub(crate) fn deliver(self, out: Output) -> Result<()> {
        match out {
            Output::Length(n) => {
                self.len.set(to_ulong(n)?);
                match self.buf {
                    None => Ok(()),
                    Some(_) => fail(CKR_BUFFER_TOO_SMALL, "output buffer too small"),
                }
            }
            Output::Data(bytes) => {
                let bytes: Zeroizing<Vec<u8>> = bytes;
                self.put(&bytes)
            }
        }
    }
}

/// Writes `data` into a fixed-size output of `n` bytes (C_GenerateRandom).
///
/// # Safety
/// A non-NULL `p` must be valid for writing `n` bytes.
pub(crate) unsafe fn fill_exact(p: *mut u8, n: usize, data: &[u8]) -> Result<()> {
    if data.len() != n {
        return fail(CKR_GENERAL_ERROR, "the core returned a wrong length");
    }
    if n == 0 {
        return Ok(());
    }
    check_ptr(p, "NULL output buffer")?;
    // SAFETY: `p` is valid for `n` bytes (caller's promise) and `data` has `n`.
    unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), p, n) };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_slices() {
        let v = [1u8, 2, 3];
        // SAFETY: pointers into `v` or NULL with length 0.
        unsafe {
            assert_eq!(slice_in(v.as_ptr(), 3).unwrap(), &v);
            assert!(slice_in::<u8>(std::ptr::null(), 0).unwrap().is_empty());
            assert_eq!(
                slice_in::<u8>(std::ptr::null(), 1).unwrap_err().rv,
                CKR_ARGUMENTS_BAD
            );
            assert_eq!(
                slice_in::<u64>(std::ptr::null(), CK_ULONG::MAX)
                    .unwrap_err()
                    .rv,
                CKR_ARGUMENTS_BAD
            );
            assert_eq!(pin_in(std::ptr::null(), 6).unwrap(), None);
            assert_eq!(pin_in(v.as_ptr(), 2).unwrap(), Some(&v[..2]));
        }
    }

    #[test]
    fn size_query_protocol_for_lists() {
        let data = [7 as CK_SLOT_ID, 8, 9];
        let mut len: CK_ULONG = 0;
        // SAFETY: `len` and `buf` are live locals of the stated sizes.
        unsafe {
            OutBuf::<CK_SLOT_ID>::new(std::ptr::null_mut(), &mut len)
                .unwrap()
                .put(&data)
                .unwrap();
            assert_eq!(len, 3);
            let mut buf = [0 as CK_SLOT_ID; 3];
            len = 2;
            let e = OutBuf::new(buf.as_mut_ptr(), &mut len)
                .unwrap()
                .put(&data)
                .unwrap_err();
            assert_eq!((e.rv, len, buf), (CKR_BUFFER_TOO_SMALL, 3, [0; 3]));
            len = 3;
            OutBuf::new(buf.as_mut_ptr(), &mut len)
                .unwrap()
                .put(&data)
                .unwrap();
            assert_eq!((len, buf), (3, data));
            assert_eq!(
                OutBuf::<u8>::new(std::ptr::null_mut(), std::ptr::null_mut())
                    .err()
                    .map(|e| e.rv),
                Some(CKR_ARGUMENTS_BAD)
            );
        }
    }

    #[test]
    fn outputs_are_checked_before_use() {
        // SAFETY: NULL is rejected before any access.
        let e = unsafe { Out::<CK_ULONG>::new(std::ptr::null_mut(), "x") }
            .err()
            .map(|e| e.rv);
        assert_eq!(e, Some(CKR_ARGUMENTS_BAD));
        let mut v: CK_ULONG = 0;
        // SAFETY: `v` is a live local.
        unsafe { Out::new(&mut v, "x") }.unwrap().set(5);
        assert_eq!(v, 5);
    }
}

//! Message digests on the host (PKCS#11 3.0 §5.12): SHA-1 and SHA-2. The
//! digest's length is the hash's, so a size query computes nothing.

use cryptoki_sys::*;
use zeroize::Zeroizing;

use crate::core::mech::{Hash, Mechanism};
use crate::core::operation::{self, Output};
use crate::core::state::session_slot;
use crate::error::{fail, Result};

/// A digest under way: its hash and the data of C_DigestUpdate so far.
pub(crate) struct DigestOp {
    hash: Hash,
    data: Zeroizing<Vec<u8>>,
}

/// C_DigestInit.
pub fn digest_init(session: CK_SESSION_HANDLE, mech: Mechanism) -> Result<()> {
    session_slot(session)?;
    let Mechanism::Digest(hash) = mech else {
        return fail(CKR_MECHANISM_INVALID, "not a digest mechanism");
    };
    operation::start(
        session,
        DigestOp {
            hash,
            data: Zeroizing::new(Vec::new()),
        },
    )
}

/// C_Digest.
pub fn digest(session: CK_SESSION_HANDLE, data: &[u8], capacity: Option<usize>) -> Result<Output> {
    operation::finish(
        session,
        capacity,
        |op: &DigestOp| Ok((op.hash.output_len(), ())),
        |_, op, ()| Ok(op.hash.digest(data)),
    )
}

/// C_DigestUpdate.
pub fn digest_update(session: CK_SESSION_HANDLE, part: &[u8]) -> Result<()> {
    operation::update(session, |op: &mut DigestOp| {
        op.data.extend_from_slice(part);
        Ok(())
    })
}

/// C_DigestFinal.
pub fn digest_final(session: CK_SESSION_HANDLE, capacity: Option<usize>) -> Result<Output> {
    operation::finish(
        session,
        capacity,
        |op: &DigestOp| Ok((op.hash.output_len(), ())),
        |_, op, ()| Ok(op.hash.digest(&op.data)),
    )
}

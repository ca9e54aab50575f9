//! The exported PKCS#11 C layer: every `C_*` function of PKCS#11 3.0, the
//! function lists and the interfaces.
//!
//! This layer holds no logic. Each entry point goes through one wrapper,
//! [`wrap::run`], which in this order: catches panics (a panic becomes
//! `CKR_GENERAL_ERROR` and a log line, and never unwinds into C), checks that
//! `C_Initialize` was called, lets the function check its pointers
//! (`CKR_ARGUMENTS_BAD`) and convert its arguments ([`convert`],
//! [`args`]), calls `crate::core::api`, turns the `Result` into a `CK_RV`
//! and writes one `log::trace!` line: the function, its handles, mechanism
//! and attribute *types*, and the name of the CK_RV ([`wrap::rv_name`]).
//! PINs, data, template values and keys are never logged.
//!
//! No state is kept here: operations, and outputs waiting between a size
//! query and the call that fetches them, live in the core's sessions.
//! Functions of one C signature share their bodies ([`shapes`]).
//!
//! Unsafe code is allowed in this module tree only (the crate denies it
//! elsewhere); every `unsafe` block carries a `// SAFETY:` comment. The
//! exported functions are declared safe `extern "C" fn`s although they read
//! and write through the caller's raw pointers: that is the C contract of
//! PKCS#11, and the functions cannot be called from safe Rust code outside
//! this private module (`clippy::not_unsafe_ptr_arg_deref` is allowed for
//! that reason).
#![allow(unsafe_code)]
#![allow(non_snake_case)]
#![allow(clippy::not_unsafe_ptr_arg_deref)]
#![allow(clippy::too_many_arguments)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub(crate) mod args;
pub(crate) mod convert;
pub(crate) mod crypto;
pub(crate) mod general;
pub(crate) mod interface;
pub(crate) mod keys;
pub(crate) mod message;
pub(crate) mod object;
pub(crate) mod session;
pub(crate) mod shapes;
pub(crate) mod slot;
pub(crate) mod wrap;

//! The module's core: slots, tokens, sessions, objects.
//!
//! [`api`] is the surface the C layer calls; the rest is how it works.

pub mod api;
pub mod general;
pub mod session;
pub mod state;
pub mod token;

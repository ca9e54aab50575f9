//! The module's core: slots, tokens, sessions, objects.
//!
//! [`api`] is the surface the C layer calls; the rest is how it works.

pub mod api;
pub mod decrypt;
pub mod derive;
pub mod digest;
pub mod find;
pub mod fork;
pub mod general;
pub mod keygen;
pub mod keyop;
pub mod login;
pub mod mech;
pub mod object;
pub mod operation;
pub mod pin;
pub mod presence;
pub mod session;
pub mod sign;
pub mod slot_event;
pub mod state;
pub mod token;
pub mod verify;
pub mod write;

//! Reusable pieces of the portal, one non-trivial component per file.

pub mod dialog;
pub mod icons;
pub mod layout;

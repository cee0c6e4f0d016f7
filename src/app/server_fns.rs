//! The portal's server functions: thin doors onto the domain services.

pub mod account;

pub use account::*;

//! Integration tests: the real router on a real database (SQLite, and PostgreSQL when
//! `WJ_TEST_POSTGRES_URL` is set), stubs only for what lies outside Workjet.
#![cfg(feature = "ssr")]

pub mod browser;
pub mod helpers;
pub mod idp;
pub mod process;
pub mod upstream;

mod admin;
mod api;
mod binary;
mod faults;
mod foundation;
mod gateway;
mod hardening;
mod hygiene;
mod key_lifecycle;
mod local_sign_in;
mod openapi;
mod operations;
mod providers;
mod scale_out;
mod sdk;
mod security_log;
mod sign_in;

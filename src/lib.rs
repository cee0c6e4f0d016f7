//! Workjet: an authenticated LLM API gateway with a web portal.
//!
//! The crate builds twice: with `ssr` as the server binary (axum, SeaORM, the `/v1` API) and
//! with `hydrate` as the browser bundle that hydrates the server-rendered portal.

#![recursion_limit = "512"]

pub mod app;
pub mod display;
pub mod permissions;
pub mod urls;
pub mod wire;

#[cfg(feature = "ssr")]
pub mod domain;
#[cfg(feature = "ssr")]
pub mod entities;
#[cfg(feature = "ssr")]
pub mod observe;
#[cfg(feature = "ssr")]
pub mod server;

/// The browser entry point: hydrates the server-rendered page.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
}

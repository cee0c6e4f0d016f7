//! The axum server (feature `ssr`): configuration, start-up, middleware, and the HTTP doors
//! (sign-in routes, the `/v1` API) onto the domain services.

pub mod assets;
pub mod auth;
pub mod config;
pub mod database;
pub mod error;
pub mod health;
pub mod limits;
pub mod listener;
pub mod metrics;
pub mod security;
pub mod site;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod v1;

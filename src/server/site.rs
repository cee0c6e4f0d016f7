//! Leptos serving options for the release binary started on its own.
//!
//! cargo-leptos reads its build settings from `[package.metadata.leptos]` in Cargo.toml and
//! bakes the bundle's output name into the binary at build time. The runtime serving
//! settings live in `Leptos.toml` (read from the working directory when present); a
//! `LEPTOS_*` environment variable overrides the file. No setting is kept in both files.

use std::path::Path;

use leptos::config::LeptosOptions;
use serde::Deserialize;

use crate::server::config::ConfigError;

#[derive(Deserialize, Default)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RuntimeOptions {
    site_root: Option<String>,
    env: Option<String>,
}

#[derive(Deserialize)]
struct LeptosToml {
    package: Package,
}

#[derive(Deserialize)]
struct Package {
    metadata: Metadata,
}

#[derive(Deserialize)]
struct Metadata {
    leptos: RuntimeOptions,
}

/// The options `LEPTOS_*` variables give, as `leptos_config` reads them, except that a binary
/// built without cargo-leptos (`cargo test`, `cargo bench`) names its bundle after the crate
/// instead of warning that `LEPTOS_OUTPUT_NAME` is missing.
fn from_env() -> Result<LeptosOptions, ConfigError> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let output_name = var("LEPTOS_OUTPUT_NAME")
        .or_else(|| option_env!("LEPTOS_OUTPUT_NAME").filter(|v| !v.is_empty()).map(str::to_owned))
        .unwrap_or_else(|| env!("CARGO_PKG_NAME").to_owned());
    let mut options = LeptosOptions::builder().output_name(output_name).build();
    options.site_root = var("LEPTOS_SITE_ROOT").unwrap_or_else(|| "target/site".into()).into();
    options.site_pkg_dir = var("LEPTOS_SITE_PKG_DIR").unwrap_or_else(|| "pkg".into()).into();
    if let Some(env) = var("LEPTOS_ENV") {
        options.env = env.parse().map_err(|()| ConfigError::new("LEPTOS_ENV", "must be PROD or DEV"))?;
    }
    if let Some(hash_files) = var("LEPTOS_HASH_FILES") {
        options.hash_files = hash_files.parse().map_err(|_| ConfigError::new("LEPTOS_HASH_FILES", "must be true or false"))?;
    }
    Ok(options)
}

/// The options the server renders and serves the site with.
pub fn leptos_options(path: &Path) -> Result<LeptosOptions, ConfigError> {
    let mut options = from_env()?;
    let runtime = match std::fs::read_to_string(path) {
        Ok(text) => parse(&text).map_err(|message| ConfigError::new(path.display().to_string(), message))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => RuntimeOptions::default(),
        Err(e) => return Err(ConfigError::new(path.display().to_string(), e.to_string())),
    };
    if let (Some(site_root), None) = (runtime.site_root, std::env::var_os("LEPTOS_SITE_ROOT")) {
        options.site_root = site_root.into();
    }
    if let (Some(env), None) = (runtime.env, std::env::var_os("LEPTOS_ENV")) {
        options.env = env.parse().map_err(|()| ConfigError::new(path.display().to_string(), "env must be PROD or DEV"))?;
    }
    Ok(options)
}

fn parse(text: &str) -> Result<RuntimeOptions, String> {
    toml::from_str::<LeptosToml>(text).map(|t| t.package.metadata.leptos).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_leptos_toml_parses_and_sets_no_build_setting() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Leptos.toml")).expect("Leptos.toml");
        let runtime = parse(&text).expect("valid");
        assert_eq!(runtime.site_root.as_deref(), Some("target/site"));
        // Keys that cargo-leptos owns in Cargo.toml must not be repeated here.
        let cargo = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).expect("Cargo.toml");
        let cargo: toml::Value = toml::from_str(&cargo).expect("Cargo.toml parses");
        let build = cargo["package"]["metadata"]["leptos"].as_table().expect("metadata");
        for key in ["site-root", "env"] {
            assert!(!build.contains_key(key), "{key} is set in both Cargo.toml and Leptos.toml");
        }
    }

    #[test]
    fn unknown_keys_are_rejected() {
        assert!(parse("[package.metadata.leptos]\nsite-rot = \"x\"\n").is_err());
    }
}

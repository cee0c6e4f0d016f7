//! Leptos serving options for the release binary started on its own.
//!
//! cargo-leptos reads its build settings from `[package.metadata.leptos]` in Cargo.toml and
//! bakes the bundle's output name into the binary at build time. The runtime serving
//! settings live in `Leptos.toml` (read from the working directory when present); a
//! `LEPTOS_*` environment variable overrides the file. No setting is kept in both files.
//!
//! The site's files come from the copy embedded in a release binary (see build.rs) unless
//! `LEPTOS_SITE_ROOT` or Leptos.toml's `site-root` names a directory that exists: then from
//! there (development serves what cargo-leptos just wrote). A binary with nothing embedded
//! serves the site root (by default `target/site`) in any case.

use std::path::Path;

use leptos::config::LeptosOptions;
use serde::Deserialize;

use crate::server::{assets::Assets, config::ConfigError};

/// What the server renders pages with and serves the site's files from.
pub struct Site {
    pub options: LeptosOptions,
    pub assets: Assets,
}

impl From<LeptosOptions> for Site {
    /// The files in the options' site root, on disk.
    fn from(options: LeptosOptions) -> Self {
        let assets = Assets::directory(options.site_root.as_ref());
        Self { options, assets }
    }
}

/// The options from `path` (Leptos.toml) and the environment, and where the files come
/// from: `embedded` (the binary's own copy; empty when it has none) unless a site root was
/// set explicitly and exists.
pub fn load(path: &Path, embedded: &'static [(&'static str, &'static [u8])]) -> Result<Site, ConfigError> {
    let (options, explicit) = options_and_origin(path)?;
    let assets = choose_assets(Path::new(options.site_root.as_ref()), explicit, embedded);
    tracing::info!(site = %assets.describe(), "site files");
    Ok(Site { options, assets })
}

/// The directory `root` when nothing is embedded, or when it was set explicitly (by
/// `explicit`) and exists; the embedded files otherwise.
fn choose_assets(root: &Path, explicit: Option<&'static str>, embedded: &'static [(&'static str, &'static [u8])]) -> Assets {
    match explicit {
        _ if embedded.is_empty() => Assets::directory(root),
        Some(origin) if root.is_dir() => {
            tracing::info!(site_root = %root.display(), set_by = origin, "serving the site from a directory instead of the embedded copy");
            Assets::directory(root)
        }
        Some(origin) => {
            tracing::warn!(site_root = %root.display(), set_by = origin, "the site root does not exist: serving the embedded site");
            Assets::embedded(embedded)
        }
        None => Assets::embedded(embedded),
    }
}

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
    options_and_origin(path).map(|(options, _)| options)
}

/// The options, and what set the site root explicitly (`LEPTOS_SITE_ROOT` or the file), if
/// anything did.
fn options_and_origin(path: &Path) -> Result<(LeptosOptions, Option<&'static str>), ConfigError> {
    let mut options = from_env()?;
    let mut explicit = std::env::var_os("LEPTOS_SITE_ROOT").filter(|v| !v.is_empty()).map(|_| "LEPTOS_SITE_ROOT");
    let runtime = match std::fs::read_to_string(path) {
        Ok(text) => parse(&text).map_err(|message| ConfigError::new(path.display().to_string(), message))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => RuntimeOptions::default(),
        Err(e) => return Err(ConfigError::new(path.display().to_string(), e.to_string())),
    };
    if let (Some(site_root), None) = (runtime.site_root, explicit) {
        options.site_root = site_root.into();
        explicit = Some("Leptos.toml");
    }
    if let (Some(env), None) = (runtime.env, std::env::var_os("LEPTOS_ENV")) {
        options.env = env.parse().map_err(|()| ConfigError::new(path.display().to_string(), "env must be PROD or DEV"))?;
    }
    Ok((options, explicit))
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
    fn an_explicit_site_root_that_exists_overrides_the_embedded_site() {
        static EMBEDDED: &[(&str, &[u8])] = &[("favicon.svg", b"<svg/>")];
        let dir = tempfile::tempdir().expect("dir");
        let missing = dir.path().join("missing");
        // Nothing set: the embedded copy.
        assert!(choose_assets(&missing, None, EMBEDDED).is_embedded());
        assert!(choose_assets(dir.path(), None, EMBEDDED).is_embedded(), "a default site root is not an override");
        // LEPTOS_SITE_ROOT (or Leptos.toml) naming a directory: that directory.
        assert_eq!(choose_assets(dir.path(), Some("LEPTOS_SITE_ROOT"), EMBEDDED).describe(), format!("directory {}", dir.path().display()));
        assert!(!choose_assets(dir.path(), Some("Leptos.toml"), EMBEDDED).is_embedded());
        // Naming a directory that does not exist: the embedded copy still.
        assert!(choose_assets(&missing, Some("Leptos.toml"), EMBEDDED).is_embedded());
        // Nothing embedded: the directory in any case.
        assert!(!choose_assets(&missing, None, &[]).is_embedded());
    }

    #[test]
    fn cargo_leptos_precompresses_so_that_the_release_binary_can_embed_the_site() {
        // cargo-leptos 0.3 builds the front and the server in parallel unless it
        // precompresses; build.rs embeds only a precompressed (so complete) site.
        for script in ["scripts/test", "scripts/run", "scripts/package"] {
            let text = std::fs::read_to_string(format!("{}/{script}", env!("CARGO_MANIFEST_DIR"))).expect("script");
            assert!(text.contains("cargo leptos build --release --precompress"), "{script} builds with --precompress");
        }
    }

    #[test]
    fn unknown_keys_are_rejected() {
        assert!(parse("[package.metadata.leptos]\nsite-rot = \"x\"\n").is_err());
    }
}

//! Embeds the site that cargo-leptos built (wasm, JS, CSS, public files) into the release
//! server binary, so that `workjet` runs from any directory.
//!
//! The site is embedded only when all of these hold (otherwise the list is empty and the
//! binary serves the site from disk, as in development):
//! - the server is being built (feature `ssr`), in a release profile;
//! - `LEPTOS_SITE_ROOT` is set (cargo-leptos sets it, and so does `scripts/test`);
//! - the site was precompressed (`cargo leptos build --release --precompress`). cargo-leptos
//!   0.3 builds the front and the server *at the same time* unless it precompresses (or
//!   hashes file names): only then is the site complete before the server compiles. A site
//!   without `.br` files may still be half written, so it is never embedded.
//!
//! `include_bytes!` makes the binary depend on each file, and the directory is watched as
//! a whole (`rerun-if-changed` on a directory covers files added or removed).

use std::{
    env,
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
};

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    let files = site_to_embed().unwrap_or_default();
    let mut code = String::from(
        "/// The site cargo-leptos built (path relative to the site root, contents); empty when\n\
         /// this binary was built without one (see build.rs).\n\
         pub static EMBEDDED_SITE: &[(&str, &[u8])] = &[\n",
    );
    for (relative, absolute) in &files {
        writeln!(code, "    ({relative:?}, include_bytes!({absolute:?})),").expect("write to a String");
    }
    code.push_str("];\n");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("embedded_site.rs");
    fs::write(out, code).expect("write embedded_site.rs");
}

/// The files to embed, as (path relative to the site root with `/`, absolute path).
fn site_to_embed() -> Option<Vec<(String, String)>> {
    // The browser bundle (feature `hydrate`, wasm32) never embeds anything, and must not
    // watch the site it is itself writing.
    env::var_os("CARGO_FEATURE_SSR")?;
    if env::var("PROFILE").ok()? != "release" {
        return None;
    }
    // No rerun-if-env-changed=LEPTOS_SITE_ROOT: its spelling differs between cargo-leptos
    // (the absolute `<target dir>/site`) and scripts/test's `cargo test` (`target/site`), and
    // tracking it would rebuild the server there (and replace the release binary by one
    // without the site). The directory itself is watched below.
    let site_root = env::var_os("LEPTOS_SITE_ROOT").filter(|v| !v.is_empty())?;
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR")?);
    let root = manifest_dir.join(site_root);
    // Watched even while missing (cargo then reruns this script until it appears), so that a
    // site built after a first server build is not missed.
    println!("cargo::rerun-if-changed={}", root.display());
    if !root.is_dir() {
        return None;
    }
    let mut files = Vec::new();
    walk(&root, &root, &mut files);
    files.sort();
    let precompressed = files.iter().any(|(relative, _)| relative.ends_with(".wasm.br"));
    precompressed.then_some(files)
}

fn walk(root: &Path, dir: &Path, files: &mut Vec<(String, String)>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
        // Hidden files, and the TypeScript declarations wasm-bindgen writes (no browser asks).
        if name.starts_with('.') || name.contains(".d.ts") {
            continue;
        }
        if path.is_dir() {
            walk(root, &path, files);
        } else if let (Ok(relative), Some(absolute)) = (path.strip_prefix(root), path.to_str()) {
            let relative: Vec<&str> = relative.components().filter_map(|c| c.as_os_str().to_str()).collect();
            files.push((relative.join("/"), absolute.to_owned()));
        }
    }
}

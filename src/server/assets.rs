//! The site's static files: the browser bundle under `/pkg` (wasm, JS, CSS) and the public
//! files (`/favicon.svg`, `/robots.txt`, …), served from the copy embedded in the release
//! binary or from a directory on disk (development, or `LEPTOS_SITE_ROOT`).
//!
//! - Content types come from the file extension (`application/wasm` matters: browsers
//!   refuse to compile a wasm module as it streams in under any other type).
//! - Every answer carries a strong `ETag` (a SHA-256 prefix of the bytes sent), and
//!   `If-None-Match` gets `304 Not Modified`.
//! - `Cache-Control: no-cache` (store, but revalidate) for every file, except the bundle
//!   under a content-addressed path, which is `immutable` (a year): an embedded site's
//!   bundle is linked as `/pkg/<version>/…`, where the version is a hash of every bundle
//!   file ([`Assets::bundle_version`]), so a new build is a new path; or file names that
//!   carry a content hash themselves (`LEPTOS_HASH_FILES`). The plain `/pkg/…` names
//!   stay served, revalidated (the local sign-in page links the stylesheet that way).
//! - A precompressed variant (`<file>.br`, `<file>.gz`, which `cargo leptos build
//!   --precompress` writes) is sent when the client accepts that encoding.
//! - Request paths are never decoded: only plain names (letters, digits, `.`, `-`, `_`,
//!   not starting with a dot) separated by `/` are looked up, so `..`, encoded slashes,
//!   backslashes and NUL bytes cannot leave the site. Anything else is a plain 404.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::Arc,
};

use axum::{
    body::Body,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use sha2::{Digest, Sha256};

/// The site's files, cheap to clone.
#[derive(Clone)]
pub struct Assets(Arc<Source>);

enum Source {
    /// Embedded in the binary (or given by a test): path relative to the site root → file.
    Memory(HashMap<String, File>),
    /// A directory, read at each request (development serves what cargo-leptos just wrote).
    Disk(PathBuf),
}

struct File {
    bytes: Bytes,
    etag: HeaderValue,
}

impl File {
    fn new(bytes: Bytes) -> Self {
        let etag = etag_of(&bytes);
        Self { bytes, etag }
    }
}

/// How long a browser may keep a file without asking again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caching {
    /// `no-cache`: keep it, but revalidate (a cheap 304) before each use.
    Revalidate,
    /// A year, `immutable`: only for names that change whenever the contents do.
    Immutable,
}

impl Caching {
    fn header(self) -> HeaderValue {
        match self {
            Self::Revalidate => HeaderValue::from_static("no-cache"),
            Self::Immutable => HeaderValue::from_static("public, max-age=31536000, immutable"),
        }
    }
}

#[derive(Clone, Copy)]
enum Encoding {
    Identity,
    Brotli,
    Gzip,
}

impl Encoding {
    fn suffix(self) -> &'static str {
        match self {
            Self::Identity => "",
            Self::Brotli => ".br",
            Self::Gzip => ".gz",
        }
    }

    fn token(self) -> &'static str {
        match self {
            Self::Identity => "identity",
            Self::Brotli => "br",
            Self::Gzip => "gzip",
        }
    }
}

impl Assets {
    /// The site embedded in the binary by build.rs (path relative to the site root, bytes).
    pub fn embedded(files: &'static [(&'static str, &'static [u8])]) -> Self {
        Self::in_memory(files.iter().map(|(path, bytes)| (*path, Bytes::from_static(bytes))))
    }

    /// A site held in memory (tests give one).
    pub fn in_memory<P: Into<String>, B: Into<Bytes>>(files: impl IntoIterator<Item = (P, B)>) -> Self {
        Self(Arc::new(Source::Memory(files.into_iter().map(|(path, bytes)| (path.into(), File::new(bytes.into()))).collect())))
    }

    /// The site in a directory on disk.
    pub fn directory(root: impl Into<PathBuf>) -> Self {
        Self(Arc::new(Source::Disk(root.into())))
    }

    /// Where the files come from, for the start-up log.
    pub fn describe(&self) -> String {
        match &*self.0 {
            Source::Memory(files) => format!("embedded ({} files)", files.len()),
            Source::Disk(root) => format!("directory {}", root.display()),
        }
    }

    /// The content address of the bundle under `pkg_dir`: 16 hex digits of a SHA-256 over
    /// every bundle file's path and tag (itself a hash of its bytes), for an embedded site
    /// only (a directory may change under a running server, as in development).
    pub fn bundle_version(&self, pkg_dir: &str) -> Option<String> {
        let Source::Memory(files) = &*self.0 else { return None };
        let prefix = format!("{}/", pkg_dir.trim_matches('/'));
        let mut bundle: Vec<(&String, &File)> = files.iter().filter(|(path, _)| path.starts_with(&prefix)).collect();
        if bundle.is_empty() {
            return None;
        }
        bundle.sort_by(|a, b| a.0.cmp(b.0));
        let mut hasher = Sha256::new();
        for (path, file) in bundle {
            hasher.update(path.as_bytes());
            hasher.update([0]);
            hasher.update(file.etag.as_bytes());
        }
        Some(hasher.finalize()[..8].iter().map(|b| format!("{b:02x}")).collect())
    }

    /// Whether this is an in-memory (embedded) site.
    pub fn is_embedded(&self) -> bool {
        matches!(&*self.0, Source::Memory(_))
    }

    /// The site's files outside the bundle directory `pkg_dir` (the public files), without
    /// their precompressed variants: each becomes a route. A directory is listed now, once.
    pub fn public_files(&self, pkg_dir: &str) -> Vec<String> {
        let mut paths: Vec<String> = match &*self.0 {
            Source::Memory(files) => files.keys().cloned().collect(),
            Source::Disk(root) => {
                let mut paths = Vec::new();
                list(root, root, 0, &mut paths);
                paths
            }
        };
        let pkg_prefix = format!("{}/", pkg_dir.trim_matches('/'));
        paths.retain(|p| is_servable(p) && !p.starts_with(&pkg_prefix) && !p.ends_with(".br") && !p.ends_with(".gz"));
        paths.sort();
        paths
    }

    /// The answer to a GET (or HEAD) of the file at `path` (relative to the site root).
    pub async fn serve(&self, path: &str, request: &HeaderMap, caching: Caching) -> Response {
        if !is_servable(path) {
            return not_found();
        }
        let Some((file, encoding, has_variants)) = self.find(path, request).await else {
            return not_found();
        };
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(path)));
        headers.insert(header::ETAG, file.etag.clone());
        headers.insert(header::CACHE_CONTROL, caching.header());
        if has_variants {
            headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        }
        if !matches!(encoding, Encoding::Identity) {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding.token()));
        }
        if matches_etag(request, &file.etag) {
            return (StatusCode::NOT_MODIFIED, headers).into_response();
        }
        (StatusCode::OK, headers, Body::from(file.bytes)).into_response()
    }

    /// The file, in the best encoding the client accepts, and whether other encodings exist.
    async fn find(&self, path: &str, request: &HeaderMap) -> Option<(File, Encoding, bool)> {
        let candidates = [Encoding::Brotli, Encoding::Gzip];
        match &*self.0 {
            Source::Memory(files) => {
                let identity = files.get(path)?;
                let variant = |e: Encoding| files.get(&format!("{path}{}", e.suffix()));
                let has_variants = candidates.iter().any(|e| variant(*e).is_some());
                let chosen = candidates.into_iter().filter(|e| accepts(request, e.token())).find_map(|e| variant(e).map(|f| (f, e)));
                let (file, encoding) = chosen.unwrap_or((identity, Encoding::Identity));
                Some((File { bytes: file.bytes.clone(), etag: file.etag.clone() }, encoding, has_variants))
            }
            Source::Disk(root) => {
                let read = |suffix: &'static str| {
                    let file = root.join(format!("{path}{suffix}"));
                    async move {
                        match tokio::fs::metadata(&file).await {
                            Ok(meta) if meta.is_file() => tokio::fs::read(&file).await.ok().map(|b| File::new(b.into())),
                            _ => None,
                        }
                    }
                };
                let identity = read("").await?;
                let mut has_variants = false;
                let mut chosen = None;
                for encoding in candidates {
                    if let Some(file) = read(encoding.suffix()).await {
                        has_variants = true;
                        if chosen.is_none() && accepts(request, encoding.token()) {
                            chosen = Some((file, encoding));
                        }
                    }
                }
                let (file, encoding) = chosen.unwrap_or((identity, Encoding::Identity));
                Some((file, encoding, has_variants))
            }
        }
    }
}

/// What `GET /pkg/*` serves: the bundle, under `pkg_dir`, with its caching.
#[derive(Clone)]
pub struct Bundle {
    pub assets: Assets,
    /// `site-pkg-dir` (`pkg`), without slashes.
    pub pkg_dir: String,
    /// Whether the bundle's file names are hashed (`LEPTOS_HASH_FILES`): then immutable.
    pub hashed: bool,
    /// [`Assets::bundle_version`]: `/pkg/<version>/<file>` is the bundle's file, immutable.
    pub version: Option<String>,
}

impl Bundle {
    /// The URL directory the pages link the bundle from: `pkg/<version>` when the bundle
    /// has a content address, else `pkg`.
    pub fn public_dir(&self) -> String {
        match &self.version {
            Some(version) => format!("{}/{version}", self.pkg_dir),
            None => self.pkg_dir.clone(),
        }
    }
}

/// `GET /pkg/*` (mounted with `nest_service`, which strips the prefix): the bundle.
pub async fn serve_bundle(State(bundle): State<Bundle>, uri: Uri, headers: HeaderMap) -> Response {
    let requested = uri.path().trim_start_matches('/');
    let versioned = bundle.version.as_deref().and_then(|v| requested.strip_prefix(v)).and_then(|rest| rest.strip_prefix('/'));
    let (file, caching) = match versioned {
        Some(file) => (file, Caching::Immutable),
        None if bundle.hashed => (requested, Caching::Immutable),
        None => (requested, Caching::Revalidate),
    };
    bundle.assets.serve(&format!("{}/{file}", bundle.pkg_dir), &headers, caching).await
}

/// `GET /favicon.svg` and the other public files (each registered as a route).
pub async fn serve_public(State(assets): State<Assets>, uri: Uri, headers: HeaderMap) -> Response {
    assets.serve(uri.path().trim_start_matches('/'), &headers, Caching::Revalidate).await
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, "text/plain; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], "not found\n")
        .into_response()
}

/// Only plain names: each `/`-separated part is letters, digits, `.`, `-`, `_`, and does
/// not start with a dot (so no `..`, no hidden files, nothing percent-encoded).
fn is_servable(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= 512
        && path.split('/').all(|part| {
            !part.is_empty() && !part.starts_with('.') && part.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        })
}

/// Lists the files under `dir` (relative to `root`), a few levels deep.
fn list(root: &Path, dir: &Path, depth: usize, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else { continue };
        if kind.is_dir() && depth < 4 {
            list(root, &path, depth + 1, out);
        } else if kind.is_file()
            && let Ok(relative) = path.strip_prefix(root)
        {
            let parts: Option<Vec<&str>> = relative.components().map(|c| c.as_os_str().to_str()).collect();
            if let Some(parts) = parts {
                out.push(parts.join("/"));
            }
        }
    }
}

/// The media type for a file name (by its extension).
pub fn content_type(path: &str) -> &'static str {
    let extension = path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    match extension.as_str() {
        "wasm" => "application/wasm",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "html" | "htm" => "text/html; charset=utf-8",
        "txt" => "text/plain; charset=utf-8",
        "json" | "map" => "application/json",
        "webmanifest" => "application/manifest+json",
        "xml" => "application/xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "ttf" => "font/ttf",
        "otf" => "font/otf",
        "pdf" => "application/pdf",
        _ => "application/octet-stream",
    }
}

/// A strong validator: the first 128 bits of the SHA-256 of the bytes sent.
fn etag_of(bytes: &[u8]) -> HeaderValue {
    let digest = Sha256::digest(bytes);
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    HeaderValue::from_str(&format!("\"{hex}\"")).expect("hex digits are a valid header value")
}

/// Whether `If-None-Match` names this ETag (or `*`). Weak comparison, as RFC 9110 asks.
fn matches_etag(request: &HeaderMap, etag: &HeaderValue) -> bool {
    let Ok(etag) = etag.to_str() else { return false };
    request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|candidate| candidate == "*" || candidate.trim_start_matches("W/") == etag)
}

/// Whether `Accept-Encoding` accepts `coding` (named, with a q-value above zero).
fn accepts(request: &HeaderMap, coding: &str) -> bool {
    request.get_all(header::ACCEPT_ENCODING).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(|item| {
        let mut parts = item.split(';');
        let name = parts.next().unwrap_or_default().trim();
        let refused = parts.any(|p| p.trim().strip_prefix("q=").is_some_and(|q| q.trim().parse::<f32>().map_or(true, |q| q <= 0.0)));
        name.eq_ignore_ascii_case(coding) && !refused
    })
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderName;
    use http_body_util::BodyExt;

    use super::*;

    fn site() -> Assets {
        Assets::in_memory([
            ("pkg/workjet.wasm", Bytes::from_static(b"\0asm-identity")),
            ("pkg/workjet.wasm.br", Bytes::from_static(b"brotli")),
            ("pkg/workjet.wasm.gz", Bytes::from_static(b"gzip")),
            ("pkg/workjet.js", Bytes::from_static(b"export default 1;")),
            ("pkg/workjet.css", Bytes::from_static(b"body{}")),
            ("favicon.svg", Bytes::from_static(b"<svg/>")),
            ("robots.txt", Bytes::from_static(b"User-agent: *\n")),
            ("robots.txt.gz", Bytes::from_static(b"gz")),
        ])
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (HeaderName::from_static(k), HeaderValue::from_str(v).expect("value"))).collect()
    }

    async fn get(assets: &Assets, path: &str, request: &[(&'static str, &str)]) -> (StatusCode, HeaderMap, Vec<u8>) {
        let response = assets.serve(path, &headers(request), Caching::Revalidate).await;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.expect("body").to_bytes().to_vec();
        (status, headers, body)
    }

    fn header(headers: &HeaderMap, name: header::HeaderName) -> &str {
        headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    #[tokio::test]
    async fn content_types_follow_the_extension() {
        let assets = site();
        for (path, expected) in [
            ("pkg/workjet.wasm", "application/wasm"),
            ("pkg/workjet.js", "text/javascript; charset=utf-8"),
            ("pkg/workjet.css", "text/css; charset=utf-8"),
            ("favicon.svg", "image/svg+xml"),
            ("robots.txt", "text/plain; charset=utf-8"),
        ] {
            let (status, headers, _) = get(&assets, path, &[]).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            assert_eq!(header(&headers, header::CONTENT_TYPE), expected, "{path}");
            assert_eq!(header(&headers, header::CACHE_CONTROL), "no-cache", "{path}");
        }
        assert_eq!(content_type("x/unknown.bin"), "application/octet-stream");
        assert_eq!(content_type("noextension"), "application/octet-stream");
    }

    #[tokio::test]
    async fn an_etag_is_sent_and_if_none_match_gets_304() {
        let assets = site();
        let (_, first, body) = get(&assets, "pkg/workjet.js", &[]).await;
        assert_eq!(body, b"export default 1;");
        let etag = header(&first, header::ETAG).to_owned();
        assert!(etag.starts_with('"') && etag.ends_with('"') && etag.len() == 34, "{etag}");
        let (status, headers, body) = get(&assets, "pkg/workjet.js", &[("if-none-match", &etag)]).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED);
        assert!(body.is_empty());
        assert_eq!(header(&headers, header::ETAG), etag);
        assert_eq!(header(&headers, header::CACHE_CONTROL), "no-cache");
        let (status, _, _) = get(&assets, "pkg/workjet.js", &[("if-none-match", &format!("\"other\", W/{etag}"))]).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED, "a list and a weak validator match too");
        let (status, _, body) = get(&assets, "pkg/workjet.js", &[("if-none-match", "\"stale\"")]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, b"export default 1;");
        // Another file has another tag.
        let (_, css, _) = get(&assets, "pkg/workjet.css", &[]).await;
        assert_ne!(header(&css, header::ETAG), etag);
    }

    #[tokio::test]
    async fn precompressed_variants_follow_accept_encoding() {
        let assets = site();
        let (_, headers, body) = get(&assets, "pkg/workjet.wasm", &[("accept-encoding", "gzip, deflate, br, zstd")]).await;
        assert_eq!(body, b"brotli");
        assert_eq!(header(&headers, header::CONTENT_ENCODING), "br");
        assert_eq!(header(&headers, header::CONTENT_TYPE), "application/wasm");
        assert_eq!(header(&headers, header::VARY), "accept-encoding");
        let br_etag = header(&headers, header::ETAG).to_owned();
        let (_, headers, body) = get(&assets, "pkg/workjet.wasm", &[("accept-encoding", "gzip, br;q=0")]).await;
        assert_eq!(body, b"gzip");
        assert_eq!(header(&headers, header::CONTENT_ENCODING), "gzip");
        assert_ne!(header(&headers, header::ETAG), br_etag, "each encoding has its own validator");
        let (_, headers, body) = get(&assets, "pkg/workjet.wasm", &[]).await;
        assert_eq!(body, b"\0asm-identity");
        assert!(headers.get(header::CONTENT_ENCODING).is_none());
        assert_eq!(header(&headers, header::VARY), "accept-encoding");
        // No variant: no Vary, no encoding.
        let (_, headers, _) = get(&assets, "pkg/workjet.js", &[("accept-encoding", "br")]).await;
        assert!(headers.get(header::CONTENT_ENCODING).is_none() && headers.get(header::VARY).is_none());
    }

    #[tokio::test]
    async fn missing_files_and_traversal_are_plain_404s() {
        let assets = site();
        for path in [
            "pkg/missing.js",
            "pkg",
            "pkg/",
            "",
            "pkg/../Cargo.toml",
            "../Cargo.toml",
            "pkg/%2e%2e/Cargo.toml",
            "pkg/..%2fCargo.toml",
            "pkg/..\\..\\Cargo.toml",
            "pkg/workjet.js%00.png",
            "pkg//workjet.js",
            "./robots.txt",
            "pkg/.hidden",
            "/etc/passwd",
        ] {
            let (status, headers, body) = get(&assets, path, &[]).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path:?}");
            assert_eq!(header(&headers, header::CONTENT_TYPE), "text/plain; charset=utf-8", "{path:?}: not the app shell");
            assert_eq!(body, b"not found\n");
        }
    }

    #[tokio::test]
    async fn a_directory_is_served_and_cannot_be_left() {
        let parent = tempfile::tempdir().expect("dir");
        std::fs::write(parent.path().join("secret.txt"), "secret").expect("write");
        let root = parent.path().join("site");
        std::fs::create_dir_all(root.join("pkg")).expect("mkdir");
        std::fs::write(root.join("pkg/workjet.wasm"), b"\0asm").expect("write");
        std::fs::write(root.join("pkg/workjet.wasm.br"), b"br").expect("write");
        std::fs::write(root.join("favicon.svg"), b"<svg/>").expect("write");
        std::fs::create_dir_all(root.join("images")).expect("mkdir");
        std::fs::write(root.join("images/logo.png"), b"png").expect("write");
        let assets = Assets::directory(&root);
        assert!(!assets.is_embedded());
        let (status, headers, body) = get(&assets, "pkg/workjet.wasm", &[]).await;
        assert_eq!((status, body.as_slice()), (StatusCode::OK, b"\0asm".as_slice()));
        assert_eq!(header(&headers, header::CONTENT_TYPE), "application/wasm");
        assert_eq!(header(&headers, header::VARY), "accept-encoding");
        let etag = header(&headers, header::ETAG).to_owned();
        let (status, _, _) = get(&assets, "pkg/workjet.wasm", &[("if-none-match", &etag)]).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED);
        let (_, headers, body) = get(&assets, "pkg/workjet.wasm", &[("accept-encoding", "br")]).await;
        assert_eq!((body.as_slice(), header(&headers, header::CONTENT_ENCODING)), (b"br".as_slice(), "br"));
        for path in ["../secret.txt", "pkg/../../secret.txt", "pkg", "images", "pkg/missing.js"] {
            assert_eq!(get(&assets, path, &[]).await.0, StatusCode::NOT_FOUND, "{path}");
        }
        assert_eq!(assets.public_files("pkg"), ["favicon.svg", "images/logo.png"]);
    }

    #[test]
    fn public_files_leave_out_the_bundle_and_the_variants() {
        assert_eq!(site().public_files("pkg"), ["favicon.svg", "robots.txt"]);
        assert!(site().is_embedded());
        assert_eq!(Assets::in_memory(Vec::<(String, Vec<u8>)>::new()).public_files("pkg"), Vec::<String>::new());
    }

    #[test]
    fn cache_headers() {
        assert_eq!(Caching::Immutable.header(), "public, max-age=31536000, immutable");
        assert_eq!(Caching::Revalidate.header(), "no-cache");
    }

    #[tokio::test]
    async fn an_embedded_bundle_has_a_content_address_served_for_a_year() {
        let assets = site();
        let version = assets.bundle_version("pkg").expect("an embedded bundle has a version");
        assert_eq!(version.len(), 16);
        assert!(version.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(assets.bundle_version("/pkg/"), Some(version.clone()), "slashes do not matter");
        assert_eq!(assets.bundle_version("nothing-here"), None);
        // Any change to any bundle file is a new address; a public file is not part of it.
        let changed = Assets::in_memory([("pkg/workjet.js", "export default 2;"), ("pkg/workjet.css", "body{}")]);
        let same = Assets::in_memory([("pkg/workjet.js", "export default 1;"), ("pkg/workjet.css", "body{}")]);
        let with_public = Assets::in_memory([("pkg/workjet.js", "export default 1;"), ("pkg/workjet.css", "body{}"), ("favicon.svg", "x")]);
        assert_ne!(changed.bundle_version("pkg"), same.bundle_version("pkg"));
        assert_eq!(with_public.bundle_version("pkg"), same.bundle_version("pkg"));
        assert_eq!(Assets::directory("/nonexistent").bundle_version("pkg"), None, "a directory may change: no address");

        let bundle = Bundle { assets, pkg_dir: "pkg".into(), hashed: false, version: Some(version.clone()) };
        assert_eq!(bundle.public_dir(), format!("pkg/{version}"));
        let fetch = |path: String| {
            let bundle = bundle.clone();
            async move {
                let response = serve_bundle(State(bundle), path.parse().expect("uri"), HeaderMap::new()).await;
                let cache = response.headers().get(header::CACHE_CONTROL).map(|v| v.to_str().expect("ascii").to_owned());
                (response.status(), cache)
            }
        };
        let year = Some("public, max-age=31536000, immutable".to_owned());
        assert_eq!(fetch(format!("/{version}/workjet.js")).await, (StatusCode::OK, year.clone()));
        assert_eq!(fetch(format!("/{version}/workjet.wasm")).await, (StatusCode::OK, year));
        assert_eq!(fetch("/workjet.js".into()).await, (StatusCode::OK, Some("no-cache".into())), "the plain name is revalidated");
        assert_eq!(fetch("/0123456789abcdef/workjet.js".into()).await.0, StatusCode::NOT_FOUND, "another build's address");
        assert_eq!(fetch(format!("/{version}/missing.js")).await.0, StatusCode::NOT_FOUND);
        assert_eq!(fetch(format!("/{version}/../workjet.js")).await.0, StatusCode::NOT_FOUND);
        assert_eq!(fetch(format!("/{version}")).await.0, StatusCode::NOT_FOUND);
    }
}

//! The DSFR's compiled assets (CSS, JS, fonts, favicons), vendored by
//! `scripts/vendor-dsfr.sh` and embedded in the binary. Their URLs carry the
//! DSFR's version, so they are cached for a year and never go stale; the
//! ETag is the file's SHA-256.

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::Digest;

use super::error::ApiError;

mod vendored {
    include!("../../assets/dsfr/files.rs");
}

/// The vendored DSFR version.
pub fn dsfr_version() -> &'static str {
    vendored::VERSION
}

/// A vendored file: its bytes, and its ETag (the SHA-256, computed once).
fn find(path: &str) -> Option<(&'static [u8], &'static str)> {
    static ETAGS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let etags = ETAGS.get_or_init(|| {
        vendored::FILES
            .iter()
            .map(|(_, bytes)| format!("\"{}\"", hex::encode(sha2::Sha256::digest(bytes))))
            .collect()
    });
    let i = vendored::FILES.iter().position(|(p, _)| *p == path)?;
    Some((vendored::FILES[i].1, etags[i].as_str()))
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, e)| e) {
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("woff2") => "font/woff2",
        Some("woff") => "font/woff",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("webmanifest") => "application/manifest+json",
        _ => "application/octet-stream",
    }
}

/// Where the pages find an asset: `/static/dsfr/1.15.3/dsfr.min.css`.
pub fn dsfr_url(path: &str) -> String {
    format!("/static/dsfr/{}/{path}", dsfr_version())
}

/// `GET /static/dsfr/{version}/{*path}`
pub async fn dsfr(Path((version, path)): Path<(String, String)>, headers: HeaderMap) -> Response {
    let not_found = || {
        ApiError::NotFound {
            detail: "Cette ressource n'existe pas.".into(),
        }
        .into_response()
    };
    if version != dsfr_version() {
        return not_found();
    }
    let Some((bytes, etag)) = find(&path) else {
        return not_found();
    };
    serve(bytes, etag, &path, &headers)
}

/// A file forever: its URL changes when it does.
fn serve(bytes: &'static [u8], etag: &str, path: &str, headers: &HeaderMap) -> Response {
    let mut out = HeaderMap::new();
    let mut set = |name, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            out.insert(name, v);
        }
    };
    set(header::ETAG, etag);
    set(header::CACHE_CONTROL, "public, max-age=31536000, immutable");
    set(header::CONTENT_TYPE, content_type(path));
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    let unchanged = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    if unchanged {
        return (StatusCode::NOT_MODIFIED, out).into_response();
    }
    (StatusCode::OK, out, bytes).into_response()
}

/// The service's own script and style sheets (live updates, a few layout
/// rules the DSFR has no class for, the receipt's print layout).
const OWN: &[(&str, &[u8])] = &[
    ("ami.js", include_bytes!("../../assets/ami/ami.js")),
    ("ami.css", include_bytes!("../../assets/ami/ami.css")),
    (
        "sans-js.css",
        include_bytes!("../../assets/ami/sans-js.css"),
    ),
    (
        "recepisse.css",
        include_bytes!("../../assets/ami/recepisse.css"),
    ),
];

/// The version in the own files' URLs: a digest of their content, so that
/// a new binary's files are never taken from a browser's cache of the old.
fn own_version() -> &'static str {
    static VERSION: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    VERSION.get_or_init(|| {
        let mut h = sha2::Sha256::new();
        for (_, bytes) in OWN {
            h.update(bytes);
        }
        hex::encode(h.finalize())[..12].to_string()
    })
}

pub fn own_url(file: &str) -> String {
    format!("/static/ami/{}/{file}", own_version())
}

/// `GET /static/ami/{version}/{file}`
pub async fn own(Path((version, file)): Path<(String, String)>, headers: HeaderMap) -> Response {
    match OWN.iter().find(|(name, _)| *name == file) {
        Some((_, bytes)) if version == own_version() => {
            let etag = format!("\"{}-{file}\"", own_version());
            serve(bytes, &etag, &file, &headers)
        }
        _ => ApiError::NotFound {
            detail: "Cette ressource n'existe pas.".into(),
        }
        .into_response(),
    }
}

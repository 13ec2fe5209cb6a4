//! The dashboard: static files from `server/dashboard/`, embedded in the binary at build time,
//! served at `/` and `/dashboard/`.

use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// Every dashboard file, by its path relative to `server/dashboard/`.
static ASSETS: &[(&str, &[u8])] = include!(concat!(env!("OUT_DIR"), "/dashboard_assets.rs"));

/// The dashboard loads its scripts, styles and data from this server only; it may not be framed
/// (clickjacking) and may not post forms elsewhere.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self' \
     'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; \
     base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

/// The embedded file for a request path, if any: `/` and `/dashboard/` are `index.html`;
/// `/dashboard/<file>` and `/<file>` are that file, so that relative links work from both.
pub fn asset(path: &str) -> Option<(&'static str, &'static [u8])> {
    let relative = path
        .strip_prefix("/dashboard")
        .filter(|rest| rest.is_empty() || rest.starts_with('/'))
        .unwrap_or(path);
    let relative = relative.trim_start_matches('/');
    let name = if relative.is_empty() || relative.ends_with('/') {
        format!("{relative}index.html")
    } else {
        relative.to_owned()
    };
    ASSETS
        .iter()
        .find(|(asset, _)| *asset == name)
        .map(|(asset, bytes)| (*asset, *bytes))
}

/// The content type of a file, by its extension.
pub fn content_type(name: &str) -> &'static str {
    let extension = name.rsplit_once('.').map_or("", |(_, ext)| ext);
    match extension.to_ascii_lowercase().as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "txt" | "md" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Serves a dashboard file for GET and HEAD; anything else that no route matched is a 404.
pub async fn fallback(method: Method, uri: Uri) -> Response {
    let path = uri.path();
    let found = match method {
        Method::GET | Method::HEAD if !path.starts_with("/v1/") => asset(path),
        _ => None,
    };
    let Some((name, bytes)) = found else {
        return ApiError::not_found(format!("no route {method} {}", shown(path))).into_response();
    };
    let mut response = (StatusCode::OK, bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(name)),
    );
    // The files change only with the binary; revalidating each time keeps an upgraded server
    // from serving a stale script next to a new index.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// A request path as an error message shows it: at most 100 characters.
fn shown(path: &str) -> String {
    match path.char_indices().nth(100) {
        Some((cut, _)) => format!("{}...", &path[..cut]),
        None => path.to_owned(),
    }
}

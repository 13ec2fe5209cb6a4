//! Request extractors that answer every malformed input with a JSON error: a body read under
//! the size limit and the body timeout and parsed strictly, path parameters and query strings.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, Path, Query, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::{ApiCode, ApiError};
use crate::state::AppState;

/// The body limit of the price import: LiteLLM's price file is over 1 MiB, and only an admin
/// key with `prices:write` gets this far.
pub const IMPORT_MAX_BODY: usize = 32 << 20;

/// When hyper handed the request over, its headers just read: the body timeout counts from
/// here. Set by the server on every request.
#[derive(Clone, Copy, Debug)]
pub struct HeadersReceived(pub tokio::time::Instant);

/// Reads the body, refusing more than `limit` bytes (by `Content-Length` at once, else while
/// reading) and giving up when it has not arrived in full within the body timeout of the
/// headers.
async fn read_body(request: Request, limit: usize, state: &AppState) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            ApiCode::PayloadTooLarge,
            format!("the request body is larger than {limit} bytes"),
        )
    };
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    // A router used without the server (no stamp) counts from now.
    let received = request
        .extensions()
        .get::<HeadersReceived>()
        .map_or_else(tokio::time::Instant::now, |stamp| stamp.0);
    let deadline = received + state.body_timeout;

    let read = axum::body::to_bytes(request.into_body(), limit);
    let Ok(read) = tokio::time::timeout_at(deadline, read).await else {
        return Err(ApiError::new(
            ApiCode::RequestTimeout,
            format!(
                "the request body did not arrive within {} of its headers",
                nanu::format_duration(state.body_timeout)
            ),
        ));
    };
    read.map_err(|err| {
        let length_limit = std::error::Error::source(&err)
            .is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
        if length_limit {
            too_large()
        } else {
            ApiError::invalid(format!("cannot read the request body: {err}"))
        }
    })
}

/// Parses a JSON object strictly: the types' own serde rules (unknown fields refused) decide,
/// and the error names the line and column. Every body of this API is an object; serde would
/// also read a struct from an array of its fields in order, which no client means.
fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| *b != b'{')
        && serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok()
    {
        return Err(ApiError::invalid(
            "the request body does not fit this call: expected a json object",
        ));
    }
    serde_json::from_slice(bytes).map_err(|err| {
        let what = match err.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                "the request body is not valid json"
            }
            _ => "the request body does not fit this call",
        };
        ApiError::invalid(format!("{what}: {err}"))
    })
}

/// A JSON request body. The `Content-Type` is not checked, so that `curl -d` works; the body
/// must parse as JSON all the same.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let bytes = read_body(request, state.max_body, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::invalid("this call needs a json request body"));
        }
        parse_json(&bytes).map(JsonBody)
    }
}

/// A JSON request body that may be left out: an empty body means every field's default.
#[derive(Debug)]
pub struct OptionalJsonBody<T>(pub T);

impl<T: DeserializeOwned + Default + Send> FromRequest<AppState> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let bytes = read_body(request, state.max_body, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJsonBody(T::default()));
        }
        parse_json(&bytes).map(OptionalJsonBody)
    }
}

/// The body of a price import: LiteLLM's JSON as text, under [`IMPORT_MAX_BODY`].
#[derive(Debug)]
pub struct ImportBody(pub String);

impl FromRequest<AppState> for ImportBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let bytes = read_body(request, state.max_body.max(IMPORT_MAX_BODY), state).await?;
        String::from_utf8(bytes.to_vec())
            .map(ImportBody)
            .map_err(|_| ApiError::invalid("the request body is not utf-8 text"))
    }
}

/// Path parameters, with a JSON error when they do not decode.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<AppState> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| ApiPath(value))
            .map_err(|err| ApiError::invalid(format!("bad path: {}", err.body_text())))
    }
}

/// A query string, refused whole when a parameter is unknown, repeated or malformed.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<AppState> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| ApiQuery(value))
            .map_err(|err| {
                let text = err.body_text();
                let text = text
                    .strip_prefix("Failed to deserialize query string: ")
                    .unwrap_or(&text);
                ApiError::invalid(format!("bad query string: {text}"))
            })
    }
}

/// The query string of a route that takes no parameters: any parameter is refused, as an
/// unknown one is on the routes that take some. An empty query (`?`) is no parameter.
#[derive(Debug)]
pub struct NoQuery;

impl FromRequestParts<AppState> for NoQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let ApiQuery(pairs) =
            ApiQuery::<Vec<(String, String)>>::from_request_parts(parts, state).await?;
        let Some((name, _)) = pairs.first() else {
            return Ok(NoQuery);
        };
        // The route's pattern, not the path sent: a path segment may be a secret pasted where
        // a key id belongs, and errors never show one.
        let route = parts
            .extensions
            .get::<MatchedPath>()
            .map_or("this route", MatchedPath::as_str);
        Err(ApiError::invalid(format!(
            "unknown query parameter {:?}: {route} takes no query parameters",
            shown(name)
        )))
    }
}

/// Query values arrive as text and are converted here, so that each error names its parameter.
/// An empty value (`?owner=`, as an HTML form sends an empty field) is the same as leaving the
/// parameter out.
pub mod param {
    use jiff::Timestamp;

    use crate::error::ApiError;

    /// The longest text value of a filter.
    const MAX_TEXT: usize = 200;

    /// A whole number in `min..=max`.
    pub fn number(
        name: &str,
        text: Option<&str>,
        min: u64,
        max: u64,
    ) -> Result<Option<u64>, ApiError> {
        let Some(text) = text.filter(|t| !t.is_empty()) else {
            return Ok(None);
        };
        match text.trim().parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(ApiError::invalid(format!(
                "query parameter {name} must be a whole number from {min} to {max}, not {:?}",
                super::shown(text)
            ))),
        }
    }

    /// An instant: RFC 3339 (`2026-05-01T00:00:00Z`) or a date (`2026-05-01`, midnight UTC).
    pub fn time(name: &str, text: Option<&str>) -> Result<Option<Timestamp>, ApiError> {
        let Some(text) = text.filter(|t| !t.is_empty()) else {
            return Ok(None);
        };
        let trimmed = text.trim();
        if let Ok(at) = trimmed.parse::<Timestamp>() {
            return Ok(Some(at));
        }
        if let Ok(date) = trimmed.parse::<jiff::civil::Date>() {
            return match date.to_zoned_datetime(jiff::tz::TimeZone::UTC) {
                Ok(zoned) => Ok(Some(zoned.timestamp())),
                Err(_) => Err(out_of_range(name, text)),
            };
        }
        // Well written but beyond the instants there are (jiff's range ends a day short of the
        // years -9999 and 9999, so that every offset fits): a different mistake.
        let pieces = jiff::fmt::temporal::Pieces::parse(trimmed);
        if pieces.is_ok_and(|p| p.time().is_some() && p.offset().is_some()) {
            return Err(out_of_range(name, text));
        }
        Err(ApiError::invalid(format!(
            "query parameter {name} must be an RFC 3339 instant (2026-05-01T00:00:00Z) or a \
             date (2026-05-01), not {:?}",
            super::shown(text)
        )))
    }

    fn out_of_range(name: &str, text: &str) -> ApiError {
        ApiError::invalid(format!(
            "query parameter {name} is out of range: {:?} is not between {} and {}",
            super::shown(text),
            Timestamp::MIN,
            Timestamp::MAX
        ))
    }

    /// A text of at most 200 bytes; `None` when empty.
    pub fn text(name: &str, text: Option<String>) -> Result<Option<String>, ApiError> {
        match text {
            Some(t) if t.is_empty() => Ok(None),
            Some(t) if t.len() > MAX_TEXT => Err(ApiError::invalid(format!(
                "query parameter {name} is longer than {MAX_TEXT} bytes"
            ))),
            other => Ok(other),
        }
    }
}

/// A value as an error message shows it: at most 100 characters.
fn shown(text: &str) -> &str {
    match text.char_indices().nth(100) {
        Some((cut, _)) => &text[..cut],
        None => text,
    }
}

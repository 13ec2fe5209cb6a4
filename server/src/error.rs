//! Errors as the API answers them: an HTTP status and `{"error": {"code", "message"}}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// The stable code of an API error: the core's error codes, plus the HTTP layer's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApiCode {
    /// The request is malformed: bad JSON, a wrong type, an unknown field, a bad query value
    /// or an argument the vault refuses.
    InvalidArgument,
    /// No such key, owner, price or route.
    NotFound,
    /// The same request id was charged before with other amounts.
    Conflict,
    /// No bearer token, or one that is not a valid admin key.
    Unauthorized,
    /// The admin key lacks the scope this call needs.
    Forbidden,
    /// The admin key's own limits refuse more calls for now.
    RateLimited,
    /// The body is larger than the server's limit.
    PayloadTooLarge,
    /// The body did not arrive within the server's body timeout.
    RequestTimeout,
    /// The route exists, but not with this method.
    MethodNotAllowed,
    /// Reading or writing the vault file failed.
    Storage,
    /// A stored record failed authentication or could not be decoded.
    Corrupt,
    /// The vault is closed: the server is shutting down.
    Closed,
    /// A failure inside the server (a bug in nanu).
    Internal,
}

impl ApiCode {
    /// The stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiCode::InvalidArgument => "invalid_argument",
            ApiCode::NotFound => "not_found",
            ApiCode::Conflict => "conflict",
            ApiCode::Unauthorized => "unauthorized",
            ApiCode::Forbidden => "forbidden",
            ApiCode::RateLimited => "rate_limited",
            ApiCode::PayloadTooLarge => "payload_too_large",
            ApiCode::RequestTimeout => "request_timeout",
            ApiCode::MethodNotAllowed => "method_not_allowed",
            ApiCode::Storage => "storage",
            ApiCode::Corrupt => "corrupt",
            ApiCode::Closed => "closed",
            ApiCode::Internal => "internal",
        }
    }

    /// The HTTP status this code is answered with.
    pub fn status(self) -> StatusCode {
        match self {
            ApiCode::InvalidArgument => StatusCode::BAD_REQUEST,
            ApiCode::NotFound => StatusCode::NOT_FOUND,
            ApiCode::Conflict => StatusCode::CONFLICT,
            ApiCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiCode::Forbidden => StatusCode::FORBIDDEN,
            ApiCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ApiCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiCode::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiCode::Closed => StatusCode::SERVICE_UNAVAILABLE,
            ApiCode::Storage | ApiCode::Corrupt | ApiCode::Internal => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }
}

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The code and message of an error.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// The stable code, for programs.
    pub code: ApiCode,
    /// A lowercase sentence for people; never contains a secret.
    pub message: String,
}

/// An error answered by the API.
#[derive(Debug)]
pub struct ApiError {
    code: ApiCode,
    message: String,
    retry_after_secs: Option<u64>,
}

impl ApiError {
    /// An error with a code and a message.
    pub fn new(code: ApiCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            retry_after_secs: None,
        }
    }

    /// An `invalid_argument` error (400).
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(ApiCode::InvalidArgument, message)
    }

    /// A `not_found` error (404).
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(ApiCode::NotFound, message)
    }

    /// An `unauthorized` error (401).
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(ApiCode::Unauthorized, message)
    }

    /// A `forbidden` error (403).
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(ApiCode::Forbidden, message)
    }

    /// An `internal` error (500): something in the server failed, not the request.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(ApiCode::Internal, message)
    }

    /// Adds a `Retry-After` header (whole seconds, rounded up).
    pub fn retry_after(mut self, secs: u64) -> ApiError {
        self.retry_after_secs = Some(secs);
        self
    }

    /// The stable code.
    pub fn code(&self) -> ApiCode {
        self.code
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl From<nanu::Error> for ApiError {
    fn from(err: nanu::Error) -> ApiError {
        use nanu::ErrorCode;
        let code = match err.code() {
            ErrorCode::InvalidArgument => ApiCode::InvalidArgument,
            ErrorCode::NotFound => ApiCode::NotFound,
            ErrorCode::Conflict => ApiCode::Conflict,
            ErrorCode::Storage => ApiCode::Storage,
            ErrorCode::Corrupt => ApiCode::Corrupt,
            ErrorCode::Closed => ApiCode::Closed,
            // Unlocking and locking belong to opening the vault, which the server did before it
            // listened: met here, they are a failure of the server, not of the request.
            _ => ApiCode::Internal,
        };
        ApiError::new(code, err.message())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.code.status();
        if status.is_server_error() {
            log::warn!(
                "{} {}: {}",
                status.as_u16(),
                self.code.as_str(),
                self.message
            );
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        if self.code == ApiCode::Unauthorized {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        // The rest of a body that came too slowly is not waited for: the connection ends here.
        if self.code == ApiCode::RequestTimeout {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if let Some(secs) = self.retry_after_secs {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// Shorthand for handler results.
pub type ApiResult<T> = Result<T, ApiError>;

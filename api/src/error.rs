//! Why a request was refused, mapped once to gRPC status codes and HTTP statuses.

/// Why a request was refused before (or instead of) running code. Each maps to one gRPC status code
/// and one HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// No, malformed, expired or wrong-audience credentials.
    #[error("{0}")]
    Unauthenticated(String),
    /// A valid caller that the policy does not allow.
    #[error("{0}")]
    PermissionDenied(String),
    /// Empty code, code over the size limit, malformed fields.
    #[error("{0}")]
    InvalidArgument(String),
    /// The execution queue is full.
    #[error("{0}")]
    ResourceExhausted(String),
    /// The deadline passed before the execution could start.
    #[error("{0}")]
    DeadlineExceeded(String),
    /// Shutting down, or the binding proxy is unreachable.
    #[error("{0}")]
    Unavailable(String),
    /// A resume that cannot run: unknown approval, undecided, expired or already resumed.
    #[error("{0}")]
    FailedPrecondition(String),
    /// A bug in MCP Guard.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// A short label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::Unauthenticated(_) => "unauthenticated",
            ApiError::PermissionDenied(_) => "permission_denied",
            ApiError::InvalidArgument(_) => "invalid_argument",
            ApiError::ResourceExhausted(_) => "resource_exhausted",
            ApiError::DeadlineExceeded(_) => "deadline_exceeded",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::FailedPrecondition(_) => "failed_precondition",
            ApiError::Internal(_) => "internal",
        }
    }

    pub fn to_status(&self) -> tonic::Status {
        let message = self.to_string();
        match self {
            ApiError::Unauthenticated(_) => tonic::Status::unauthenticated(message),
            ApiError::PermissionDenied(_) => tonic::Status::permission_denied(message),
            ApiError::InvalidArgument(_) => tonic::Status::invalid_argument(message),
            ApiError::ResourceExhausted(_) => tonic::Status::resource_exhausted(message),
            ApiError::DeadlineExceeded(_) => tonic::Status::deadline_exceeded(message),
            ApiError::Unavailable(_) => tonic::Status::unavailable(message),
            ApiError::FailedPrecondition(_) => tonic::Status::failed_precondition(message),
            ApiError::Internal(_) => tonic::Status::internal(message),
        }
    }

    pub fn http_status(&self) -> axum::http::StatusCode {
        use axum::http::StatusCode;
        match self {
            ApiError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            ApiError::PermissionDenied(_) => StatusCode::FORBIDDEN,
            ApiError::InvalidArgument(_) => StatusCode::BAD_REQUEST,
            ApiError::ResourceExhausted(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::DeadlineExceeded(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::FailedPrecondition(_) => StatusCode::CONFLICT,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<ApiError> for tonic::Status {
    fn from(e: ApiError) -> Self {
        e.to_status()
    }
}

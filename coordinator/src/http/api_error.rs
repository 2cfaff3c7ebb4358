//! Errors of the HTTP API: JSON `{"error": kind, "message": sentence}` with a status that fits.
//!
//! The kinds are the protocol's `FailureKind`s in snake case (`unknown_task`, `purged`, ...),
//! plus the HTTP side's own (`unauthorized`, `not_found`, `method_not_allowed`); the message
//! is the same one sentence the CLI prints: what failed and what to do.

use axum::http::{header, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use tatzelwurm_proto::actioner::{Failure, FailureKind};

/// One failed request, as its answer.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// What kind of failure, for programs.
    pub kind: &'static str,
    /// One sentence for a person.
    pub message: String,
}

impl ApiError {
    /// A failure of `kind` with `status`.
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            kind,
            message: message.into(),
        }
    }

    /// A request the API cannot read or that does not apply (400).
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// The coordinator's failure, with the status of its kind.
    pub fn from_failure(failure: &Failure) -> ApiError {
        let (status, kind) = match failure.kind {
            FailureKind::UnknownTask => (StatusCode::NOT_FOUND, "unknown_task"),
            FailureKind::BadRequest => (StatusCode::BAD_REQUEST, "bad_request"),
            FailureKind::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            FailureKind::Stopping => (StatusCode::SERVICE_UNAVAILABLE, "stopping"),
            FailureKind::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            FailureKind::UnknownQueue => (StatusCode::NOT_FOUND, "unknown_queue"),
            FailureKind::UnknownSchedule => (StatusCode::NOT_FOUND, "unknown_schedule"),
            FailureKind::ScheduleExists => (StatusCode::CONFLICT, "schedule_exists"),
            FailureKind::Purged => (StatusCode::GONE, "purged"),
            FailureKind::UnknownWorker => (StatusCode::NOT_FOUND, "unknown_worker"),
            FailureKind::Lagged => (StatusCode::CONFLICT, "lagged"),
            FailureKind::EventsGone => (StatusCode::GONE, "events_gone"),
        };
        ApiError::new(status, kind, failure.message.clone())
    }

    /// The JSON body, also sent as an SSE `error` event.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({"error": self.kind, "message": self.message})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                "Bearer".parse().expect("a valid header"),
            );
        }
        response
    }
}

/// Any path that is not served: 404 with the list of what is.
pub async fn not_found(uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!(
            "nothing is served at {}; try / (the dashboard), /metrics, /api/tasks, /api/workers, /api/queues or /api/events",
            uri.path()
        ),
    )
}

/// A served path asked with a method it does not take: 405 saying which ones change state.
pub async fn wrong_method(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} does not take {method}; adds (/api/tasks), plays and kills (/api/tasks/ID/play, /kill) are POST, everything else is GET",
            uri.path()
        ),
    )
}

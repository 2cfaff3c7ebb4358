//! The token rule of the HTTP side: when the coordinator has a token (`TATZELWURM_TOKEN`),
//! every route but the page shell (`/` and its script and style) needs it, as
//! `Authorization: Bearer TOKEN` or, for a browser's `EventSource` that cannot set a header,
//! `?token=TOKEN`. The page itself holds no data: it asks for the token and sends it.
//!
//! Without TLS in front, a token sent over HTTP travels in clear text; DESIGN.md says so and
//! the README shows a reverse proxy for HTTPS.

use super::api_error::ApiError;
use crate::Context;
use axum::extract::{Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tatzelwurm_proto::handshake::same_token;
use tatzelwurm_proto::TOKEN_ENV;

/// The one query parameter this layer reads; others belong to the handler.
#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// Lets the request through when no token is set or when it shows the right one; otherwise
/// answers 401 with a sentence that says how to send it.
pub async fn require_token(State(ctx): State<Context>, request: Request, next: Next) -> Response {
    let Some(expected) = ctx.config.token.as_deref() else {
        return next.run(request).await;
    };
    match given_token(&request) {
        Some(given) if same_token(&given, expected) => next.run(request).await,
        Some(_) => unauthorized(format!(
            "the token does not match this coordinator's; send the value of {TOKEN_ENV} the coordinator runs with"
        )),
        None => unauthorized(format!(
            "this coordinator requires a token; send `Authorization: Bearer TOKEN` (or `?token=TOKEN`) with the value of {TOKEN_ENV}"
        )),
    }
}

/// The token the request shows: the bearer header first, else the `token` query parameter.
fn given_token(request: &Request) -> Option<String> {
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(|token| token.trim().to_string());
    header.or_else(|| {
        Query::<TokenQuery>::try_from_uri(request.uri())
            .ok()
            .and_then(|Query(query)| query.token)
    })
}

fn unauthorized(message: String) -> Response {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bearer header wins over the query; the query is read when there is no header.
    #[test]
    fn token_from_header_or_query() {
        let request = Request::builder()
            .uri("/api/events?since=3&token=q")
            .header(header::AUTHORIZATION, "Bearer h")
            .body(axum::body::Body::empty())
            .unwrap();
        assert_eq!(given_token(&request).as_deref(), Some("h"));
        let request = Request::builder()
            .uri("/api/events?since=3&token=q")
            .body(axum::body::Body::empty())
            .unwrap();
        assert_eq!(given_token(&request).as_deref(), Some("q"));
        let request = Request::builder()
            .uri("/api/tasks")
            .body(axum::body::Body::empty())
            .unwrap();
        assert_eq!(given_token(&request), None);
    }
}

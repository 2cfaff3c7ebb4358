//! The dashboard's files, carried in the binary (`coordinator/assets/`): one HTML page, its
//! script and its style, with nothing fetched from elsewhere. They hold no data: the script
//! reads the JSON API and `/api/events` with the token the page asks for, so serving them
//! needs no token.

use axum::http::header;
use axum::response::IntoResponse;

const HTML: &str = include_str!("../../assets/dashboard.html");
const SCRIPT: &str = include_str!("../../assets/dashboard.js");
const STYLE: &str = include_str!("../../assets/dashboard.css");

/// `GET /`: the page.
pub async fn html() -> impl IntoResponse {
    asset("text/html; charset=utf-8", HTML)
}

/// `GET /dashboard.js`.
pub async fn script() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

/// `GET /dashboard.css`.
pub async fn style() -> impl IntoResponse {
    asset("text/css; charset=utf-8", STYLE)
}

/// A file with its type, and a policy that lets the page load only our own script and style
/// and talk only to this server, so that no task's text can run as script in it.
fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            ),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}

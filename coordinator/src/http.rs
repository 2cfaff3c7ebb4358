//! The HTTP side (`tatzelwurm --http ADDR`): `/metrics` for Prometheus, the dashboard at `/`,
//! the JSON API under `/api`, and the event log as server-sent events at `/api/events`.
//!
//! Served by axum on its own listener, beside the protocol's; every handler talks to the rest
//! of the coordinator only as an actioner does, through the task actor (`TasksHandle::command`,
//! `list_workers`) and the event feed (`event_feed::open`), so the HTTP side adds nothing to a
//! round and a slow browser slows nobody but itself.
//!
//! Layout:
//! - [`auth`]: the token rule: with `TATZELWURM_TOKEN` set, everything but the page shell needs
//!   `Authorization: Bearer TOKEN` (or `?token=` where a browser cannot set a header).
//! - [`api_error`]: errors as JSON `{"error": kind, "message": sentence}` with a fitting status.
//! - [`json`]: tasks, workers, queues and events as programs read them (the CLI's `--json` keys).
//! - [`tasks_api`] with [`add`]: list, show, add, play, kill; [`overview`]: workers and queues.
//! - [`metrics`]: `/metrics`, the recorded counters and histograms plus gauges read at scrape.
//! - [`sse`]: `/api/events`, the event log from `?since=SEQ` (or `Last-Event-ID`), then live.
//! - [`page`]: the dashboard's HTML, script and style, carried in the binary.

mod add;
mod api_error;
mod auth;
mod json;
mod metrics;
mod overview;
mod page;
mod sse;
mod tasks_api;

use crate::tasks::Origin;
use crate::watchers::ConnId;
use crate::Context;
use api_error::ApiError;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use std::future::Future;
use tatzelwurm_proto::actioner::{Command, Reply};
use tatzelwurm_proto::RequestId;
use tokio::net::TcpListener;
use tracing::{error, info};

/// The connection id the HTTP side's commands carry: far above any actioner's, and never
/// watching anything, so the task actor keeps nothing for it.
const HTTP_CONN: ConnId = ConnId(u64::MAX);

/// The largest body an add may send: room for many thousands of tasks, while what one request
/// makes the coordinator hold (the body, then its parsed form) stays bounded.
const MAX_BODY: usize = 16 << 20;

/// Serves HTTP on `listener` until the runtime ends; a server failure is logged (the protocol
/// side goes on without it).
pub fn serve(listener: TcpListener, ctx: Context) -> impl Future<Output = ()> + Send + 'static {
    let app = router(ctx);
    crate::telemetry::register();
    async move {
        if let Ok(addr) = listener.local_addr() {
            info!("serving HTTP (metrics, dashboard, API) on http://{addr}");
        }
        if let Err(err) = axum::serve(listener, app).await {
            error!("the HTTP server stopped: {err}; restart the coordinator to serve --http again");
        }
    }
}

/// Every route: the page shell open to all, the rest behind the token rule.
pub fn router(ctx: Context) -> Router {
    let guarded = Router::new()
        .route("/metrics", get(metrics::scrape))
        .route(
            "/api/tasks",
            get(tasks_api::list)
                .post(tasks_api::add)
                .layer(DefaultBodyLimit::max(MAX_BODY)),
        )
        .route("/api/tasks/{id}", get(tasks_api::show))
        .route("/api/tasks/{id}/play", post(tasks_api::play))
        .route("/api/tasks/{id}/kill", post(tasks_api::kill))
        .route("/api/workers", get(overview::workers))
        .route("/api/queues", get(overview::queues))
        .route("/api/events", get(sse::events))
        .route_layer(axum::middleware::from_fn_with_state(
            ctx.clone(),
            auth::require_token,
        ));
    Router::new()
        .route("/", get(page::html))
        .route("/dashboard.js", get(page::script))
        .route("/dashboard.css", get(page::style))
        .merge(guarded)
        .fallback(api_error::not_found)
        .method_not_allowed_fallback(api_error::wrong_method)
        .with_state(ctx)
}

/// Sends `command` to the task actor as an actioner would and returns its answer; a
/// `Reply::Error` becomes the `ApiError` of its kind.
async fn ask(ctx: &Context, command: Command) -> Result<Reply, ApiError> {
    // Nobody reads the pushes: HTTP commands never watch, so none are sent.
    let (pushes, _) = tokio::sync::mpsc::unbounded_channel();
    let origin = Origin {
        conn: HTTP_CONN,
        request: RequestId(0),
        pushes,
    };
    match ctx.tasks.command(command, origin).await {
        Reply::Error(failure) => Err(ApiError::from_failure(&failure)),
        reply => Ok(reply),
    }
}

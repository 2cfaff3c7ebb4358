//! `/api/workers` and `/api/queues`: what `worker list --json` and `queue list --json` print.

use super::api_error::ApiError;
use super::ask;
use super::json::{QueueJson, WorkerJson};
use crate::Context;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};
use tatzelwurm_proto::actioner::{Command, Reply};
use tatzelwurm_proto::task::Timestamp;

/// `GET /api/workers`: `{"workers": [...]}`, each with its load and its slots' usage.
pub async fn workers(State(ctx): State<Context>) -> Json<Value> {
    let workers = ctx.tasks.list_workers().await;
    let now = Timestamp::now();
    let workers: Vec<WorkerJson> = workers.iter().map(|w| WorkerJson::new(w, now)).collect();
    Json(json!({ "workers": workers }))
}

/// `GET /api/queues`: `{"queues": [...]}`, each with its tasks counted by state.
pub async fn queues(State(ctx): State<Context>) -> Result<Json<Value>, ApiError> {
    let Reply::Queues(queues) = ask(&ctx, Command::Queues).await? else {
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the coordinator answered a queue list with a reply of another kind; please report this",
        ));
    };
    let queues: Vec<QueueJson> = queues.iter().map(QueueJson::new).collect();
    Ok(Json(json!({ "queues": queues })))
}

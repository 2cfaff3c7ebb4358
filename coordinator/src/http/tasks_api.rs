//! `/api/tasks`: list (the filters and paging of `task list`), show (with output), add, play,
//! kill. Each is one actioner command through the task actor; the answer is JSON.

use super::add;
use super::api_error::ApiError;
use super::ask;
use super::json::TaskJson;
use crate::Context;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use tatzelwurm_proto::actioner::{Command, Reply, Selection};
use tatzelwurm_proto::task::TaskState;
use tatzelwurm_proto::TaskId;

/// The query of `GET /api/tasks`: `state=failed,killed`, `queue=Q`, `after=ID`, `limit=N`.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    state: Option<String>,
    queue: Option<String>,
    after: Option<u64>,
    limit: Option<u32>,
    /// Read by the token layer; allowed here so that it is not refused.
    #[serde(rename = "token")]
    _token: Option<String>,
}

/// `GET /api/tasks`: `{"tasks": [...], "next_after": ID|null}`, in id order without output;
/// `next_after` is the `after` of the next page, null on the last page.
pub async fn list(
    State(ctx): State<Context>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(|err| ApiError::bad_request(query_sentence(err)))?;
    let states = match query.state.as_deref() {
        None | Some("") => Vec::new(),
        Some(names) => names
            .split(',')
            .map(|name| name.trim().parse::<TaskState>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(ApiError::bad_request)?,
    };
    let limit = query.limit.unwrap_or(0);
    let command = Command::List {
        states,
        queue: query.queue.filter(|q| !q.is_empty()),
        after: query.after.map(TaskId),
        limit,
    };
    let Reply::Tasks { tasks, .. } = ask(&ctx, command).await? else {
        return Err(unexpected("a list"));
    };
    let asked = match limit as usize {
        0 => tatzelwurm_proto::limits::MAX_TASKS_PER_LIST,
        n => n.min(tatzelwurm_proto::limits::MAX_TASKS_PER_LIST),
    };
    let next_after = (tasks.len() >= asked)
        .then(|| tasks.last().map(|t| t.id.0))
        .flatten();
    let tasks: Vec<TaskJson> = tasks.iter().map(|t| TaskJson::new(t, false)).collect();
    Ok(Json(json!({"tasks": tasks, "next_after": next_after})))
}

/// `GET /api/tasks/{id}`: the task with its output; 404 unknown, 410 purged.
pub async fn show(
    State(ctx): State<Context>,
    id: Result<Path<u64>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = task_id(id)?;
    let Reply::Task(info) = ask(&ctx, Command::Show(id)).await? else {
        return Err(unexpected("a show"));
    };
    Ok(Json(json!(TaskJson::new(&info, true))))
}

/// `POST /api/tasks`: adds the body's tasks; 201 with `{"ids": [...]}` in the order sent, once
/// they are durable.
pub async fn add(
    State(ctx): State<Context>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body = body.map_err(|err| {
        if err.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!(
                    "the body is larger than {} MiB; send the tasks in several requests",
                    super::MAX_BODY >> 20
                ),
            )
        } else {
            ApiError::bad_request(format!("the body could not be read: {}", err.body_text()))
        }
    })?;
    let additions = add::parse(&body)?;
    let command = Command::Add {
        tasks: additions.tasks,
        play: additions.play,
        key: None,
        watch: false,
    };
    let Reply::Added(ids) = ask(&ctx, command).await? else {
        return Err(unexpected("an add"));
    };
    let ids: Vec<u64> = ids.iter().map(|id| id.0).collect();
    Ok((StatusCode::CREATED, Json(json!({"ids": ids}))))
}

/// `POST /api/tasks/{id}/play`: `{"changed": [id], "unchanged": [{"id", "state"}]}`.
pub async fn play(
    State(ctx): State<Context>,
    id: Result<Path<u64>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = task_id(id)?;
    changed(&ctx, Command::Play(Selection::Ids(vec![id]))).await
}

/// `POST /api/tasks/{id}/kill`: as play; a running task is killed by its worker after the
/// answer.
pub async fn kill(
    State(ctx): State<Context>,
    id: Result<Path<u64>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = task_id(id)?;
    changed(&ctx, Command::Kill(Selection::Ids(vec![id]))).await
}

/// What a play or a kill did.
async fn changed(ctx: &Context, command: Command) -> Result<Json<Value>, ApiError> {
    let Reply::Changed { changed, unchanged } = ask(ctx, command).await? else {
        return Err(unexpected("a change"));
    };
    let changed: Vec<u64> = changed.iter().map(|id| id.0).collect();
    let unchanged: Vec<Value> = unchanged
        .iter()
        .map(|(id, state)| json!({"id": id.0, "state": state.as_str()}))
        .collect();
    Ok(Json(json!({"changed": changed, "unchanged": unchanged})))
}

/// The `{id}` of the path, or a 400 that says what an id is.
fn task_id(id: Result<Path<u64>, PathRejection>) -> Result<TaskId, ApiError> {
    id.map(|Path(id)| TaskId(id))
        .map_err(|_| ApiError::bad_request("a task id is a whole number, such as /api/tasks/42"))
}

/// A query that could not be read, as one sentence.
fn query_sentence(err: QueryRejection) -> String {
    format!(
        "the query could not be read ({}); use state=S[,S...], queue=Q, after=ID, limit=N",
        err.body_text()
    )
}

/// An answer of another shape than the command's: a coordinator bug, said so.
fn unexpected(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        format!("the coordinator answered {what} with a reply of another kind; please report this"),
    )
}

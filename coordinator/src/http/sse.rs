//! `/api/events`: the event log as server-sent events, for the dashboard and for any program
//! (`curl -N`).
//!
//! Each event is one SSE message whose `id` is its `seq` and whose data is its JSON
//! (`json::event_json`). Where it starts: after the browser's `Last-Event-ID` header when an
//! `EventSource` reconnects (so a dropped connection misses nothing and repeats nothing), else
//! after `?since=SEQ`, else at the oldest kept event with `?from=start`, else now. `?follow=false`
//! ends the stream after the stored events; `?task=ID` and `?queue=Q` filter. A watcher that
//! reads too slowly, or asks for events older than the oldest kept, gets one `failure` event
//! (`{"error": "lagged"|"events_gone", "message": ...}`) and the stream ends.
//!
//! A following stream that starts now is pinned before the answer begins: the handler asks the
//! task actor where the log stands (`last`) and streams from after it (or from `?tail=N` events
//! before it), announced by a first `position` event (`{"after", "last"}`, its `id` the start).
//! So everything that happens once a client has read that event reaches it, and the
//! dashboard's first screen can show the last few events.
//!
//! The feed itself (replay from the store, then the live events with no gap) is
//! `event_feed::open`, the same one `actionwurm events` reads.

use super::api_error::ApiError;
use super::json::event_json;
use crate::events::Position;
use crate::Context;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::stream::{self, Stream, StreamExt};
use serde::Deserialize;
use std::convert::Infallible;
use tatzelwurm_proto::event::{EventFilter, EventsFrom};
use tatzelwurm_proto::TaskId;

/// The query of `/api/events`.
#[derive(Debug, Deserialize)]
pub struct EventsQuery {
    since: Option<u64>,
    from: Option<String>,
    follow: Option<bool>,
    task: Option<u64>,
    queue: Option<String>,
    tail: Option<u64>,
    /// Read by the token layer; allowed here so that it is not refused.
    #[serde(rename = "token")]
    _token: Option<String>,
}

/// `GET /api/events`.
pub async fn events(
    State(ctx): State<Context>,
    headers: HeaderMap,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let Query(query) = query.map_err(|err| {
        ApiError::bad_request(format!(
            "the query could not be read ({}); use since=SEQ, from=start, tail=N, follow=false, task=ID, queue=Q",
            err.body_text()
        ))
    })?;
    let last_event_id = headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok());
    let follow = query.follow.unwrap_or(true);
    let mut from = start(last_event_id, &query)?;
    let mut position = None;
    if from == EventsFrom::Now && follow {
        let now = where_the_log_stands(&ctx).await?;
        let after = tail_start(now, query.tail.unwrap_or(0));
        from = EventsFrom::After(after);
        position = Some(
            SseEvent::default()
                .event("position")
                .id(after.to_string())
                .data(serde_json::json!({"after": after, "last": now.last}).to_string()),
        );
    }
    let filter = EventFilter {
        task: query.task.map(TaskId),
        queue: query.queue.filter(|q| !q.is_empty()),
    };
    let receiver = crate::event_feed::open(&ctx, from, follow, filter);
    let batches = stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|batch| (batch, receiver))
    });
    let messages = batches.flat_map(|batch| {
        let messages: Vec<Result<SseEvent, Infallible>> = match batch {
            Ok(events) => events
                .iter()
                .map(|event| {
                    Ok(SseEvent::default()
                        .id(event.seq.to_string())
                        .data(event_json(event).to_string()))
                })
                .collect(),
            Err(failure) => vec![Ok(SseEvent::default()
                .event("failure")
                .data(ApiError::from_failure(&failure).body().to_string()))],
        };
        stream::iter(messages)
    });
    let first = stream::iter(position.map(Ok));
    Ok(Sse::new(first.chain(messages)).keep_alive(KeepAlive::default()))
}

/// Where the event log stands now, from the task actor; the subscription made to learn it is
/// dropped at once (the actor forgets it at its next round with events).
async fn where_the_log_stands(ctx: &Context) -> Result<Position, ApiError> {
    let (subscriber, _subscription) = crate::events::subscription();
    ctx.tasks.subscribe(subscriber).await.ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "stopping",
            "the coordinator is shutting down; connect again once it is back",
        )
    })
}

/// The `After` of a stream that starts `tail` events before now, never before the oldest
/// event kept.
fn tail_start(now: Position, tail: u64) -> u64 {
    let floor = now
        .oldest
        .map_or(now.last, |oldest| oldest.saturating_sub(1));
    now.last.saturating_sub(tail).max(floor)
}

/// Where the stream starts: the reconnecting browser's last id, else the query's.
fn start(last_event_id: Option<u64>, query: &EventsQuery) -> Result<EventsFrom, ApiError> {
    if let Some(seq) = last_event_id.or(query.since) {
        return Ok(EventsFrom::After(seq));
    }
    match query.from.as_deref() {
        None | Some("now") => Ok(EventsFrom::Now),
        Some("start") => Ok(EventsFrom::Start),
        Some(other) => Err(ApiError::bad_request(format!(
            "from={other} is not a start; use from=start, from=now or since=SEQ"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(since: Option<u64>, from: Option<&str>) -> EventsQuery {
        EventsQuery {
            since,
            from: from.map(String::from),
            follow: None,
            task: None,
            queue: None,
            tail: None,
            _token: None,
        }
    }

    /// A reconnecting browser's `Last-Event-ID` wins over `since`, `since` over `from`, and
    /// the default is now.
    #[test]
    fn where_a_stream_starts() {
        assert_eq!(
            start(Some(9), &query(Some(3), None)).unwrap(),
            EventsFrom::After(9)
        );
        assert_eq!(
            start(None, &query(Some(3), Some("start"))).unwrap(),
            EventsFrom::After(3)
        );
        assert_eq!(
            start(None, &query(None, Some("start"))).unwrap(),
            EventsFrom::Start
        );
        assert_eq!(start(None, &query(None, None)).unwrap(), EventsFrom::Now);
        assert!(start(None, &query(None, Some("yesterday")))
            .unwrap_err()
            .message
            .contains("from=start"));
    }

    /// A tail starts that many events before now, but never before the oldest kept one, and
    /// an empty log starts at its last.
    #[test]
    fn tails() {
        let now = |last, oldest| Position { last, oldest };
        assert_eq!(tail_start(now(100, Some(1)), 0), 100);
        assert_eq!(tail_start(now(100, Some(1)), 30), 70);
        assert_eq!(tail_start(now(100, Some(1)), 500), 0);
        assert_eq!(tail_start(now(100, Some(91)), 30), 90);
        assert_eq!(tail_start(now(7, None), 30), 7);
    }
}

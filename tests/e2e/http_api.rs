//! The HTTP API of `tatzelwurm --http ADDR`, driven as a program in another language would:
//! plain HTTP requests (ureq) with JSON bodies. Tasks are listed, shown, added, played and
//! killed; the token rule holds on every route but the page shell; errors are JSON with a kind,
//! a sentence and a fitting status; `/api/events` streams the event log as server-sent events.
//! Also the helpers `metrics.rs` uses: a cluster with `--http` and its HTTP address.

use crate::TASK_TIMEOUT;
use serde_json::{json, Value};
use std::time::Duration;
use tatzelwurm_e2e::{example, wait_for, Cluster, ClusterOptions, WorkerSpec};

const TOKEN: &str = "http-s3cret";

/// A cluster whose coordinator serves HTTP on an ephemeral port, and that port's base URL
/// (`http://127.0.0.1:PORT`), read from the coordinator's `http listening on ADDR` line.
pub fn http_cluster(options: ClusterOptions) -> (Cluster, String) {
    let cluster = Cluster::start_configured(options, &["--http", "127.0.0.1:0"]);
    let stdout = cluster.log_dir().join("coordinator.stdout.log");
    let addr = wait_for(
        "the coordinator's `http listening on ADDR` line",
        TASK_TIMEOUT,
        || {
            let text = std::fs::read_to_string(&stdout).ok()?;
            text.lines()
                .find_map(|line| line.strip_prefix("http listening on "))
                .map(|addr| addr.trim().to_string())
        },
    );
    (cluster, format!("http://{addr}"))
}

/// An HTTP client that hands back 4xx and 5xx answers as answers (their JSON is what the
/// tests read), with a bound on every request.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into()
}

/// One answer: its status and its body as JSON (Null when the body is not JSON).
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub text: String,
}

/// Reads an answer whole.
pub fn answer(response: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Answer {
    let mut response = response.expect("the HTTP request reaches the coordinator");
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .read_to_string()
        .expect("the answer's body can be read");
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Answer { status, body, text }
}

/// `GET base+path` with an optional bearer token.
pub fn get(base: &str, path: &str, token: Option<&str>) -> Answer {
    let mut request = agent().get(format!("{base}{path}"));
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    answer(request.call())
}

/// `POST base+path` with a JSON (or any text) body and an optional bearer token.
pub fn post(base: &str, path: &str, body: &str, token: Option<&str>) -> Answer {
    let mut request = agent()
        .post(format!("{base}{path}"))
        .header("Content-Type", "application/json");
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    answer(request.send(body))
}

/// Polls `GET /api/tasks/{id}` until the task is in `state`, and returns it.
fn wait_task_state(base: &str, id: u64, state: &str) -> Value {
    wait_for(
        &format!("task {id} to be {state} (HTTP)"),
        TASK_TIMEOUT,
        || {
            let task = get(base, &format!("/api/tasks/{id}"), None).body;
            (task["state"] == state).then_some(task)
        },
    )
}

/// Tasks added over HTTP (one and a list, played and created) run on a worker; list filters
/// and pages as the CLI does; show carries the result and output; play and kill move tasks
/// and name the ones they left; workers and queues are listed.
#[test]
fn tasks_are_listed_shown_added_played_and_killed() {
    let (cluster, base) = http_cluster(ClusterOptions::default());
    let _worker = cluster.start_worker(WorkerSpec::new(1).name("http-w"));

    let added = post(
        &base,
        "/api/tasks",
        &json!({"function": example("square"), "args": [7]}).to_string(),
        None,
    );
    assert_eq!(added.status, 201, "{}", added.text);
    let first = added.body["ids"][0].as_u64().expect("an id");
    let done = wait_task_state(&base, first, "completed");
    assert_eq!(done["result"], json!(49), "{done}");
    assert_eq!(done["worker"], "http-w", "{done}");
    assert!(
        done.get("stdout").is_some(),
        "show carries the output: {done}"
    );
    // The CLI sees the same task the same way.
    assert_eq!(cluster.show(first)["result"], json!(49));

    let created = post(
        &base,
        "/api/tasks",
        &json!([
            {"function": example("square"), "args": [2], "play": false},
            {"function": example("square"), "args": [3], "play": false, "queue": "default", "priority": 5}
        ])
        .to_string(),
        None,
    );
    assert_eq!(created.status, 201, "{}", created.text);
    let ids: Vec<u64> = created.body["ids"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|id| id.as_u64().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[1], ids[0] + 1, "ids in the order sent");
    assert_eq!(
        get(&base, &format!("/api/tasks/{}", ids[1]), None).body["priority"],
        5
    );

    let listed = get(&base, "/api/tasks?state=created", None);
    assert_eq!(listed.status, 200, "{}", listed.text);
    let listed_ids: Vec<u64> = listed.body["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_u64().unwrap())
        .collect();
    assert_eq!(listed_ids, ids, "{}", listed.text);
    assert!(
        listed.body["tasks"][0].get("stdout").is_none(),
        "lists leave the output out"
    );
    // Paging: one per page, each after the last id, the last page says so with null.
    let page = get(&base, "/api/tasks?limit=1", None).body;
    assert_eq!(page["tasks"][0]["id"], first);
    assert_eq!(page["next_after"], first);
    let page = get(&base, &format!("/api/tasks?limit=1&after={first}"), None).body;
    assert_eq!(page["tasks"][0]["id"], ids[0]);
    let last = get(&base, &format!("/api/tasks?after={}", ids[0]), None).body;
    assert_eq!(last["tasks"].as_array().unwrap().len(), 1, "{last}");
    assert_eq!(last["next_after"], Value::Null, "{last}");

    let played = post(&base, &format!("/api/tasks/{}/play", ids[0]), "", None);
    assert_eq!(played.status, 200, "{}", played.text);
    assert_eq!(played.body["changed"], json!([ids[0]]));
    assert_eq!(
        wait_task_state(&base, ids[0], "completed")["result"],
        json!(4)
    );
    let again = post(&base, &format!("/api/tasks/{}/play", ids[0]), "", None);
    assert_eq!(
        again.body["unchanged"],
        json!([{"id": ids[0], "state": "completed"}])
    );

    let killed = post(&base, &format!("/api/tasks/{}/kill", ids[1]), "", None);
    assert_eq!(killed.body["changed"], json!([ids[1]]), "{}", killed.text);
    wait_task_state(&base, ids[1], "killed");

    // A running task is killed by its worker.
    let sleeper = post(
        &base,
        "/api/tasks",
        &json!({"function": example("sleep"), "args": [60]}).to_string(),
        None,
    )
    .body["ids"][0]
        .as_u64()
        .unwrap();
    wait_task_state(&base, sleeper, "running");
    let killed = post(&base, &format!("/api/tasks/{sleeper}/kill"), "", None);
    assert_eq!(killed.body["changed"], json!([sleeper]), "{}", killed.text);
    wait_task_state(&base, sleeper, "killed");

    let workers = get(&base, "/api/workers", None).body;
    let worker = &workers["workers"][0];
    assert_eq!(worker["name"], "http-w", "{workers}");
    assert_eq!(worker["slots"], 1, "{workers}");
    assert!(worker["done"].as_u64().unwrap() >= 2, "{workers}");
    let queues = get(&base, "/api/queues", None).body;
    let default = &queues["queues"][0];
    assert_eq!(default["name"], "default", "{queues}");
    assert_eq!(default["counts"]["completed"], 2, "{queues}");
    assert_eq!(default["counts"]["killed"], 2, "{queues}");
}

/// With a token set, every route but the page shell answers 401 without it (or with another
/// one) in a JSON sentence, and serves with it as a bearer header or as `?token=`.
#[test]
fn the_token_guards_everything_but_the_page() {
    let (_cluster, base) = http_cluster(ClusterOptions {
        token: Some(TOKEN.into()),
        ..ClusterOptions::default()
    });
    for path in [
        "/api/tasks",
        "/api/workers",
        "/api/queues",
        "/metrics",
        "/api/tasks/1",
    ] {
        let refused = get(&base, path, None);
        assert_eq!(refused.status, 401, "{path}: {}", refused.text);
        assert_eq!(refused.body["error"], "unauthorized", "{path}");
        let message = refused.body["message"].as_str().unwrap();
        assert!(
            message.contains("requires a token") && message.contains("TATZELWURM_TOKEN"),
            "{message}"
        );
        let wrong = get(&base, path, Some("guess"));
        assert_eq!(wrong.status, 401, "{path}");
        assert!(wrong.body["message"]
            .as_str()
            .unwrap()
            .contains("does not match"));
    }
    let add = json!({"function": example("square"), "args": [1]}).to_string();
    assert_eq!(post(&base, "/api/tasks", &add, None).status, 401);
    assert_eq!(post(&base, "/api/tasks/1/kill", "", None).status, 401);

    assert_eq!(get(&base, "/api/tasks", Some(TOKEN)).status, 200);
    assert_eq!(get(&base, "/metrics", Some(TOKEN)).status, 200);
    let added = post(&base, "/api/tasks", &add, Some(TOKEN));
    assert_eq!(added.status, 201, "{}", added.text);
    let by_query = get(&base, &format!("/api/queues?token={TOKEN}"), None);
    assert_eq!(by_query.status, 200, "{}", by_query.text);

    // The page shell holds no data and asks for the token itself.
    for path in ["/", "/dashboard.js", "/dashboard.css"] {
        let page = get(&base, path, None);
        assert_eq!(page.status, 200, "{path}");
        assert!(!page.text.is_empty(), "{path}");
    }
}

/// Mistakes are answered in JSON `{"error", "message"}` with a fitting status: unknown task
/// 404, a path id that is not a number 400, a body that is not JSON or not a task 400, a
/// function name the coordinator refuses 400 with its sentence, an unknown state 400, an
/// unknown path 404, a GET where a POST belongs 405, a body past the size limit 413.
#[test]
fn errors_are_json_with_a_kind_and_a_sentence() {
    let (_cluster, base) = http_cluster(ClusterOptions::default());
    let check = |answer: Answer, status: u16, kind: &str, says: &str| {
        assert_eq!(answer.status, status, "{}", answer.text);
        assert_eq!(answer.body["error"], kind, "{}", answer.text);
        let message = answer.body["message"].as_str().expect("a message");
        assert!(message.contains(says), "`{message}` should say `{says}`");
    };
    check(
        get(&base, "/api/tasks/999", None),
        404,
        "unknown_task",
        "999",
    );
    check(
        get(&base, "/api/tasks/nine", None),
        400,
        "bad_request",
        "whole number",
    );
    check(
        post(&base, "/api/tasks", "{not json", None),
        400,
        "bad_request",
        "not JSON",
    );
    check(
        post(&base, "/api/tasks", r#"{"args": [1]}"#, None),
        400,
        "bad_request",
        "function",
    );
    check(
        post(
            &base,
            "/api/tasks",
            r#"{"function": "no colon here"}"#,
            None,
        ),
        400,
        "bad_request",
        "no colon here",
    );
    check(
        get(&base, "/api/tasks?state=sleeping", None),
        400,
        "bad_request",
        "unknown task state",
    );
    check(
        post(&base, "/api/tasks/5/play", "", None),
        404,
        "unknown_task",
        "5",
    );
    check(get(&base, "/nowhere", None), 404, "not_found", "/api/tasks");
    check(
        get(&base, "/api/tasks/1/kill", None),
        405,
        "method_not_allowed",
        "POST",
    );
    let huge = format!(
        r#"{{"function": "m:f", "args": ["{}"]}}"#,
        "x".repeat(17 << 20)
    );
    check(
        post(&base, "/api/tasks", &huge, None),
        413,
        "too_large",
        "several requests",
    );
}

/// `/api/events` streams the event log as server-sent events: with `from=start&follow=false`
/// every event so far, ids increasing, a task's states ending `completed`; with
/// `since=SEQ` only the later ones; `task=ID` filters.
#[test]
fn events_stream_as_server_sent_events() {
    let (cluster, base) = http_cluster(ClusterOptions::default());
    let _worker = cluster.start_worker(WorkerSpec::new(1));
    let id = cluster.add(&example("square"), "[5]");
    cluster.wait_completed(id, TASK_TIMEOUT);
    let other = cluster.add(&example("square"), "[6]");
    cluster.wait_completed(other, TASK_TIMEOUT);

    let all = events(&base, "from=start&follow=false");
    let seqs: Vec<u64> = all.iter().map(|(seq, _)| *seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert!(
        all.iter().all(|(seq, event)| event["seq"] == *seq),
        "the SSE id is the event's seq"
    );
    let states = |events: &[(u64, Value)], task: u64| -> Vec<String> {
        events
            .iter()
            .filter(|(_, e)| e["kind"] == "task" && e["task"] == task)
            .map(|(_, e)| e["state"].as_str().unwrap().to_string())
            .collect()
    };
    // A round writes a task once, in its state at the round's end: a task added and handed
    // out in one round is first seen `running`.
    let first = states(&all, id);
    assert!(first.contains(&"running".to_string()), "{first:?}");
    assert_eq!(
        first.last().map(String::as_str),
        Some("completed"),
        "{first:?}"
    );
    assert!(
        all.iter()
            .any(|(_, e)| e["kind"] == "worker" && e["change"] == "joined"),
        "the worker's joining is an event"
    );

    let cut = all
        .iter()
        .find(|(_, e)| e["task"] == other)
        .map(|(seq, _)| *seq)
        .unwrap();
    let later = events(&base, &format!("since={}&follow=false", cut - 1));
    assert_eq!(later.first().map(|(seq, _)| *seq), Some(cut));
    assert!(states(&later, id).is_empty(), "nothing before `since`");

    let filtered = events(&base, &format!("from=start&follow=false&task={id}"));
    assert!(!filtered.is_empty());
    assert!(
        filtered.iter().all(|(_, e)| e["task"] == id),
        "{filtered:?}"
    );
}

/// The events of one finite `/api/events` answer, as (SSE id, data as JSON).
fn events(base: &str, query: &str) -> Vec<(u64, Value)> {
    let answer = get(base, &format!("/api/events?{query}"), None);
    assert_eq!(answer.status, 200, "{}", answer.text);
    let mut out = Vec::new();
    let mut id = None;
    for line in answer.text.lines() {
        if let Some(value) = line.strip_prefix("id:") {
            id = value.trim().parse().ok();
        } else if let Some(data) = line.strip_prefix("data:") {
            let event: Value = serde_json::from_str(data.trim()).expect("each data line is JSON");
            out.push((id.take().expect("an id before each data line"), event));
        } else if line.starts_with("event:") {
            panic!("a failure event in a finite replay: {}", answer.text);
        }
    }
    out
}

/// A following `/api/events` stream from now opens with a `position` event at the log's
/// last seq (`tail=N` starts N events earlier), then delivers a task added after it, live, up
/// to its `completed` event; a reconnect with `Last-Event-ID` (what a browser's `EventSource`
/// sends) resumes right after that event.
#[test]
fn events_follow_live_and_resume_after_the_last_id() {
    use std::io::{BufRead, BufReader};
    let (cluster, base) = http_cluster(ClusterOptions::default());
    let _worker = cluster.start_worker(WorkerSpec::new(1));
    let warm_up = cluster.add(&example("square"), "[1]");
    cluster.wait_completed(warm_up, TASK_TIMEOUT);
    let last = events(&base, "from=start&follow=false")
        .last()
        .map(|(seq, _)| *seq)
        .expect("events so far");

    let response = agent()
        .get(format!("{base}/api/events"))
        .call()
        .expect("the stream opens");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let mut lines = BufReader::new(response.into_body().into_reader()).lines();
    let mut next_line = || {
        lines
            .next()
            .expect("the stream goes on")
            .expect("the stream can be read")
    };
    // The position comes first; once it is read, nothing that happens can be missed.
    let mut head: Vec<String> = Vec::new();
    while !head.iter().any(|line| line.starts_with("data:")) {
        head.push(next_line());
    }
    assert!(head.contains(&"event: position".to_string()), "{head:?}");
    assert!(head.contains(&format!("id: {last}")), "{head:?}");
    let id = cluster.add(&example("square"), "[9]");
    let mut seen = Vec::new();
    let completed_seq = loop {
        let line = next_line();
        let Some(data) = line.strip_prefix("data:") else {
            continue;
        };
        let event: Value = serde_json::from_str(data.trim()).unwrap();
        assert!(event["seq"].as_u64().unwrap() > last, "{event}");
        seen.push(event.clone());
        if event["task"] == id && event["state"] == "completed" {
            break event["seq"].as_u64().unwrap();
        }
    };
    assert!(
        seen.iter()
            .any(|e| e["task"] == id && e["state"] == "running"),
        "{seen:?}"
    );

    let next = cluster.add(&example("square"), "[10]");
    cluster.wait_completed(next, TASK_TIMEOUT);
    let resumed = answer(
        agent()
            .get(format!("{base}/api/events?follow=false"))
            .header("Last-Event-ID", completed_seq.to_string())
            .call(),
    );
    let first_id = resumed
        .text
        .lines()
        .find_map(|line| line.strip_prefix("id:"))
        .map(|seq| seq.trim().parse::<u64>().unwrap());
    assert_eq!(first_id, Some(completed_seq + 1), "{}", resumed.text);
    assert!(
        resumed.text.contains(&format!("\"task\":{next}")),
        "{}",
        resumed.text
    );

    // With a tail, the stream starts that many events back: the position, then those events.
    let newest = events(&base, "from=start&follow=false").last().unwrap().0;
    let response = agent()
        .get(format!("{base}/api/events?tail=2"))
        .call()
        .expect("the stream opens");
    let ids: Vec<u64> = BufReader::new(response.into_body().into_reader())
        .lines()
        .map_while(Result::ok)
        .filter_map(|line| line.strip_prefix("id: ").map(|id| id.parse().unwrap()))
        .take(3)
        .collect();
    assert_eq!(ids, vec![newest - 2, newest - 1, newest]);
}

//! Measures pipelined submission against a running coordinator: N tasks submitted through a
//! `Pipeline` (created, not played, so no worker is needed), then a flush; prints the rate and
//! how many adds the pipeline sent.
//!
//! `cargo run --release -p tatzelwurm-client --example submit_rate -- ADDR [N] [WINDOW] [FUNC]`
//!
//! With FUNC (such as `/abs/examples/tasks.py:square`) the tasks are played and it waits for
//! every task's pushed end (`Event::Finished`), which needs a worker.

use std::time::Instant;
use tatzelwurm_client::{Client, ConnectOptions, Event, TaskSpec};

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args: Vec<String> = std::env::args().collect();
    let address = args.get(1).map(String::as_str);
    let n: u32 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let window: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let play_function = args.get(4).cloned();
    let mut opts = ConnectOptions::from_env(address, "submit_rate");
    opts.reconnect = true;
    let client = Client::connect(opts)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (pipeline, mut events) = client.pipeline(window).expect("a pipeline");
    let started = Instant::now();
    for i in 0..n {
        let function = play_function
            .clone()
            .unwrap_or_else(|| "examples.tasks:square".into());
        let spec = TaskSpec::call(function, format!("[{i}]"), "{}");
        pipeline
            .submit(spec, play_function.is_some())
            .await
            .expect("submit");
    }
    let queued = started.elapsed();
    pipeline.flush().await.expect("flush");
    let flushed = started.elapsed();
    let (mut adds, mut added, mut failed, mut finished) = (0, 0, 0, 0);
    let mut distinct = std::collections::HashSet::new();
    let limit = std::time::Duration::from_secs(if play_function.is_some() { 120 } else { 0 });
    loop {
        let event = match events.try_recv() {
            Ok(event) => event,
            Err(_) if play_function.is_some() && finished < added => {
                match tokio::time::timeout(limit, events.recv()).await {
                    Ok(Some(event)) => event,
                    _ => break,
                }
            }
            Err(_) => break,
        };
        match event {
            Event::Finished(infos) => {
                finished += infos.len();
                distinct.extend(infos.iter().map(|info| info.id));
            }
            Event::Added { ids, .. } => {
                adds += 1;
                added += ids.len();
            }
            Event::AddFailed { count, .. } => {
                adds += 1;
                failed += count;
            }
            _ => {}
        }
    }
    println!(
        "{n} submits (window {window}): queued in {:.1} ms, durable after {:.1} ms = {:.0} tasks/s; {adds} adds, {added} added, {failed} failed",
        queued.as_secs_f64() * 1e3,
        flushed.as_secs_f64() * 1e3,
        f64::from(n) / flushed.as_secs_f64()
    );
    if play_function.is_some() {
        println!(
            "{finished} ends pushed ({} tasks), the last after {:.1} ms",
            distinct.len(),
            started.elapsed().as_secs_f64() * 1e3
        );
    }
}

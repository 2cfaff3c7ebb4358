//! Purges of finished tasks by age: `task purge --finished-before AGE [--state S]` and, with
//! `tatzelwurm --keep-finished DURATION`, the same purge on a timer.
//!
//! The scan runs off the task actor, on the store's reader: a page of `PAGE` finished ids at a
//! time (`StoreReader::finished_ids`), each record read for its queue and state (its queue's
//! finished count drops), then sent to the actor as one internal purge (`purge_found`), which
//! removes them in its round's batch with a `Purged` event and answers once that is durable.
//! So a purge of millions never holds a round for long: the actor spends one round per page,
//! and the rounds between serve everyone else. Every purge holds the task actor's purge lock
//! (`TasksHandle::purge_lock`) while it runs, so that a page is still stored when the actor
//! takes it and no task is counted off twice.

use crate::Context;
use std::future::Future;
use std::time::Duration;
use tatzelwurm_proto::actioner::{Failure, FailureKind, Reply};
use tatzelwurm_proto::task::{TaskState, Timestamp};
use tatzelwurm_proto::TaskId;
use tracing::{info, warn};

/// Finished tasks one page of a purge removes at most (one round of the task actor).
const PAGE: usize = 10_000;

/// The longest time between two purges of `--keep-finished`.
const LONGEST_INTERVAL: Duration = Duration::from_secs(60);

/// Purges every finished task that finished before `before`, in one of `states` (every
/// finished state when empty), page by page; answers how many went (`Reply::Purged`), or the
/// failure that stopped it (the pages before it stay purged).
pub async fn purge_finished_before(
    ctx: &Context,
    before: Timestamp,
    states: Vec<TaskState>,
) -> Reply {
    if let Some(state) = states.iter().find(|s| !s.is_finished()) {
        return Reply::Error(Failure::bad_request(format!(
            "only finished tasks can be purged, and {state} is not a finished state; pick among completed, failed and killed"
        )));
    }
    let lock = ctx.tasks.purge_lock();
    let _purging = lock.lock().await;
    let mut after: Option<TaskId> = None;
    let mut purged = 0;
    loop {
        let reader = ctx.reader.clone();
        let states = states.clone();
        let page = tokio::task::spawn_blocking(move || -> Result<_, String> {
            let ids = reader
                .finished_ids(before, &states, after, PAGE)
                .map_err(|err| err.to_string())?;
            let full = ids.len() >= PAGE;
            let last = ids.last().copied();
            let mut found = Vec::with_capacity(ids.len());
            for id in ids {
                // Gone since the scan: another purge took it (it held the lock before us).
                if let Some(record) = reader.get(id).map_err(|err| err.to_string())? {
                    found.push((id, record.spec.queue, record.state));
                }
            }
            Ok((found, full, last))
        })
        .await;
        let (found, full, last) = match page {
            Ok(Ok(page)) => page,
            Ok(Err(cause)) => return Reply::Error(unreadable(&cause, purged)),
            Err(err) => return Reply::Error(unreadable(&err.to_string(), purged)),
        };
        if !found.is_empty() {
            match ctx.tasks.purge_found(found).await {
                Some(count) => purged += count,
                None => {
                    return Reply::Error(Failure::new(
                        FailureKind::Stopping,
                        format!("the coordinator is stopping; {purged} tasks were purged before it did, run the purge again once it is back"),
                    ))
                }
            }
        }
        if !full {
            break;
        }
        after = last;
    }
    Reply::Purged {
        purged,
        unchanged: Vec::new(),
    }
}

/// `--keep-finished keep`: purges the tasks that finished more than `keep` ago at once and then
/// every `keep / 10` (at least a second, at most a minute). Logs each purge that removed
/// something, and each failure (the next turn tries again). Never ends on its own.
pub fn keep_finished(ctx: Context, keep: Duration) -> impl Future<Output = ()> + Send + 'static {
    let every = (keep / 10).clamp(Duration::from_secs(1), LONGEST_INTERVAL);
    async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let now = Timestamp::now();
            let before = Timestamp(now.0.saturating_sub(keep.as_millis() as u64));
            match purge_finished_before(&ctx, before, Vec::new()).await {
                Reply::Purged { purged: 0, .. } => {}
                Reply::Purged { purged, .. } => info!(
                    purged,
                    "purged the tasks that finished more than {} ago (--keep-finished)",
                    humantime(keep)
                ),
                Reply::Error(failure) if failure.kind == FailureKind::Stopping => return,
                Reply::Error(failure) => warn!("--keep-finished: {failure}"),
                _ => {}
            }
        }
    }
}

/// The failure of a purge whose scan could not read the store.
fn unreadable(cause: &str, purged: u64) -> Failure {
    Failure::new(
        FailureKind::Internal,
        format!("cannot read the finished tasks from the database ({cause}); {purged} were purged before that, the database may be damaged"),
    )
}

/// `keep` for a log line: whole seconds, minutes, hours or days.
fn humantime(keep: Duration) -> String {
    let secs = keep.as_secs();
    match secs {
        s if s >= 86_400 && s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s >= 3_600 && s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s >= 60 && s % 60 == 0 => format!("{}m", s / 60),
        s if s > 0 => format!("{s}s"),
        _ => format!("{}ms", keep.as_millis()),
    }
}

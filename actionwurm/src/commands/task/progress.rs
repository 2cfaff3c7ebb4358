//! The progress bar of `task wait` on a terminal: how many of the waited tasks finished, out of
//! how many, at what rate, and the time left (indicatif, on stderr).
//!
//! It counts the finishing events of the event log (`Client::events` from now, following), so
//! it costs the coordinator one subscriber and the wait itself is untouched: the summary on
//! stdout and the exit status are the same with or without it. When stderr is not a terminal
//! (piped, in CI) there is no bar at all. Tasks that finished before the bar subscribed are not
//! counted until the end, when the bar is filled and cleared.

use crate::cli::SelectArgs;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashSet;
use std::io::IsTerminal;
use std::time::Duration;
use tatzelwurm_client::{Client, EventFilter, EventsFrom, QueueInfo};
use tatzelwurm_proto::event::{Event, EventKind};
use tatzelwurm_proto::task::TaskState;
use tatzelwurm_proto::TaskId;
use tokio::task::JoinHandle;

/// How the bar reads: `[#####     ] 120/500 done  85.3/s  5s left`.
const TEMPLATE: &str = "[{bar:40}] {pos}/{len} done  {per_sec:1}  {eta} left";

/// A bar on the terminal and the task that moves it.
pub struct Progress {
    bar: ProgressBar,
    counter: JoinHandle<()>,
}

impl Progress {
    /// Starts a bar for a wait of `select` when stderr is a terminal; `None` otherwise.
    pub fn start(client: &Client, select: &SelectArgs) -> Option<Progress> {
        if !std::io::stderr().is_terminal() {
            return None;
        }
        let tally = Tally::new(select);
        let bar = ProgressBar::with_draw_target(Some(tally.total()), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(TEMPLATE)
                .expect("the template is valid")
                .progress_chars("#>-"),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        let counter = tokio::spawn(count(client.clone(), tally, bar.clone()));
        Some(Progress { bar, counter })
    }

    /// Stops counting and clears the bar, so that only the wait's summary stays.
    pub fn finish(self) {
        self.counter.abort();
        self.bar.finish_and_clear();
    }
}

/// Follows the event log from now and moves the bar as waited tasks finish; for `-a`, first
/// learns how many tasks there are to wait for. Ends quietly if the log cannot be read: the
/// bar is a help, never a reason for the wait to fail.
async fn count(client: Client, mut tally: Tally, bar: ProgressBar) {
    let mut stream = client.events(EventsFrom::Now, true, tally.filter());
    if tally.ids.is_none() {
        if let Ok(queues) = client.queues().await {
            bar.set_length(waited_for(&queues));
        }
    }
    while let Some(Ok(batch)) = stream.next().await {
        bar.inc(tally.finished(&batch));
    }
}

/// Which finishing events count, as a plain struct.
pub struct Tally {
    /// The waited ids, each counted once; `None` for `-a`, where every task that finishes
    /// counts.
    ids: Option<HashSet<TaskId>>,
}

impl Tally {
    /// The tally of a wait of `select`.
    pub fn new(select: &SelectArgs) -> Tally {
        Tally {
            ids: (!select.all).then(|| select.ids.iter().copied().map(TaskId).collect()),
        }
    }

    /// How many tasks the bar counts up to (for `-a`, 0 until the queues tell).
    pub fn total(&self) -> u64 {
        self.ids.as_ref().map_or(0, |ids| ids.len() as u64)
    }

    /// The coordinator's filter: one task's events when one task is waited for, else all.
    pub fn filter(&self) -> EventFilter {
        let task = match &self.ids {
            Some(ids) if ids.len() == 1 => ids.iter().next().copied(),
            _ => None,
        };
        EventFilter { task, queue: None }
    }

    /// How many waited tasks `batch` says finished (each id counted once).
    pub fn finished(&mut self, batch: &[Event]) -> u64 {
        let mut count = 0;
        for event in batch {
            let EventKind::Task { id, state, .. } = &event.kind else {
                continue;
            };
            if !state.is_finished() {
                continue;
            }
            let counts = match &mut self.ids {
                Some(ids) => ids.remove(id),
                None => true,
            };
            count += u64::from(counts);
        }
        count
    }
}

/// The tasks a `wait -a` waits for, by the queues' counts: every task that is neither
/// finished nor created nor paused.
pub fn waited_for(queues: &[QueueInfo]) -> u64 {
    queues
        .iter()
        .flat_map(|queue| queue.counts.iter())
        .filter(|(state, _)| {
            !state.is_finished() && !matches!(state, TaskState::Created | TaskState::Paused)
        })
        .map(|(_, count)| *count)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tatzelwurm_client::fake_coordinator::queue;
    use tatzelwurm_proto::task::Timestamp;
    use tatzelwurm_proto::Attempt;

    fn event(id: u64, state: TaskState) -> Event {
        Event {
            seq: id,
            at: Timestamp(0),
            kind: EventKind::Task {
                id: TaskId(id),
                queue: "default".into(),
                state,
                attempt: Attempt(1),
                worker: None,
                error: None,
            },
        }
    }

    /// Waiting for ids counts each of them once, when it finishes, and nothing else.
    #[test]
    fn ids_count_once() {
        let select = SelectArgs {
            ids: vec![1, 2, 3],
            all: false,
        };
        let mut tally = Tally::new(&select);
        assert_eq!(tally.total(), 3);
        assert_eq!(tally.filter(), EventFilter::default());
        let batch = [
            event(1, TaskState::Running),
            event(1, TaskState::Completed),
            event(9, TaskState::Completed),
            event(2, TaskState::Failed),
        ];
        assert_eq!(tally.finished(&batch), 2);
        assert_eq!(tally.finished(&[event(1, TaskState::Completed)]), 0);
        assert_eq!(tally.finished(&[event(3, TaskState::Killed)]), 1);
    }

    /// One id is filtered by the coordinator; `-a` counts every finishing task and its total
    /// comes from the queues.
    #[test]
    fn one_id_and_all() {
        let one = Tally::new(&SelectArgs {
            ids: vec![7],
            all: false,
        });
        assert_eq!(one.filter().task, Some(TaskId(7)));
        let mut all = Tally::new(&SelectArgs {
            ids: Vec::new(),
            all: true,
        });
        assert_eq!(all.total(), 0);
        let batch = [event(1, TaskState::Completed), event(2, TaskState::Waiting)];
        assert_eq!(all.finished(&batch), 1);
        // The fake queue has 2 ready and 1 running (waited for) and 5 completed (not).
        assert_eq!(waited_for(&[queue("a"), queue("b")]), 6);
    }
}

//! The outbox: reports the coordinator has not yet acknowledged, and how they are cut into frames.
//!
//! Owned by `session`, which adds every report `slots` produces, sends it, and drops it when the
//! coordinator answers `Recorded`. A report survives a lost connection here and is sent again
//! after reconnecting (the coordinator ignores a stale one and still acknowledges it), so a
//! result is never lost between a slot and the store. Plain synchronous code, tested alone.

use rustc_hash::FxHashMap;
use tatzelwurm_proto::task::Outcome;
use tatzelwurm_proto::worker::Report;
use tatzelwurm_proto::{Attempt, TaskId};

/// Most bytes of task data (results, output, errors) put into one `Reports` frame. A report
/// holds at most about 16.6 MiB (slot.py caps results and output), so a frame stays well under
/// the 64 MiB frame limit while a burst of small reports still shares one frame.
pub const FRAME_BUDGET: usize = 16 * 1024 * 1024;

/// Reports not yet acknowledged, by attempt.
///
/// A hash map, not an ordered one: every report passes through here once (kept, then
/// acknowledged), and a B-tree moved the ~140-byte reports around its nodes on each insert and
/// removal (~7 % of workwurm's CPU in issue 10's W1); the order is needed only to send them again
/// after reconnecting, and is made then. Hashed with FxHash, not std's SipHash: the keys are
/// ids and attempt numbers the coordinator gave, which this worker trusts with far more, and
/// SipHash's two hashes per report (keep, acknowledge) were a third of the outbox's time.
#[derive(Debug, Default)]
pub struct Outbox {
    unacked: FxHashMap<(TaskId, Attempt), Report>,
}

impl Outbox {
    /// Keeps a report until it is acknowledged and returns a copy to send now.
    pub fn keep(&mut self, report: Report) -> Report {
        self.unacked
            .insert((report.task, report.attempt), report.clone());
        report
    }

    /// Forgets the reports the coordinator has durably recorded.
    pub fn acknowledge(&mut self, recorded: &[(TaskId, Attempt)]) {
        for key in recorded {
            self.unacked.remove(key);
        }
    }

    /// Copies of every unacknowledged report, in task order, to send again after reconnecting.
    pub fn unacknowledged(&self) -> Vec<Report> {
        let mut reports: Vec<Report> = self.unacked.values().cloned().collect();
        reports.sort_unstable_by_key(|report| (report.task, report.attempt));
        reports
    }

    /// How many reports wait for an acknowledgement.
    pub fn len(&self) -> usize {
        self.unacked.len()
    }

    /// Whether every report was acknowledged.
    pub fn is_empty(&self) -> bool {
        self.unacked.is_empty()
    }
}

/// Cuts reports into frames of at most `FRAME_BUDGET` bytes of task data each (a single larger
/// report gets a frame of its own), keeping their order.
pub fn into_frames(reports: Vec<Report>) -> Vec<Vec<Report>> {
    tatzelwurm_proto::batch::batches(
        reports,
        tatzelwurm_proto::limits::MAX_REPORTS_PER_FRAME,
        FRAME_BUDGET,
        weight,
    )
}

/// About how many bytes a report takes on the wire.
fn weight(report: &Report) -> usize {
    let data = match &report.outcome {
        Outcome::Completed { result } => result.len(),
        Outcome::Failed { error } => error.kind.len() + error.message.len() + error.traceback.len(),
        Outcome::Killed => 0,
    };
    64 + data + report.output.stdout.len() + report.output.stderr.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tatzelwurm_proto::task::TaskOutput;

    fn report(task: u64, result_len: usize) -> Report {
        Report {
            task: TaskId(task),
            attempt: Attempt(1),
            outcome: Outcome::Completed {
                result: "1".repeat(result_len),
            },
            output: TaskOutput::default(),
        }
    }

    /// A report stays until acknowledged, only the acknowledged attempt is dropped, and what
    /// is left is sent again in task order.
    #[test]
    fn keeps_until_acknowledged() {
        let mut outbox = Outbox::default();
        for task in [5, 1, 2, 4, 3] {
            outbox.keep(report(task, 1));
        }
        outbox.acknowledge(&[(TaskId(1), Attempt(1)), (TaskId(2), Attempt(9))]);
        outbox.acknowledge(&[(TaskId(4), Attempt(1))]);
        let left: Vec<TaskId> = outbox.unacknowledged().iter().map(|r| r.task).collect();
        // Sent again in task order, whatever order they were kept in.
        assert_eq!(left, [TaskId(2), TaskId(3), TaskId(5)]);
        assert_eq!(outbox.len(), 3);
    }

    /// Many small reports share one frame; big ones are spread so no frame exceeds the budget.
    #[test]
    fn frames_respect_the_budget() {
        let small: Vec<Report> = (0..1000).map(|i| report(i, 10)).collect();
        assert_eq!(into_frames(small).len(), 1);
        let big: Vec<Report> = (0..5).map(|i| report(i, FRAME_BUDGET / 2)).collect();
        let frames = into_frames(big);
        assert_eq!(
            frames.iter().map(Vec::len).collect::<Vec<_>>(),
            [1, 1, 1, 1, 1]
        );
        let huge = vec![report(1, FRAME_BUDGET * 2), report(2, 1)];
        assert_eq!(into_frames(huge).len(), 2);
    }
}

//! Cutting lists of tasks into frames that fit: `List` pages, `Finished` pushes.
//!
//! A frame carries at most `MAX_FRAME_LEN` (64 MiB), and a task's result alone may be 16 MiB, so
//! a count of tasks says nothing about a frame's size. `pages` cuts by count and by an estimate
//! of the encoded size (the strings' lengths plus a fixed amount per task), keeping each page
//! well under the frame limit. `fits` checks one reply that cannot be cut (a `Waited`).

use tatzelwurm_proto::actioner::{Failure, FailureKind, Reply, TaskEnd};
use tatzelwurm_proto::task::TaskInfo;
use tatzelwurm_proto::MAX_FRAME_LEN;

/// The estimated size a page may reach: a quarter of a frame, so that the estimate may be off
/// by a lot before a page does not fit.
pub const PAGE_BYTES: usize = MAX_FRAME_LEN / 4;

/// Bytes counted per task beyond its strings: ids, states, counters, times, length prefixes.
const FIXED_PER_TASK: usize = 128;

/// An estimate, from above, of the bytes `info` takes encoded.
pub fn approx_size(info: &TaskInfo) -> usize {
    let spec = &info.spec;
    let strings = spec.function.len()
        + spec.args.len()
        + spec.kwargs.len()
        + info.result.as_ref().map_or(0, String::len)
        + info.worker.as_ref().map_or(0, String::len)
        + info
            .error
            .as_ref()
            .map_or(0, |e| e.kind.len() + e.message.len() + e.traceback.len())
        + info
            .output
            .as_ref()
            .map_or(0, |o| o.stdout.len() + o.stderr.len());
    strings + FIXED_PER_TASK
}

/// Cuts `tasks` into pages of at most `max_count` tasks and about `max_bytes` each (a single
/// task larger than that is a page of its own); order is kept and no page is empty. The same
/// cut as every sender's batches (`proto::batch`), weighed by `approx_size`.
pub fn pages(tasks: Vec<TaskInfo>, max_count: usize, max_bytes: usize) -> Vec<Vec<TaskInfo>> {
    tatzelwurm_proto::batch::batches(tasks, max_count, max_bytes, approx_size)
}

/// Cuts `ends` (a `Finished` push) into pages of about `PAGE_BYTES`, in order, none empty.
pub fn end_pages(ends: Vec<TaskEnd>) -> Vec<Vec<TaskEnd>> {
    tatzelwurm_proto::batch::batches(ends, usize::MAX, PAGE_BYTES, end_size)
}

/// An upper bound of `end`'s encoded size: its strings plus a fixed allowance.
fn end_size(end: &TaskEnd) -> usize {
    let error = end
        .error
        .as_ref()
        .map_or(0, |e| e.kind.len() + e.message.len() + e.traceback.len());
    end.result.as_ref().map_or(0, String::len) + error + FIXED_PER_TASK
}

/// `reply`, or a `TooLarge` failure in its place when it would not fit in one frame.
pub fn fits(reply: Reply) -> Reply {
    let estimate: usize = match &reply {
        Reply::Finished(ends) => ends.iter().map(end_size).sum(),
        Reply::Waited(summary) => summary.unsuccessful.iter().map(approx_size).sum(),
        Reply::Task(task) => approx_size(task),
        _ => 0,
    };
    if estimate < PAGE_BYTES {
        return reply;
    }
    match tatzelwurm_proto::codec::encode(&reply) {
        // Room for the request id and the frame's prefix.
        Ok(body) if body.len() + 64 <= MAX_FRAME_LEN => reply,
        _ => Reply::Error(Failure::new(
            FailureKind::TooLarge,
            format!(
                "the answer would be larger than the {} MiB a frame carries; ask about fewer tasks at once",
                MAX_FRAME_LEN >> 20
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tatzelwurm_proto::task::{TaskSpec, TaskState, Timestamp};
    use tatzelwurm_proto::{Attempt, TaskId};

    fn info(id: u64, result_len: usize) -> TaskInfo {
        TaskInfo {
            id: TaskId(id),
            state: TaskState::Completed,
            spec: TaskSpec::call("m:f", "[]", "{}"),
            result: Some("x".repeat(result_len)),
            error: None,
            worker: None,
            attempts: Attempt(1),
            failures: 0,
            crashes: 0,
            retry_at: None,
            created_at: Timestamp(0),
            started_at: None,
            finished_at: None,
            output: None,
        }
    }

    /// Pages are cut by count and by size, keep the order, and a huge task gets a page alone.
    #[test]
    fn pages_are_cut_by_count_and_size() {
        let tasks: Vec<TaskInfo> = (1..=7).map(|id| info(id, 10)).collect();
        let by_count = pages(tasks, 3, usize::MAX);
        let sizes: Vec<usize> = by_count.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![3, 3, 1]);
        assert_eq!(by_count[2][0].id, TaskId(7));

        let tasks = vec![info(1, 100), info(2, 5_000), info(3, 100), info(4, 100)];
        let by_size = pages(tasks, 100, 1_000);
        let ids: Vec<Vec<u64>> = by_size
            .iter()
            .map(|page| page.iter().map(|t| t.id.0).collect())
            .collect();
        assert_eq!(ids, vec![vec![1], vec![2], vec![3, 4]]);
        assert!(pages(Vec::new(), 3, 10).is_empty());
    }

    /// The estimate is never below the encoded size.
    #[test]
    fn the_estimate_is_from_above() {
        for len in [0, 1, 1_000, 100_000] {
            let task = info(u64::MAX, len);
            let encoded = tatzelwurm_proto::codec::encode(&task).unwrap().len();
            assert!(approx_size(&task) >= encoded, "{len}");
        }
    }

    /// A push of many ends is cut into pages of about `PAGE_BYTES`, in order.
    #[test]
    fn ends_are_paged_by_size() {
        let ends: Vec<TaskEnd> = (1..=4)
            .map(|id| TaskEnd::from(&info(id, PAGE_BYTES / 3)))
            .collect();
        let pages = end_pages(ends);
        let ids: Vec<Vec<u64>> = pages
            .iter()
            .map(|page| page.iter().map(|end| end.id.0).collect())
            .collect();
        assert_eq!(ids, vec![vec![1, 2], vec![3, 4]]);
    }

    /// A reply that would not fit a frame becomes a `TooLarge` failure; one that fits is kept.
    #[test]
    fn an_oversized_reply_is_too_large() {
        let end = |id, len| TaskEnd::from(&info(id, len));
        let small = Reply::Finished(vec![end(1, 10)]);
        assert_eq!(fits(small.clone()), small);
        let huge = Reply::Finished((1..=5).map(|id| end(id, 16 << 20)).collect());
        match fits(huge) {
            Reply::Error(failure) => assert_eq!(failure.kind, FailureKind::TooLarge),
            other => panic!("{other:?}"),
        }
    }
}

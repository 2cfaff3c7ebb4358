//! `Options`: what the tasks of one client view (or one `@task` with options) carry besides
//! their function and arguments — the policy, whether they start played, and where, when and
//! after what they run — made once per view so that a submit passes one object, not eleven
//! values. Also the checks of a queue name and a priority that the Python layer runs when a view
//! is made, with the coordinator's own sentences.

use crate::convert::error;
use pyo3::prelude::*;
use tatzelwurm_proto::queue::check_name;
use tatzelwurm_proto::task::{
    self, TaskPolicy, TaskSpec, Timestamp, When, DEFAULT_QUEUE, MAX_AFTER,
};
use tatzelwurm_proto::TaskId;

/// The options of a client view's tasks; values left `None` keep the default.
#[pyclass(frozen, module = "tatzelwurm._native")]
pub struct Options {
    /// The policy each task carries.
    pub policy: TaskPolicy,
    /// Whether tasks start played (true) or `created`.
    pub play: bool,
    /// The queue they wait in.
    pub queue: String,
    /// Their priority, within `PRIORITIES`.
    pub priority: i8,
    /// Not before: a delay from when the coordinator adds them, or a moment.
    pub run_at: Option<When>,
    /// Tasks that must complete first.
    pub after: Vec<TaskId>,
}

#[pymethods]
impl Options {
    #[new]
    #[pyo3(signature = (retries=None, backoff_ms=None, timeout_ms=None, at_most_once=None, crash_limit=None, play=true, queue=None, priority=None, delay_ms=None, at_ms=None, after=Vec::new()))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        retries: Option<u32>,
        backoff_ms: Option<u64>,
        timeout_ms: Option<u64>,
        at_most_once: Option<bool>,
        crash_limit: Option<u32>,
        play: bool,
        queue: Option<String>,
        priority: Option<i64>,
        delay_ms: Option<u64>,
        at_ms: Option<u64>,
        after: Vec<u64>,
    ) -> PyResult<Options> {
        let default = TaskPolicy::default();
        let queue = queue.unwrap_or_else(|| DEFAULT_QUEUE.to_string());
        check_name(&queue).map_err(|m| error(py, "BadRequest", m))?;
        let priority =
            task::check_priority(priority.unwrap_or(0)).map_err(|m| error(py, "BadRequest", m))?;
        if after.len() > MAX_AFTER {
            return Err(error(
                py,
                "BadRequest",
                format!(
                    "a task may run after at most {MAX_AFTER} tasks, not {}; chain them through fewer tasks",
                    after.len()
                ),
            ));
        }
        let run_at = match (delay_ms, at_ms) {
            (Some(_), Some(_)) => return Err(error(
                py,
                "BadRequest",
                "give delay (seconds from now) or at (a moment), not both; the task waits for one"
                    .into(),
            )),
            (Some(ms), None) => Some(When::Delay(ms)),
            (None, Some(ms)) => Some(When::At(Timestamp(ms))),
            (None, None) => None,
        };
        Ok(Options {
            policy: TaskPolicy {
                at_most_once: at_most_once.unwrap_or(default.at_most_once),
                retries: retries.unwrap_or(default.retries),
                backoff_ms: backoff_ms.unwrap_or(default.backoff_ms),
                timeout_ms: timeout_ms.or(default.timeout_ms),
                crash_limit: crash_limit.unwrap_or(default.crash_limit),
            },
            play,
            queue,
            priority,
            run_at,
            after: after.into_iter().map(TaskId).collect(),
        })
    }

    /// Whether its tasks run after others: such a submit is sent in an add of its own, so that
    /// an unknown id fails only it (see `Core::add`).
    #[getter]
    fn waits_for_tasks(&self) -> bool {
        !self.after.is_empty()
    }

    fn __repr__(&self) -> String {
        format!(
            "Options({:?}, play={}, queue={:?}, priority={}, run_at={:?}, after={:?})",
            self.policy, self.play, self.queue, self.priority, self.run_at, self.after
        )
    }
}

impl Options {
    /// A task of `function` with these JSON arguments and these options.
    pub fn spec(&self, function: String, args: String, kwargs: String) -> TaskSpec {
        TaskSpec {
            function,
            args,
            kwargs,
            policy: self.policy,
            queue: self.queue.clone(),
            priority: self.priority,
            run_at: self.run_at,
            after: self.after.clone(),
        }
    }
}

/// Raises `InvalidRequest` with the coordinator's sentence unless `name` is a queue name.
#[pyfunction]
pub fn check_queue_name(py: Python<'_>, name: &str) -> PyResult<()> {
    check_name(name).map_err(|m| error(py, "BadRequest", m))
}

/// Raises `InvalidRequest` with proto's one sentence (the coordinator's and the command
/// line's) unless `priority` is in range.
#[pyfunction]
pub fn check_priority(py: Python<'_>, priority: i64) -> PyResult<()> {
    task::check_priority(priority)
        .map(|_| ())
        .map_err(|m| error(py, "BadRequest", m))
}

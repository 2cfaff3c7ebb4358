//! `Options`: a task policy and whether tasks start played, made once per client view (or per
//! `@task` with options) so that a submit passes one object instead of six values.

use pyo3::prelude::*;
use tatzelwurm_proto::task::TaskPolicy;

/// The policy of the tasks a client view submits; values left `None` keep the default.
#[pyclass(frozen, module = "tatzelwurm._native")]
pub struct Options {
    /// The policy each task carries.
    pub policy: TaskPolicy,
    /// Whether tasks start `ready` (true) or `created`.
    pub play: bool,
}

#[pymethods]
impl Options {
    #[new]
    #[pyo3(signature = (retries=None, backoff_ms=None, timeout_ms=None, at_most_once=None, crash_limit=None, play=true))]
    fn new(
        retries: Option<u32>,
        backoff_ms: Option<u64>,
        timeout_ms: Option<u64>,
        at_most_once: Option<bool>,
        crash_limit: Option<u32>,
        play: bool,
    ) -> Options {
        let default = TaskPolicy::default();
        Options {
            policy: TaskPolicy {
                at_most_once: at_most_once.unwrap_or(default.at_most_once),
                retries: retries.unwrap_or(default.retries),
                backoff_ms: backoff_ms.unwrap_or(default.backoff_ms),
                timeout_ms: timeout_ms.or(default.timeout_ms),
                crash_limit: crash_limit.unwrap_or(default.crash_limit),
            },
            play,
        }
    }

    fn __repr__(&self) -> String {
        format!("Options({:?}, play={})", self.policy, self.play)
    }
}

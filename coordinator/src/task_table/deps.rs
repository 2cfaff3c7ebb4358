//! `Deps`: which live tasks wait for which others (`task add --after`), as counts.
//!
//! A task that runs after others is registered with each dependency that has not completed
//! yet; its count of such dependencies is kept. A completion decrements the count of each of
//! its dependents and releases those that reach zero (the table moves a `blocked` one on to
//! `scheduled` or `ready`; a `created` or `paused` one simply has nothing left to wait for
//! when it is played). A failure or kill hands back every dependent still waiting on it: the
//! table fails each with `DependencyFailed`, and each such failure is in turn handed back to
//! its own dependents, so a failure cascades down a chain. Dependencies must exist when a task
//! is added, and ids only grow, so a task can only wait for older ones: no cycle can form.
//!
//! Only unfinished dependencies are indexed (a completed one counts nothing, a failed one
//! fails the dependent at once), so the index holds what is live, and is rebuilt at start
//! from the live records, reading finished dependencies' states from the store
//! (`TaskTable::recover`). Maps hashed with Fx: the keys are ids the coordinator chose.

use rustc_hash::FxHashMap;
use tatzelwurm_proto::TaskId;

/// The dependency index. See the module comment.
#[derive(Debug, Default)]
pub struct Deps {
    /// Dependents by dependency, for dependencies not finished yet. A dependent that left
    /// (killed, failed) may stay listed; `remaining` no longer has it, so it is skipped.
    dependents: FxHashMap<TaskId, Vec<TaskId>>,
    /// How many unfinished dependencies each waiting dependent still has (never 0).
    remaining: FxHashMap<TaskId, u32>,
}

impl Deps {
    /// Whether no task waits for another: then a finishing task needs no lookup here.
    pub fn is_empty(&self) -> bool {
        self.dependents.is_empty()
    }

    /// `dependent` waits for `dependency`, which has not finished (each pair once).
    pub fn wait_for(&mut self, dependent: TaskId, dependency: TaskId) {
        self.dependents
            .entry(dependency)
            .or_default()
            .push(dependent);
        *self.remaining.entry(dependent).or_default() += 1;
    }

    /// How many unfinished dependencies `dependent` still waits for.
    pub fn remaining(&self, dependent: TaskId) -> u32 {
        self.remaining.get(&dependent).copied().unwrap_or(0)
    }

    /// The tasks registered as waiting for `dependency` (some may have left since).
    pub fn dependents_of(&self, dependency: TaskId) -> &[TaskId] {
        self.dependents.get(&dependency).map_or(&[], Vec::as_slice)
    }

    /// Whether some task waits for `dependency`.
    pub fn has_dependents(&self, dependency: TaskId) -> bool {
        self.dependents.contains_key(&dependency)
    }

    /// `dependency` completed: returns its dependents that have nothing left to wait for, in
    /// id order.
    pub fn completed(&mut self, dependency: TaskId) -> Vec<TaskId> {
        let Some(dependents) = self.dependents.remove(&dependency) else {
            return Vec::new();
        };
        let mut released = Vec::new();
        for dependent in dependents {
            if let Some(count) = self.remaining.get_mut(&dependent) {
                *count -= 1;
                if *count == 0 {
                    self.remaining.remove(&dependent);
                    released.push(dependent);
                }
            }
        }
        released.sort_unstable();
        released
    }

    /// `dependency` failed or was killed: returns its dependents still waiting (each to be
    /// failed by the caller, which hands each failure back here), in id order, and forgets
    /// them.
    pub fn failed(&mut self, dependency: TaskId) -> Vec<TaskId> {
        let Some(dependents) = self.dependents.remove(&dependency) else {
            return Vec::new();
        };
        let mut doomed: Vec<TaskId> = dependents
            .into_iter()
            .filter(|dependent| self.remaining.remove(dependent).is_some())
            .collect();
        doomed.sort_unstable();
        doomed
    }

    /// `dependent` left without its dependencies deciding it (killed): it waits no more.
    pub fn forget(&mut self, dependent: TaskId) {
        self.remaining.remove(&dependent);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[u64]) -> Vec<TaskId> {
        list.iter().map(|n| TaskId(*n)).collect()
    }

    /// A dependent is released only when its last dependency completes.
    #[test]
    fn the_last_completion_releases() {
        let mut deps = Deps::default();
        assert!(deps.is_empty());
        deps.wait_for(TaskId(3), TaskId(1));
        deps.wait_for(TaskId(3), TaskId(2));
        deps.wait_for(TaskId(4), TaskId(1));
        assert_eq!(deps.remaining(TaskId(3)), 2);
        assert!(deps.has_dependents(TaskId(1)));
        assert_eq!(deps.completed(TaskId(1)), ids(&[4]));
        assert_eq!(deps.remaining(TaskId(3)), 1);
        assert_eq!(deps.completed(TaskId(9)), Vec::new());
        assert_eq!(deps.completed(TaskId(2)), ids(&[3]));
        assert_eq!(deps.remaining(TaskId(3)), 0);
        assert!(deps.is_empty());
        assert!(deps.remaining.is_empty());
    }

    /// A failure hands back the dependents still waiting; one that was forgotten (killed) or
    /// already failed by another dependency is not handed back twice.
    #[test]
    fn a_failure_hands_back_the_waiting_dependents_once() {
        let mut deps = Deps::default();
        deps.wait_for(TaskId(3), TaskId(1));
        deps.wait_for(TaskId(3), TaskId(2));
        deps.wait_for(TaskId(4), TaskId(1));
        deps.wait_for(TaskId(5), TaskId(1));
        deps.forget(TaskId(5));
        assert_eq!(deps.failed(TaskId(1)), ids(&[3, 4]));
        assert_eq!(deps.failed(TaskId(2)), Vec::new(), "3 was failed already");
        assert!(deps.is_empty());
        assert!(deps.remaining.is_empty());
    }
}

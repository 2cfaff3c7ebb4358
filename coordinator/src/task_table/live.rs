//! The compact in-memory form of the tasks that are not finished (created, blocked,
//! scheduled, paused, ready, running, waiting), which are all the task table holds: finished
//! tasks live in the store.
//!
//! A `TaskRecord` in memory costs some 400 bytes and five heap blocks; with a million tasks
//! stored that alone outgrew the coordinator's budget (300 MB whatever the tasks' states). A
//! `LiveTask` keeps what the state machine reads and what a record written back needs, in 96
//! bytes and usually no heap block: the function name, policy and queue, shared by most
//! tasks, are interned together as a `kind` in [`Names`]; so are worker names; args and kwargs
//! are one string, inline when short; the priority is a byte; optional times (start time,
//! retry, start of the latest attempt) take 8 bytes each; what few tasks have (the tasks they
//! run after, a failed attempt's error) shares one optional box; a live task has no result.
//! `LiveTasks` holds them in a slab indexed by id, so that a removal leaves a slot for the next
//! task rather than a hole in a map of large values.
//!
//! Interned names are never forgotten: a coordinator that sees many distinct function names
//! (or queue names) keeps each once (a few bytes each), where it used to keep one copy per
//! task.

use crate::queues::QueueId;
use crate::record::{TaskRecord, TaskRecordRef, TaskSpecRef};
use std::collections::HashMap;
use tatzelwurm_proto::task::{TaskError, TaskPolicy, TaskSpec, TaskState, Timestamp, When};
use tatzelwurm_proto::{Attempt, TaskId};

/// A function name, its policy and its queue: the part of a spec that tasks share.
type Kind = (Box<str>, TaskPolicy, QueueId);

/// Interned kinds (function, policy and queue), queue names and worker names, by small number.
#[derive(Debug, Default)]
pub struct Names {
    kinds: Vec<Kind>,
    /// Kind numbers by function name, then policy and queue (a function has one or a few).
    kind_ids: HashMap<Box<str>, Vec<(PolicyKey, QueueId, u32)>>,
    /// The kind interned last: tasks come in runs of one kind (an add, a start's records).
    last_kind: Option<u32>,
    workers: Vec<Box<str>>,
    worker_ids: HashMap<Box<str>, u32>,
    /// Queue names by `QueueId`: a queue, once named, keeps its number while the coordinator
    /// runs (the ready lanes, the queue table and the scheduler index by it).
    queues: Vec<Box<str>>,
    queue_ids: HashMap<Box<str>, QueueId>,
}

/// `TaskPolicy` as a hashable key (the wire type does not derive `Hash`).
type PolicyKey = (bool, u32, u64, Option<u64>, u32);

fn policy_key(policy: &TaskPolicy) -> PolicyKey {
    (
        policy.at_most_once,
        policy.retries,
        policy.backoff_ms,
        policy.timeout_ms,
        policy.crash_limit,
    )
}

impl Names {
    fn kind(&mut self, function: &str, policy: TaskPolicy, queue: &str) -> u32 {
        if let Some(last) = self.last_kind {
            let (name, known, q) = &self.kinds[last as usize];
            if **name == *function && *known == policy && *self.queues[q.index()] == *queue {
                return last;
            }
        }
        let queue = self.queue(queue);
        let key = policy_key(&policy);
        let id = match self.kind_ids.get(function).and_then(|kinds| {
            kinds
                .iter()
                .find(|(k, q, _)| *k == key && *q == queue)
                .map(|(_, _, id)| *id)
        }) {
            Some(id) => id,
            None => {
                let id = self.kinds.len() as u32;
                self.kinds.push((function.into(), policy, queue));
                self.kind_ids
                    .entry(function.into())
                    .or_default()
                    .push((key, queue, id));
                id
            }
        };
        self.last_kind = Some(id);
        id
    }

    /// The number of the worker `name` plus one (0 stands for no worker).
    fn worker(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.worker_ids.get(name) {
            return id + 1;
        }
        let id = self.workers.len() as u32;
        self.workers.push(name.into());
        self.worker_ids.insert(name.into(), id);
        id + 1
    }

    /// The number of queue `name`, interning it if new.
    pub fn queue(&mut self, name: &str) -> QueueId {
        if let Some(&id) = self.queue_ids.get(name) {
            return id;
        }
        let id = QueueId(self.queues.len() as u32);
        self.queues.push(name.into());
        self.queue_ids.insert(name.into(), id);
        id
    }

    /// The number of queue `name`, if anything has named it.
    pub fn find_queue(&self, name: &str) -> Option<QueueId> {
        self.queue_ids.get(name).copied()
    }

    /// The name of queue `id`.
    pub fn queue_name(&self, id: QueueId) -> &str {
        &self.queues[id.index()]
    }

    /// How many queues have been named (ids are below this).
    pub fn queue_count(&self) -> usize {
        self.queues.len()
    }
}

/// What few live tasks have: the tasks they run after, and the error of a failed attempt while
/// they wait for a retry. Boxed together so that a task with neither pays 8 bytes.
#[derive(Debug, Clone, Default, PartialEq)]
struct Rare {
    after: Box<[TaskId]>,
    error: Option<TaskError>,
}

/// Two strings joined, kept inline when short: most tasks' args and kwargs (`[42]{}`) fit in
/// the 22 bytes, and a heap block for them would cost 32 bytes more per task.
#[derive(Debug, Clone)]
enum Text {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<str>),
}

/// Bytes a `Text` keeps inline (the enum is then as large as a `String`).
const INLINE: usize = 22;

impl Text {
    fn new(first: &str, second: &str) -> Text {
        let len = first.len() + second.len();
        if len <= INLINE {
            let mut bytes = [0u8; INLINE];
            bytes[..first.len()].copy_from_slice(first.as_bytes());
            bytes[first.len()..len].copy_from_slice(second.as_bytes());
            return Text::Inline {
                len: len as u8,
                bytes,
            };
        }
        let mut joined = String::with_capacity(len);
        joined.push_str(first);
        joined.push_str(second);
        Text::Heap(joined.into_boxed_str())
    }

    fn as_str(&self) -> &str {
        match self {
            // Built from two `&str`s, so valid UTF-8 (checked again here, cheaply).
            Text::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..*len as usize]).unwrap_or("")
            }
            Text::Heap(text) => text,
        }
    }
}

/// An optional time in 8 bytes instead of 16: 0 stands for none (no task time is the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptTime(u64);

impl OptTime {
    /// No time.
    pub const NONE: OptTime = OptTime(0);

    /// The time, if there is one.
    pub fn get(self) -> Option<Timestamp> {
        (self.0 != 0).then_some(Timestamp(self.0))
    }
}

impl From<Option<Timestamp>> for OptTime {
    fn from(time: Option<Timestamp>) -> OptTime {
        OptTime(time.map_or(0, |t| t.0))
    }
}

/// A task that is not finished, as the table keeps it. See the module comment.
#[derive(Debug, Clone)]
pub struct LiveTask {
    /// The interned function, policy and queue.
    kind: u32,
    /// The interned worker of the latest attempt plus one; 0 for none.
    worker: u32,
    /// Where the args end in `call`.
    args_len: u32,
    /// The args JSON followed by the kwargs JSON.
    call: Text,
    /// Where it is in its life; never a finished state.
    pub state: TaskState,
    /// Higher runs first (`PRIORITIES`).
    pub priority: i8,
    /// Its `attempt` is ahead of its stored record: a restart skipped the number an unwritten
    /// assignment may have used (`TaskTable::recover`). Its next assignment is written before
    /// its `Run` leaves, so that a second crash cannot skip to the same number again.
    pub unrecorded: bool,
    /// How many times it was handed to a worker; the current attempt's fencing token.
    pub attempt: Attempt,
    /// Attempts that failed; checked against retries.
    pub failures: u32,
    /// Attempts lost with their worker; checked against the crash limit.
    pub crashes: u32,
    /// Not before this (its spec's `run_at`, always an `At` once added).
    pub run_at: OptTime,
    /// When a `waiting` task becomes `ready` again.
    pub retry_at: OptTime,
    /// When it was added.
    pub created_at: Timestamp,
    /// When the latest attempt was handed out.
    pub started_at: OptTime,
    /// What few tasks have: `after` and a failed attempt's error (see `Rare`).
    rare: Option<Box<Rare>>,
}

impl LiveTask {
    /// A task as it is right after `add` (its `run_at` already an `At`, see `TaskTable::add`).
    pub fn new(spec: TaskSpec, state: TaskState, now: Timestamp, names: &mut Names) -> LiveTask {
        let kind = names.kind(&spec.function, spec.policy, &spec.queue);
        let mut task = LiveTask::of_kind(kind, &spec.args, &spec.kwargs, state, now);
        task.priority = spec.priority;
        task.run_at = run_at(spec.run_at);
        task.set_after(spec.after);
        task
    }

    fn of_kind(kind: u32, args: &str, kwargs: &str, state: TaskState, now: Timestamp) -> LiveTask {
        let call = Text::new(args, kwargs);
        LiveTask {
            kind,
            worker: 0,
            args_len: args.len() as u32,
            call,
            state,
            priority: 0,
            unrecorded: false,
            attempt: Attempt(0),
            failures: 0,
            crashes: 0,
            run_at: OptTime::NONE,
            retry_at: OptTime::NONE,
            created_at: now,
            started_at: OptTime::NONE,
            rare: None,
        }
    }

    /// A stored record of a task that is not finished (its result, if any, is dropped); the
    /// start reads records in place instead (`from_ref`).
    #[cfg(test)]
    pub fn from_record(record: TaskRecord, names: &mut Names) -> LiveTask {
        let mut task = LiveTask::new(record.spec, record.state, record.created_at, names);
        task.attempt = record.attempts;
        task.failures = record.failures;
        task.crashes = record.crashes;
        task.retry_at = record.retry_at.into();
        task.started_at = record.started_at.into();
        task.set_error(record.error);
        task.worker = record.worker.map_or(0, |name| names.worker(&name));
        task
    }

    /// A stored record of a task that is not finished, read in place (a start's).
    pub fn from_ref(record: &TaskRecordRef<'_>, names: &mut Names) -> LiveTask {
        let spec = &record.spec;
        let kind = names.kind(spec.function, spec.policy, spec.queue);
        let mut task = LiveTask::of_kind(
            kind,
            spec.args,
            spec.kwargs,
            record.state,
            record.created_at,
        );
        task.priority = spec.priority;
        task.run_at = run_at(spec.run_at);
        task.set_after(spec.after.clone());
        task.attempt = record.attempts;
        task.failures = record.failures;
        task.crashes = record.crashes;
        task.retry_at = record.retry_at.into();
        task.started_at = record.started_at.into();
        task.set_error(record.error.clone());
        task.worker = record.worker.map_or(0, |name| names.worker(name));
        task
    }

    /// The function it runs.
    pub fn function<'a>(&self, names: &'a Names) -> &'a str {
        &names.kinds[self.kind as usize].0
    }

    /// How it is retried, fenced and timed.
    pub fn policy(&self, names: &Names) -> TaskPolicy {
        names.kinds[self.kind as usize].1
    }

    /// The queue it waits in.
    pub fn queue(&self, names: &Names) -> QueueId {
        names.kinds[self.kind as usize].2
    }

    /// The tasks it runs after (empty for most).
    pub fn after(&self) -> &[TaskId] {
        self.rare.as_ref().map_or(&[], |rare| &rare.after)
    }

    /// Why the latest attempt failed, while the task waits for its retry.
    pub fn error(&self) -> Option<&TaskError> {
        self.rare.as_ref().and_then(|rare| rare.error.as_ref())
    }

    /// Records (or clears) the latest attempt's error.
    pub fn set_error(&mut self, error: Option<TaskError>) {
        if error.is_some() || self.rare.is_some() {
            self.rare_mut(|rare| rare.error = error);
        }
    }

    fn set_after(&mut self, after: Vec<TaskId>) {
        if !after.is_empty() || self.rare.is_some() {
            self.rare_mut(|rare| rare.after = after.into_boxed_slice());
        }
    }

    /// Changes the rare part, boxing it only while it holds something.
    fn rare_mut(&mut self, change: impl FnOnce(&mut Rare)) {
        let mut rare = self.rare.take().unwrap_or_default();
        change(&mut rare);
        if rare.after.is_empty() && rare.error.is_none() {
            self.rare = None;
        } else {
            self.rare = Some(rare);
        }
    }

    /// What it runs, whole.
    pub fn spec(&self, names: &Names) -> TaskSpec {
        self.spec_ref(names).into_spec()
    }

    /// The worker of the latest attempt.
    pub fn worker<'a>(&self, names: &'a Names) -> Option<&'a str> {
        match self.worker {
            0 => None,
            n => Some(&names.workers[n as usize - 1]),
        }
    }

    /// Names (or forgets, with `None`) the worker of the latest attempt.
    pub fn set_worker(&mut self, name: Option<&str>, names: &mut Names) {
        self.worker = name.map_or(0, |name| names.worker(name));
    }

    /// The record, owned: what a finished task's record is made from, and what an actioner
    /// is told about it (a record is the wire's `TaskInfo`, without output); a round writes a
    /// live one from `record_ref` instead, into the same bytes. The attempt number a restart
    /// skipped (`unrecorded`) is only reserved, not handed out, so the record keeps the count
    /// before it: a restart reserves it again, and a task that ends without another attempt
    /// shows how many it had.
    pub fn record(&self, id: TaskId, names: &Names) -> TaskRecord {
        self.record_ref(id, names).into_record()
    }

    /// `record` with the spec's function, args, kwargs and queue left empty (no heap block):
    /// what a task that finishes keeps beside its compact form until its round writes it
    /// (`Done`), for its ending to be set on.
    pub fn ending_record(&self, id: TaskId, names: &Names) -> TaskRecord {
        let mut record = self.record_ref(id, names);
        record.spec = TaskSpecRef {
            function: "",
            args: "",
            kwargs: "",
            queue: "",
            ..record.spec
        };
        record.into_record()
    }

    /// `record`, borrowing its strings from this task (args and kwargs) and from `names`
    /// (function, queue, worker): what a round writes to the store, encoded straight from this
    /// (`take_changes`), into the same bytes as `record`'s. Only `after` and a failed
    /// attempt's error, which few live tasks have, are copied.
    pub fn record_ref<'a>(&'a self, id: TaskId, names: &'a Names) -> TaskRecordRef<'a> {
        TaskRecordRef {
            id,
            state: self.state,
            spec: self.spec_ref(names),
            result: None,
            error: self.error().cloned(),
            worker: self.worker(names),
            attempts: self.recorded_attempts(),
            failures: self.failures,
            crashes: self.crashes,
            retry_at: self.retry_at.get(),
            created_at: self.created_at,
            started_at: self.started_at.get(),
            finished_at: None,
            output: None,
        }
    }

    /// `spec`, borrowing its strings from this task (args, kwargs) and from `names` (function,
    /// queue); only `after` is copied.
    pub fn spec_ref<'a>(&'a self, names: &'a Names) -> TaskSpecRef<'a> {
        let (args, kwargs) = self.call.as_str().split_at(self.args_len as usize);
        let (function, policy, queue) = &names.kinds[self.kind as usize];
        TaskSpecRef {
            function,
            args,
            kwargs,
            policy: *policy,
            queue: names.queue_name(*queue),
            priority: self.priority,
            run_at: self.run_at.get().map(When::At),
            after: self.after().to_vec(),
        }
    }

    /// The attempts its record shows: see `record` for why an `unrecorded` one shows one less.
    fn recorded_attempts(&self) -> Attempt {
        if self.unrecorded {
            Attempt(self.attempt.0.saturating_sub(1))
        } else {
            self.attempt
        }
    }
}

/// A stored `run_at` as kept live: an `At` (what `add` stores); a `Delay`, which only a client
/// sends and `add` replaces, is not expected here and counts from the epoch.
fn run_at(when: Option<When>) -> OptTime {
    match when {
        None => OptTime::NONE,
        Some(When::At(at)) => Some(Timestamp(at.0.max(1))).into(),
        Some(When::Delay(ms)) => Some(Timestamp(ms.max(1))).into(),
    }
}

/// The live tasks by id: a slab of `LiveTask`s and an index into it sorted by id.
///
/// Ids are handed out in increasing order, so a new task's entry goes at the end of the index;
/// a removed task's entry is marked gone and the index is compacted once half of it is gone.
/// That costs 16 bytes per entry and a binary search per lookup, where a `BTreeMap` costs
/// about twice the memory (half-full nodes, as sequential inserts leave them) and as much time.
#[derive(Debug, Default)]
pub struct LiveTasks {
    /// (id, slot) in id order; `GONE` as the slot of a removed task.
    index: Vec<(TaskId, u32)>,
    /// How many entries of `index` are `GONE`.
    gone: usize,
    slots: Vec<Option<LiveTask>>,
    free: Vec<u32>,
}

/// The slot of a removed task's index entry.
const GONE: u32 = u32::MAX;

impl LiveTasks {
    /// Adds (or replaces) task `id`.
    pub fn insert(&mut self, id: TaskId, task: LiveTask) {
        if let Some(slot) = self.slot(id) {
            self.slots[slot as usize] = Some(task);
            return;
        }
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some(task);
                slot
            }
            None => {
                self.slots.push(Some(task));
                (self.slots.len() - 1) as u32
            }
        };
        match self.index.last() {
            Some((last, _)) if *last >= id => {
                // Not the newest id (never so in the coordinator): keep the order.
                let at = self.index.partition_point(|(other, _)| *other < id);
                if self.index[at].0 == id {
                    self.index[at].1 = slot;
                    self.gone -= 1;
                } else {
                    self.index.insert(at, (id, slot));
                }
            }
            _ => self.index.push((id, slot)),
        }
    }

    /// Removes task `id` (it finished), giving back its slot.
    pub fn remove(&mut self, id: TaskId) -> Option<LiveTask> {
        let at = self.position(id)?;
        let slot = std::mem::replace(&mut self.index[at].1, GONE);
        self.gone += 1;
        self.free.push(slot);
        let task = self.slots[slot as usize].take();
        if self.gone > 1024 && self.gone * 2 > self.index.len() {
            self.index.retain(|(_, slot)| *slot != GONE);
            self.gone = 0;
            if self.index.len() * 4 < self.slots.len() {
                self.shrink();
            }
        }
        task
    }

    /// Moves the live tasks to a slab of their own size and gives the rest back: after a big
    /// run the slab of a million slots would otherwise stay, free but resident.
    fn shrink(&mut self) {
        let mut slots = Vec::with_capacity(self.index.len());
        for (_, slot) in self.index.iter_mut() {
            slots.push(self.slots[*slot as usize].take());
            *slot = (slots.len() - 1) as u32;
        }
        self.slots = slots;
        self.free = Vec::new();
        self.index.shrink_to_fit();
    }

    /// Where live task `id` is in the index. The ids in it are distinct and increasing, so
    /// entry `i` holds at least the first id plus `i` and at most the last id less the
    /// entries after it: only the entries between those two bounds can hold `id`. While the
    /// ids are contiguous (as the coordinator's are until a compaction drops removed ones)
    /// that is one entry, so a lookup costs no search at all (a binary search over every
    /// entry was 4% of the coordinator's samples in W1); otherwise it searches only as many
    /// entries as ids are missing in the range.
    fn position(&self, id: TaskId) -> Option<usize> {
        let (first, last) = (self.index.first()?.0, self.index.last()?.0);
        if id < first || id > last {
            return None;
        }
        let end = self.index.len() - 1;
        let low = end.saturating_sub(usize::try_from(last.0 - id.0).unwrap_or(usize::MAX));
        let high = end.min(usize::try_from(id.0 - first.0).unwrap_or(usize::MAX));
        let at = low
            + self.index[low..=high]
                .binary_search_by_key(&id, |(other, _)| *other)
                .ok()?;
        (self.index[at].1 != GONE).then_some(at)
    }

    fn slot(&self, id: TaskId) -> Option<u32> {
        self.position(id).map(|at| self.index[at].1)
    }

    /// Task `id`, if it is live.
    pub fn get(&self, id: TaskId) -> Option<&LiveTask> {
        let slot = self.slot(id)?;
        self.slots[slot as usize].as_ref()
    }

    /// Task `id`, if it is live, to change.
    pub fn get_mut(&mut self, id: TaskId) -> Option<&mut LiveTask> {
        let slot = self.slot(id)?;
        self.slots[slot as usize].as_mut()
    }

    /// Whether task `id` is live.
    pub fn contains(&self, id: TaskId) -> bool {
        self.position(id).is_some()
    }

    /// How many tasks are live.
    pub fn len(&self) -> usize {
        self.index.len() - self.gone
    }

    /// The live tasks with ids from `from` on, in id order.
    pub fn range_from(&self, from: TaskId) -> impl Iterator<Item = (TaskId, &LiveTask)> + '_ {
        let start = self.index.partition_point(|(id, _)| *id < from);
        self.index[start..].iter().filter_map(|(id, slot)| {
            let task = self.slots.get(*slot as usize)?.as_ref()?;
            Some((*id, task))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ready task of `m:f()`.
    fn ready(names: &mut Names) -> LiveTask {
        LiveTask::new(spec("m:f", "[]"), TaskState::Ready, Timestamp(1), names)
    }

    fn spec(function: &str, args: &str) -> TaskSpec {
        TaskSpec::call(function, args, "{\"k\": 1}")
    }

    /// A record made live and written back is the same record (a live one has no result),
    /// and tasks of one function and policy share one interned kind.
    #[test]
    fn a_record_goes_live_and_back_unchanged() {
        let mut names = Names::default();
        let mut record = TaskRecord::new(
            TaskId(7),
            spec("m:f", "[1, 2]"),
            TaskState::Waiting,
            Timestamp(3),
        );
        record.attempts = Attempt(2);
        record.failures = 1;
        record.crashes = 1;
        record.retry_at = Some(Timestamp(9));
        record.worker = Some("w1".into());
        record.started_at = Some(Timestamp(4));
        record.error = Some(TaskError {
            kind: "ValueError".into(),
            message: "no".into(),
            traceback: String::new(),
        });
        let live = LiveTask::from_record(record.clone(), &mut names);
        assert_eq!(live.record(TaskId(7), &names), record);
        let other = LiveTask::new(
            spec("m:f", "[]"),
            TaskState::Ready,
            Timestamp(1),
            &mut names,
        );
        assert_eq!(other.kind, live.kind);
        assert_eq!(other.spec(&names).args, "[]");
        assert_eq!(other.spec(&names).kwargs, "{\"k\": 1}");
        assert!(matches!(other.call, Text::Inline { .. }));
        let long = "[".to_string() + &"7, ".repeat(20) + "7]";
        let long_task = LiveTask::new(
            spec("m:f", &long),
            TaskState::Ready,
            Timestamp(1),
            &mut names,
        );
        assert!(matches!(long_task.call, Text::Heap(_)));
        assert_eq!(long_task.spec(&names).args, long);
        let policy = TaskPolicy {
            at_most_once: true,
            ..TaskPolicy::default()
        };
        let mut third = spec("m:f", "[]");
        third.policy = policy;
        let third = LiveTask::new(third, TaskState::Ready, Timestamp(1), &mut names);
        assert_ne!(third.kind, live.kind);
        assert!(third.policy(&names).at_most_once);
    }

    /// A live record written borrowed (`record_ref`, as `take_changes` encodes it) has exactly
    /// the bytes of the owned record (`record`) that used to be written, whatever the task
    /// holds, and those bytes read back both in place and owned.
    #[test]
    fn a_borrowed_record_encodes_as_the_owned_one() {
        use crate::store::{decode, decode_ref, encode, EncodedRecords};
        use tatzelwurm_proto::task::TaskInfo;
        let mut names = Names::default();
        let long = "[\"".to_string() + &"ü".repeat(30) + "\"]";
        assert!(long.len() > INLINE);
        let mut tasks = vec![
            ready(&mut names),
            LiveTask::new(
                TaskSpec::call("m:g", "[1]", "{}"),
                TaskState::Created,
                Timestamp(2),
                &mut names,
            ),
            LiveTask::new(
                spec("m:f", &long),
                TaskState::Ready,
                Timestamp(3),
                &mut names,
            ),
        ];
        let mut placed = spec("pkg.mod:other", "[2, 3]");
        placed.queue = "q-east".into();
        placed.priority = -3;
        placed.run_at = Some(When::At(Timestamp(77)));
        placed.policy.retries = 4;
        tasks.push(LiveTask::new(
            placed,
            TaskState::Scheduled,
            Timestamp(4),
            &mut names,
        ));
        let mut dependent = spec("m:f", "[]");
        dependent.after = vec![TaskId(1), TaskId(3)];
        tasks.push(LiveTask::new(
            dependent,
            TaskState::Blocked,
            Timestamp(5),
            &mut names,
        ));
        let mut running = ready(&mut names);
        running.state = TaskState::Running;
        running.attempt = Attempt(3);
        running.crashes = 1;
        running.started_at = Some(Timestamp(40)).into();
        running.set_worker(Some("worker-ß"), &mut names);
        tasks.push(running.clone());
        let mut waiting = running.clone();
        waiting.state = TaskState::Waiting;
        waiting.failures = 2;
        waiting.retry_at = Some(Timestamp(90)).into();
        waiting.set_error(Some(TaskError {
            kind: "ValueError".into(),
            message: "no".into(),
            traceback: "Traceback ...".into(),
        }));
        tasks.push(waiting);
        let mut skipped = running;
        skipped.unrecorded = true;
        tasks.push(skipped);
        let mut encoded = EncodedRecords::default();
        for (n, task) in tasks.iter().enumerate() {
            encoded
                .push(&task.record_ref(TaskId(n as u64 + 1), &names))
                .unwrap();
        }
        assert_eq!(encoded.len(), tasks.len());
        for ((id, state, bytes), task) in encoded.iter().zip(&tasks) {
            let owned = task.record(id, &names);
            assert_eq!(state, owned.state);
            assert_eq!(bytes, encode(&owned).unwrap().as_slice(), "{owned:?}");
            assert_eq!(decode::<TaskInfo>(bytes).unwrap(), owned);
            assert_eq!(decode_ref(bytes).unwrap().to_record(), owned);
        }
        // What a round's events read of them without decoding is what the owned records say.
        let batch = crate::store::Batch {
            encoded,
            ..crate::store::Batch::default()
        };
        assert_eq!(batch.records().len(), tasks.len());
        for (written, task) in batch.records().zip(&tasks) {
            let owned = task.record(written.id(), &names);
            assert_eq!(written.state(), owned.state);
            assert_eq!(written.attempts(), owned.attempts);
            assert_eq!(written.queue(), owned.spec.queue);
            assert_eq!(written.worker(), owned.worker.as_deref());
            assert_eq!(written.error_kind(), owned.error.map(|e| e.kind));
            assert_eq!(written.to_record().unwrap().spec, owned.spec);
        }
        let last = tasks.last().unwrap().record(TaskId(8), &names);
        assert_eq!(
            last.attempts,
            Attempt(2),
            "an unrecorded attempt is not shown"
        );
    }

    /// Once most tasks are gone the slab shrinks to what is live, which stays found in order.
    #[test]
    fn the_slab_shrinks_after_a_big_run() {
        let mut names = Names::default();
        let mut tasks = LiveTasks::default();
        for id in 1..=10_000 {
            let task = ready(&mut names);
            tasks.insert(TaskId(id), task);
        }
        for id in (1..=10_000).filter(|id| id % 1000 != 0) {
            assert!(tasks.remove(TaskId(id)).is_some());
        }
        assert!(tasks.slots.len() < 2_500, "{}", tasks.slots.len());
        let ids: Vec<u64> = tasks.range_from(TaskId(0)).map(|(id, _)| id.0).collect();
        assert_eq!(ids, (1..=10).map(|n| n * 1000).collect::<Vec<u64>>());
        assert!(tasks.get(TaskId(3000)).is_some() && tasks.get(TaskId(3001)).is_none());
    }

    /// The compact form stays compact: a change that grows it shows here (and in w4's RSS).
    #[test]
    fn a_live_task_is_small() {
        assert!(
            std::mem::size_of::<LiveTask>() <= 96,
            "{}",
            std::mem::size_of::<LiveTask>()
        );
        assert_eq!(std::mem::size_of::<Text>(), 24);
    }

    /// The slab reuses the slot of a removed task and keeps id order.
    #[test]
    fn slots_are_reused_and_order_is_by_id() {
        let mut names = Names::default();
        let mut tasks = LiveTasks::default();
        for id in 1..=3 {
            let task = LiveTask::new(
                spec("m:f", "[]"),
                TaskState::Ready,
                Timestamp(id),
                &mut names,
            );
            tasks.insert(TaskId(id), task);
        }
        let removed = tasks.remove(TaskId(2)).unwrap();
        assert_eq!(removed.created_at, Timestamp(2));
        assert!(tasks.remove(TaskId(2)).is_none());
        tasks.insert(TaskId(4), removed);
        assert_eq!(tasks.slots.len(), 3, "the freed slot is reused");
        let ids: Vec<u64> = tasks.range_from(TaskId(0)).map(|(id, _)| id.0).collect();
        assert_eq!(ids, vec![1, 3, 4]);
        let ids: Vec<u64> = tasks.range_from(TaskId(3)).map(|(id, _)| id.0).collect();
        assert_eq!(ids, vec![3, 4]);
        assert_eq!(tasks.len(), 3);
        tasks
            .get_mut(TaskId(4))
            .unwrap()
            .set_worker(Some("w"), &mut names);
        assert_eq!(tasks.get(TaskId(4)).unwrap().worker(&names), Some("w"));
        assert!(tasks.contains(TaskId(1)) && !tasks.contains(TaskId(2)));
    }

    /// Many removals compact the index; what is left is found, in order, and an id older than
    /// the newest still goes in its place.
    #[test]
    fn the_index_compacts_and_keeps_order() {
        let mut names = Names::default();
        let mut tasks = LiveTasks::default();
        for id in 1..=5000 {
            tasks.insert(TaskId(id), ready(&mut names));
        }
        for id in (1..=5000).filter(|id| id % 10 != 0) {
            assert!(tasks.remove(TaskId(id)).is_some());
        }
        assert_eq!(tasks.len(), 500);
        assert!(tasks.index.len() < 5000, "compacted");
        assert!(tasks.get(TaskId(4990)).is_some() && tasks.get(TaskId(4991)).is_none());
        tasks.insert(TaskId(15), ready(&mut names));
        let ids: Vec<u64> = tasks
            .range_from(TaskId(0))
            .map(|(id, _)| id.0)
            .take(3)
            .collect();
        assert_eq!(ids, vec![10, 15, 20]);
        assert_eq!(tasks.len(), 501);
        assert!(tasks.slots.len() <= 5000, "slots are reused");
    }

    /// A lookup finds exactly the live ids, whether the index is contiguous, has gaps (ids
    /// never inserted, removed ones compacted away) or holds removed entries not yet compacted.
    #[test]
    fn lookups_find_exactly_the_live_ids() {
        let mut names = Names::default();
        let mut tasks = LiveTasks::default();
        let mut live = std::collections::BTreeSet::new();
        let check = |tasks: &LiveTasks, live: &std::collections::BTreeSet<u64>| {
            for id in 0..=3100 {
                assert_eq!(tasks.contains(TaskId(id)), live.contains(&id), "id {id}");
            }
        };
        check(&tasks, &live);
        for id in (1..=3000).filter(|id| id % 7 != 0) {
            let task = ready(&mut names);
            tasks.insert(TaskId(id), task);
            live.insert(id);
        }
        check(&tasks, &live);
        for id in (1..=3000).filter(|id| id % 3 == 0 || (1000..1200).contains(id)) {
            tasks.remove(TaskId(id));
            live.remove(&id);
            if id % 97 == 0 {
                check(&tasks, &live);
            }
        }
        check(&tasks, &live);
    }
}

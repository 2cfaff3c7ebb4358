//! `Routes`: the requests under way on one client and the tasks it watches, as a plain struct
//! (no channel, no socket) so that the routing rules are tested alone. The session owns it.
//!
//! Each request gets a `RequestId` and stays here until its whole answer came: pages of a list
//! are gathered, `Reply::Error` becomes an `Err`. When the connection drops, the requests stay
//! and are re-sent on the next connection under the same ids (an add with its same key).
//!
//! Two answers come as a stream of frames, each handed on as it comes (`Routed::Piece`) rather
//! than gathered: events (`Reply::Events` with `more`) and a task's output (`Reply::Logs`
//! without `done`). An events request keeps the last sequence number it was sent, so that after
//! a reconnect it is re-sent from there (`EventsFrom::After`): the caller sees no event twice and
//! misses none. A logs stream cannot be resumed that way (the coordinator keeps no offsets), so a
//! drop ends one that has begun.
//!
//! `Finished` pushes are routed by task id, not by request: a task is forwarded once, when it
//! is watched (by a `Watch` from the moment it is sent, by an add with `watch` once its
//! `Added` named it). A push may come before the `Added` of its own add; such a task is kept
//! in `early` and handed out right after that `Added`, so a reader always learns a task's id
//! before its end.

use crate::id_hash::IdHash;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tatzelwurm_proto::actioner::{Command, Failure, FromActioner, Reply, TaskEnd, ToActioner};
use tatzelwurm_proto::event::EventsFrom;
use tatzelwurm_proto::task::TaskInfo;
use tatzelwurm_proto::{RequestId, TaskId};
use tokio::time::Instant;

/// The requests under way and the watched tasks; `R` is who is told the answer.
pub(crate) struct Routes<R> {
    /// The id of the next request.
    next: u64,
    /// Requests without their whole answer yet, in the order they were made.
    pending: BTreeMap<RequestId, Pending<R>>,
    /// Tasks whose end is to be forwarded (once).
    watched: HashSet<TaskId, IdHash>,
    /// Ends that came before the `Added` of a watching add named their task.
    early: HashMap<TaskId, TaskEnd, IdHash>,
}

/// One request under way.
struct Pending<R> {
    /// What was sent, kept to send it again after a reconnect.
    message: Arc<FromActioner>,
    /// Who is told the answer.
    to: R,
    /// Pages of a list answered so far.
    pages: Vec<TaskInfo>,
    /// Since when it has waited for a connection (`None` while sent on a live one).
    stalled_since: Option<Instant>,
    /// Whether it was sent again after a reconnect.
    resent: bool,
    /// Whether a piece of a streamed answer was handed on.
    streamed: bool,
    /// The sequence number of the last event handed on (an events request).
    last_seq: Option<u64>,
}

/// What one frame from the coordinator means.
#[derive(Debug, PartialEq)]
pub(crate) enum Routed<R> {
    /// A request's whole answer.
    Answer {
        to: R,
        answer: Result<Reply, Failure>,
        /// Ends of tasks of this add that came before its `Added`: forward them after it.
        finished: Vec<TaskEnd>,
        /// Tasks of a re-sent watching add to watch again, in case the coordinator did not push
        /// the ends that happened while the connection was down.
        watch_again: Vec<TaskId>,
    },
    /// Watched tasks that finished, each forwarded for the first time.
    Finished(Vec<TaskEnd>),
    /// A frame of a streamed answer (events, output) that more frames follow: hand it to the
    /// request's receiver at once (`Routes::receiver`).
    Piece { request: RequestId, reply: Reply },
    /// Part of an answer (a page), or a push of nothing new.
    Nothing,
    /// An answer to no request under way (a late answer to an abandoned one, say).
    Stray(RequestId),
}

impl<R> Routes<R> {
    /// No request under way, nothing watched.
    pub fn new() -> Routes<R> {
        Routes {
            next: 1,
            pending: BTreeMap::new(),
            watched: HashSet::default(),
            early: HashMap::default(),
        }
    }

    /// Registers a request and returns the message to send. `stalled_since` is `Some(now)`
    /// when there is no connection to send it on yet.
    pub fn add(
        &mut self,
        command: Command,
        to: R,
        stalled_since: Option<Instant>,
    ) -> Arc<FromActioner> {
        let request = RequestId(self.next);
        self.next += 1;
        if let Command::Watch(ids) = &command {
            self.watched.extend(ids.iter().copied());
        }
        let message = Arc::new(FromActioner { request, command });
        self.pending.insert(
            request,
            Pending {
                message: Arc::clone(&message),
                to,
                pages: Vec::new(),
                stalled_since,
                resent: false,
                streamed: false,
                last_seq: None,
            },
        );
        message
    }

    /// Reads one frame from the coordinator.
    pub fn on_reply(&mut self, frame: ToActioner) -> Routed<R> {
        let ToActioner { request, reply } = frame;
        if let Reply::Finished(infos) = reply {
            return self.finished(infos);
        }
        let Some(pending) = self.pending.get_mut(&request) else {
            return Routed::Stray(request);
        };
        let reply = match reply {
            Reply::Tasks { tasks, more: true } => {
                pending.pages.extend(tasks);
                return Routed::Nothing;
            }
            Reply::Tasks { tasks, more: false } => {
                let mut all = std::mem::take(&mut pending.pages);
                all.extend(tasks);
                Reply::Tasks {
                    tasks: all,
                    more: false,
                }
            }
            reply @ (Reply::Events { .. } | Reply::Logs { .. }) => {
                if let Reply::Events { events, .. } = &reply {
                    pending.last_seq = events.last().map(|e| e.seq).or(pending.last_seq);
                }
                if matches!(
                    reply,
                    Reply::Events { more: true, .. } | Reply::Logs { done: None, .. }
                ) {
                    pending.streamed = true;
                    return Routed::Piece { request, reply };
                }
                reply
            }
            other => other,
        };
        let pending = self.pending.remove(&request).expect("found above");
        let mut finished = Vec::new();
        let mut watch_again = Vec::new();
        match (&pending.message.command, &reply) {
            (Command::Add { watch: true, .. }, Reply::Added(ids)) => {
                for id in ids {
                    match self.early.remove(id) {
                        Some(info) => finished.push(info),
                        None => {
                            self.watched.insert(*id);
                            if pending.resent {
                                watch_again.push(*id);
                            }
                        }
                    }
                }
            }
            (Command::Watch(ids), Reply::Error(_)) => {
                for id in ids {
                    self.watched.remove(id);
                }
            }
            _ => {}
        }
        if !self.adding() {
            // Whatever is left there was a repeated push, not a task still to be named.
            self.early.clear();
        }
        let answer = match reply {
            Reply::Error(failure) => Err(failure),
            reply => Ok(reply),
        };
        Routed::Answer {
            to: pending.to,
            answer,
            finished,
            watch_again,
        }
    }

    /// Forwards the watched ones of `infos`; keeps those that may belong to an add whose
    /// `Added` has not come yet.
    fn finished(&mut self, infos: Vec<TaskEnd>) -> Routed<R> {
        let adding = self.adding();
        let mut news = Vec::new();
        for info in infos {
            if self.watched.remove(&info.id) {
                news.push(info);
            } else if adding {
                self.early.entry(info.id).or_insert(info);
            }
        }
        if news.is_empty() {
            Routed::Nothing
        } else {
            Routed::Finished(news)
        }
    }

    /// Whether a watching add is under way.
    fn adding(&self) -> bool {
        self.pending
            .values()
            .any(|p| matches!(p.message.command, Command::Add { watch: true, .. }))
    }

    /// Who waits for the streamed answer of `request`, if it is still under way.
    pub fn receiver(&self, request: RequestId) -> Option<&R> {
        self.pending.get(&request).map(|p| &p.to)
    }

    /// Stops routing `request` (its receiver went away); later frames of it are strays.
    pub fn forget(&mut self, request: RequestId) -> Option<R> {
        self.pending.remove(&request).map(|p| p.to)
    }

    /// The connection dropped: every request now waits for the next one (from `now`, unless it
    /// already waited), and pages received so far are dropped (they come again). Returns those
    /// that cannot be re-sent: logs streams that had begun (a new request would repeat their
    /// output).
    pub fn lost(&mut self, now: Instant) -> Vec<R> {
        let cut: Vec<RequestId> = self
            .pending
            .iter()
            .filter(|(_, p)| p.streamed && matches!(p.message.command, Command::Logs { .. }))
            .map(|(id, _)| *id)
            .collect();
        for pending in self.pending.values_mut() {
            pending.pages.clear();
            pending.stalled_since.get_or_insert(now);
        }
        cut.into_iter()
            .filter_map(|id| self.pending.remove(&id).map(|p| p.to))
            .collect()
    }

    /// A new connection is up: forgets the requests nobody waits for any more, and returns the
    /// others' messages to send again, in the order they were first made.
    pub fn resend(&mut self, abandoned: impl Fn(&R) -> bool) -> Vec<Arc<FromActioner>> {
        self.pending.retain(|_, pending| !abandoned(&pending.to));
        self.pending
            .values_mut()
            .map(|pending| {
                pending.resent = true;
                pending.stalled_since = None;
                pending.pages.clear();
                let resumed = match (&pending.message.command, pending.last_seq) {
                    // Go on after the last event handed on, not from where it first began.
                    (Command::Events { follow, filter, .. }, Some(seq)) => {
                        Some(Arc::new(FromActioner {
                            request: pending.message.request,
                            command: Command::Events {
                                from: EventsFrom::After(seq),
                                follow: *follow,
                                filter: filter.clone(),
                            },
                        }))
                    }
                    _ => None,
                };
                if let Some(message) = resumed {
                    pending.message = message;
                }
                Arc::clone(&pending.message)
            })
            .collect()
    }

    /// Removes and returns the requests that waited for a connection `limit` or longer.
    pub fn expired(&mut self, now: Instant, limit: Duration) -> Vec<R> {
        let due: Vec<RequestId> = self
            .pending
            .iter()
            .filter(|(_, p)| p.stalled_since.is_some_and(|since| now >= since + limit))
            .map(|(id, _)| *id)
            .collect();
        due.into_iter()
            .filter_map(|id| self.pending.remove(&id).map(|p| p.to))
            .collect()
    }

    /// When the next request will have waited `limit` for a connection.
    pub fn next_expiry(&self, limit: Duration) -> Option<Instant> {
        self.pending
            .values()
            .filter_map(|p| p.stalled_since)
            .min()
            .map(|since| since + limit)
    }

    /// Removes and returns every request under way (the client is closing, or will not
    /// reconnect); nothing stays watched.
    pub fn drain(&mut self) -> Vec<R> {
        self.watched.clear();
        self.early.clear();
        std::mem::take(&mut self.pending)
            .into_values()
            .map(|p| p.to)
            .collect()
    }

    /// The watched tasks, to watch again on a new connection.
    pub fn watched(&self) -> Vec<TaskId> {
        let mut ids: Vec<TaskId> = self.watched.iter().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// How many requests are under way.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests;

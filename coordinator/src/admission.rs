//! Who gets one of the coordinator's connections (`--max-connections`, default 4096), so that a
//! flood of idle or half-written connections cannot keep a worker or an actioner out.
//!
//! Below the cap every connection is taken. At the cap, a new connection displaces the actioner
//! that has been idle longest: one that has had no request under way and no watch for at least
//! `MIN_IDLE_MS` (an idle CLI or client reconnects by itself when it next needs to). Workers are
//! never displaced, nor actioners waiting on a `Wait` or holding a watch. A connection that has
//! not said hello yet is closed by the hello time limit (5 s), and one that sends half a frame
//! after its hello is idle. When nobody can be displaced, accepting pauses until a connection
//! closes (the kernel queues up to the listen backlog meanwhile).
//!
//! `AdmissionTable` is the rule, a plain struct with the time passed in; `Admission` shares it
//! between the accept loop and the connections, behind a mutex held for a map operation only.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// An actioner idle for less than this (ms) is not displaced: it has just said hello.
pub const MIN_IDLE_MS: u64 = 1_000;

/// What the table knows of one actioner connection.
#[derive(Debug)]
struct Actioner<E> {
    /// When it last began or finished a request (ms).
    last_active: u64,
    /// Requests under way.
    busy: u32,
    /// It registered a watch: pushes may come for it at any time.
    pinned: bool,
    /// How to tell it to close.
    evict: E,
}

/// The open connections and the displacement rule; `E` is how an actioner is told to close (a
/// `Notify` in the server, a unit in tests).
#[derive(Debug)]
pub struct AdmissionTable<E> {
    cap: usize,
    open: usize,
    next: u64,
    actioners: HashMap<u64, Actioner<E>>,
}

/// What to do with a new connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Admit<E> {
    /// Take it: there is room.
    Room,
    /// Take it and tell this actioner to close: it has been idle longest.
    Displace(E),
    /// No room and nobody to displace: wait until a connection closes.
    Full,
}

impl<E: Clone> AdmissionTable<E> {
    /// A table for at most `cap` connections (at least 1).
    pub fn new(cap: usize) -> AdmissionTable<E> {
        AdmissionTable {
            cap: cap.max(1),
            open: 0,
            next: 1,
            actioners: HashMap::new(),
        }
    }

    /// A new connection arrives at `now`: counted as open unless the answer is `Full`. A
    /// displaced actioner stops counting as idle at once, and stops counting as open when it
    /// closes, so the open count may pass the cap by the displacements under way.
    pub fn admit(&mut self, now: u64) -> Admit<E> {
        if self.open < self.cap {
            self.open += 1;
            return Admit::Room;
        }
        let victim = self
            .actioners
            .iter()
            .filter(|(_, a)| {
                a.busy == 0 && !a.pinned && now.saturating_sub(a.last_active) >= MIN_IDLE_MS
            })
            .min_by_key(|(id, a)| (a.last_active, **id))
            .map(|(id, _)| *id);
        match victim.and_then(|id| self.actioners.remove(&id)) {
            Some(victim) => {
                self.open += 1;
                Admit::Displace(victim.evict)
            }
            None => Admit::Full,
        }
    }

    /// A connection counted by `admit` closed.
    pub fn closed(&mut self) {
        self.open = self.open.saturating_sub(1);
    }

    /// An admitted connection said hello as an actioner; returns its key.
    pub fn actioner(&mut self, evict: E, now: u64) -> u64 {
        let id = self.next;
        self.next += 1;
        let entry = Actioner {
            last_active: now,
            busy: 0,
            pinned: false,
            evict,
        };
        self.actioners.insert(id, entry);
        id
    }

    /// The actioner `id` began (`true`) or finished (`false`) a request at `now`.
    pub fn busy(&mut self, id: u64, began: bool, now: u64) {
        if let Some(a) = self.actioners.get_mut(&id) {
            a.last_active = now;
            if began {
                a.busy += 1;
            } else {
                a.busy = a.busy.saturating_sub(1);
            }
        }
    }

    /// The actioner `id` registered a watch: it is never displaced.
    pub fn pin(&mut self, id: u64) {
        if let Some(a) = self.actioners.get_mut(&id) {
            a.pinned = true;
        }
    }

    /// The actioner `id` ended (its connection's `closed` is separate).
    pub fn forget(&mut self, id: u64) {
        self.actioners.remove(&id);
    }

    /// Connections counted as open.
    pub fn open(&self) -> usize {
        self.open
    }
}

/// The table shared by the accept loop and the connections, and a wake for the accept loop
/// when a connection closes.
#[derive(Clone)]
pub struct Admission {
    table: Arc<Mutex<AdmissionTable<Arc<Notify>>>>,
    closed: Arc<Notify>,
}

impl Admission {
    /// Room for `cap` connections.
    pub fn new(cap: usize) -> Admission {
        Admission {
            table: Arc::new(Mutex::new(AdmissionTable::new(cap))),
            closed: Arc::new(Notify::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, AdmissionTable<Arc<Notify>>> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until a new connection may be taken (displacing an idle actioner if need be) and
    /// returns its permit, which counts it as open until dropped.
    pub async fn admit(&self) -> Permit {
        loop {
            let closed = self.closed.notified();
            tokio::pin!(closed);
            closed.as_mut().enable();
            match self.lock().admit(crate::log_limit::now_ms()) {
                Admit::Room => return self.permit(),
                Admit::Displace(evict) => {
                    evict.notify_one();
                    return self.permit();
                }
                Admit::Full => {}
            }
            // Also look again now and then: an actioner becomes displaceable with time.
            let _ = tokio::time::timeout(std::time::Duration::from_millis(500), closed).await;
        }
    }

    fn permit(&self) -> Permit {
        Permit {
            admission: self.clone(),
        }
    }

    /// Registers an actioner connection; its ticket tells the table when it is busy and
    /// carries the notice to close if it is displaced.
    pub fn actioner(&self) -> Ticket {
        let evict = Arc::new(Notify::new());
        let id = self
            .lock()
            .actioner(evict.clone(), crate::log_limit::now_ms());
        Ticket {
            admission: self.clone(),
            id,
            evict,
        }
    }
}

/// One connection counted as open; dropping it frees its place.
pub struct Permit {
    admission: Admission,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.admission.lock().closed();
        self.admission.closed.notify_waiters();
    }
}

/// An actioner connection's place in the table.
pub struct Ticket {
    admission: Admission,
    id: u64,
    evict: Arc<Notify>,
}

impl Ticket {
    /// A request began (`true`) or was answered (`false`).
    pub fn busy(&self, began: bool) {
        let now = crate::log_limit::now_ms();
        self.admission.lock().busy(self.id, began, now);
    }

    /// The connection registered a watch.
    pub fn pin(&self) {
        self.admission.lock().pin(self.id);
    }

    /// Completes when this actioner is displaced by a new connection.
    pub async fn evicted(&self) {
        self.evict.notified().await;
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.admission.lock().forget(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Below the cap all come in; at the cap the actioner idle longest is displaced, never a
    /// busy one, a watching one, one that just said hello, or a worker (not in the table).
    #[test]
    fn at_the_cap_the_longest_idle_actioner_makes_room() {
        let mut table: AdmissionTable<u32> = AdmissionTable::new(4);
        for _ in 0..4 {
            assert_eq!(table.admit(0), Admit::Room);
        }
        let old = table.actioner(1, 0);
        let busy = table.actioner(2, 0);
        let watching = table.actioner(3, 0);
        table.busy(busy, true, 0);
        table.pin(watching);
        // The fourth connection is a worker or still in its hello: not in the table.
        assert_eq!(table.admit(500), Admit::Full, "too soon after its hello");
        assert_eq!(table.admit(2000), Admit::Displace(1));
        let _ = old;
        assert_eq!(table.open(), 5);
        assert_eq!(table.admit(3000), Admit::Full);
        table.busy(busy, false, 3000);
        assert_eq!(table.admit(3500), Admit::Full, "just finished a request");
        assert_eq!(table.admit(4000), Admit::Displace(2));
        table.closed();
        table.closed();
        assert_eq!(table.open(), 4);
        table.closed();
        assert_eq!(table.admit(4000), Admit::Room);
    }
}

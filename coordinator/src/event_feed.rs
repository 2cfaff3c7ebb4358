//! One event watcher's feed (`Command::Events`, the HTTP page's server-sent events): the
//! events it asks for from the store, then, when it follows, the live ones, with no gap and no
//! repeat.
//!
//! Replay reads the store's events off the task actor (`StoreReader`), page by page, until it
//! has caught up. Only then does a following feed subscribe: the task actor answers with the
//! last durable sequence number `D` at that moment and sends every later round's events. The
//! few events written between the last page and the subscription (up to `D`) are read from the
//! store, and live events are passed on from `D + 1`. So a feed that replays a million events
//! holds no live events meanwhile, and what the subscription buffers is only the short catch-up
//! to `D`. Sequence numbers are contiguous in the store (every one is written; only the oldest
//! are trimmed), so a page that does not start right after the last event passed on means
//! events were trimmed: `EventsGone`.
//!
//! The filter is applied here, off the actor. The feed's channel is small and bounded: a reader
//! that does not keep up makes the feed wait, its subscription fill, and the task actor drop it
//! with `Lagged` (see `events`), which the feed passes on as its last item.

use crate::events::{self, Position, Subscription};
use crate::store::StoreReader;
use crate::tasks::TasksHandle;
use crate::Context;
use tatzelwurm_proto::actioner::{Failure, FailureKind};
use tatzelwurm_proto::event::{Event, EventFilter, EventsFrom};
use tokio::sync::mpsc;

/// Events one store read returns at most (about 100 KB).
const PAGE: usize = 1_000;

/// Pages the feed's channel holds before the feed waits for its reader (so at most
/// `CHANNEL * PAGE` events wait there).
const CHANNEL: usize = 4;

/// Opens a feed of the events from `from` that pass `filter`. Without `follow` the channel
/// closes after the last durable event (at once for `EventsFrom::Now`); with it, live events
/// follow until the receiver is dropped. Items are non-empty pages of at most 1,000 events in
/// increasing `seq`; an `Err` (`EventsGone`, `Lagged`, `Stopping`, `Internal`) is the last
/// item.
pub fn open(
    ctx: &Context,
    from: EventsFrom,
    follow: bool,
    filter: EventFilter,
) -> mpsc::Receiver<Result<Vec<Event>, Failure>> {
    open_with(ctx.tasks.clone(), ctx.reader.clone(), from, follow, filter)
}

/// `open` with the task actor and the store's reader given apart (for tests without a
/// `Context`).
pub fn open_with(
    tasks: TasksHandle,
    reader: StoreReader,
    from: EventsFrom,
    follow: bool,
    filter: EventFilter,
) -> mpsc::Receiver<Result<Vec<Event>, Failure>> {
    let (out, receiver) = mpsc::channel(CHANNEL);
    let feed = Feed {
        tasks,
        reader,
        filter,
        out,
    };
    tokio::spawn(async move {
        if let Err(failure) = feed.run(from, follow).await {
            let _ = feed.out.send(Err(failure)).await;
        }
    });
    receiver
}

/// One feed's state.
struct Feed {
    tasks: TasksHandle,
    reader: StoreReader,
    filter: EventFilter,
    out: mpsc::Sender<Result<Vec<Event>, Failure>>,
}

impl Feed {
    async fn run(&self, from: EventsFrom, follow: bool) -> Result<(), Failure> {
        let mut after = match from {
            EventsFrom::Start => 0,
            EventsFrom::After(seq) => seq,
            EventsFrom::Now => {
                if !follow {
                    return Ok(());
                }
                let (position, subscription) = self.subscribe().await?;
                // An empty batch says "subscribed": every event after this one reaches the
                // watcher, so a client that waits for it (Python's `events(since="now")`)
                // sees the events of whatever it does next.
                if self.out.send(Ok(Vec::new())).await.is_err() {
                    return Ok(()); // the reader is gone
                }
                return self.live(position.last, subscription).await;
            }
        };
        // From an `After`, the event right after it must still be kept.
        let mut must_follow = matches!(from, EventsFrom::After(_));
        // Replay, unsubscribed, until a page comes back short: caught up for now.
        loop {
            let (page, full) = self.read(after, must_follow).await?;
            if let Some(last) = page.last() {
                after = last.seq;
                must_follow = true;
            }
            if !self.pass(page).await {
                return Ok(()); // the reader is gone
            }
            if !full {
                break;
            }
        }
        if !follow {
            return Ok(());
        }
        let (position, subscription) = self.subscribe().await?;
        // The events written between the last page and the subscription.
        while after < position.last {
            let (page, _) = self.read(after, must_follow).await?;
            let Some(last) = page.last().map(|e| e.seq) else {
                break;
            };
            let page: Vec<Event> = page
                .into_iter()
                .filter(|e| e.seq <= position.last)
                .collect();
            after = last.min(position.last);
            must_follow = true;
            if !self.pass(page).await {
                return Ok(()); // the reader is gone
            }
        }
        // Live events from after the last one passed on (a `--since` ahead of the log waits
        // for the log to pass it).
        self.live(after.max(position.last), subscription).await
    }

    /// Subscribes at the task actor: where the log stands, and the live rounds after it.
    async fn subscribe(&self) -> Result<(Position, Subscription), Failure> {
        let (subscriber, subscription) = events::subscription();
        match self.tasks.subscribe(subscriber).await {
            Some(position) => Ok((position, subscription)),
            None => Err(stopping()),
        }
    }

    /// Passes on the live rounds after `after` until the reader or the actor goes away, or
    /// the actor drops the subscription (`Lagged`).
    async fn live(&self, mut after: u64, mut subscription: Subscription) -> Result<(), Failure> {
        while let Some(round) = subscription.recv().await {
            let round = round?;
            let passing = round
                .iter()
                .filter(|e| e.seq > after && self.filter.passes(e));
            let mut page = Vec::new();
            for event in passing {
                page.push(event.clone());
                if page.len() == PAGE && self.out.send(Ok(std::mem::take(&mut page))).await.is_err()
                {
                    return Ok(()); // the reader is gone
                }
            }
            if let Some(last) = round.last() {
                after = after.max(last.seq);
            }
            if !page.is_empty() && self.out.send(Ok(page)).await.is_err() {
                return Ok(()); // the reader is gone
            }
        }
        Err(stopping())
    }

    /// Sends the events of `page` that pass the filter; whether the reader is still there.
    async fn pass(&self, page: Vec<Event>) -> bool {
        let page: Vec<Event> = page.into_iter().filter(|e| self.filter.passes(e)).collect();
        page.is_empty() || self.out.send(Ok(page)).await.is_ok()
    }

    /// A page of stored events after `after`, and whether it is full (more may follow). With
    /// `must_follow` (after a page, or from an `After` the watcher saw) its first event must
    /// be `after + 1`: a later one means the events between were trimmed (`EventsGone`).
    async fn read(&self, after: u64, must_follow: bool) -> Result<(Vec<Event>, bool), Failure> {
        let reader = self.reader.clone();
        let page = tokio::task::spawn_blocking(move || reader.events(after, PAGE))
            .await
            .map_err(|err| internal(err.to_string()))?
            .map_err(|err| internal(err.to_string()))?;
        if let Some(first) = page.first() {
            if must_follow && first.seq > after + 1 {
                return Err(gone(after, Some(first.seq)));
            }
        }
        let full = page.len() >= PAGE;
        Ok((page, full))
    }
}

/// The refusal of a replay from after `after` when the events that follow it were trimmed.
fn gone(after: u64, oldest: Option<u64>) -> Failure {
    let kept = match oldest {
        Some(oldest) => format!("the oldest kept is {oldest}"),
        None => "none is kept now".to_string(),
    };
    Failure::new(
        FailureKind::EventsGone,
        format!(
            "the events after {after} are no longer kept (the coordinator keeps the newest --keep-events); {kept}: start from there, or without --since"
        ),
    )
}

fn internal(cause: String) -> Failure {
    Failure::new(
        FailureKind::Internal,
        format!(
            "cannot read the event log from the database ({cause}); the database may be damaged"
        ),
    )
}

fn stopping() -> Failure {
    Failure::new(
        FailureKind::Stopping,
        "the coordinator is stopping; reconnect with --since the last event you saw once it is back",
    )
}

#[cfg(test)]
mod tests;

//! How workwurm stops: gently first, at once if asked twice.
//!
//! The first SIGTERM or ctrl-c starts a drain: the worker tells the coordinator to hand it no
//! more tasks, lets the running ones finish, waits until their reports are recorded, and exits.
//! That is what a rolling deploy or a `systemctl stop` wants: no task is cut off and run again
//! elsewhere, and an at-most-once task is not failed as lost. A second signal, or the end of
//! `--drain-timeout`, stops at once: running tasks are killed and the coordinator requeues them,
//! as when a worker dies. The level travels on a `watch` channel that `session` reads.

use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tracing::{info, warn};

/// How far the worker is in stopping; levels only ever rise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stop {
    /// Serving as usual.
    Running,
    /// Taking no new tasks; leaving once those it holds are finished and recorded.
    Draining,
    /// Leaving now; running tasks are killed (the coordinator requeues them).
    Now,
}

/// Watches SIGTERM and SIGINT for the life of the process: the first one drains (or stops at
/// once if `drain_timeout` is zero), the second one or the end of `drain_timeout` stops now.
pub fn from_signals(drain_timeout: Duration) -> watch::Receiver<Stop> {
    let (level, receiver) = watch::channel(Stop::Running);
    tokio::spawn(async move {
        let mut signals = Signals::new();
        let first = signals.next().await;
        if drain_timeout.is_zero() {
            info!("{first}; stopping the slots");
            let _ = level.send(Stop::Now);
            return;
        }
        info!(
            "{first}; draining: the running tasks finish and no new ones come (for at most {:.0} s); send SIGTERM or press ctrl-c again to stop at once",
            drain_timeout.as_secs_f64()
        );
        let _ = level.send(Stop::Draining);
        tokio::select! {
            second = signals.next() => info!("{second} again; stopping the slots now"),
            () = tokio::time::sleep(drain_timeout) => warn!(
                "the drain took longer than {:.0} s; stopping the slots now, their tasks are requeued",
                drain_timeout.as_secs_f64()
            ),
        }
        let _ = level.send(Stop::Now);
        // Keep the sender alive: a dropped one would read as "stop now" anyway, but later
        // signals should find a listener rather than kill the process mid-shutdown.
        loop {
            signals.next().await;
        }
    });
    receiver
}

/// SIGTERM and SIGINT as one stream of sentences for the log.
struct Signals {
    terminate: Option<tokio::signal::unix::Signal>,
    interrupt: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Signals {
        let listen = |kind, name| {
            signal(kind)
                .inspect_err(|err| {
                    warn!("cannot listen for {name} ({err}); it will not stop workwurm gently")
                })
                .ok()
        };
        Signals {
            terminate: listen(SignalKind::terminate(), "SIGTERM"),
            interrupt: listen(SignalKind::interrupt(), "SIGINT"),
        }
    }

    /// The next signal, as the sentence the log opens with.
    async fn next(&mut self) -> &'static str {
        async fn recv(signal: &mut Option<tokio::signal::unix::Signal>) {
            match signal {
                Some(signal) => {
                    signal.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            () = recv(&mut self.terminate) => "terminated",
            () = recv(&mut self.interrupt) => "interrupted",
        }
    }
}

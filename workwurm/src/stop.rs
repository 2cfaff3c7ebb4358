//! How workwurm stops: gently first, at once if asked twice.
//!
//! The first SIGTERM or ctrl-c, or the coordinator's `Drain` (`actionwurm worker drain NAME`),
//! starts a drain: the worker tells the coordinator to hand it no more tasks, lets the running
//! ones finish, waits until their reports are recorded, and exits. That is what a rolling deploy
//! or a `systemctl stop` wants: no task is cut off and run again elsewhere, and an at-most-once
//! task is not failed as lost. A second signal, or the end of `--drain-timeout`, stops at once:
//! running tasks are killed and the coordinator requeues them, as when a worker dies. A second
//! `Drain` changes nothing (only a signal on the worker's host stops it at once). The level
//! travels on a `watch` channel that `session` reads; the session asks for a drain through the
//! [`Drainer`] beside it, so that the coordinator's drain and the first signal are one path.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};

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

/// Asks the worker to drain exactly as its first SIGTERM does (the coordinator's `Drain`).
/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct Drainer(mpsc::UnboundedSender<()>);

impl Drainer {
    /// Starts a drain (with `--drain-timeout`), unless one has begun already.
    pub fn drain(&self) {
        // The escalation task lives as long as the level's receivers; after it, nothing drains.
        let _ = self.0.send(());
    }
}

/// The level the session reads and the way to raise it to a drain.
pub struct Stopping {
    /// The current level.
    pub level: watch::Receiver<Stop>,
    /// Starts a drain as the first signal does.
    pub drainer: Drainer,
}

/// Watches SIGTERM and SIGINT for the life of the process: the first one (or a drain asked of
/// the [`Drainer`]) drains, or stops at once if `drain_timeout` is zero; the second signal or
/// the end of `drain_timeout` stops now.
pub fn from_signals(drain_timeout: Duration) -> Stopping {
    escalating(drain_timeout, Some(Signals::new()), None)
}

/// Like [`from_signals`], but driven by `outer` instead of signals (tests, and anyone embedding
/// the worker): its levels are taken as they come (its sender dropped means `Now`), and a drain
/// asked of the [`Drainer`] runs as the first signal would.
pub fn from_level(outer: watch::Receiver<Stop>, drain_timeout: Duration) -> Stopping {
    escalating(drain_timeout, None, Some(outer))
}

fn escalating(
    drain_timeout: Duration,
    signals: Option<Signals>,
    outer: Option<watch::Receiver<Stop>>,
) -> Stopping {
    let (level, receiver) = watch::channel(Stop::Running);
    let (asks, asked) = mpsc::unbounded_channel();
    let triggers = Triggers {
        signals,
        asked: Some(asked),
        outer,
    };
    tokio::spawn(escalate(level, drain_timeout, triggers));
    Stopping {
        level: receiver,
        drainer: Drainer(asks),
    }
}

/// What can raise the level.
enum Trigger {
    /// SIGTERM or SIGINT, as the sentence the log opens with.
    Signal(&'static str),
    /// The coordinator asked for a drain.
    Asked,
    /// The embedding caller set this level.
    Outer(Stop),
}

/// The sources of [`Trigger`]s; a source that ended is never polled again.
struct Triggers {
    signals: Option<Signals>,
    asked: Option<mpsc::UnboundedReceiver<()>>,
    outer: Option<watch::Receiver<Stop>>,
}

impl Triggers {
    async fn next(&mut self) -> Trigger {
        loop {
            let signal = async {
                match &mut self.signals {
                    Some(signals) => signals.next().await,
                    None => std::future::pending().await,
                }
            };
            let asked = async {
                match &mut self.asked {
                    Some(asked) => asked.recv().await,
                    None => std::future::pending().await,
                }
            };
            let outer = async {
                match &mut self.outer {
                    Some(outer) => outer.changed().await.map(|()| *outer.borrow_and_update()),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                name = signal => return Trigger::Signal(name),
                asked = asked => match asked {
                    Some(()) => return Trigger::Asked,
                    None => self.asked = None,
                },
                level = outer => match level {
                    Ok(level) => return Trigger::Outer(level),
                    Err(_) => {
                        self.outer = None;
                        return Trigger::Outer(Stop::Now);
                    }
                },
            }
        }
    }
}

/// Raises `level` as the triggers say, for as long as anyone reads it.
async fn escalate(level: watch::Sender<Stop>, drain_timeout: Duration, mut triggers: Triggers) {
    let raise = |to: Stop| {
        level.send_if_modified(|now| {
            let higher = to > *now;
            if higher {
                *now = to;
            }
            higher
        });
    };
    // When the drain began by a signal or an ask; its timeout runs from then.
    let mut began: Option<Instant> = None;
    loop {
        let deadline: Pin<Box<dyn Future<Output = ()> + Send>> = match began {
            Some(at) if *level.borrow() < Stop::Now => {
                Box::pin(tokio::time::sleep_until(at + drain_timeout))
            }
            _ => Box::pin(std::future::pending()),
        };
        tokio::select! {
            trigger = triggers.next() => match trigger {
                Trigger::Outer(to) => raise(to),
                Trigger::Signal(name) if began.is_some() => {
                    info!("{name} again; stopping the slots now");
                    raise(Stop::Now);
                }
                Trigger::Asked if began.is_some() => {
                    debug!("asked to drain again; draining already");
                }
                first @ (Trigger::Signal(_) | Trigger::Asked) => {
                    let first = match first {
                        Trigger::Signal(name) => name,
                        _ => "the coordinator asked this worker to drain",
                    };
                    began = Some(Instant::now());
                    if drain_timeout.is_zero() {
                        info!("{first}; stopping the slots");
                        raise(Stop::Now);
                    } else {
                        info!(
                            "{first}; draining: the running tasks finish and no new ones come (for at most {:.0} s); send SIGTERM or press ctrl-c again to stop at once",
                            drain_timeout.as_secs_f64()
                        );
                        raise(Stop::Draining);
                    }
                }
            },
            () = deadline => {
                warn!(
                    "the drain took longer than {:.0} s; stopping the slots now, their tasks are requeued",
                    drain_timeout.as_secs_f64()
                );
                raise(Stop::Now);
            }
            // Nobody reads the level any more: the worker is gone.
            () = level.closed() => return,
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A drain asked of the `Drainer` raises the level to `Draining`, a second ask changes
    /// nothing, and the drain timeout then stops at once, as after a first SIGTERM.
    #[tokio::test]
    async fn an_asked_drain_runs_as_the_first_signal() {
        let (_outer, levels) = watch::channel(Stop::Running);
        let Stopping { mut level, drainer } = from_level(levels, Duration::from_millis(300));
        assert_eq!(*level.borrow(), Stop::Running);
        let asked = Instant::now();
        drainer.drain();
        level.changed().await.unwrap();
        assert_eq!(*level.borrow_and_update(), Stop::Draining);
        drainer.drain();
        tokio::time::timeout(Duration::from_secs(10), level.changed())
            .await
            .expect("the drain timeout stops the worker")
            .unwrap();
        assert_eq!(*level.borrow(), Stop::Now);
        assert!(asked.elapsed() >= Duration::from_millis(300));
    }

    /// The embedding caller's levels pass through, and its dropped sender means stop now.
    #[tokio::test]
    async fn outer_levels_pass_through() {
        let (outer, levels) = watch::channel(Stop::Running);
        let Stopping { mut level, .. } = from_level(levels, Duration::from_secs(30));
        outer.send(Stop::Draining).unwrap();
        level.changed().await.unwrap();
        assert_eq!(*level.borrow_and_update(), Stop::Draining);
        drop(outer);
        level.changed().await.unwrap();
        assert_eq!(*level.borrow(), Stop::Now);
    }

    /// With a drain timeout of zero, an asked drain stops at once.
    #[tokio::test]
    async fn zero_drain_timeout_stops_at_once() {
        let (_outer, levels) = watch::channel(Stop::Running);
        let Stopping { mut level, drainer } = from_level(levels, Duration::ZERO);
        drainer.drain();
        level.changed().await.unwrap();
        assert_eq!(*level.borrow(), Stop::Now);
    }
}

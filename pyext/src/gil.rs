//! `Turns`: lets other Python threads run during a long loop of the extension that holds the
//! GIL (encoding the items of a large `submit_many`, applying a large batch of events).
//!
//! The interpreter hands the GIL to a waiting thread every 5 ms (`sys.getswitchinterval()`)
//! while it runs Python code, but not while an extension runs: a loop over 100,000 items
//! would stall an asyncio event loop in another thread for tens of milliseconds. So such a loop
//! calls `Turns::check` per item, which releases and takes back the GIL once a millisecond has
//! passed since the last time; a thread that has waited past the switch interval then gets its
//! turn, as it would have between bytecodes.

use pyo3::Python;
use std::time::{Duration, Instant};

/// How long a loop keeps the GIL between two chances for other threads.
const TURN: Duration = Duration::from_millis(1);

/// Items between two looks at the clock.
const EVERY: u32 = 256;

/// A long loop's clock (see the module).
pub struct Turns {
    since: Instant,
    count: u32,
}

impl Turns {
    /// Starts the clock.
    pub fn new() -> Turns {
        Turns {
            since: Instant::now(),
            count: 0,
        }
    }

    /// Called once per item: every `EVERY` items, if a `TURN` has passed, releases the GIL for
    /// a moment. The caller must not rely on Python state it has not locked staying unchanged
    /// across the call.
    pub fn check(&mut self, py: Python<'_>) {
        self.count += 1;
        if self.count < EVERY {
            return;
        }
        self.count = 0;
        if self.since.elapsed() >= TURN {
            py.detach(|| ());
            self.since = Instant::now();
        }
    }
}

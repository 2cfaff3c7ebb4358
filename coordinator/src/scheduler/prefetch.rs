//! How many attempts of a function a worker may hold per slot beyond the one it runs.
//!
//! A prefetched attempt waits in the worker's queue, so that a slot that finishes has its next
//! task at once instead of after a round trip and a store flush. Enough queued work to cover
//! `COVER_MS` per slot hides that gap; more only hoards tasks another worker could run. So the
//! depth is `COVER_MS` over the function's average duration, at least 1 and at most
//! `MAX_PER_SLOT`; a function whose attempts average `LONG_MS` or more gets none (a long task
//! waiting behind another long one would lose seconds another worker might have used), and a
//! function never measured gets 1 (one queued per slot), until it is. The depth grows with the
//! evidence, as TCP's slow start does: at most `2^samples`, so that one lucky first sample (a
//! start and its report seen in one round measure 0 ms) cannot hoard 512 tasks per slot.

/// The queued work per slot that prefetch aims to cover (ms): a few round trips and a flush.
pub const COVER_MS: f64 = 30.0;

/// Prefetched attempts per slot at most, however short the function.
pub const MAX_PER_SLOT: u32 = 512;

/// Functions averaging this long (ms) or longer are not prefetched at all.
pub const LONG_MS: f64 = 1000.0;

/// Bytes of specs (function, args, kwargs) a worker may hold queued per slot before it gets no
/// more prefetch: tasks with large arguments are not hoarded in its memory, whatever their
/// duration. A free slot is always filled.
pub const MAX_QUEUED_BYTES_PER_SLOT: u64 = 4 << 20;

/// The depth for a function measured at an average of `ms` over `samples` attempts (`None`:
/// never measured).
pub fn depth(measured: Option<(f64, u32)>) -> u32 {
    let Some((ms, samples)) = measured else {
        return 1;
    };
    if ms >= LONG_MS {
        return 0;
    }
    // Sub-millisecond averages are measured coarsely (see `durations`); the cap bounds them.
    let wanted = (COVER_MS / ms.max(0.01)).ceil() as u32;
    let trusted = 1u32 << samples.min(31);
    wanted.clamp(1, MAX_PER_SLOT.min(trusted))
}

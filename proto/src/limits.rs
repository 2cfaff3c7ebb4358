//! How many items one request or one worker frame may carry, and the decoding that keeps an
//! oversized list from costing memory in proportion to its length.
//!
//! A frame may be 64 MiB, and a list of tiny items (one-byte ids, reports of empty outputs)
//! decodes to many times that in memory. So every list a peer sends is decoded with
//! [`capped`]: at most `cap + 1` items are kept and the rest are read and dropped one by one
//! (the frame must still be read whole, bincode has no way to skip). A list that comes out
//! longer than its cap is refused by the coordinator: an actioner gets `TooLarge`, a worker is
//! warned about and disconnected. Honest senders cut their lists at these caps (the client's
//! batches, the worker's report frames).
//!
//! These numbers are part of the protocol: lowering one refuses what older peers may send.

use serde::de::{Deserialize, Deserializer, SeqAccess, Visitor};
use std::fmt;
use std::marker::PhantomData;

/// Task ids one actioner request may name (`Play`, `Kill`, `Wait` by ids, `Watch`).
pub const MAX_IDS_PER_REQUEST: usize = 100_000;

/// Tasks one `Add` may carry.
pub const MAX_TASKS_PER_ADD: usize = 100_000;

/// Tasks one `List` answers at most: a longer listing is read in pages (`after` the last id
/// of the page before), so that the coordinator never builds one huge reply.
pub const MAX_TASKS_PER_LIST: usize = 10_000;

/// Reports one worker `Reports` frame may carry.
pub const MAX_REPORTS_PER_FRAME: usize = 10_000;

/// Attempts one worker `Heartbeat` or `Started` may name (far more than any worker has slots).
pub const MAX_ATTEMPTS_PER_FRAME: usize = 10_000;

/// Decodes a sequence keeping at most `CAP + 1` items: a list longer than `CAP` comes out
/// with `CAP + 1` items (so the receiver sees it is too long) and the others cost nothing but
/// the time to read them.
pub fn capped<'de, D, T, const CAP: usize>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    deserializer.deserialize_seq(CappedVisitor::<T, CAP>(PhantomData))
}

struct CappedVisitor<T, const CAP: usize>(PhantomData<fn() -> T>);

impl<'de, T: Deserialize<'de>, const CAP: usize> Visitor<'de> for CappedVisitor<T, CAP> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a sequence")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        // A lying length costs no allocation past the cap.
        let hint = seq.size_hint().unwrap_or(0).min(CAP + 1).min(4096);
        let mut items = Vec::with_capacity(hint);
        while let Some(item) = seq.next_element::<T>()? {
            if items.len() <= CAP {
                items.push(item);
            }
        }
        Ok(items)
    }
}

/// `capped` for the task ids of a request.
pub fn ids<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    capped::<D, T, MAX_IDS_PER_REQUEST>(d)
}

/// `capped` for the tasks of an add.
pub fn tasks<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    capped::<D, T, MAX_TASKS_PER_ADD>(d)
}

/// `capped` for a worker's reports.
pub fn reports<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    capped::<D, T, MAX_REPORTS_PER_FRAME>(d)
}

/// `capped` for the attempts of a heartbeat or a `Started`.
pub fn attempts<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    capped::<D, T, MAX_ATTEMPTS_PER_FRAME>(d)
}

#[cfg(test)]
mod tests {
    use crate::codec::{decode, encode};
    use crate::worker::FromWorker;
    use crate::{Attempt, TaskId};

    /// A heartbeat naming more attempts than the cap decodes to cap + 1 of them, without error
    /// and without keeping the rest; one within the cap decodes unchanged.
    #[test]
    fn long_lists_are_cut_at_the_cap_plus_one() {
        let cap = super::MAX_ATTEMPTS_PER_FRAME;
        let running: Vec<_> = (0..cap as u64 + 500)
            .map(|i| (TaskId(i), Attempt(1)))
            .collect();
        let body = encode(&FromWorker::Heartbeat { running }).unwrap();
        match decode::<FromWorker>(&body).unwrap() {
            FromWorker::Heartbeat { running } => assert_eq!(running.len(), cap + 1),
            other => panic!("{other:?}"),
        }
        let fits = FromWorker::Heartbeat {
            running: vec![(TaskId(3), Attempt(2)); 7],
        };
        assert_eq!(decode::<FromWorker>(&encode(&fits).unwrap()).unwrap(), fits);
    }
}

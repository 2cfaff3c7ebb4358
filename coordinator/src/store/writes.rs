//! `Writes`: the key writes that a backend applies as one atomic unit, laid out in one buffer.
//!
//! A batch of a busy round holds a few hundred key writes (a record into `live` or `finished`,
//! a removal from `live`, an event block, a queue's record). Kept as a vector of owned keys and
//! values, each write cost two or three allocations, and each value grew by reallocation while
//! bincode encoded it; the store thread then freed them all again (measured in W1: a fifth of
//! the store thread's time was the allocator). Here every key and value is appended to one
//! byte buffer (values encoded straight into it) and an entry keeps where each one lies, so a
//! batch costs two growing vectors, whatever its size. Built on the store thread (from a
//! `Batch`, or by a migration) and only read by the backends.

use super::{bincode_config, Space, StoreError};
use serde::Serialize;

/// Where one key write lies in `Writes::bytes`.
#[derive(Debug, Clone, Copy)]
struct Entry {
    space: Space,
    /// The key is `bytes[start..key_end]`.
    start: usize,
    key_end: usize,
    /// The value is `bytes[key_end..end]`; `None` for a removal.
    end: Option<usize>,
}

/// One key written (`value` is `Some`) or removed (`None`) in a key space, as a backend sees
/// it: borrowed from the `Writes` it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Write<'a> {
    pub space: Space,
    pub key: &'a [u8],
    pub value: Option<&'a [u8]>,
}

/// Key writes in the order they are applied (a later write of the same key wins), written
/// atomically by `Backend::apply`.
#[derive(Debug, Default)]
pub(super) struct Writes {
    bytes: Vec<u8>,
    entries: Vec<Entry>,
}

impl Writes {
    /// Room for `entries` writes of `bytes` key and value bytes in all, so that a batch of a
    /// known size does not grow its buffers while it is laid out.
    pub(super) fn with_capacity(entries: usize, bytes: usize) -> Writes {
        Writes {
            bytes: Vec::with_capacity(bytes),
            entries: Vec::with_capacity(entries),
        }
    }

    /// Makes room for `entries` more writes of `bytes` more bytes.
    pub(super) fn reserve(&mut self, entries: usize, bytes: usize) {
        self.entries.reserve(entries);
        self.bytes.reserve(bytes);
    }

    /// Forgets every write and gives back buffers grown past `keep` bytes (an add of many
    /// records), so that reusing one `Writes` for every batch holds at most about that much.
    pub(super) fn release(&mut self, keep: usize) {
        self.clear();
        if self.bytes.capacity() > keep {
            self.bytes = Vec::new();
            self.entries = Vec::new();
        }
    }

    /// Writes `value` under `key` in `space` (insert or replace).
    pub(super) fn put(&mut self, space: Space, key: &[u8], value: &[u8]) {
        let (start, key_end) = self.key(key);
        self.bytes.extend_from_slice(value);
        self.entries.push(Entry {
            space,
            start,
            key_end,
            end: Some(self.bytes.len()),
        });
    }

    /// Writes the bincode of `value` under `key` in `space`, encoded in place (no buffer of
    /// its own).
    pub(super) fn put_encoded<T: Serialize + ?Sized>(
        &mut self,
        space: Space,
        key: &[u8],
        value: &T,
    ) -> Result<(), StoreError> {
        let (start, key_end) = self.key(key);
        if let Err(err) =
            bincode::serde::encode_into_std_write(value, &mut self.bytes, bincode_config())
        {
            // Leave no half-encoded value behind the last entry.
            self.bytes.truncate(start);
            return Err(StoreError::Corrupt(err.to_string()));
        }
        self.entries.push(Entry {
            space,
            start,
            key_end,
            end: Some(self.bytes.len()),
        });
        Ok(())
    }

    /// Removes `key` from `space`.
    pub(super) fn remove(&mut self, space: Space, key: &[u8]) {
        let (start, key_end) = self.key(key);
        self.entries.push(Entry {
            space,
            start,
            key_end,
            end: None,
        });
    }

    /// Appends `key` to the buffer; where it lies.
    fn key(&mut self, key: &[u8]) -> (usize, usize) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(key);
        (start, self.bytes.len())
    }

    /// How many writes there are.
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub(super) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Forgets every write, keeping the buffers for the next ones (a migration writes chunk
    /// after chunk).
    pub(super) fn clear(&mut self) {
        self.bytes.clear();
        self.entries.clear();
    }

    /// The writes in order.
    pub(super) fn iter(&self) -> impl ExactSizeIterator<Item = Write<'_>> + '_ {
        self.entries.iter().map(|entry| Write {
            space: entry.space,
            key: &self.bytes[entry.start..entry.key_end],
            value: entry.end.map(|end| &self.bytes[entry.key_end..end]),
        })
    }

    /// The bytes of key and value of each write (for tests of the layout).
    #[cfg(test)]
    pub(super) fn spans(&self) -> Vec<std::ops::Range<usize>> {
        self.entries
            .iter()
            .map(|entry| entry.start..entry.end.unwrap_or(entry.key_end))
            .collect()
    }
}

/// Test and migration writes given as owned triples, as they used to be written.
impl<K: AsRef<[u8]>, V: AsRef<[u8]>> FromIterator<(Space, K, Option<V>)> for Writes {
    fn from_iter<I: IntoIterator<Item = (Space, K, Option<V>)>>(writes: I) -> Writes {
        let mut laid = Writes::default();
        for (space, key, value) in writes {
            match value {
                Some(value) => laid.put(space, key.as_ref(), value.as_ref()),
                None => laid.remove(space, key.as_ref()),
            }
        }
        laid
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{decode, encode};

    /// Keys and values read back as written, in order, removals without a value, and an
    /// encoded value is exactly what `encode` makes of it.
    #[test]
    fn writes_read_back_in_order() {
        let mut writes = Writes::default();
        writes.put(Space::Meta, b"next_task_id", &7u64.to_be_bytes());
        writes.remove(Space::Live, &3u64.to_be_bytes());
        let record = vec!["a".to_string(), "bc".to_string()];
        writes
            .put_encoded(Space::Finished, &3u64.to_be_bytes(), &record)
            .unwrap();
        writes.put(Space::Queues, b"", b"");
        assert_eq!(writes.len(), 4);
        let read: Vec<Write<'_>> = writes.iter().collect();
        assert_eq!(
            read[0],
            Write {
                space: Space::Meta,
                key: b"next_task_id",
                value: Some(&7u64.to_be_bytes()[..]),
            }
        );
        assert_eq!(read[1].space, Space::Live);
        assert_eq!(read[1].key, 3u64.to_be_bytes());
        assert_eq!(read[1].value, None);
        let encoded = encode(&record).unwrap();
        assert_eq!(read[2].value, Some(encoded.as_slice()));
        assert_eq!(
            decode::<Vec<String>>(read[2].value.unwrap()).unwrap(),
            record
        );
        assert_eq!(read[3].key, b"");
        assert_eq!(read[3].value, Some(&b""[..]));
        // One buffer, the writes back to back.
        let spans = writes.spans();
        for pair in spans.windows(2) {
            assert_eq!(pair[0].end, pair[1].start);
        }
        writes.clear();
        assert!(writes.is_empty());
        assert_eq!(writes.iter().count(), 0);
    }

    /// Triples collect into the same writes as `put` and `remove` make.
    #[test]
    fn triples_collect_in_order() {
        let writes: Writes = [
            (Space::Live, b"k1".to_vec(), Some(b"v1".to_vec())),
            (Space::Live, b"k2".to_vec(), None),
        ]
        .into_iter()
        .collect();
        let read: Vec<(Space, Vec<u8>, Option<Vec<u8>>)> = writes
            .iter()
            .map(|w| (w.space, w.key.to_vec(), w.value.map(<[u8]>::to_vec)))
            .collect();
        assert_eq!(
            read,
            vec![
                (Space::Live, b"k1".to_vec(), Some(b"v1".to_vec())),
                (Space::Live, b"k2".to_vec(), None),
            ]
        );
    }
}

//! `IdHasher`: the hasher of the client's sets and maps keyed by task id (`routes`: the
//! watched tasks, the ends that came early), which take an insert and a remove per task
//! submitted through the pipeline.
//!
//! std's default, SipHash with random keys, resists keys chosen to collide, at ~20 ns a key
//! and no locality: in W1 through `submit_many` the removes alone were a quarter of the
//! client's runtime thread. Task ids come from the coordinator, which the client trusts with
//! far more than its hash tables, and mostly in order; so an id's low bits are kept as they are
//! (neighbouring ids land in neighbouring buckets, and a table walked in id order stays in
//! cache) and only the top 7 bits, which hashbrown uses as a tag to tell the entries of one
//! group apart, are mixed from the whole id.

use std::hash::{BuildHasherDefault, Hasher};

/// Builds `IdHasher`s: the `S` of `HashMap<TaskId, _, IdHash>` and `HashSet<TaskId, IdHash>`.
pub(crate) type IdHash = BuildHasherDefault<IdHasher>;

/// Fibonacci hashing's multiplier (2^64 / φ), whose top bits mix all of an id's bits.
const MIX: u64 = 0x9E37_79B9_7F4A_7C15;

/// The top 7 bits: the tag hashbrown compares within a group.
const TAG: u64 = 0xFE00_0000_0000_0000;

/// See the module. Made for one `u64` per key (what `TaskId` hashes as).
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write_u64(&mut self, n: u64) {
        let id = self.0 ^ n;
        self.0 = (id & !TAG) | (id.wrapping_mul(MIX) & TAG);
    }

    /// Other keys (none today) are hashed 8 bytes at a time, as `write_u64` does.
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            let n = u64::from_le_bytes(word);
            self.write_u64(self.0.rotate_left(29) ^ n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::hash::BuildHasher;
    use tatzelwurm_proto::TaskId;

    fn hash(id: u64) -> u64 {
        IdHash::default().hash_one(TaskId(id))
    }

    /// Neighbouring ids keep neighbouring low bits (buckets), and their tags differ.
    #[test]
    fn ids_keep_their_low_bits_and_get_mixed_tags() {
        for id in [0u64, 1, 2, 1000, 1 << 40] {
            assert_eq!(hash(id) & !TAG, id & !TAG);
        }
        let tags: HashSet<u64> = (0..1000).map(|id| hash(id) >> 57).collect();
        assert!(tags.len() > 100, "only {} tags of 128", tags.len());
    }

    /// A set of this hasher holds, finds and removes ids as any set does.
    #[test]
    fn a_set_of_ids_works() {
        let mut set: HashSet<TaskId, IdHash> = HashSet::default();
        for id in (0..10_000).rev() {
            assert!(set.insert(TaskId(id)));
        }
        assert!(set.contains(&TaskId(4_321)));
        assert!((0..10_000).all(|id| set.remove(&TaskId(id))));
        assert!(set.is_empty());
    }
}

//! `IdBits`: a set of task ids within one range, kept as a bit per id of the range.
//!
//! The waiters (a wide, dense `task wait`) and the watchers (a watched add's run of new ids)
//! both keep many task ids that are mostly consecutive and leave one by one as tasks finish: a
//! bit test and clear per finishing task, where a hash set paid a removal and held an entry per
//! task. Plain data, tested below.

use tatzelwurm_proto::TaskId;

/// The ids still in the set among `from..from + 64 * words.len()`, and how many there are.
#[derive(Debug)]
pub struct IdBits {
    /// The id of bit 0.
    from: u64,
    /// Bit `i` of the whole (word `i / 64`, bit `i % 64`) set: id `from + i` is in the set.
    words: Vec<u64>,
    /// How many bits are set.
    len: usize,
}

impl IdBits {
    /// The set of `ids`, each in `from..from + span` (an id outside is left out).
    pub fn of(from: u64, span: u64, ids: &[TaskId]) -> IdBits {
        let mut set = IdBits {
            from,
            words: vec![0; span.div_ceil(64) as usize],
            len: 0,
        };
        for id in ids {
            let at = id.0.wrapping_sub(from);
            if at < span {
                let (word, bit) = place(at);
                set.len += usize::from(set.words[word] & bit == 0);
                set.words[word] |= bit;
            }
        }
        set
    }

    /// The set of every id from `first` to `last`, both included.
    pub fn all(first: TaskId, last: TaskId) -> IdBits {
        let len = (last.0 - first.0 + 1) as usize;
        let mut words = vec![u64::MAX; len.div_ceil(64)];
        if len % 64 != 0 {
            *words.last_mut().expect("at least one id") = (1u64 << (len % 64)) - 1;
        }
        IdBits {
            from: first.0,
            words,
            len,
        }
    }

    /// Removes `id`; whether it was in the set.
    pub fn take(&mut self, id: TaskId) -> bool {
        let Some(at) = id.0.checked_sub(self.from) else {
            return false;
        };
        let (word, bit) = place(at);
        let Some(word) = self.words.get_mut(word) else {
            return false;
        };
        let was = *word & bit != 0;
        *word &= !bit;
        self.len -= usize::from(was);
        was
    }

    /// How many ids are in the set.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no id is left.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The word and the bit within it of offset `at`.
fn place(at: u64) -> (usize, u64) {
    ((at / 64) as usize, 1u64 << (at % 64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(ids: &[u64]) -> Vec<TaskId> {
        ids.iter().map(|&id| TaskId(id)).collect()
    }

    /// A set of some ids holds exactly those (each once) and gives each back once.
    #[test]
    fn holds_and_gives_back_exactly_its_ids() {
        let mut set = IdBits::of(100, 200, &ids(&[100, 163, 164, 299, 164, 300, 99]));
        assert_eq!(
            set.len(),
            4,
            "100, 163, 164, 299; a repeat and ids outside left out"
        );
        for id in [99, 101, 162, 300, 1000, 0] {
            assert!(!set.take(TaskId(id)), "{id} is not in it");
        }
        for id in [164, 100, 299, 163] {
            assert!(set.take(TaskId(id)));
            assert!(!set.take(TaskId(id)), "{id} leaves once");
        }
        assert!(set.is_empty());
    }

    /// `all` holds every id of its range, at word boundaries too, and nothing beside it.
    #[test]
    fn all_holds_its_whole_range() {
        for (first, last) in [(1, 1), (10, 73), (0, 63), (5, 132)] {
            let mut set = IdBits::all(TaskId(first), TaskId(last));
            assert_eq!(set.len() as u64, last - first + 1);
            assert!(!set.take(TaskId(last + 1)));
            if first > 0 {
                assert!(!set.take(TaskId(first - 1)));
            }
            for id in first..=last {
                assert!(set.take(TaskId(id)), "{id} of {first}..={last}");
            }
            assert!(set.is_empty());
        }
    }
}

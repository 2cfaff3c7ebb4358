//! Cutting a long list into batches that each fit a frame.
//!
//! Messages carry batches (many tasks or reports per frame), but a frame has a size limit, so
//! every sender of a large list cuts it the same way: in order, at most `max_items` per batch
//! and about `max_bytes` of payload, a single larger item getting a batch of its own.

/// Tasks the first `Add` of a burst carries at most; the adds after it grow to twice the tasks
/// sent before them (`add_cap`), up to the frame's worth.
///
/// The coordinator hands a round's new tasks out only once the round is durable, and a round's
/// flush grows with its tasks (a few µs each): one `Add` of 10,000 tasks kept every slot of W1
/// idle for the ~50 ms of its flush. A first add of 1,000 is durable in a few milliseconds, and
/// its tasks run while the larger adds behind it flush, as TCP's slow start fills a link. A
/// million tasks take six more adds than at full size from the start.
pub const FIRST_ADD_TASKS: usize = 1_000;

/// The most tasks the next `Add` of a burst carries when `sent` tasks of the burst went before
/// it (acknowledged or in flight): `FIRST_ADD_TASKS` at first, then `sent` (each add as many as
/// all before it), never more than `max`.
pub fn add_cap(sent: usize, max: usize) -> usize {
    sent.max(FIRST_ADD_TASKS).min(max)
}

/// Splits `items` into batches of at most `max_items` items whose `weight`s add up to at most
/// `max_bytes` (an item heavier than that alone forms a batch). Order is kept.
pub fn batches<T>(
    items: impl IntoIterator<Item = T>,
    max_items: usize,
    max_bytes: usize,
    weight: impl Fn(&T) -> usize,
) -> Vec<Vec<T>> {
    Cut::new(items.into_iter(), |_| max_items, max_bytes, weight).collect()
}

/// `batches` of tasks to add, the first ones smaller (`add_cap`): the batches of one burst.
pub fn add_batches<T>(
    items: impl IntoIterator<Item = T>,
    max_items: usize,
    max_bytes: usize,
    weight: impl Fn(&T) -> usize,
) -> Vec<Vec<T>> {
    add_batches_lazily(items, max_items, max_bytes, weight).collect()
}

/// The batches of `add_batches`, each cut only when it is asked for: a sender builds and sends
/// the first batch before it has looked at the items of the others, and holds one batch at a
/// time instead of all of them.
pub fn add_batches_lazily<T>(
    items: impl IntoIterator<Item = T>,
    max_items: usize,
    max_bytes: usize,
    weight: impl Fn(&T) -> usize,
) -> impl Iterator<Item = Vec<T>> {
    Cut::new(
        items.into_iter(),
        move |sent| add_cap(sent, max_items),
        max_bytes,
        weight,
    )
}

/// Most items a batch reserves room for before it is filled: the count limit or the items
/// left, whichever is less, up to this (so that a batch cut by bytes from a long list does not
/// reserve room for the whole list).
const RESERVE_ITEMS: usize = 4_096;

/// The cut of `batches`, one batch per `next`, with a count limit that depends on the items in
/// earlier batches.
struct Cut<I: Iterator, M, W> {
    items: I,
    /// The item (and its weight) that did not fit the batch before, which opens the next one.
    held: Option<(I::Item, usize)>,
    max_items: M,
    max_bytes: usize,
    weight: W,
    /// Items in the batches cut so far.
    sent: usize,
}

impl<I, M, W> Cut<I, M, W>
where
    I: Iterator,
    M: Fn(usize) -> usize,
    W: Fn(&I::Item) -> usize,
{
    fn new(items: I, max_items: M, max_bytes: usize, weight: W) -> Self {
        Cut {
            items,
            held: None,
            max_items,
            max_bytes,
            weight,
            sent: 0,
        }
    }
}

impl<I, M, W> Iterator for Cut<I, M, W>
where
    I: Iterator,
    M: Fn(usize) -> usize,
    W: Fn(&I::Item) -> usize,
{
    type Item = Vec<I::Item>;

    fn next(&mut self) -> Option<Vec<I::Item>> {
        let (first, mut bytes) = match self.held.take() {
            Some(held) => held,
            None => {
                let item = self.items.next()?;
                let size = (self.weight)(&item);
                (item, size)
            }
        };
        let limit = (self.max_items)(self.sent).max(1);
        let room = limit.min(self.items.size_hint().0.saturating_add(1));
        let mut batch = Vec::with_capacity(room.min(RESERVE_ITEMS));
        batch.push(first);
        for item in self.items.by_ref() {
            let size = (self.weight)(&item);
            if batch.len() >= limit || bytes + size > self.max_bytes {
                self.held = Some((item, size));
                break;
            }
            bytes += size;
            batch.push(item);
        }
        self.sent += batch.len();
        Some(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::batches;

    fn sizes(batches: &[Vec<usize>]) -> Vec<usize> {
        batches.iter().map(Vec::len).collect()
    }

    /// Batches close on the item count, on the byte budget, and an oversized item stands alone.
    #[test]
    fn closes_on_count_and_bytes() {
        assert_eq!(sizes(&batches(vec![1; 5], 2, 100, |w| *w)), vec![2, 2, 1]);
        assert_eq!(sizes(&batches(vec![40; 5], 10, 100, |w| *w)), vec![2, 2, 1]);
        assert_eq!(
            sizes(&batches(vec![10, 500, 10], 10, 100, |w| *w)),
            vec![1, 1, 1]
        );
        assert!(batches(Vec::<usize>::new(), 2, 100, |w| *w).is_empty());
    }

    /// A burst of adds starts at `FIRST_ADD_TASKS` and doubles what went before, up to the
    /// frame's count; the byte budget still closes a batch early.
    #[test]
    fn adds_start_small_and_grow() {
        let first = super::FIRST_ADD_TASKS;
        let cut = super::add_batches(vec![1; 10 * first], 50 * first, usize::MAX, |w| *w);
        assert_eq!(
            sizes(&cut),
            vec![first, first, 2 * first, 4 * first, 2 * first]
        );
        let capped = super::add_batches(vec![1; 6 * first], 2 * first, usize::MAX, |w| *w);
        assert_eq!(sizes(&capped), vec![first, first, 2 * first, 2 * first]);
        let heavy = super::add_batches(vec![60; 3], 10, 100, |w| *w);
        assert_eq!(sizes(&heavy), vec![1, 1, 1]);
        assert_eq!(super::add_cap(0, 50_000), first);
        assert_eq!(super::add_cap(3 * first, 50_000), 3 * first);
        assert_eq!(super::add_cap(80_000, 50_000), 50_000);
    }

    /// Cut lazily, the batches are those of `add_batches`, and the first is cut having looked
    /// at only its own items and the one that closes it.
    #[test]
    fn lazy_batches_are_the_same_and_look_ahead_one_item() {
        let first = super::FIRST_ADD_TASKS;
        let items = || (0..5 * first + 7).map(|i| i % 300);
        let eager = super::add_batches(items(), 3 * first, 50 * first, |w| *w);
        let lazy: Vec<Vec<usize>> =
            super::add_batches_lazily(items(), 3 * first, 50 * first, |w| *w).collect();
        assert_eq!(lazy, eager);
        let looked = std::cell::Cell::new(0);
        let mut cut = super::add_batches_lazily(
            (0..10 * first).inspect(|_| looked.set(looked.get() + 1)),
            50 * first,
            usize::MAX,
            |_| 1,
        );
        assert_eq!(cut.next().map(|batch| batch.len()), Some(first));
        assert_eq!(looked.get(), first + 1);
        assert_eq!(cut.map(|batch| batch.len()).sum::<usize>(), 9 * first);
    }
}

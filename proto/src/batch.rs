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
    cut(items, |_| max_items, max_bytes, weight)
}

/// `batches` of tasks to add, the first ones smaller (`add_cap`): the batches of one burst.
pub fn add_batches<T>(
    items: impl IntoIterator<Item = T>,
    max_items: usize,
    max_bytes: usize,
    weight: impl Fn(&T) -> usize,
) -> Vec<Vec<T>> {
    cut(items, |sent| add_cap(sent, max_items), max_bytes, weight)
}

/// The cut of `batches` with a count limit that depends on the items in earlier batches.
fn cut<T>(
    items: impl IntoIterator<Item = T>,
    max_items: impl Fn(usize) -> usize,
    max_bytes: usize,
    weight: impl Fn(&T) -> usize,
) -> Vec<Vec<T>> {
    let mut batches = Vec::new();
    let mut batch = Vec::new();
    let mut bytes = 0;
    let mut sent = 0;
    let mut limit = max_items(0).max(1);
    for item in items {
        let size = weight(&item);
        if !batch.is_empty() && (batch.len() >= limit || bytes + size > max_bytes) {
            sent += batch.len();
            limit = max_items(sent).max(1);
            batches.push(std::mem::take(&mut batch));
            bytes = 0;
        }
        bytes += size;
        batch.push(item);
    }
    if !batch.is_empty() {
        batches.push(batch);
    }
    batches
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
}

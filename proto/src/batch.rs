//! Cutting a long list into batches that each fit a frame.
//!
//! Messages carry batches (many tasks or reports per frame), but a frame has a size limit, so
//! every sender of a large list cuts it the same way: in order, at most `max_items` per batch
//! and about `max_bytes` of payload, a single larger item getting a batch of its own.

/// Splits `items` into batches of at most `max_items` items whose `weight`s add up to at most
/// `max_bytes` (an item heavier than that alone forms a batch). Order is kept.
pub fn batches<T>(
    items: impl IntoIterator<Item = T>,
    max_items: usize,
    max_bytes: usize,
    weight: impl Fn(&T) -> usize,
) -> Vec<Vec<T>> {
    let mut batches = Vec::new();
    let mut batch = Vec::new();
    let mut bytes = 0;
    for item in items {
        let size = weight(&item);
        if !batch.is_empty() && (batch.len() == max_items || bytes + size > max_bytes) {
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
}

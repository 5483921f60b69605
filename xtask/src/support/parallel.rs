//! Independent jobs side by side: guests under qemu's TCG use one core
//! each, so a 2-core machine runs two at once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Run `f` on every item, at most `workers` at a time; the results in the
/// items' order, whatever order they finish in.
pub fn map<T: Sync, R: Send>(items: &[T], workers: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..workers.max(1).min(items.len().max(1)) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(item) = items.get(i) else { break };
                let r = f(item);
                results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(r);
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .map(|r| r.expect("every item ran"))
        .collect()
}

/// How many guests to run at once: one per core (each qemu TCG guest and
/// each UML guest keeps one core busy), `--jobs` when given.
pub fn guest_workers(jobs: usize) -> usize {
    jobs.max(1)
}

#[cfg(test)]
mod tests {
    #[test]
    fn results_keep_the_items_order_and_run_side_by_side() {
        let items: Vec<u64> = (0..8).collect();
        let start = std::time::Instant::now();
        let out = super::map(&items, 4, |&i| {
            std::thread::sleep(std::time::Duration::from_millis(100 * (8 - i) / 4));
            i * 10
        });
        assert_eq!(out, (0..8).map(|i| i * 10).collect::<Vec<_>>());
        // Serially 0.9 s; four at a time well under that.
        assert!(start.elapsed().as_millis() < 700, "{:?}", start.elapsed());
        assert!(super::map(&Vec::<u8>::new(), 2, |_| 1).is_empty());
    }
}

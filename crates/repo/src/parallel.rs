//! Handing a list of work to every thread of the rayon pool from one
//! cursor, in list order, each thread with state of its own (a read
//! window, a pack buffer) kept across all the items it takes.
//!
//! Rayon's own splitting restarts per-split state whenever work is stolen
//! (a fresh 16 MiB pack buffer is 4096 page faults to fill) and can leave
//! one thread alone with the tail of its half of the list.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Runs `f` on every item, on every pool thread at once, items taken in
/// order; returns the results in the order of `items`.
pub fn map_in_order<T, S, R>(items: &[T], init: impl Fn() -> S + Sync, f: impl Fn(&mut S, &T) -> R + Sync) -> Vec<R>
where
    T: Sync,
    R: Send,
{
    let next = AtomicUsize::new(0);
    let mut done: Vec<(usize, R)> = rayon::broadcast(|_| {
        let mut state = init();
        let mut out = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(i) else { break };
            out.push((i, f(&mut state, item)));
        }
        out
    })
    .into_iter()
    .flatten()
    .collect();
    done.sort_unstable_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_item_once_results_in_order_state_per_thread() {
        let items: Vec<u32> = (0..1000).collect();
        let inits = AtomicUsize::new(0);
        let out = map_in_order(
            &items,
            || {
                inits.fetch_add(1, Ordering::Relaxed);
                0u32
            },
            |seen, x| {
                *seen += 1;
                x * 2
            },
        );
        assert_eq!(out, items.iter().map(|x| x * 2).collect::<Vec<_>>());
        // One state per pool thread, not per item or per split.
        assert_eq!(inits.load(Ordering::Relaxed), rayon::current_num_threads());
        assert!(map_in_order(&[] as &[u32], || (), |_, x| *x).is_empty());
    }
}

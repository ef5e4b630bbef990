//! A cache bounded by the bytes it holds, least recently used out first:
//! what random-access readers share (a mount's threads, a browser's
//! requests): windows of packs here, decoded blobs and trees in cairn-view.
//! Its memory is the budget, not the number of readers or open files.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::sync::{Arc, Mutex};

/// Least-recently-used values up to a total cost in bytes.
pub struct Lru<K, V> {
    budget: u64,
    inner: Mutex<Inner<K, V>>,
}

struct Inner<K, V> {
    /// Value, its cost, and the tick of its last use.
    map: HashMap<K, (Arc<V>, u64, u64)>,
    /// Keys by last use, oldest first.
    order: BTreeMap<u64, K>,
    used: u64,
    tick: u64,
}

impl<K: Hash + Eq + Clone, V> Lru<K, V> {
    /// An empty cache holding at most `budget` bytes.
    pub fn new(budget: u64) -> Self {
        Self { budget, inner: Mutex::new(Inner { map: HashMap::new(), order: BTreeMap::new(), used: 0, tick: 0 }) }
    }

    /// The value for `key`, now the most recently used.
    pub fn get(&self, key: &K) -> Option<Arc<V>> {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let inner = &mut *guard;
        inner.tick += 1;
        let tick = inner.tick;
        let (value, _, last) = inner.map.get_mut(key)?;
        inner.order.remove(last);
        *last = tick;
        inner.order.insert(tick, key.clone());
        Some(value.clone())
    }

    /// Keeps `value` at `cost` bytes, dropping the least recently used
    /// values to make room. A value larger than the whole budget is not kept.
    pub fn insert(&self, key: K, value: Arc<V>, cost: u64) {
        if cost > self.budget {
            return;
        }
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let inner = &mut *guard;
        if let Some((_, old_cost, old_tick)) = inner.map.remove(&key) {
            inner.order.remove(&old_tick);
            inner.used -= old_cost;
        }
        while inner.used + cost > self.budget {
            let Some((_, oldest)) = inner.order.pop_first() else { break };
            if let Some((_, c, _)) = inner.map.remove(&oldest) {
                inner.used -= c;
            }
        }
        inner.tick += 1;
        let tick = inner.tick;
        inner.order.insert(tick, key.clone());
        inner.map.insert(key, (value, cost, tick));
        inner.used += cost;
    }

    /// Bytes held now.
    pub fn used(&self) -> u64 {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).used
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_used_goes_first_and_the_budget_holds() {
        let lru = Lru::new(10);
        lru.insert("a", Arc::new(1), 4);
        lru.insert("b", Arc::new(2), 4);
        assert_eq!(lru.get(&"a").as_deref(), Some(&1)); // a is now newer than b
        lru.insert("c", Arc::new(3), 4);
        assert_eq!(lru.get(&"b"), None);
        assert_eq!(lru.get(&"a").as_deref(), Some(&1));
        assert_eq!(lru.used(), 8);
        lru.insert("huge", Arc::new(4), 11);
        assert_eq!(lru.get(&"huge"), None);
        lru.insert("a", Arc::new(5), 2);
        assert_eq!((lru.get(&"a").as_deref(), lru.used()), (Some(&5), 6));
    }
}

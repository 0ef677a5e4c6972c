//! A lookup cache with a fixed number of entries, for tables keyed by what the traced machine
//! decides (command names, code addresses): a tracer that runs for weeks as a service must not
//! grow with every distinct thread name the host ever ran.

use std::{collections::HashMap, hash::Hash};

use foldhash::fast::RandomState;

/// Remembers at most `capacity` values. When full, it forgets everything and starts again:
/// the values are shared (reference-counted text), so events already made keep theirs, and a
/// working set that fits is back within a few events, while one that does not fit costs a
/// rebuild per `capacity` misses instead of memory without bound.
#[derive(Debug)]
pub(crate) struct BoundedCache<K, V> {
    /// Seeded per process: the keys are chosen by whatever runs on the host.
    map: HashMap<K, V, RandomState>,
    capacity: usize,
}

impl<K: Hash + Eq, V: Clone> BoundedCache<K, V> {
    pub(crate) fn new(capacity: usize) -> Self {
        BoundedCache { map: HashMap::default(), capacity: capacity.max(1) }
    }

    /// The value for `key`, made by `make` when it is not remembered.
    pub(crate) fn get_or_insert_with(&mut self, key: K, make: impl FnOnce() -> V) -> V {
        if let Some(value) = self.map.get(&key) {
            return value.clone();
        }
        if self.map.len() >= self.capacity {
            // `clear` keeps the table's allocation, which is what `capacity` bounds.
            self.map.clear();
        }
        let value = make();
        self.map.insert(key, value.clone());
        value
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_holds_more_than_its_capacity_and_still_answers_right() {
        let mut cache = BoundedCache::new(4);
        let mut made = 0;
        for round in 0..3 {
            for key in 0..10u32 {
                let value = cache.get_or_insert_with(key, || {
                    made += 1;
                    key * 2
                });
                assert_eq!(value, key * 2, "round {round} key {key}");
                assert!(cache.len() <= 4, "{} entries", cache.len());
            }
        }
        // Ten keys through four slots: every lookup after the first fill is a miss.
        assert_eq!(made, 30);
    }

    #[test]
    fn a_working_set_that_fits_is_made_once() {
        let mut cache = BoundedCache::new(8);
        let mut made = 0;
        for _ in 0..5 {
            for key in ["qemu-system-x86", "kvm-nx-lpage-re", "oom_reaper"] {
                cache.get_or_insert_with(key, || {
                    made += 1;
                    key.len()
                });
            }
        }
        assert_eq!(made, 3);
        assert_eq!(cache.len(), 3);
    }
}

//! Counters by name (signature failures by reason, deliveries by outcome, …), shown on the admin
//! status route. Cheap: one mutex-guarded map, touched on failure paths and once per event.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Named monotonic counters.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    counters: Mutex<BTreeMap<String, u64>>,
}

impl Metrics {
    /// Adds one to `name`.
    pub(crate) fn incr(&self, name: &str) {
        let mut counters = self.counters.lock().expect("metrics lock");
        // The name is copied only the first time it is counted.
        match counters.get_mut(name) {
            Some(n) => *n += 1,
            None => {
                counters.insert(name.to_owned(), 1);
            }
        }
    }

    /// The current value of `name`.
    pub(crate) fn get(&self, name: &str) -> u64 {
        self.counters.lock().expect("metrics lock").get(name).copied().unwrap_or(0)
    }

    /// All counters.
    pub(crate) fn snapshot(&self) -> BTreeMap<String, u64> {
        self.counters.lock().expect("metrics lock").clone()
    }
}

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
        *self.counters.lock().expect("metrics lock").entry(name.to_owned()).or_default() += 1;
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

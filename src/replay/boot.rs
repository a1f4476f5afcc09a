//! Which kernel boot this process runs under: Linux's random boot id (new at every boot, the same
//! for every process and container of one boot) and the boot time. The replay store compares the
//! boot id with the one recorded by the process that wrote its records: the same id means the page
//! cache kept every record, another id means a kernel restart may have lost the unsynced tail.

/// The current boot, or what is known of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Boot {
    /// `/proc/sys/kernel/random/boot_id` (None where the kernel has none).
    pub(crate) id: Option<String>,
    /// Unix seconds of the boot (`btime` in `/proc/stat`).
    pub(crate) booted_at: Option<u64>,
}

impl Boot {
    /// Reads the running kernel's boot id and boot time.
    pub(crate) fn current() -> Self {
        let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .ok()
            .map(|s| s.trim().to_owned())
            .filter(|s| {
                !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
            });
        let booted_at = std::fs::read_to_string("/proc/stat").ok().and_then(|stat| {
            stat.lines().find_map(|l| l.strip_prefix("btime ")).and_then(|v| v.trim().parse().ok())
        });
        Self { id, booted_at }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_os = "linux")]
    fn linux_has_a_boot_id_and_a_boot_time_in_the_past() {
        let boot = Boot::current();
        assert_eq!(boot.id.as_deref().map(str::len), Some(36));
        assert!(boot.booted_at.is_some_and(|b| b > 1_500_000_000 && b <= crate::clock::unix_now()));
    }
}

//! File descriptors: the daemon's budget of them, so that no flood can use the last one.
//!
//! GLib aborts the whole process when it cannot make the pipes of a new pipeline ("Creating
//! pipes for GWakeup: Too many open files"). So at start the soft limit is raised to the hard
//! one (systemd's unit sets it), connections get a quarter of it, at most 512
//! (`connection_budget`), and a
//! new call, viewer or snapshot is refused while fewer than `PIPELINE_RESERVE` are free
//! (`check_reserve`), with a clear message instead of an abort.

use nix::sys::resource::{Resource, getrlimit, setrlimit};
use thiserror::Error;

/// Descriptors that must be free to start a pipeline: a call's peer uses ~20 (sockets per ICE
/// candidate, GLib's wakeup pipes, DTLS), the source ~15 more; the rest is headroom for the
/// owner's own requests.
pub const PIPELINE_RESERVE: usize = 96;
/// The most connections the budget allows, however many descriptors there are: 500 idle TLS
/// connections added 7.3 MB to the daemon's RSS (docs/benchmarks.md), so 512 of them cost a
/// 512 MiB board under 8 MB.
const MAX_CONNECTIONS: usize = 512;
/// The highest the soft limit is raised to, even when the hard limit is higher.
const RAISE_AT_MOST: libc::rlim_t = 65_536;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "the device is short of file descriptors ({open} of {limit} open): refused until some \
     connections close"
)]
pub struct Exhausted {
    pub open: usize,
    pub limit: usize,
}

/// Raises the soft descriptor limit to the hard one (at most `RAISE_AT_MOST`) and returns the
/// limit in force.
pub fn raise_limit() -> usize {
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) => {
            let wanted = hard.min(RAISE_AT_MOST);
            if soft < wanted && setrlimit(Resource::RLIMIT_NOFILE, wanted, hard).is_ok() {
                return to_usize(wanted);
            }
            to_usize(soft)
        }
        Err(_) => 1024,
    }
}

/// `rlim_t` is 64 bits on aarch64 and x86_64, 32 on armv7.
fn to_usize(value: libc::rlim_t) -> usize {
    usize::try_from(value).unwrap_or(usize::MAX)
}

/// The soft limit in force now.
pub fn limit() -> usize {
    getrlimit(Resource::RLIMIT_NOFILE).map_or(1024, |(soft, _)| to_usize(soft))
}

/// Descriptors open in this process now (the entries of `/proc/self/fd`, less the one reading
/// it); `None` where that cannot be read.
pub fn open_now() -> Option<usize> {
    let entries = std::fs::read_dir("/proc/self/fd").ok()?;
    Some(entries.count().saturating_sub(1))
}

/// Connections both listeners may hold at once under a limit of `limit` descriptors.
pub fn connection_budget(limit: usize) -> usize {
    (limit / 4).clamp(16, MAX_CONNECTIONS)
}

/// Whether a new pipeline may start: at least `PIPELINE_RESERVE` descriptors free.
pub fn check_reserve() -> Result<(), Exhausted> {
    let limit = limit();
    match open_now() {
        Some(open) if open + PIPELINE_RESERVE > limit => Err(Exhausted { open, limit }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_get_a_quarter_within_bounds() {
        assert_eq!(connection_budget(1024), 256);
        assert_eq!(connection_budget(4096), 512);
        assert_eq!(connection_budget(16), 16);
        assert_eq!(connection_budget(1 << 20), MAX_CONNECTIONS);
    }

    #[test]
    fn this_process_has_descriptors_to_spare() {
        let open = open_now().expect("/proc/self/fd");
        assert!(open >= 3, "stdin, stdout, stderr at least: {open}");
        assert!(open < limit());
        assert!(check_reserve().is_ok());
    }
}

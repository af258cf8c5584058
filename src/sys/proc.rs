//! What `/proc` and `sysconf` say of processes: one place that parses it.
//!
//! - `/proc/<pid>/stat` and `/proc/<pid>/statm`: a process's CPU time, resident memory and
//!   start time ([`usage`], [`start_time`]);
//! - `/proc/self/status`: this process's thread count ([`thread_count`]);
//! - `/proc/self/fd/<fd>`: the link that names the file behind a descriptor ([`fd_link`],
//!   [`fd_path`]).

use std::os::fd::RawFd;
use std::path::PathBuf;
use std::time::Duration;

/// A process's use of the machine (what a pool reports of its workers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Usage {
    /// User plus system CPU time it has used.
    pub(crate) cpu: Duration,
    /// Its resident set size.
    pub(crate) rss_bytes: u64,
}

/// `pid`'s CPU time and resident memory, or `None` when it is gone.
pub(crate) fn usage(pid: u32) -> Option<Usage> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    parse_usage(&stat, &statm, clock_ticks(), page_size())
}

/// The fields of `/proc/<pid>/stat` from field 3 (state) on: the command name (field 2) may
/// hold spaces and parentheses, so they are counted from its last `)`.
fn stat_fields(stat: &str) -> Option<impl Iterator<Item = &str>> {
    Some(stat[stat.rfind(')')? + 1..].split_ascii_whitespace())
}

/// CPU time (utime + stime, fields 14 and 15 of `stat`, in clock ticks) and RSS (field 2 of
/// `statm`, in pages).
fn parse_usage(stat: &str, statm: &str, ticks: u64, page: u64) -> Option<Usage> {
    let mut fields = stat_fields(stat)?.skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let resident: u64 = statm.split_ascii_whitespace().nth(1)?.parse().ok()?;
    let total = utime.checked_add(stime)?;
    let ticks = ticks.max(1);
    let cpu = Duration::from_secs(total / ticks)
        + Duration::from_nanos((total % ticks) * 1_000_000_000 / ticks);
    Some(Usage {
        cpu,
        rss_bytes: resident.checked_mul(page)?,
    })
}

/// The start time of process `pid` in clock ticks since boot (field 22 of /proc/PID/stat).
/// With the pid it names a process uniquely: a recycled pid has a later start time.
pub(crate) fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_start_time(&stat)
}

fn parse_start_time(stat: &str) -> Option<u64> {
    stat_fields(stat)?.nth(19)?.parse().ok()
}

/// How many threads this process has (`Threads:` in /proc/self/status).
pub(crate) fn thread_count() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))?
        .trim()
        .parse()
        .ok()
}

/// The path of the link `/proc/self/fd/<fd>`: opening it opens the file behind `fd` anew.
pub(crate) fn fd_link(fd: RawFd) -> String {
    format!("/proc/self/fd/{fd}")
}

/// The path of the file behind `fd`, as the kernel names it (the target of [`fd_link`]:
/// `/dev/shm/NAME`, `pipe:[INODE]`, `/memfd:NAME (deleted)`, ...), or `None` when `fd` is not
/// open.
pub(crate) fn fd_path(fd: RawFd) -> Option<PathBuf> {
    std::fs::read_link(fd_link(fd)).ok()
}

/// Clock ticks per second, the unit of the times in `/proc/<pid>/stat`.
fn clock_ticks() -> u64 {
    sysconf(libc::_SC_CLK_TCK).unwrap_or(100)
}

/// The size of a memory page.
pub(crate) fn page_size() -> u64 {
    sysconf(libc::_SC_PAGESIZE).unwrap_or(4096)
}

/// `sysconf(name)`, when it is known and positive. (nix wraps sysconf only under its `feature`
/// feature, which this crate does not enable.)
fn sysconf(name: libc::c_int) -> Option<u64> {
    // SAFETY: sysconf reads a configuration value; it takes no pointers and has no
    // preconditions (an unknown name is -1, handled below).
    let value = unsafe { libc::sysconf(name) };
    u64::try_from(value).ok().filter(|&v| v > 0)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::os::fd::{AsFd, AsRawFd};

    const STAT: &str = "1234 (a (weird) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 130 0 0 \
                        20 0 1 0 100 1000000 300 18446744073709551615";

    #[test]
    fn parses_proc_stat_and_statm() {
        let statm = "2500 300 200 10 0 150 0\n";
        let got = parse_usage(STAT, statm, 100, 4096).unwrap();
        assert_eq!(got.cpu, Duration::from_millis(3800));
        assert_eq!(got.rss_bytes, 300 * 4096);
        assert_eq!(parse_start_time(STAT), Some(100));
        assert!(parse_usage("garbage", statm, 100, 4096).is_none());
        assert!(parse_usage(STAT, "2500", 100, 4096).is_none());
        assert!(parse_start_time("1 (short) S 1 2").is_none());
    }

    #[test]
    fn usage_and_start_time_of_this_process() {
        let me = usage(std::process::id()).unwrap();
        assert!(me.rss_bytes > 0);
        assert!(start_time(std::process::id()).is_some());
        assert!(thread_count().is_some_and(|n| n >= 1));
    }

    #[test]
    fn fd_path_names_the_file() {
        let (r, _w) = nix::unistd::pipe().unwrap();
        let target = fd_path(r.as_fd().as_raw_fd()).unwrap();
        assert!(target.to_string_lossy().starts_with("pipe:["), "{target:?}");
        assert_eq!(fd_path(1_000_000), None);
    }
}

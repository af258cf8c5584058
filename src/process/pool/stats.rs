//! What a pool reports: its counters, its timings (a fixed-size histogram of durations) and
//! its workers' use of the machine.

use std::time::Duration;

/// What a pool has done so far, and what its workers use now.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct PoolStats {
    /// Workers spawned, replacements included.
    pub spawns: u64,
    /// The mean time [`Worker::spawn`](crate::process::Worker::spawn) took (its clone and exec, not the worker's own start-up).
    pub spawn_time_mean: Duration,
    /// The 99th percentile of that time.
    pub spawn_time_p99: Duration,
    /// Tasks answered.
    pub tasks_done: u64,
    /// Tasks that failed (timed out, out of retries, too large, no worker could be spawned).
    pub tasks_failed: u64,
    /// Retries: times a task was queued again because its worker died under it.
    pub tasks_retried: u64,
    /// Tasks waiting for a worker.
    pub queue_depth: usize,
    /// Tasks dispatched to a worker and not yet answered.
    pub in_flight: usize,
    /// Workers with tasks in flight (the others are idle).
    pub busy_workers: usize,
    /// The median time from `submit` to the answer, over answered tasks.
    pub task_latency_p50: Duration,
    /// The 99th percentile of that time.
    pub task_latency_p99: Duration,
    /// The live workers.
    pub workers: Vec<WorkerStats>,
}

/// One worker's use of the machine, from `/proc/<pid>/stat` and `/proc/<pid>/statm`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerStats {
    /// Its process id.
    pub pid: u32,
    /// User plus system CPU time it has used.
    pub cpu_time: Duration,
    /// Its resident set size.
    pub rss_bytes: u64,
}

/// The pool's counters, kept under its state lock.
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) spawns: u64,
    pub(super) spawn_time: Durations,
    pub(super) done: u64,
    pub(super) failed: u64,
    pub(super) retried: u64,
    pub(super) latency: Durations,
}

/// Sub-buckets per power of two: a recorded duration is known to within 1/64 of itself.
const SUB: u64 = 64;
/// Buckets from 0 to `u64::MAX` nanoseconds: `2 * SUB` exact ones, then `SUB` per power of two.
const BUCKETS: usize = ((64 - 7 + 2) * SUB) as usize;

/// A histogram of durations in nanoseconds: exact below 128 ns, then in buckets 1/64 of a
/// power of two wide, so a quantile read from it is within 1.6% of the true one. Fixed size
/// (about 30 KiB), no allocation per record.
#[derive(Debug)]
pub(super) struct Durations {
    counts: Box<[u64; BUCKETS]>,
    total: u64,
    sum_nanos: u128,
}

impl Default for Durations {
    fn default() -> Durations {
        Durations {
            counts: Box::new([0; BUCKETS]),
            total: 0,
            sum_nanos: 0,
        }
    }
}

/// The bucket of `v` nanoseconds.
fn bucket(v: u64) -> usize {
    if v < 2 * SUB {
        return v as usize;
    }
    // v is in [2^e, 2^(e+1)) with e >= 7; its top 7 bits are in [64, 128).
    let e = 63 - u64::from(v.leading_zeros());
    let shift = e - 6;
    ((shift + 1) * SUB + (v >> shift) - SUB) as usize
}

/// The middle of bucket `i`, in nanoseconds.
fn middle(i: usize) -> u64 {
    let i = i as u64;
    if i < 2 * SUB {
        return i;
    }
    let shift = i / SUB - 1;
    let low = (i % SUB + SUB) << shift;
    low + ((1u64 << shift) >> 1)
}

impl Durations {
    pub(super) fn record(&mut self, d: Duration) {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.counts[bucket(nanos)] += 1;
        self.total += 1;
        self.sum_nanos += u128::from(nanos);
    }

    /// The mean, zero when nothing was recorded.
    pub(super) fn mean(&self) -> Duration {
        if self.total == 0 {
            return Duration::ZERO;
        }
        let mean = self.sum_nanos / u128::from(self.total);
        Duration::from_nanos(u64::try_from(mean).unwrap_or(u64::MAX))
    }

    /// The `q` quantile (0 to 1), zero when nothing was recorded.
    pub(super) fn quantile(&self, q: f64) -> Duration {
        if self.total == 0 {
            return Duration::ZERO;
        }
        // The rank of the value wanted, 1 to total.
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Duration::from_nanos(middle(i));
            }
        }
        Duration::from_nanos(middle(BUCKETS - 1))
    }
}

/// `pid`'s CPU time and resident memory, or `None` when it is gone.
pub(super) fn worker_stats(pid: u32) -> Option<WorkerStats> {
    let usage = crate::sys::proc::usage(pid)?;
    Some(WorkerStats {
        pid,
        cpu_time: usage.cpu,
        rss_bytes: usage.rss_bytes,
    })
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn stats_of_this_process() {
        let me = worker_stats(std::process::id()).unwrap();
        assert!(me.rss_bytes > 0);
    }

    #[test]
    fn buckets_are_contiguous_and_hold_their_values() {
        // Every bucket boundary: the value below a power of two and the values around it.
        let mut values = vec![0, 1, 127, 128, 129, u64::MAX];
        for e in 7..64 {
            let p = 1u64 << e;
            values.extend([p - 1, p, p + 1, p + p / 2]);
        }
        values.sort_unstable();
        let mut last = 0;
        for v in values {
            let b = bucket(v);
            assert!(b < BUCKETS && b >= last, "{v} -> {b}");
            last = b;
            // The bucket's middle is within 1/64 of the value.
            let m = middle(b);
            assert!(m.abs_diff(v) <= v / 64 + 1, "{v}: bucket {b} reads {m}");
        }
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn quantiles_and_mean() {
        let mut d = Durations::default();
        assert_eq!(d.quantile(0.5), Duration::ZERO);
        assert_eq!(d.mean(), Duration::ZERO);
        // 1..=1000 microseconds: the median is 500 us, the 99th percentile 990 us.
        for us in 1..=1000u64 {
            d.record(Duration::from_micros(us));
        }
        let near = |got: Duration, want_us: u64| {
            let want = Duration::from_micros(want_us).as_nanos() as f64;
            (got.as_nanos() as f64 - want).abs() <= want / 60.0
        };
        assert!(near(d.quantile(0.5), 500), "{:?}", d.quantile(0.5));
        assert!(near(d.quantile(0.99), 990), "{:?}", d.quantile(0.99));
        assert!(near(d.quantile(1.0), 1000));
        assert!(near(d.quantile(0.0), 1));
        assert_eq!(d.mean(), Duration::from_nanos(500_500));
        // A duration beyond u64 nanoseconds is counted at the top, not lost.
        d.record(Duration::MAX);
        assert_eq!(d.total, 1001);
    }
}

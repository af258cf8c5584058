//! What `zipc bench pool` measured, and its table.

use crate::targets::{self, Target};
use serde::Serialize;
use std::fmt::Write as _;
use std::time::Duration;

/// One measured row: a total over the tasks, and per task.
#[derive(Debug, Serialize)]
pub(crate) struct PoolRow {
    pub(crate) what: &'static str,
    pub(crate) total_ms: f64,
    pub(crate) each_ms: f64,
}

impl PoolRow {
    /// `total` for `tasks` processes or tasks.
    pub(crate) fn new(what: &'static str, total: Duration, tasks: usize) -> PoolRow {
        let total_ms = total.as_secs_f64() * 1e3;
        PoolRow {
            what,
            total_ms,
            each_ms: total_ms / tasks as f64,
        }
    }
}

/// Everything one run of `zipc bench pool` measured.
#[derive(Debug, Serialize)]
pub(crate) struct PoolResults {
    pub(crate) quick: bool,
    /// Processes or tasks per row.
    pub(crate) tasks: usize,
    pub(crate) rows: Vec<PoolRow>,
    /// Worker spawn ÷ bare spawn, medians of the spawns taking turns.
    pub(crate) spawn_over_bare: f64,
    /// Dispatch of the tasks to a warm pool.
    pub(crate) dispatch_ms: f64,
    /// `sh -c` per task ÷ the pool's batch.
    pub(crate) shell_over_pool: f64,
    /// Parent → worker → parent, 8 bytes, both busy-polling.
    pub(crate) round_trip_ns: f64,
    /// The core channel's own 8-byte ping-pong between two threads, both busy-polling.
    pub(crate) core_ping_pong_ns: f64,
    pub(crate) targets: Vec<Target>,
    /// How long the run took.
    pub(crate) seconds: f64,
}

impl PoolResults {
    /// The results, with the targets worked out from them.
    pub(crate) fn new(
        quick: bool,
        tasks: usize,
        rows: Vec<PoolRow>,
        spawn_over_bare: f64,
        (dispatch, shell_over_pool): (Duration, f64),
        (round_trip, core): (Duration, Duration),
        took: Duration,
    ) -> PoolResults {
        let dispatch_ms = dispatch.as_secs_f64() * 1e3;
        let (round_trip_ns, core_ping_pong_ns) =
            (round_trip.as_nanos() as f64, core.as_nanos() as f64);
        let targets = targets::pool(
            spawn_over_bare,
            dispatch_ms,
            shell_over_pool,
            targets::ratio(round_trip_ns, core_ping_pong_ns),
        );
        PoolResults {
            quick,
            tasks,
            rows,
            spawn_over_bare,
            dispatch_ms,
            shell_over_pool,
            round_trip_ns,
            core_ping_pong_ns,
            targets,
            seconds: took.as_secs_f64(),
        }
    }
}

/// The table, with the targets below.
pub(crate) fn table(r: &PoolResults) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "process layer, {} processes or tasks each (this binary as the worker)\n",
        r.tasks
    );
    let _ = writeln!(out, "{:<46} {:>12} {:>14}", "", "total", "each");
    for row in &r.rows {
        let total = format!("{:.2} ms", row.total_ms);
        let _ = writeln!(out, "{:<46} {total:>12} {:>11.3} ms", row.what, row.each_ms);
    }
    let bound = |key: &str| {
        r.targets
            .iter()
            .find(|t| t.key == key)
            .map_or_else(|| "?".into(), |t| format!("{} {}", t.sign(), t.bound))
    };
    let _ = writeln!(
        out,
        "\nworker spawn ÷ bare spawn {:.2}x (medians of the {} taking turns; target {}x); \
         dispatch of 100 tasks {:.2} ms (target {} ms);",
        r.spawn_over_bare,
        r.tasks,
        bound("worker_spawn_over_bare_spawn"),
        r.dispatch_ms,
        bound("dispatch_100_ms"),
    );
    let _ = writeln!(
        out,
        "pool ÷ sh -c per task {:.0}x faster (target {}x);",
        r.shell_over_pool,
        bound("shell_over_pool"),
    );
    let _ = writeln!(
        out,
        "parent → worker → parent round trip {:.0} ns ÷ the core channel's ping-pong {:.0} ns \
         = {:.2}x (target {}x; both busy-poll)",
        r.round_trip_ns,
        r.core_ping_pong_ns,
        targets::ratio(r.round_trip_ns, r.core_ping_pong_ns),
        bound("round_trip_over_core"),
    );
    out
}

//! The project's targets, each a bound on a ratio (or a time) taken within one run, and the
//! ratios `zipc bench channel` prints under its rows. All the hard-coded bounds are here.

use crate::model::{Results, Row, Subject};
use serde::Serialize;

/// The ratio rows of `zipc bench channel`: (name, the zipc row, the row it is divided by).
pub(crate) const RATIOS: [(&str, Subject, Subject); 7] = [
    ("spin ÷ floor", Subject::ZipcSpin, Subject::Floor),
    ("spin ÷ pipe", Subject::ZipcSpin, Subject::Pipe),
    ("spin ÷ socket", Subject::ZipcSpin, Subject::Socket),
    ("sleep ÷ futex", Subject::ZipcSleep, Subject::Futex),
    ("sleep ÷ pipe", Subject::ZipcSleep, Subject::Pipe),
    ("sleep ÷ socket", Subject::ZipcSleep, Subject::Socket),
    ("adaptive ÷ floor", Subject::ZipcAdaptive, Subject::Floor),
];

/// A target of the project: what is measured, its value, and the bound it must keep.
#[derive(Debug, Serialize)]
pub(crate) struct Target {
    pub(crate) key: &'static str,
    pub(crate) what: &'static str,
    pub(crate) value: f64,
    /// The most the value may be, or (for `at_least`) the least.
    pub(crate) bound: f64,
    pub(crate) at_least: bool,
    /// `false` also where the value was not measured.
    pub(crate) met: bool,
    /// The same ratio for the raw floor in place of zipc, where that bounds what any
    /// shared-memory transport can reach (NaN elsewhere, and then left out of JSON).
    #[serde(skip_serializing_if = "is_nan")]
    pub(crate) floor_value: f64,
}

fn is_nan(v: &f64) -> bool {
    v.is_nan()
}

impl Target {
    fn new(what: &'static str, key: &'static str, value: f64, bound: f64, at_least: bool) -> Self {
        let met = value.is_finite()
            && if at_least {
                value >= bound
            } else {
                value <= bound
            };
        Target {
            key,
            what,
            value,
            bound,
            at_least,
            met,
            floor_value: f64::NAN,
        }
    }

    fn at_most(what: &'static str, key: &'static str, value: f64, bound: f64) -> Target {
        Target::new(what, key, value, bound, false)
    }

    fn at_least(what: &'static str, key: &'static str, value: f64, bound: f64) -> Target {
        Target::new(what, key, value, bound, true)
    }

    fn with_floor(self, floor_value: f64) -> Target {
        Target {
            floor_value,
            ..self
        }
    }

    /// `≥` or `≤`.
    pub(crate) fn sign(&self) -> &'static str {
        if self.at_least { "≥" } else { "≤" }
    }

    /// `met`, `missed` or `not measured`.
    pub(crate) fn verdict(&self) -> &'static str {
        if !self.value.is_finite() {
            "not measured"
        } else if self.met {
            "met"
        } else {
            "missed"
        }
    }
}

/// `a / b`, NaN unless both are measured and `b` is positive.
pub(crate) fn ratio(a: f64, b: f64) -> f64 {
    if a.is_finite() && b.is_finite() && b > 0.0 {
        a / b
    } else {
        f64::NAN
    }
}

fn rate_per_sec(r: &Option<crate::model::Rate>) -> f64 {
    r.as_ref().map_or(f64::NAN, |r| r.frames_per_sec)
}

/// One ratio row: a zipc row ÷ another, cell by cell.
#[derive(Debug, Serialize)]
pub(crate) struct Ratio {
    /// `zipc_spin_over_floor` and the like.
    pub(crate) key: String,
    pub(crate) label: &'static str,
    pub(crate) latency_p50: f64,
    pub(crate) latency_p99: f64,
    pub(crate) latency_p999: f64,
    /// Per frame size; higher is better.
    pub(crate) throughput: Vec<f64>,
}

impl Ratio {
    /// The cells in table order: latency p50, p99, p99.9, then throughput per frame size.
    pub(crate) fn cells(&self) -> Vec<f64> {
        let mut c = vec![self.latency_p50, self.latency_p99, self.latency_p999];
        c.extend(&self.throughput);
        c
    }
}

fn over(label: &'static str, zipc: &Row, other: &Row) -> Ratio {
    let (z, o) = (&zipc.latency, &other.latency);
    Ratio {
        key: format!("{}_over_{}", zipc.subject.key(), other.subject.key()),
        label,
        latency_p50: ratio(z.p50, o.p50),
        latency_p99: ratio(z.p99, o.p99),
        latency_p999: ratio(z.p999, o.p999),
        throughput: zipc
            .rates
            .iter()
            .zip(&other.rates)
            .map(|(zr, or)| ratio(rate_per_sec(zr), rate_per_sec(or)))
            .collect(),
    }
}

/// The ratio rows of [`RATIOS`] whose two rows were both measured.
pub(crate) fn ratios(r: &Results) -> Vec<Ratio> {
    RATIOS
        .iter()
        .filter_map(|&(label, zipc, other)| Some(over(label, r.row(zipc)?, r.row(other)?)))
        .collect()
}

/// The channel's targets, each a ratio within this run: latency against the floors, and
/// (issue 4) zipc against the kernel's pipes and sockets.
pub(crate) fn channel(r: &Results) -> Vec<Target> {
    let p50 = |s| r.row(s).map_or(f64::NAN, |row| row.latency.p50);
    let p99 = |s| r.row(s).map_or(f64::NAN, |row| row.latency.p99);
    // The largest frame's throughput (64 KiB).
    let bulk = |s| {
        r.row(s)
            .and_then(|row| row.rates.last())
            .map_or(f64::NAN, rate_per_sec)
    };
    let (spin, sleep) = (Subject::ZipcSpin, Subject::ZipcSleep);
    let (pipe, socket, floor) = (Subject::Pipe, Subject::Socket, Subject::Floor);
    vec![
        Target::at_most(
            "spin p50 ÷ floor p50",
            "spin_p50_over_floor_p50",
            ratio(p50(spin), p50(floor)),
            1.3,
        ),
        Target::at_most(
            "spin p99 ÷ spin p50",
            "spin_p99_over_spin_p50",
            ratio(p99(spin), p50(spin)),
            1.5,
        ),
        Target::at_most(
            "sleep p50 ÷ futex p50",
            "sleep_p50_over_futex_p50",
            ratio(p50(sleep), p50(Subject::Futex)),
            1.2,
        ),
        Target::at_least(
            "pipe p50 ÷ spin p50",
            "pipe_p50_over_spin_p50",
            ratio(p50(pipe), p50(spin)),
            30.0,
        ),
        Target::at_least(
            "socket p50 ÷ spin p50",
            "socket_p50_over_spin_p50",
            ratio(p50(socket), p50(spin)),
            30.0,
        ),
        Target::at_least(
            "spin 64 KiB ÷ pipe 64 KiB",
            "spin_64k_over_pipe_64k",
            ratio(bulk(spin), bulk(pipe)),
            4.0,
        )
        .with_floor(ratio(bulk(floor), bulk(pipe))),
        Target::at_least(
            "spin 64 KiB ÷ socket 64 KiB",
            "spin_64k_over_socket_64k",
            ratio(bulk(spin), bulk(socket)),
            4.0,
        )
        .with_floor(ratio(bulk(floor), bulk(socket))),
    ]
}

/// The JSON document of `zipc bench channel`: the results, their ratios and the targets.
#[derive(Debug, Serialize)]
pub(crate) struct ChannelReport<'a> {
    #[serde(flatten)]
    pub(crate) results: &'a Results,
    pub(crate) ratios: Vec<Ratio>,
    pub(crate) targets: Vec<Target>,
}

impl ChannelReport<'_> {
    /// The results with what is derived from them.
    pub(crate) fn new(results: &Results) -> ChannelReport<'_> {
        ChannelReport {
            results,
            ratios: ratios(results),
            targets: channel(results),
        }
    }
}

/// The process layer's targets, from the medians and totals `zipc bench pool` measured.
pub(crate) fn pool(
    spawn_over_bare: f64,
    dispatch_ms: f64,
    shell_over_pool: f64,
    round_trip_over_core: f64,
) -> Vec<Target> {
    vec![
        Target::at_most(
            "worker spawn ÷ bare spawn (medians)",
            "worker_spawn_over_bare_spawn",
            spawn_over_bare,
            1.3,
        ),
        Target::at_most(
            "dispatch of 100 tasks to a warm pool",
            "dispatch_100_ms",
            dispatch_ms,
            1.0,
        ),
        Target::at_least(
            "sh -c per task ÷ pool",
            "shell_over_pool",
            shell_over_pool,
            100.0,
        ),
        Target::at_most(
            "worker round trip ÷ core channel ping-pong",
            "round_trip_over_core",
            round_trip_over_core,
            1.5,
        ),
    ]
}

/// The zero-copy paths' targets: each against the copying loop it replaces.
pub(crate) fn zerocopy(sendfile_over_copy: f64, vmsplice_over_write: f64) -> Vec<Target> {
    vec![
        Target::at_least(
            "sendfile ÷ read/write loop",
            "sendfile_over_copy",
            sendfile_over_copy,
            1.8,
        ),
        Target::at_least(
            "vmsplice + splice ÷ write + read",
            "vmsplice_over_write",
            vmsplice_over_write,
            5.0,
        ),
    ]
}

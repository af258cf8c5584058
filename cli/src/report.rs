//! What `zipc bench` measured, and how it is printed: one table (or JSON) with the machine
//! above it and the ratios, all from the same run, in it.

use crate::bench::FRAMES;
use crate::peer::{Transport, WaitMode};
use std::fmt::Write as _;
use std::time::Duration;

/// The machine the run was on.
pub(crate) struct Machine {
    cpus: usize,
    model: String,
    kernel: String,
}

impl Machine {
    /// Reads the CPU count (as `nproc`), the CPU model and the kernel release.
    pub(crate) fn detect() -> Machine {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, m)| m.trim().to_string())
            })
            .unwrap_or_else(|| "unknown CPU".into());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|r| format!("Linux {}", r.trim()))
            .unwrap_or_else(|_| std::env::consts::OS.into());
        Machine {
            cpus,
            model,
            kernel,
        }
    }
}

impl std::fmt::Display for Machine {
    /// `machine: N CPUs, model, kernel`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "machine: {} CPUs, {}, {}",
            self.cpus, self.model, self.kernel
        )
    }
}

/// One-way latency in nanoseconds (round trip / 2).
pub(crate) struct Latency {
    pub(crate) p50: f64,
    pub(crate) p99: f64,
    pub(crate) p999: f64,
    pub(crate) round_trips: u64,
}

/// A one-way stream: `frames` frames of `frame` bytes in `secs`.
pub(crate) struct Rate {
    pub(crate) frame: usize,
    pub(crate) frames: u64,
    pub(crate) secs: f64,
}

impl Rate {
    fn per_sec(&self) -> f64 {
        self.frames as f64 / self.secs
    }
    fn gb_per_sec(&self) -> f64 {
        self.per_sec() * self.frame as f64 / 1e9
    }
}

/// What one row measures: a transport, and for zipc how its ends wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Subject {
    /// zipc, every end of both processes waiting the same way.
    Zipc(WaitMode),
    /// The busy-poll floor: raw atomics in shared memory.
    Floor,
    /// The blocking floor: a raw futex ping-pong.
    Futex,
    /// Pipes.
    Pipe,
    /// A Unix SOCK_SEQPACKET socket pair.
    Socket,
}

impl Subject {
    /// The transport the peer runs.
    pub(crate) fn transport(self) -> Transport {
        match self {
            Subject::Zipc(_) => Transport::Zipc,
            Subject::Floor => Transport::Floor,
            Subject::Futex => Transport::Futex,
            Subject::Pipe => Transport::Pipe,
            Subject::Socket => Transport::Socket,
        }
    }

    /// How zipc ends wait (meaningless for the other transports).
    pub(crate) fn wait(self) -> WaitMode {
        match self {
            Subject::Zipc(w) => w,
            _ => WaitMode::Adaptive,
        }
    }

    /// Whether the throughput columns are measured.
    pub(crate) fn streams(self) -> bool {
        self != Subject::Futex
    }

    /// The row's name in the table.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Subject::Zipc(WaitMode::Spin) => "zipc (spin)",
            Subject::Zipc(WaitMode::Sleep) => "zipc (sleep)",
            Subject::Zipc(WaitMode::Adaptive) => "zipc (adaptive)",
            Subject::Floor => "raw shm (floor)",
            Subject::Futex => "raw futex (floor)",
            Subject::Pipe => "pipe",
            Subject::Socket => "unix seqpacket",
        }
    }

    /// The row's name in JSON and in short lists.
    fn key(self) -> &'static str {
        match self {
            Subject::Zipc(WaitMode::Spin) => "zipc_spin",
            Subject::Zipc(WaitMode::Sleep) => "zipc_sleep",
            Subject::Zipc(WaitMode::Adaptive) => "zipc_adaptive",
            Subject::Floor => "floor",
            Subject::Futex => "futex",
            Subject::Pipe => "pipe",
            Subject::Socket => "socket",
        }
    }
}

/// One row's results.
pub(crate) struct Row {
    pub(crate) subject: Subject,
    pub(crate) latency: Latency,
    /// In the order of `bench::FRAMES`; `None` where not measured.
    pub(crate) rates: Vec<Option<Rate>>,
}

/// Channel setup across two processes, in nanoseconds.
pub(crate) struct Setup {
    pub(crate) reps: usize,
    /// Median of create + producer attach, in this process.
    pub(crate) local_ns: f64,
    /// Median of create + attach here + fd passed + consumer attach in the peer + reply.
    pub(crate) total_ns: f64,
    pub(crate) total_p99_ns: f64,
    /// Median of a bare 1-byte round trip over the same socket.
    pub(crate) bare_ns: f64,
}

/// Everything one run measured.
pub(crate) struct Results {
    pub(crate) machine: Machine,
    pub(crate) quick: bool,
    /// (this process's CPU, the peer's CPU) when pinned.
    pub(crate) cpus: Option<(usize, usize)>,
    pub(crate) rows: Vec<Row>,
    pub(crate) setup: Setup,
    pub(crate) elapsed: Duration,
}

impl Results {
    fn row(&self, s: Subject) -> Option<&Row> {
        self.rows.iter().find(|r| r.subject == s)
    }
}

/// The ratio rows: (name, the zipc row, the row it is divided by).
const RATIOS: [(&str, Subject, Subject); 7] = [
    (
        "spin ÷ floor",
        Subject::Zipc(WaitMode::Spin),
        Subject::Floor,
    ),
    ("spin ÷ pipe", Subject::Zipc(WaitMode::Spin), Subject::Pipe),
    (
        "spin ÷ socket",
        Subject::Zipc(WaitMode::Spin),
        Subject::Socket,
    ),
    (
        "sleep ÷ futex",
        Subject::Zipc(WaitMode::Sleep),
        Subject::Futex,
    ),
    (
        "sleep ÷ pipe",
        Subject::Zipc(WaitMode::Sleep),
        Subject::Pipe,
    ),
    (
        "sleep ÷ socket",
        Subject::Zipc(WaitMode::Sleep),
        Subject::Socket,
    ),
    (
        "adaptive ÷ floor",
        Subject::Zipc(WaitMode::Adaptive),
        Subject::Floor,
    ),
];

/// A target of the project: what is measured, the ratio, and the bound it must keep.
struct Target {
    what: &'static str,
    key: &'static str,
    value: f64,
    /// The most the ratio may be, or (for `at_least`) the least.
    bound: f64,
    at_least: bool,
    /// The same ratio for the raw floor in place of zipc, where that bounds what any
    /// shared-memory transport can reach (NaN elsewhere).
    ceiling: f64,
}

impl Target {
    fn at_most(what: &'static str, key: &'static str, value: f64, bound: f64) -> Target {
        Target {
            what,
            key,
            value,
            bound,
            at_least: false,
            ceiling: f64::NAN,
        }
    }

    fn with_ceiling(self, ceiling: f64) -> Target {
        Target { ceiling, ..self }
    }

    fn at_least(what: &'static str, key: &'static str, value: f64, bound: f64) -> Target {
        Target {
            at_least: true,
            ..Target::at_most(what, key, value, bound)
        }
    }

    fn met(&self) -> bool {
        self.value.is_finite()
            && if self.at_least {
                self.value >= self.bound
            } else {
                self.value <= self.bound
            }
    }

    fn sign(&self) -> &'static str {
        if self.at_least { "≥" } else { "≤" }
    }
}

/// The project's targets, each a ratio within this run: latency against the floors, and
/// (issue 4) zipc against the kernel's pipes and sockets.
fn targets(r: &Results) -> Vec<Target> {
    let p50 = |s| r.row(s).map_or(f64::NAN, |row| row.latency.p50);
    let p99 = |s| r.row(s).map_or(f64::NAN, |row| row.latency.p99);
    // The largest frame's throughput (64 KiB).
    let bulk = |s| {
        r.row(s)
            .and_then(|row| row.rates.last())
            .map_or(f64::NAN, rate_per_sec)
    };
    let spin = Subject::Zipc(WaitMode::Spin);
    let sleep = Subject::Zipc(WaitMode::Sleep);
    let (pipe, socket) = (Subject::Pipe, Subject::Socket);
    vec![
        Target::at_most(
            "spin p50 ÷ floor p50",
            "spin_p50_over_floor_p50",
            ratio(p50(spin), p50(Subject::Floor)),
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
        .with_ceiling(ratio(bulk(Subject::Floor), bulk(pipe))),
        Target::at_least(
            "spin 64 KiB ÷ socket 64 KiB",
            "spin_64k_over_socket_64k",
            ratio(bulk(spin), bulk(socket)),
            4.0,
        )
        .with_ceiling(ratio(bulk(Subject::Floor), bulk(socket))),
    ]
}

fn ns(v: f64) -> String {
    if !v.is_finite() {
        "-".into()
    } else if v < 1e3 {
        format!("{v:.0} ns")
    } else if v < 1e6 {
        format!("{:.2} µs", v / 1e3)
    } else {
        format!("{:.2} ms", v / 1e6)
    }
}

fn per_sec(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2} M", v / 1e6)
    } else {
        format!("{:.0} k", v / 1e3)
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if a.is_finite() && b.is_finite() && b > 0.0 {
        a / b
    } else {
        f64::NAN
    }
}

/// The cells of one row: latency p50, p99, p99.9, 8 B msg/s, then GB/s per larger frame.
fn cells(row: &Row) -> Vec<String> {
    let mut c = vec![
        ns(row.latency.p50),
        ns(row.latency.p99),
        ns(row.latency.p999),
    ];
    for r in &row.rates {
        c.push(match r {
            None => "-".into(),
            Some(r) if r.frame <= 64 => per_sec(r.per_sec()),
            Some(r) => format!("{:.2}", r.gb_per_sec()),
        });
    }
    c
}

fn rate_per_sec(r: &Option<Rate>) -> f64 {
    r.as_ref().map_or(f64::NAN, Rate::per_sec)
}

/// zipc ÷ `other`, cell by cell: latency p50, p99, p99.9, then throughput per frame size.
fn ratios(zipc: &Row, other: &Row) -> Vec<f64> {
    let (z, o) = (&zipc.latency, &other.latency);
    let mut c = vec![
        ratio(z.p50, o.p50),
        ratio(z.p99, o.p99),
        ratio(z.p999, o.p999),
    ];
    for (zr, or) in zipc.rates.iter().zip(&other.rates) {
        c.push(ratio(rate_per_sec(zr), rate_per_sec(or)));
    }
    c
}

/// A ratio with two significant digits at least (0.0031x, 0.52x, 4.07x, 345x).
fn times(v: f64) -> String {
    if !v.is_finite() || v <= 0.0 {
        "-".into()
    } else if v >= 100.0 {
        format!("{v:.0}x")
    } else if v >= 0.095 {
        format!("{v:.2}x")
    } else {
        let digits = (-v.log10().floor()) as usize + 1;
        format!("{v:.digits$}x")
    }
}

/// `items` joined with ", ", broken into lines of at most `width` characters.
fn wrap(items: &[String], width: usize) -> String {
    let mut out = String::new();
    let mut line = 0;
    for (i, item) in items.iter().enumerate() {
        let last = i + 1 == items.len();
        let len = item.chars().count() + usize::from(!last);
        if line > 0 && line + 1 + len > width {
            out.push('\n');
            line = 0;
        } else if line > 0 {
            out.push(' ');
            line += 1;
        }
        out.push_str(item);
        if !last {
            out.push(',');
        }
        line += len;
    }
    out
}

fn size(frame: usize) -> String {
    if frame >= 1024 && frame.is_multiple_of(1024) {
        format!("{} KiB", frame / 1024)
    } else {
        format!("{frame} B")
    }
}

/// The table, with the machine above and notes below.
pub(crate) fn table(r: &Results) -> String {
    const LABEL: usize = 18;
    const CELL: usize = 12;
    let mut out = String::new();
    let m = &r.machine;
    let _ = writeln!(out, "{}{}", m, if r.quick { "  (--quick)" } else { "" });
    let pinning = match r.cpus {
        Some((me, peer)) => format!("this one on CPU {me}, a re-exec'd peer on CPU {peer}"),
        None => "this one and a re-exec'd peer, unpinned".into(),
    };
    let _ = writeln!(
        out,
        "two processes ({pinning}); latency is one way (8 B round trip / 2)\n"
    );
    let mut header = vec![
        "lat p50".to_string(),
        "p99".to_string(),
        "p99.9".to_string(),
    ];
    for frame in FRAMES {
        let unit = if frame <= 64 { "msg/s" } else { "GB/s" };
        header.push(format!("{} {unit}", size(frame)));
    }
    let line = |out: &mut String, label: &str, cells: &[String]| {
        let _ = write!(out, "{label:<LABEL$}");
        for c in cells {
            let _ = write!(out, "{c:>CELL$}");
        }
        out.push('\n');
    };
    line(&mut out, "transport", &header);
    let width = LABEL + CELL * header.len();
    let rule = "-".repeat(width);
    let _ = writeln!(out, "{rule}");
    for row in &r.rows {
        line(&mut out, row.subject.label(), &cells(row));
    }
    let _ = writeln!(out, "{rule}");
    for (name, zipc, other) in RATIOS {
        if let (Some(z), Some(o)) = (r.row(zipc), r.row(other)) {
            let cells: Vec<String> = ratios(z, o).into_iter().map(times).collect();
            line(&mut out, name, &cells);
        }
    }
    let _ = writeln!(out, "{rule}");
    let checks: Vec<String> = targets(r)
        .iter()
        .map(|t| {
            let verdict = if !t.value.is_finite() {
                "not measured"
            } else if t.met() {
                "met"
            } else {
                "missed"
            };
            let ceiling = if t.ceiling.is_finite() {
                format!("; the raw floor's own: {}", times(t.ceiling))
            } else {
                String::new()
            };
            format!(
                "{} {} (target {} {:.1}x: {verdict}{ceiling})",
                t.what,
                times(t.value),
                t.sign(),
                t.bound
            )
        })
        .collect();
    let _ = writeln!(
        out,
        "{:<LABEL$}{}",
        "targets",
        checks.join(";\n                  ")
    );
    let _ = writeln!(out, "{rule}");
    let s = &r.setup;
    let _ = writeln!(
        out,
        "{:<LABEL$}{} median, p99 {} (create + attach here {}; fd over SCM_RIGHTS,\n\
         {:<LABEL$}attach in the peer, 1-byte reply; a bare socket round trip alone is {})",
        "channel setup",
        ns(s.total_ns),
        ns(s.total_p99_ns),
        ns(s.local_ns),
        "",
        ns(s.bare_ns),
    );

    let trips: Vec<String> = r
        .rows
        .iter()
        .map(|row| format!("{} {}", row.subject.key(), row.latency.round_trips))
        .collect();
    let trips = wrap(&trips, 88);
    let slots: Vec<String> = FRAMES
        .iter()
        .filter(|&&frame| frame > 8)
        .map(|&frame| format!("{} x {}", crate::floor::slot_count(frame), size(frame)))
        .collect();
    let _ = write!(
        out,
        "\nratios: that zipc row ÷ the other, same run: for latency lower is better, for\n\
         throughput higher. targets: the project's, each a ratio within this run.\n\
         zipc: every zipc end of both processes waits the same way. spin = Wait::Spin\n\
         (busy-poll, never sleeps: the floor's configuration, for latency and throughput);\n\
         sleep = Wait::Sleep (futex at once, no spin); adaptive = Wait::Adaptive, the default\n\
         (spins a few µs, then futex-sleeps). loan+commit per frame, recv in place.\n\
         raw shm (floor): busy-poll, never sleeps. A cache-line ping-pong; 8 B: a ring of\n\
         {} u64 slots; larger: fixed slots memcpy'd in and out ({}).\n\
         Both rings SPSC, each side caching the other's counter, as zipc's ring.\n\
         raw futex (floor): blocking, latency only. One word in a shared memfd; each side\n\
         stores its value, FUTEX_WAKEs (always) and FUTEX_WAITs (not PRIVATE, no spin) until\n\
         the other's value is there.\n\
         pipe: one write per frame, reads through a 64 KiB buffer (a stream has no frames).\n\
         socket: SOCK_SEQPACKET, one send and one recv per frame.\n\
         latency: after a warm-up, each round trip timed; round trips:\n{}.\n\
         throughput: the parent copies each frame in from one buffer (stamped with a counter);\n\
         the peer copies each out into one buffer and sums the stamps (checked). Timed from the\n\
         first send until the peer reports the last frame read. Buffers: zipc ring 1 MiB; pipe\n\
         1 MiB (if pipe-max-size allows); socket 1 MiB (if wmem_max allows).\n\
         channel setup: {} reps, a fresh 1 MiB memfd channel each; the peer is long-lived.\n\
         took {:.1} s\n",
        crate::floor::slot_count(8),
        slots.join(", "),
        trips,
        s.reps,
        r.elapsed.as_secs_f64(),
    );
    out
}

/// The results as one JSON object.
pub(crate) fn json(r: &Results) -> String {
    let num = |v: f64| {
        if v.is_finite() {
            format!("{v:.3}")
        } else {
            "null".into()
        }
    };
    let esc = |s: &str| {
        s.chars()
            .flat_map(|c| match c {
                '"' => vec!['\\', '"'],
                '\\' => vec!['\\', '\\'],
                c if c.is_control() => vec![' '],
                c => vec![c],
            })
            .collect::<String>()
    };
    let rows: Vec<String> = r
        .rows
        .iter()
        .map(|row| {
            let l = &row.latency;
            let rates: Vec<String> = row
                .rates
                .iter()
                .map(|rate| match rate {
                    None => "null".into(),
                    Some(rate) => format!(
                        "{{\"frame_bytes\":{},\"frames\":{},\"seconds\":{},\"frames_per_sec\":{},\"gb_per_sec\":{}}}",
                        rate.frame,
                        rate.frames,
                        num(rate.secs),
                        num(rate.per_sec()),
                        num(rate.gb_per_sec())
                    ),
                })
                .collect();
            format!(
                "{{\"row\":\"{}\",\"label\":\"{}\",\"latency_one_way_ns\":{{\"p50\":{},\"p99\":{},\"p999\":{},\"round_trips\":{}}},\"throughput\":[{}]}}",
                row.subject.key(),
                esc(row.subject.label()),
                num(l.p50),
                num(l.p99),
                num(l.p999),
                l.round_trips,
                rates.join(",")
            )
        })
        .collect();
    let mut over = Vec::new();
    for (_, zipc, other) in RATIOS {
        if let (Some(z), Some(o)) = (r.row(zipc), r.row(other)) {
            let cells: Vec<String> = ratios(z, o).into_iter().map(num).collect();
            over.push(format!(
                "\"{}_over_{}\":{{\"latency_p50\":{},\"latency_p99\":{},\"latency_p999\":{},\"throughput\":[{}]}}",
                zipc.key(),
                other.key(),
                cells[0],
                cells[1],
                cells[2],
                cells[3..].join(",")
            ));
        }
    }
    let goals: Vec<String> = targets(r)
        .iter()
        .map(|t| {
            format!(
                "\"{}\":{{\"value\":{},\"{}\":{},\"met\":{},\"floor_value\":{}}}",
                t.key,
                num(t.value),
                if t.at_least { "min" } else { "max" },
                num(t.bound),
                t.met(),
                num(t.ceiling)
            )
        })
        .collect();
    let m = &r.machine;
    let s = &r.setup;
    format!(
        "{{\"machine\":{{\"cpus\":{},\"cpu\":\"{}\",\"kernel\":\"{}\"}},\"quick\":{},\"pinned_cpus\":{},\"rows\":[{}],\"ratios\":{{{}}},\"targets\":{{{}}},\"setup_ns\":{{\"reps\":{},\"total_median\":{},\"total_p99\":{},\"create_attach_local_median\":{},\"bare_socket_round_trip_median\":{}}},\"seconds\":{}}}",
        m.cpus,
        esc(&m.model),
        esc(&m.kernel),
        r.quick,
        r.cpus
            .map_or("null".into(), |(me, peer)| format!("[{me},{peer}]")),
        rows.join(","),
        over.join(","),
        goals.join(","),
        s.reps,
        num(s.total_ns),
        num(s.total_p99_ns),
        num(s.local_ns),
        num(s.bare_ns),
        num(r.elapsed.as_secs_f64())
    )
}

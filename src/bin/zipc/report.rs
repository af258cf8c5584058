//! What `zipc bench` measured, and how it is printed: one table (or JSON) with the machine
//! above it and the ratios, all from the same run, in it.

use crate::peer::Transport;
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

/// One transport's results.
pub(crate) struct Row {
    pub(crate) transport: Transport,
    pub(crate) latency: Latency,
    /// In the order of `bench::FRAMES`.
    pub(crate) rates: Vec<Rate>,
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
    fn row(&self, t: Transport) -> Option<&Row> {
        self.rows.iter().find(|r| r.transport == t)
    }
}

/// A transport's name in the table.
pub(crate) fn label(t: Transport) -> &'static str {
    match t {
        Transport::Zipc => "zipc",
        Transport::Floor => "raw shm (floor)",
        Transport::Pipe => "pipe",
        Transport::Socket => "unix seqpacket",
    }
}

fn key(t: Transport) -> &'static str {
    match t {
        Transport::Zipc => "zipc",
        Transport::Floor => "floor",
        Transport::Pipe => "pipe",
        Transport::Socket => "socket",
    }
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
        c.push(if r.frame <= 64 {
            per_sec(r.per_sec())
        } else {
            format!("{:.2}", r.gb_per_sec())
        });
    }
    c
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
        c.push(ratio(zr.per_sec(), or.per_sec()));
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

fn size(frame: usize) -> String {
    if frame >= 1024 && frame % 1024 == 0 {
        format!("{} KiB", frame / 1024)
    } else {
        format!("{frame} B")
    }
}

/// The table, with the machine above and notes below.
pub(crate) fn table(r: &Results) -> String {
    const LABEL: usize = 16;
    const CELL: usize = 12;
    let mut out = String::new();
    let m = &r.machine;
    let _ = writeln!(
        out,
        "machine: {} CPUs, {}, {}{}",
        m.cpus,
        m.model,
        m.kernel,
        if r.quick { "  (--quick)" } else { "" }
    );
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
    if let Some(row) = r.rows.first() {
        for rate in &row.rates {
            let unit = if rate.frame <= 64 { "msg/s" } else { "GB/s" };
            header.push(format!("{} {unit}", size(rate.frame)));
        }
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
    let _ = writeln!(out, "{}", "-".repeat(width));
    for row in &r.rows {
        line(&mut out, label(row.transport), &cells(row));
    }
    let _ = writeln!(out, "{}", "-".repeat(width));
    if let Some(zipc) = r.row(Transport::Zipc) {
        for (t, name) in [
            (Transport::Floor, "zipc ÷ floor"),
            (Transport::Pipe, "zipc ÷ pipe"),
            (Transport::Socket, "zipc ÷ socket"),
        ] {
            if let Some(other) = r.row(t) {
                let cells: Vec<String> = ratios(zipc, other).into_iter().map(times).collect();
                line(&mut out, name, &cells);
            }
        }
    }
    let _ = writeln!(out, "{}", "-".repeat(width));
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
        .map(|row| format!("{} {}", key(row.transport), row.latency.round_trips))
        .collect();
    let slots: Vec<String> = r
        .rows
        .first()
        .map(|row| {
            row.rates
                .iter()
                .filter(|rate| rate.frame > 8)
                .map(|rate| {
                    format!(
                        "{} x {}",
                        crate::floor::slot_count(rate.frame),
                        size(rate.frame)
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let _ = write!(
        out,
        "\nratios: zipc ÷ the other, same run: for latency lower is better, for throughput higher.\n\
         latency: after a warm-up, each round trip timed ({}).\n\
         throughput: the parent copies each frame in from one buffer (stamped with a counter);\n\
         the peer copies each out into one buffer and sums the stamps (checked). Timed from the\n\
         first send until the peer reports the last frame read. Buffers: zipc ring 1 MiB; pipe\n\
         1 MiB (if pipe-max-size allows); socket 1 MiB (if wmem_max allows).\n\
         zipc: loan+commit per frame, recv in place; a waiting side spins, then futex-sleeps.\n\
         floor: a cache-line ping-pong; 8 B: a ring of {} u64 slots; larger: a ring of fixed\n\
         slots memcpy'd in and out ({}).\n\
         The floor rings are SPSC with each side caching the other's counter, as zipc's ring.\n\
         pipe: one write per frame, reads through a 64 KiB buffer (a stream has no frames).\n\
         socket: SOCK_SEQPACKET, one send and one recv per frame.\n\
         channel setup: {} reps, a fresh 1 MiB memfd channel each; the peer is long-lived.\n\
         took {:.1} s\n",
        trips.join(", "),
        crate::floor::slot_count(8),
        slots.join(", "),
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
                .map(|rate| {
                    format!(
                        "{{\"frame_bytes\":{},\"frames\":{},\"seconds\":{},\"frames_per_sec\":{},\"gb_per_sec\":{}}}",
                        rate.frame,
                        rate.frames,
                        num(rate.secs),
                        num(rate.per_sec()),
                        num(rate.gb_per_sec())
                    )
                })
                .collect();
            format!(
                "{{\"transport\":\"{}\",\"latency_one_way_ns\":{{\"p50\":{},\"p99\":{},\"p999\":{},\"round_trips\":{}}},\"throughput\":[{}]}}",
                key(row.transport),
                num(l.p50),
                num(l.p99),
                num(l.p999),
                l.round_trips,
                rates.join(",")
            )
        })
        .collect();
    let mut over = Vec::new();
    if let Some(zipc) = r.row(Transport::Zipc) {
        for other in r.rows.iter().filter(|row| row.transport != Transport::Zipc) {
            let cells: Vec<String> = ratios(zipc, other).into_iter().map(num).collect();
            over.push(format!(
                "\"{}\":{{\"latency_p50\":{},\"latency_p99\":{},\"latency_p999\":{},\"throughput\":[{}]}}",
                key(other.transport),
                cells[0],
                cells[1],
                cells[2],
                cells[3..].join(",")
            ));
        }
    }
    let m = &r.machine;
    let s = &r.setup;
    format!(
        "{{\"machine\":{{\"cpus\":{},\"cpu\":\"{}\",\"kernel\":\"{}\"}},\"quick\":{},\"pinned_cpus\":{},\"transports\":[{}],\"zipc_over\":{{{}}},\"setup_ns\":{{\"reps\":{},\"total_median\":{},\"total_p99\":{},\"create_attach_local_median\":{},\"bare_socket_round_trip_median\":{}}},\"seconds\":{}}}",
        m.cpus,
        esc(&m.model),
        esc(&m.kernel),
        r.quick,
        r.cpus
            .map_or("null".into(), |(me, peer)| format!("[{me},{peer}]")),
        rows.join(","),
        over.join(","),
        s.reps,
        num(s.total_ns),
        num(s.total_p99_ns),
        num(s.local_ns),
        num(s.bare_ns),
        num(r.elapsed.as_secs_f64())
    )
}

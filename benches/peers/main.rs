//! zipc against peer crates, iceoryx2, shmem-ipc and ipc-channel, between two processes, in
//! one run.
//!
//! ```sh
//! cargo run --release -p zipc-peers              # 5 rounds, taking turns
//! cargo run --release -p zipc-peers -- --quick   # one short round (CI's smoke run)
//! ```
//!
//! Every figure is between this process and a re-run of this binary as the peer, pinned to
//! two CPUs when there are two:
//! - latency: an 8-byte ping-pong, each round trip timed, one way = round trip / 2. zipc
//!   busy-polling (`Wait::Spin`) and as configured by default (`Wait::Adaptive`); iceoryx2
//!   and shmem-ipc polled in a loop; ipc-channel blocking in the kernel. How each is set up
//!   is in its module.
//! - throughput: 64 KiB frames one way for a fixed time, each copied in from one buffer and
//!   out into another (ipc-channel's `recv` returns a fresh `Vec`, which is its copy out),
//!   every frame's stamp summed and checked at the end.
//!
//! The ratios are taken round by round (each zipc figure against the peer's measured beside
//! it), then the median over the rounds: the machine drifts between rounds, two figures side
//! by side drift together.

mod iox;
mod ipc;
mod ours;
mod shmem;

use iceoryx2::prelude::{LogLevel, set_log_level};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};
use zipc::Wait;

const FRAME: usize = 64 * 1024;

/// The stamp of the last frame of a stream that has no close (iceoryx2, shmem-ipc), and the
/// value that ends their ping-pong.
const END: u64 = u64::MAX;

struct Plan {
    rounds: usize,
    warmup: u64,
    trips: u64,
    /// Round trips through ipc-channel, some 200 times slower.
    ipc_trips: u64,
    stream: Duration,
}

#[derive(Clone, Copy)]
enum Subject {
    Zipc(Wait),
    Iceoryx2,
    ShmemIpc,
    IpcChannel,
}

impl Subject {
    fn label(self) -> &'static str {
        match self {
            Subject::Zipc(Wait::Spin) => "zipc (spin)",
            Subject::Zipc(_) => "zipc (adaptive)",
            Subject::Iceoryx2 => "iceoryx2 (poll)",
            Subject::ShmemIpc => "shmem-ipc (poll)",
            Subject::IpcChannel => "ipc-channel",
        }
    }
}

/// The rows, and (zipc row, peer row) pairs of the ratios: the pollers against zipc
/// busy-polling, ipc-channel against both zipc rows.
const SUBJECTS: [Subject; 5] = [
    Subject::Zipc(Wait::Spin),
    Subject::Iceoryx2,
    Subject::ShmemIpc,
    Subject::Zipc(Wait::Adaptive),
    Subject::IpcChannel,
];
const PAIRS: [(usize, usize); 4] = [(0, 1), (0, 2), (0, 4), (3, 4)];

#[derive(Clone)]
struct Run {
    /// One-way latency, ns.
    p50: f64,
    p99: f64,
    gb_per_sec: f64,
}

fn main() {
    // iceoryx2 warns that it runs without a config file: its defaults are what is measured.
    set_log_level(LogLevel::Error);
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("__peer") {
        let rest: Vec<&str> = args[1..].iter().map(String::as_str).collect();
        let (role, rest) = rest.split_first().expect("a peer role");
        return peer(role, rest);
    }
    let quick = args.iter().any(|a| a == "--quick");
    let plan = if quick {
        Plan {
            rounds: 1,
            warmup: 1_000,
            trips: 10_000,
            ipc_trips: 1_000,
            stream: Duration::from_millis(50),
        }
    } else {
        Plan {
            rounds: 5,
            warmup: 10_000,
            trips: 200_000,
            ipc_trips: 20_000,
            stream: Duration::from_millis(400),
        }
    };
    pin(0);
    let mut runs: Vec<Vec<Run>> = vec![Vec::new(); SUBJECTS.len()];
    for round in 0..plan.rounds {
        // Each round starts with another subject, so none always finds the machine as the
        // one before left it.
        for k in 0..SUBJECTS.len() {
            let i = (round + k) % SUBJECTS.len();
            runs[i].push(measure(SUBJECTS[i], &plan));
        }
    }
    report(&plan, &runs);
}

fn measure(s: Subject, plan: &Plan) -> Run {
    let (mut trips, rate) = match s {
        Subject::Zipc(wait) => (
            ours::ping(wait, plan.warmup, plan.trips),
            ours::stream(wait, plan.stream),
        ),
        Subject::Iceoryx2 => (iox::ping(plan.warmup, plan.trips), iox::stream(plan.stream)),
        Subject::ShmemIpc => (
            shmem::ping(plan.warmup, plan.trips),
            shmem::stream(plan.stream),
        ),
        Subject::IpcChannel => (
            ipc::ping(plan.warmup / 10, plan.ipc_trips),
            ipc::stream(plan.stream),
        ),
    };
    trips.sort_unstable();
    let at = |q: f64| trips[((trips.len() as f64 * q) as usize).min(trips.len() - 1)] as f64 / 2.0;
    Run {
        p50: at(0.5),
        p99: at(0.99),
        gb_per_sec: rate,
    }
}

fn report(plan: &Plan, runs: &[Vec<Run>]) {
    println!(
        "8-byte ping-pong and {} KiB frames between two processes, {} round(s):\n",
        FRAME / 1024,
        plan.rounds
    );
    println!(
        "{:<18}{:>12}{:>12}{:>16}",
        "", "lat p50", "p99", "64 KiB GB/s"
    );
    for (s, r) in SUBJECTS.iter().zip(runs) {
        println!(
            "{:<18}{:>12}{:>12}{:>16.2}",
            s.label(),
            ns(median(r.iter().map(|r| r.p50))),
            ns(median(r.iter().map(|r| r.p99))),
            median(r.iter().map(|r| r.gb_per_sec))
        );
    }
    println!(
        "\nratios, round by round, then the median (latency: theirs ÷ zipc's; throughput: zipc's ÷ theirs):"
    );
    for (zipc, peer) in PAIRS {
        let (z, p) = (&runs[zipc], &runs[peer]);
        let lat = median(z.iter().zip(p).map(|(z, p)| p.p50 / z.p50));
        let bw = median(z.iter().zip(p).map(|(z, p)| z.gb_per_sec / p.gb_per_sec));
        println!(
            "  {} against {}: latency {}, 64 KiB throughput {bw:.2}x",
            SUBJECTS[zipc].label(),
            SUBJECTS[peer].label(),
            times(lat)
        );
    }
}

fn times(v: f64) -> String {
    if v >= 10.0 {
        format!("{v:.0}x")
    } else {
        format!("{v:.2}x")
    }
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn ns(v: f64) -> String {
    if v < 1e3 {
        format!("{v:.0} ns")
    } else {
        format!("{:.2} µs", v / 1e3)
    }
}

/// A name for a channel or service no other run uses.
fn unique(tag: &str) -> String {
    static N: std::sync::Mutex<u32> = std::sync::Mutex::new(0);
    let mut n = N.lock().unwrap();
    *n += 1;
    format!("peers-{}-{tag}-{}", std::process::id(), *n)
}

/// Starts this binary as the peer with `args` (its role first), its stdout piped back.
fn spawn_peer(args: &[&str]) -> (Child, BufReader<ChildStdout>) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .arg("__peer")
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    (child, out)
}

fn read_line(from: &mut impl BufRead) -> String {
    let mut line = String::new();
    from.read_line(&mut line).unwrap();
    assert!(!line.is_empty(), "the peer ended early");
    line.trim_end().to_owned()
}

/// Times each of `trips` round trips after `warmup` untimed ones: nanoseconds each.
fn time_trips(warmup: u64, trips: u64, mut trip: impl FnMut(u64)) -> Vec<u64> {
    for i in 0..warmup {
        trip(i);
    }
    (warmup..warmup + trips)
        .map(|i| {
            let start = Instant::now();
            trip(i);
            start.elapsed().as_nanos() as u64
        })
        .collect()
}

/// Once the peer is ready, sends stamped frames through `send` for `budget`: when it started,
/// and how many.
fn pump(budget: Duration, out: &mut impl BufRead, mut send: impl FnMut(&[u8])) -> (Instant, u64) {
    let mut src: Vec<u8> = (0..FRAME).map(|i| (i % 251) as u8).collect();
    assert_eq!(read_line(out), "ready");
    let start = Instant::now();
    let mut n = 0u64;
    while !n.is_multiple_of(16) || start.elapsed() < budget {
        src[..8].copy_from_slice(&n.to_le_bytes());
        send(&src);
        n += 1;
    }
    (start, n)
}

/// After the stream's end was sent: GB/s from `start` until the peer reports (count, sum of
/// stamps), which are checked against the `n` frames sent; the peer must exit cleanly.
fn finish(mut child: Child, out: &mut impl BufRead, start: Instant, n: u64) -> f64 {
    let report = read_line(out);
    let secs = start.elapsed().as_secs_f64();
    let sum = (0..n).fold(0u64, u64::wrapping_add);
    assert_eq!(
        report,
        format!("{n} {sum}"),
        "the peer's count and stamp sum"
    );
    assert!(child.wait().unwrap().success());
    n as f64 * FRAME as f64 / secs / 1e9
}

/// The sink's loop: `next` copies the next frame out and gives its stamp, `None` at the end
/// of the stream (or a stamp of [`END`]); then the report, "count sum".
fn drain(out: &mut impl Write, mut next: impl FnMut() -> Option<u64>) {
    let (mut count, mut sum) = (0u64, 0u64);
    while let Some(stamp) = next() {
        if stamp == END {
            break;
        }
        sum = sum.wrapping_add(stamp);
        count += 1;
    }
    writeln!(out, "{count} {sum}").unwrap();
}

/// A frame's stamp, its first 8 bytes; the frame passes through `black_box`, so that copying
/// all of it out is not optimised down to those 8 bytes.
fn stamp(frame: &[u8]) -> u64 {
    let frame = std::hint::black_box(frame);
    u64::from_le_bytes(frame[..8].try_into().unwrap())
}

fn pin(cpu: usize) {
    let mut set = nix::sched::CpuSet::new();
    // Best effort: with one CPU, both processes share it.
    if set.set(cpu).is_ok() {
        let _ = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set);
    }
}

/// The peer's side of each measurement: `role` and its arguments.
fn peer(role: &str, args: &[&str]) {
    pin(1);
    let mut out = std::io::stdout();
    match role {
        "zipc-echo" | "zipc-sink" => ours::peer(role, args, &mut out),
        "iox-echo" | "iox-sink" => iox::peer(role, args, &mut out),
        "shmem-echo" | "shmem-sink" => shmem::peer(role, args, &mut out),
        "ipc-echo" | "ipc-sink" => ipc::peer(role, args, &mut out),
        other => panic!("unknown peer role {other:?}"),
    }
}

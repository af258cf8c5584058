//! Criterion benches of the transports: per transport, the round trip of an 8-byte frame
//! (ping-pong between two threads) and one-way throughput of 64 KiB frames.
//!
//! Both ends are threads of this process, over the same kernel objects as between two
//! processes (a memfd ring each way, a socketpair, two pipes, a loopback TCP connection).
//! `Shm` ends wait as by default (`Wait::Adaptive`: spin, then futex); the others block in
//! `poll`. After criterion's report, the ratios of shm to the others are printed, from the
//! same measurements (all the time criterion measured over all the iterations it ran).
//!
//! The floor beside them is the core byte channel itself (`floor_channel`), waiting as `shm`
//! does and copying each frame in and out as a transport's caller gets it: what the
//! transport adds is the difference.
//!
//! Run with `cargo bench --bench transport`; CI only builds it.

use criterion::{Criterion, Throughput};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};
use zipc::transport::{Pipe, Shm, Tcp, Transport, UnixSocket};
use zipc::{Config, Wait, bytes};

type End = Box<dyn Transport>;

const FRAME: usize = 64 * 1024;
/// `shm` waits as by default (spin briefly, then sleep on a futex); `shm-spin` busy-polls
/// (`Wait::Spin`), as a caller that owns a core would.
const TRANSPORTS: [&str; 5] = ["shm", "shm-spin", "unix", "pipe", "tcp"];

fn pair(kind: &str) -> (End, End) {
    match kind {
        "shm" | "shm-spin" => {
            let (mut a, mut b) = Shm::pair(Config::default().capacity(1 << 20)).expect("shm pair");
            if kind == "shm-spin" {
                a.set_wait(Wait::Spin);
                b.set_wait(Wait::Spin);
            }
            (Box::new(a), Box::new(b))
        }
        "unix" => {
            let (a, b) = UnixSocket::pair().expect("socketpair");
            (Box::new(a), Box::new(b))
        }
        "pipe" => {
            let (a, b) = Pipe::pair().expect("pipes");
            (Box::new(a), Box::new(b))
        }
        "tcp" => {
            let listener = Tcp::listen("127.0.0.1:0").expect("listen");
            let a = Tcp::connect(listener.local_addr().expect("address")).expect("connect");
            let b = listener.accept().expect("accept");
            (Box::new(a), Box::new(b))
        }
        other => unreachable!("no transport {other}"),
    }
}

/// Time and iterations measured per bench, summed over every sample criterion took.
static TOTALS: Mutex<BTreeMap<String, (Duration, u64)>> = Mutex::new(BTreeMap::new());

fn record(bench: &str, took: Duration, iters: u64) -> Duration {
    let mut totals = TOTALS.lock().expect("totals");
    let entry = totals.entry(bench.to_string()).or_default();
    entry.0 += took;
    entry.1 += iters;
    took
}

/// `iters` round trips of an 8-byte frame, timed together after one untimed round trip.
fn pingpong(kind: &str, iters: u64) -> Duration {
    let (mut here, mut there) = pair(kind);
    let echo = thread::spawn(move || {
        let mut buf = Vec::new();
        for _ in 0..=iters {
            there.recv(&mut buf).expect("echo recv");
            there.send(&buf).expect("echo send");
        }
    });
    let mut buf = Vec::new();
    here.send(&0u64.to_le_bytes()).expect("send");
    here.recv(&mut buf).expect("recv");
    let start = Instant::now();
    for i in 1..=iters {
        here.send(&i.to_le_bytes()).expect("send");
        here.recv(&mut buf).expect("recv");
        debug_assert_eq!(buf, i.to_le_bytes());
    }
    let took = start.elapsed();
    echo.join().expect("echo thread");
    took
}

/// `iters` frames of 64 KiB one way, from the first send to the last frame received.
fn one_way(kind: &str, iters: u64) -> Duration {
    let (mut tx, mut rx) = pair(kind);
    let frame = vec![0x5a; FRAME];
    // Warm the path (and the receiver's buffer) before the clock starts.
    tx.send(&frame).expect("send");
    let mut buf = Vec::new();
    rx.recv(&mut buf).expect("recv");
    let sender = thread::spawn(move || {
        for _ in 0..iters {
            tx.send(&frame).expect("send");
        }
        tx
    });
    let start = Instant::now();
    let mut bytes = 0;
    for _ in 0..iters {
        rx.recv(&mut buf).expect("recv");
        bytes += buf.len();
    }
    let took = start.elapsed();
    black_box(bytes);
    drop(sender.join().expect("sender thread"));
    took
}

/// The floor: the core byte channel itself (one each way), waiting as `shm` does, frames
/// copied in and out of the ring as the transport's callers get them.
fn pingpong_channel(iters: u64) -> Duration {
    let (mut to_echo, mut echo_rx) = bytes::channel(Config::default().capacity(1 << 20)).unwrap();
    let (mut echo_tx, mut from_echo) = bytes::channel(Config::default().capacity(1 << 20)).unwrap();
    let echo = thread::spawn(move || {
        for _ in 0..=iters {
            let frame = echo_rx.recv().expect("echo recv");
            echo_tx.send(&frame).expect("echo send");
        }
    });
    let mut buf = Vec::new();
    to_echo.send(&0u64.to_le_bytes()).expect("send");
    drop(from_echo.recv().expect("recv"));
    let start = Instant::now();
    for i in 1..=iters {
        to_echo.send(&i.to_le_bytes()).expect("send");
        let frame = from_echo.recv().expect("recv");
        buf.clear();
        buf.extend_from_slice(&frame);
    }
    let took = start.elapsed();
    echo.join().expect("echo thread");
    took
}

fn one_way_channel(iters: u64) -> Duration {
    let (mut tx, mut rx) = bytes::channel(Config::default().capacity(1 << 20)).unwrap();
    let frame = vec![0x5a; FRAME];
    let sender = thread::spawn(move || {
        for _ in 0..iters {
            tx.send(&frame).expect("send");
        }
    });
    let mut buf = Vec::new();
    let start = Instant::now();
    for _ in 0..iters {
        let frame = rx.recv().expect("recv");
        buf.clear();
        buf.extend_from_slice(&frame);
    }
    let took = start.elapsed();
    black_box(&buf);
    sender.join().expect("sender thread");
    took
}

fn latency(c: &mut Criterion) {
    let mut g = c.benchmark_group("transport_8B_round_trip");
    g.bench_function("floor_channel", |b| {
        b.iter_custom(|iters| record("rtt/channel", pingpong_channel(iters), iters))
    });
    for kind in TRANSPORTS {
        g.bench_function(kind, |b| {
            b.iter_custom(|iters| record(&format!("rtt/{kind}"), pingpong(kind, iters), iters))
        });
    }
    g.finish();
}

fn throughput(c: &mut Criterion) {
    let mut g = c.benchmark_group("transport_64KiB_one_way");
    g.throughput(Throughput::Bytes(FRAME as u64));
    g.bench_function("floor_channel", |b| {
        b.iter_custom(|iters| record("bw/channel", one_way_channel(iters), iters))
    });
    for kind in TRANSPORTS {
        g.bench_function(kind, |b| {
            b.iter_custom(|iters| record(&format!("bw/{kind}"), one_way(kind, iters), iters))
        });
    }
    g.finish();
}

/// Shm's figures against each other transport's, from the totals measured above.
fn print_ratios() {
    let totals = TOTALS.lock().expect("totals");
    let per_iter = |key: &str| {
        totals
            .get(key)
            .filter(|(_, n)| *n > 0)
            .map(|(t, n)| t.as_secs_f64() / *n as f64)
    };
    println!("\nmeasured in this run (mean over every iteration criterion ran):");
    for kind in ["channel"].into_iter().chain(TRANSPORTS) {
        if let (Some(rtt), Some(bw)) = (
            per_iter(&format!("rtt/{kind}")),
            per_iter(&format!("bw/{kind}")),
        ) {
            println!(
                "  {kind:8} 8 B round trip {:>10.2} µs   64 KiB one way {:>7.2} GB/s",
                rtt * 1e6,
                FRAME as f64 / bw / 1e9
            );
        }
    }
    let (Some(shm_rtt), Some(shm_bw)) = (per_iter("rtt/shm"), per_iter("bw/shm")) else {
        return;
    };
    let (Some(spin_rtt), Some(spin_bw)) = (per_iter("rtt/shm-spin"), per_iter("bw/shm-spin"))
    else {
        return;
    };
    for kind in &TRANSPORTS[2..] {
        if let (Some(rtt), Some(bw)) = (
            per_iter(&format!("rtt/{kind}")),
            per_iter(&format!("bw/{kind}")),
        ) {
            println!(
                "  vs {kind:4}: shm {:>6.1}x lower latency, {:>5.1}x the bandwidth; \
                 shm-spin {:>6.1}x, {:>5.1}x",
                rtt / shm_rtt,
                bw / shm_bw,
                rtt / spin_rtt,
                bw / spin_bw
            );
        }
    }
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    latency(&mut c);
    throughput(&mut c);
    c.final_summary();
    print_ratios();
}

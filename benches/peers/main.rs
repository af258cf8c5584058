//! zipc against peer crates, iceoryx2 and ipc-channel, between two processes, in one run.
//!
//! ```sh
//! cargo run --release -p zipc-peers              # 5 rounds, taking turns
//! cargo run --release -p zipc-peers -- --quick   # one short round (CI's smoke run)
//! ```
//!
//! Every figure is between this process and a re-run of this binary as the peer, pinned to
//! two CPUs when there are two:
//! - latency: an 8-byte ping-pong, each round trip timed, one way = round trip / 2. zipc over
//!   two named byte channels, busy-polling (`Wait::Spin`) and as configured by default
//!   (`Wait::Adaptive`); iceoryx2 over two publish-subscribe services of `u64`, polling its
//!   subscriber in a loop (its publish-subscribe has no blocking receive); ipc-channel over
//!   two `bytes_channel`s, which block in the kernel.
//! - throughput: 64 KiB frames one way for a fixed time, each copied in from one buffer and
//!   out into another (zipc's frame and iceoryx2's sample copied out of shared memory;
//!   ipc-channel's `recv` returns a fresh `Vec`), every frame's stamp summed and checked at
//!   the end. iceoryx2's service keeps up to 16 samples for its subscriber (1 MiB, zipc's ring
//!   size) and its publisher waits for room rather than drop a sample.
//!
//! The ratios are taken round by round (each zipc figure against the ipc-channel one measured
//! beside it), then the median over the rounds: the machine drifts between rounds, two
//! figures side by side drift together.

use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::prelude::*;
use ipc_channel::ipc::{
    IpcBytesReceiver, IpcBytesSender, IpcOneShotServer, IpcSender, bytes_channel,
};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};
use zipc::{Config, Error, Wait, bytes};

const FRAME: usize = 64 * 1024;

/// What ipc-channel's peer sends back to set up a ping-pong: where to ping, where to listen.
type Pair = (IpcBytesSender, IpcBytesReceiver);

/// iceoryx2's service kind for processes.
type Iox = iceoryx2::service::ipc::Service;

/// The stamp of iceoryx2's last frame: its streams have no close.
const END: u64 = u64::MAX;

/// Samples an iceoryx2 subscriber may hold queued: 16 of 64 KiB, zipc's 1 MiB ring.
const IOX_QUEUE: usize = 16;

struct Plan {
    rounds: usize,
    warmup: u64,
    zipc_trips: u64,
    ipc_trips: u64,
    stream: Duration,
}

fn main() {
    // iceoryx2 warns that it runs without a config file: its defaults are what is measured.
    set_log_level(LogLevel::Error);
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("__peer") {
        return peer(&args[1..]);
    }
    let quick = args.iter().any(|a| a == "--quick");
    let plan = if quick {
        Plan {
            rounds: 1,
            warmup: 1_000,
            zipc_trips: 10_000,
            ipc_trips: 1_000,
            stream: Duration::from_millis(50),
        }
    } else {
        Plan {
            rounds: 5,
            warmup: 10_000,
            zipc_trips: 200_000,
            ipc_trips: 20_000,
            stream: Duration::from_millis(400),
        }
    };
    pin(0);
    let subjects = [
        Subject::Zipc(Wait::Spin),
        Subject::Iceoryx2,
        Subject::Zipc(Wait::Adaptive),
        Subject::IpcChannel,
    ];
    let mut runs: Vec<Vec<Run>> = vec![Vec::new(); subjects.len()];
    for round in 0..plan.rounds {
        // Each round starts with another subject, so none always finds the machine as the
        // one before left it.
        for k in 0..subjects.len() {
            let i = (round + k) % subjects.len();
            runs[i].push(measure(subjects[i], &plan));
        }
    }
    println!(
        "8-byte ping-pong and {} KiB frames between two processes, {} round(s):\n",
        FRAME / 1024,
        plan.rounds
    );
    println!(
        "{:<18}{:>12}{:>12}{:>16}",
        "", "lat p50", "p99", "64 KiB GB/s"
    );
    for (s, r) in subjects.iter().zip(&runs) {
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
    for (zipc, peer) in [(0, 1), (0, 3), (2, 3)] {
        let (z, p) = (&runs[zipc], &runs[peer]);
        let lat = median(z.iter().zip(p).map(|(z, p)| p.p50 / z.p50));
        let bw = median(z.iter().zip(p).map(|(z, p)| z.gb_per_sec / p.gb_per_sec));
        println!(
            "  {} against {}: latency {}, 64 KiB throughput {bw:.2}x",
            subjects[zipc].label(),
            subjects[peer].label(),
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

#[derive(Clone, Copy)]
enum Subject {
    Zipc(Wait),
    Iceoryx2,
    IpcChannel,
}

impl Subject {
    fn label(self) -> &'static str {
        match self {
            Subject::Zipc(Wait::Spin) => "zipc (spin)",
            Subject::Zipc(_) => "zipc (adaptive)",
            Subject::Iceoryx2 => "iceoryx2 (poll)",
            Subject::IpcChannel => "ipc-channel",
        }
    }
}

#[derive(Clone)]
struct Run {
    /// One-way latency, ns.
    p50: f64,
    p99: f64,
    gb_per_sec: f64,
}

fn measure(s: Subject, plan: &Plan) -> Run {
    let (mut trips, rate) = match s {
        Subject::Zipc(wait) => (
            zipc_ping(wait, plan.warmup, plan.zipc_trips),
            zipc_stream(wait, plan.stream),
        ),
        Subject::Iceoryx2 => (
            iox_ping(plan.warmup, plan.zipc_trips),
            iox_stream(plan.stream),
        ),
        Subject::IpcChannel => (
            ipc_ping(plan.warmup / 10, plan.ipc_trips),
            ipc_stream(plan.stream),
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

fn wait_arg(wait: Wait) -> &'static str {
    if matches!(wait, Wait::Spin) {
        "spin"
    } else {
        "adaptive"
    }
}

fn unique(tag: &str) -> String {
    static N: std::sync::Mutex<u32> = std::sync::Mutex::new(0);
    let mut n = N.lock().unwrap();
    *n += 1;
    format!("peers-{}-{tag}-{}", std::process::id(), *n)
}

/// Starts this binary as the peer, on the second CPU, with its stdout piped back.
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

fn zipc_ping(wait: Wait, warmup: u64, trips: u64) -> Vec<u64> {
    let (ping, pong) = (unique("ping"), unique("pong"));
    let mut tx = bytes::create(&ping, Config::default().capacity(4096)).unwrap();
    tx.set_wait(wait);
    let (mut child, mut out) = spawn_peer(&["zipc-echo", wait_arg(wait), &ping, &pong]);
    assert_eq!(read_line(&mut out), "ready");
    let mut rx = bytes::open(&pong).unwrap();
    rx.set_wait(wait);
    let times = time_trips(warmup, trips, |i| {
        tx.send(&i.to_le_bytes()).unwrap();
        let frame = rx.recv().unwrap();
        assert_eq!(*frame, i.to_le_bytes(), "round trip {i} came back wrong");
    });
    drop(tx);
    assert!(child.wait().unwrap().success());
    times
}

fn ipc_ping(warmup: u64, trips: u64) -> Vec<u64> {
    let (server, name) = IpcOneShotServer::<Pair>::new().unwrap();
    let (mut child, _out) = spawn_peer(&["ipc-echo", &name]);
    let (_, (tx, rx)) = server.accept().unwrap();
    let times = time_trips(warmup, trips, |i| {
        tx.send(&i.to_le_bytes()).unwrap();
        let frame = rx.recv().unwrap();
        assert_eq!(frame, i.to_le_bytes(), "round trip {i} came back wrong");
    });
    drop(tx);
    assert!(child.wait().unwrap().success());
    times
}

/// Once the peer is ready, sends stamped frames through `send` for `budget`: when it started,
/// and how many.
fn pump(budget: Duration, out: &mut impl BufRead, mut send: impl FnMut(&[u8])) -> (Instant, u64) {
    let mut src: Vec<u8> = (0..FRAME).map(|i| (i % 251) as u8).collect();
    assert_eq!(read_line(out), "ready");
    let start = Instant::now();
    let mut n = 0u64;
    while n % 16 != 0 || start.elapsed() < budget {
        src[..8].copy_from_slice(&n.to_le_bytes());
        send(&src);
        n += 1;
    }
    (start, n)
}

/// After the sender closed: GB/s from `start` until the peer reports (count, sum of stamps),
/// which are checked against the `n` frames sent.
fn rate(out: &mut impl BufRead, start: Instant, n: u64) -> f64 {
    let report = read_line(out);
    let secs = start.elapsed().as_secs_f64();
    let sum = (0..n).fold(0u64, u64::wrapping_add);
    assert_eq!(
        report,
        format!("{n} {sum}"),
        "the peer's count and stamp sum"
    );
    n as f64 * FRAME as f64 / secs / 1e9
}

fn zipc_stream(wait: Wait, budget: Duration) -> f64 {
    let name = unique("stream");
    let mut tx = bytes::create(&name, Config::default().capacity(1 << 20)).unwrap();
    tx.set_wait(wait);
    let (mut child, mut out) = spawn_peer(&["zipc-sink", wait_arg(wait), &name]);
    let (start, n) = pump(budget, &mut out, |frame| tx.send(frame).unwrap());
    drop(tx);
    let rate = rate(&mut out, start, n);
    assert!(child.wait().unwrap().success());
    rate
}

fn ipc_stream(budget: Duration) -> f64 {
    let (server, name) = IpcOneShotServer::<IpcBytesSender>::new().unwrap();
    let (mut child, mut out) = spawn_peer(&["ipc-sink", &name]);
    let (_, tx) = server.accept().unwrap();
    let (start, n) = pump(budget, &mut out, |frame| tx.send(frame).unwrap());
    drop(tx);
    let rate = rate(&mut out, start, n);
    assert!(child.wait().unwrap().success());
    rate
}

use iceoryx2::service::port_factory::publish_subscribe::PortFactory as PubSub;

fn iox_node() -> Node<Iox> {
    NodeBuilder::new().create::<Iox>().unwrap()
}

/// The publish-subscribe service `name` of `u64`s, created or opened.
fn iox_values(node: &Node<Iox>, name: &str) -> PubSub<Iox, u64, ()> {
    node.service_builder(&name.try_into().unwrap())
        .publish_subscribe::<u64>()
        .open_or_create()
        .unwrap()
}

/// The publish-subscribe service `name` of 64 KiB byte slices, created or opened: no sample
/// dropped, [`IOX_QUEUE`] queued at most.
fn iox_frames(node: &Node<Iox>, name: &str) -> PubSub<Iox, [u8], ()> {
    node.service_builder(&name.try_into().unwrap())
        .publish_subscribe::<[u8]>()
        .enable_safe_overflow(false)
        .subscriber_max_buffer_size(IOX_QUEUE)
        .open_or_create()
        .unwrap()
}

fn iox_send(tx: &Publisher<Iox, u64, ()>, v: u64) {
    tx.loan_uninit().unwrap().write_payload(v).send().unwrap();
}

/// Polls `rx` until a value comes.
fn iox_recv(rx: &Subscriber<Iox, u64, ()>) -> u64 {
    loop {
        if let Some(sample) = rx.receive().unwrap() {
            return *sample;
        }
        std::hint::spin_loop();
    }
}

fn iox_ping(warmup: u64, trips: u64) -> Vec<u64> {
    let (ping, pong) = (unique("ping"), unique("pong"));
    let node = iox_node();
    let tx = iox_values(&node, &ping)
        .publisher_builder()
        .create()
        .unwrap();
    let rx = iox_values(&node, &pong)
        .subscriber_builder()
        .create()
        .unwrap();
    let (mut child, mut out) = spawn_peer(&["iox-echo", &ping, &pong]);
    // A sample published before the peer subscribed would be lost: wait for it.
    assert_eq!(read_line(&mut out), "ready");
    let times = time_trips(warmup, trips, |i| {
        iox_send(&tx, i);
        assert_eq!(iox_recv(&rx), i, "round trip {i} came back wrong");
    });
    iox_send(&tx, END);
    assert!(child.wait().unwrap().success());
    times
}

fn iox_stream(budget: Duration) -> f64 {
    let name = unique("stream");
    let node = iox_node();
    let tx = iox_frames(&node, &name)
        .publisher_builder()
        .initial_max_slice_len(FRAME)
        .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
        .create()
        .unwrap();
    let (mut child, mut out) = spawn_peer(&["iox-sink", &name]);
    let send = |frame: &[u8]| {
        let sample = tx.loan_slice_uninit(frame.len()).unwrap();
        sample.write_from_slice(frame).send().unwrap();
    };
    let (start, n) = pump(budget, &mut out, send);
    let mut end = vec![0u8; FRAME];
    end[..8].copy_from_slice(&END.to_le_bytes());
    send(&end);
    let rate = rate(&mut out, start, n);
    assert!(child.wait().unwrap().success());
    rate
}

fn pin(cpu: usize) {
    let mut set = nix::sched::CpuSet::new();
    // Best effort: with one CPU, both processes share it.
    if set.set(cpu).is_ok() {
        let _ = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set);
    }
}

/// The peer's side of each measurement.
fn peer(args: &[String]) {
    pin(1);
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    let wait = if arg(1) == "spin" {
        Wait::Spin
    } else {
        Wait::Adaptive
    };
    let mut stdout = std::io::stdout();
    match arg(0) {
        "zipc-echo" => {
            let mut rx = bytes::open(arg(2)).unwrap();
            let mut tx = bytes::create(arg(3), Config::default().capacity(4096)).unwrap();
            rx.set_wait(wait);
            tx.set_wait(wait);
            writeln!(stdout, "ready").unwrap();
            loop {
                match rx.recv() {
                    Ok(frame) => tx.send(&frame).unwrap(),
                    Err(Error::Disconnected) => return,
                    Err(e) => panic!("zipc echo: {e}"),
                }
            }
        }
        "zipc-sink" => {
            let mut rx = bytes::open(arg(2)).unwrap();
            rx.set_wait(wait);
            writeln!(stdout, "ready").unwrap();
            let mut dst = vec![0u8; FRAME];
            let (mut count, mut sum) = (0u64, 0u64);
            loop {
                match rx.recv() {
                    Ok(frame) => dst.copy_from_slice(&frame),
                    Err(Error::Disconnected) => break,
                    Err(e) => panic!("zipc sink: {e}"),
                }
                sum = sum.wrapping_add(stamp(std::hint::black_box(&dst)));
                count += 1;
            }
            writeln!(stdout, "{count} {sum}").unwrap();
        }
        "iox-echo" => {
            let node = iox_node();
            let rx = iox_values(&node, arg(1))
                .subscriber_builder()
                .create()
                .unwrap();
            let tx = iox_values(&node, arg(2))
                .publisher_builder()
                .create()
                .unwrap();
            writeln!(stdout, "ready").unwrap();
            loop {
                let v = iox_recv(&rx);
                if v == END {
                    return;
                }
                iox_send(&tx, v);
            }
        }
        "iox-sink" => {
            let node = iox_node();
            let rx = iox_frames(&node, arg(1))
                .subscriber_builder()
                .buffer_size(IOX_QUEUE)
                .create()
                .unwrap();
            writeln!(stdout, "ready").unwrap();
            let mut dst = vec![0u8; FRAME];
            let (mut count, mut sum) = (0u64, 0u64);
            loop {
                let Some(sample) = rx.receive().unwrap() else {
                    std::hint::spin_loop();
                    continue;
                };
                assert_eq!(sample.len(), FRAME, "a frame of another size");
                dst.copy_from_slice(&sample);
                drop(sample);
                let stamp = stamp(std::hint::black_box(&dst));
                if stamp == END {
                    break;
                }
                sum = sum.wrapping_add(stamp);
                count += 1;
            }
            writeln!(stdout, "{count} {sum}").unwrap();
        }
        "ipc-echo" => {
            let (ping_tx, ping_rx) = bytes_channel().unwrap();
            let (pong_tx, pong_rx) = bytes_channel().unwrap();
            let hello = IpcSender::<Pair>::connect(arg(1).to_owned()).unwrap();
            hello.send((ping_tx, pong_rx)).unwrap();
            while let Ok(frame) = ping_rx.recv() {
                pong_tx.send(&frame).unwrap();
            }
        }
        "ipc-sink" => {
            let (tx, rx) = bytes_channel().unwrap();
            let hello = IpcSender::<IpcBytesSender>::connect(arg(1).to_owned()).unwrap();
            hello.send(tx).unwrap();
            writeln!(stdout, "ready").unwrap();
            let (mut count, mut sum) = (0u64, 0u64);
            while let Ok(frame) = rx.recv() {
                assert_eq!(frame.len(), FRAME, "a frame of another size");
                sum = sum.wrapping_add(stamp(&frame));
                count += 1;
            }
            writeln!(stdout, "{count} {sum}").unwrap();
        }
        other => panic!("unknown peer role {other:?}"),
    }
}

fn stamp(frame: &[u8]) -> u64 {
    u64::from_le_bytes(frame[..8].try_into().unwrap())
}

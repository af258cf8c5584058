//! Ping-pong through the C API against the same ping-pong in Rust, measured in one run.
//!
//! ```sh
//! cargo bench -p zipc-ffi --bench pingpong               # 15 runs of each, alternating, per mode
//! cargo bench -p zipc-ffi --bench pingpong -- --verbose  # and every run's figures
//! cargo bench -p zipc-ffi --bench pingpong -- --quick    # one short run of each (CI's smoke run)
//! ```
//!
//! Each run is two fresh processes, pinned to CPUs 0 and 1: one pings an 8-byte frame over a
//! named channel, the other sends it back over a second one, and the pinger times the round
//! trips (after a warm-up). The C pair is `benches/pingpong.c` on `libzipc.so`
//! (`zipc_send`, `zipc_recv`, `zipc_release`); the Rust pair is this binary (`send`, `recv`,
//! the frame dropped). Runs of the two alternate, in each wait mode: busy-poll (`spin`, the
//! steadier figure) and the default (`adaptive`: spin, then sleep).

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;
use zipc::{Config, Error, Wait, bytes};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    let num = |i: usize| arg(i).parse::<u64>().expect("a number");
    match arg(1) {
        "echo" => return echo(wait(arg(2)), arg(3), num(4) as usize),
        "ping" => {
            return ping(
                wait(arg(2)),
                arg(3),
                arg(4),
                num(5) as usize,
                num(6),
                num(7),
            );
        }
        _ => {}
    }
    let quick = args.iter().any(|a| a == "--quick");
    let verbose = args.iter().any(|a| a == "--verbose");
    let (rounds, reps) = if quick { (20_000, 1) } else { (300_000, 15) };
    let warmup = rounds / 10;

    let c = support::compile_c("benches", "pingpong");
    let rust = std::env::current_exe().unwrap();
    println!("8-byte ping-pong between two processes, mean round trip over {rounds}:");
    for mode in ["spin", "adaptive"] {
        let (mut in_rust, mut in_c, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for rep in 1..=reps {
            // Alternate which goes first, so that neither always finds the machine as the
            // other left it.
            let (r, c) = if rep % 2 == 1 {
                let r = run(&rust, mode, warmup, rounds);
                (r, run(&c, mode, warmup, rounds))
            } else {
                let c = run(&c, mode, warmup, rounds);
                (run(&rust, mode, warmup, rounds), c)
            };
            if verbose {
                println!(
                    "  {mode:8} run {rep:2}: Rust {r:7.1} ns   C API {c:7.1} ns   C ÷ Rust {:.3}x",
                    c / r
                );
            }
            in_rust.push(r);
            in_c.push(c);
            ratios.push(c / r);
        }
        // The machine's state drifts between runs (its two vCPUs share a core in some runs and
        // not in others): the ratio of two runs side by side is steadier than either figure.
        let (r, c, ratio) = (median(&mut in_rust), median(&mut in_c), median(&mut ratios));
        println!(
            "{mode:8} median of {reps}: Rust {r:7.1} ns   C API {c:7.1} ns   \
             C ÷ Rust, run by run {ratio:.3}x (target ≤ 1.1x)"
        );
    }
}

fn wait(mode: &str) -> Wait {
    if mode == "spin" {
        Wait::Spin
    } else {
        Wait::Adaptive
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn unique(tag: &str) -> String {
    static N: std::sync::Mutex<u32> = std::sync::Mutex::new(0);
    let mut n = N.lock().unwrap();
    *n += 1;
    format!("bench-{}-{tag}-{}", std::process::id(), *n)
}

fn read_line(from: &mut impl BufRead, who: &str) -> String {
    let mut line = String::new();
    from.read_line(&mut line).unwrap();
    assert!(!line.is_empty(), "{who} ended early");
    line.trim_end().to_owned()
}

/// One ping-pong between two processes of `exe`: the mean round trip in ns.
fn run(exe: &Path, mode: &str, warmup: u64, rounds: u64) -> f64 {
    let (ping_name, pong_name) = (unique("ping"), unique("pong"));
    let mut echo = Command::new(exe)
        .args(["echo", mode, &pong_name, "1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut echo_out = BufReader::new(echo.stdout.take().unwrap());
    assert_eq!(read_line(&mut echo_out, "the echo side"), "ready");
    let mut pinger = Command::new(exe)
        .args(["ping", mode, &ping_name, &pong_name, "0"])
        .args([warmup.to_string(), rounds.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ping_out = BufReader::new(pinger.stdout.take().unwrap());
    assert_eq!(read_line(&mut ping_out, "the ping side"), "ready");
    // Both channels exist (and are sized) now: the echo side may open the ping channel.
    writeln!(echo.stdin.as_mut().unwrap(), "{ping_name}").unwrap();
    let mean: f64 = read_line(&mut ping_out, "the ping side").parse().unwrap();
    assert!(pinger.wait().unwrap().success());
    assert!(echo.wait().unwrap().success());
    mean
}

fn pin(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is an empty set; CPU_SET writes inside it; sched_setaffinity
    // reads it. Best effort: a CPU that does not exist is refused, and that is all.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set);
    }
}

/// The Rust echo side, as `echo` in pingpong.c.
fn echo(wait: Wait, pong: &str, cpu: usize) {
    pin(cpu);
    let mut tx = bytes::create(pong, Config::default().capacity(4096)).unwrap();
    tx.set_wait(wait);
    println!("ready");
    let mut ping = String::new();
    std::io::stdin().read_line(&mut ping).unwrap();
    let mut rx = bytes::open(ping.trim_end()).unwrap();
    rx.set_wait(wait);
    loop {
        match rx.recv() {
            Ok(frame) => tx.send(&frame).unwrap(),
            Err(Error::Disconnected) => return,
            Err(e) => panic!("echo: {e}"),
        }
    }
}

/// The Rust ping side, as `ping` in pingpong.c.
fn ping(wait: Wait, ping: &str, pong: &str, cpu: usize, warmup: u64, rounds: u64) {
    pin(cpu);
    let mut tx = bytes::create(ping, Config::default().capacity(4096)).unwrap();
    let mut rx = bytes::open(pong).unwrap();
    tx.set_wait(wait);
    rx.set_wait(wait);
    println!("ready");
    let mut start = Instant::now();
    for i in 0..warmup + rounds {
        if i == warmup {
            start = Instant::now();
        }
        tx.send(&i.to_le_bytes()).unwrap();
        let frame = rx.recv().unwrap();
        assert_eq!(*frame, i.to_le_bytes(), "round {i} came back wrong");
    }
    let elapsed = start.elapsed();
    println!("{:.1}", elapsed.as_nanos() as f64 / rounds as f64);
}

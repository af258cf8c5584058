//! A batch processor on a pool of pre-warmed workers: the program spawns itself as each
//! worker, runs a batch of tasks through the pool, checks every answer, and prints the
//! throughput and the pool's stats.
//!
//! Each task is a seed and a round count; the worker runs a xorshift generator from the seed
//! for that many rounds and answers the sum of its outputs.
//!
//! ```sh
//! cargo run --release --example pool                  # 100 tasks, 10 workers, 2M rounds each
//! cargo run --release --example pool -- 1000 4 500000
//! ```

use std::time::{Duration, Instant};
use zipc::process::{Command, Pool};

const WORKER_ARG: &str = "--zipc-pool-worker";

fn main() -> zipc::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(WORKER_ARG) {
        return work();
    }
    let arg = |i: usize, default: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let tasks = arg(1, 100);
    let workers = arg(2, 10) as usize;
    let rounds = arg(3, 2_000_000);

    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.arg(WORKER_ARG);
    let start = Instant::now();
    let pool = Pool::builder(cmd)
        .size(workers)
        .timeout(Duration::from_secs(60))
        .retries(2)
        .build()?;
    println!("{workers} workers spawned in {:.2?}", start.elapsed());

    let requests: Vec<Vec<u8>> = (0..tasks).map(|seed| request(seed, rounds)).collect();
    let start = Instant::now();
    let replies = pool.map(requests);
    let elapsed = start.elapsed();
    for (seed, reply) in (0..tasks).zip(replies) {
        let reply = reply?;
        let sum = u64::from_le_bytes(reply.as_slice().try_into().map_err(|_| {
            zipc::Error::Corrupted(format!("task {seed}: a reply of {} bytes", reply.len()))
        })?);
        if sum != checksum(seed, rounds) {
            return Err(zipc::Error::Corrupted(format!("task {seed}: wrong answer")));
        }
    }
    println!(
        "{tasks} tasks of {rounds} rounds in {elapsed:.2?}: {:.0} tasks/s, all answers checked",
        tasks as f64 / elapsed.as_secs_f64()
    );

    let stats = pool.stats();
    println!(
        "spawns {}, spawn time mean {:.2?} p99 {:.2?}",
        stats.spawns, stats.spawn_time_mean, stats.spawn_time_p99
    );
    println!(
        "tasks done {}, failed {}, retried {}, queued {}",
        stats.tasks_done, stats.tasks_failed, stats.tasks_retried, stats.queue_depth
    );
    println!(
        "task latency (submit to answer) p50 {:.2?} p99 {:.2?}",
        stats.task_latency_p50, stats.task_latency_p99
    );
    for w in &stats.workers {
        println!(
            "  worker {:>7}: cpu {:>9.2?}, rss {:>6} KiB",
            w.pid,
            w.cpu_time,
            w.rss_bytes / 1024
        );
    }
    Ok(())
}

/// A task: seed and rounds, little-endian.
fn request(seed: u64, rounds: u64) -> Vec<u8> {
    let mut r = seed.to_le_bytes().to_vec();
    r.extend_from_slice(&rounds.to_le_bytes());
    r
}

/// The work: the sum of `rounds` xorshift64* outputs from `seed`.
fn checksum(seed: u64, rounds: u64) -> u64 {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut sum = 0u64;
    for _ in 0..rounds {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        sum = sum.wrapping_add(x.wrapping_mul(0x2545_f491_4f6c_dd1d));
    }
    sum
}

/// The worker: answers each task until the pool closes.
fn work() -> zipc::Result<()> {
    let mut parent = zipc::worker::connect()?;
    loop {
        let (seed, rounds) = match parent.recv() {
            Ok(frame) if frame.len() == 16 => (
                u64::from_le_bytes(frame[..8].try_into().expect("8 bytes")),
                u64::from_le_bytes(frame[8..].try_into().expect("8 bytes")),
            ),
            Ok(frame) => {
                return Err(zipc::Error::InvalidArgument(format!(
                    "a task of {} bytes, not 16",
                    frame.len()
                )));
            }
            Err(zipc::Error::Disconnected) => return Ok(()),
            Err(e) => return Err(e),
        };
        parent.send(&checksum(seed, rounds).to_le_bytes())?;
    }
}

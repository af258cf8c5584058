//! `zipc bench pool`: the process layer against plain process spawning, in one run.
//!
//! - spawning 100 workers of this very binary one by one, and concurrently, against a bare
//!   spawn-and-wait of the same binary (which exits at once);
//! - dispatching 100 tiny tasks to a warm pool;
//! - the seed's batch processor: 100 echo-sized tasks at concurrency 10, through a pool of
//!   10 workers, against spawning `sh -c 'echo …'` per task;
//! - a parent → worker → parent round trip of 8 bytes.
//!
//! Every use of `zipc::process` and `zipc::worker` in this tool is in this file.

use crate::pool_report::{PoolResults, PoolRow};
use crate::role;
use crate::{Options, Result};
use std::process::{Command as StdCommand, Stdio};
use std::time::{Duration, Instant};
use zipc::process::{Command, Pool, Worker};

const TASKS: usize = 100;
/// Set in a worker's environment: the worker busy-polls (for the round-trip measurement).
const SPIN_VAR: &str = "ZIPC_BENCH_SPIN";

/// The worker side: echo every frame until the parent closes.
pub(crate) fn worker() -> Result<()> {
    let mut parent = zipc::worker::connect()?;
    if std::env::var_os(SPIN_VAR).is_some() {
        parent.set_wait(zipc::Wait::Spin);
    }
    let (tx, rx) = parent.split()?;
    loop {
        match rx.recv() {
            Ok(frame) => tx.send(&frame)?,
            Err(zipc::Error::Disconnected) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
}

fn worker_command() -> Result<Command> {
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.env(role::VAR, role::WORKER);
    Ok(cmd)
}

/// One spawn and wait of this binary, which exits at once.
fn bare_spawn(exe: &std::path::Path) -> Result<Duration> {
    let start = Instant::now();
    let status = StdCommand::new(exe)
        .env(role::VAR, role::EXIT)
        .stdin(Stdio::null())
        .status()?;
    if !status.success() {
        return Err(format!("bare spawn: {status}").into());
    }
    Ok(start.elapsed())
}

/// Spawns a worker, waits for its first answer (so it is really connected), closes it.
fn one_worker(cmd: &Command) -> Result<Duration> {
    let start = Instant::now();
    let mut w = Worker::spawn(cmd)?;
    w.send(b"x")?;
    drop(w.recv()?);
    w.wait()?;
    Ok(start.elapsed())
}

/// Each of `TASKS` bare spawns and worker spawns, one by one, the two kinds taking turns (and
/// turns at going first) so that both see the same machine: their times, sorted.
fn spawns_one_by_one(cmd: &Command) -> Result<(Vec<Duration>, Vec<Duration>)> {
    let exe = std::env::current_exe()?;
    let (mut bare, mut worker) = (Vec::new(), Vec::new());
    for i in 0..TASKS {
        if i % 2 == 0 {
            bare.push(bare_spawn(&exe)?);
            worker.push(one_worker(cmd)?);
        } else {
            worker.push(one_worker(cmd)?);
            bare.push(bare_spawn(&exe)?);
        }
    }
    bare.sort();
    worker.sort();
    Ok((bare, worker))
}

fn workers_concurrently(cmd: &Command) -> Result<Duration> {
    let start = Instant::now();
    std::thread::scope(|s| -> Result<()> {
        let handles: Vec<_> = (0..TASKS)
            .map(|_| s.spawn(|| one_worker(cmd).map_err(|e| e.to_string())))
            .collect();
        for h in handles {
            h.join().map_err(|_| "a spawning thread panicked")??;
        }
        Ok(())
    })?;
    Ok(start.elapsed())
}

/// `map`s `TASKS` tasks with the given payloads through the pool, checking every echo.
fn pool_map(pool: &Pool, payload: impl Fn(usize) -> Vec<u8>) -> Result<Duration> {
    let inputs: Vec<Vec<u8>> = (0..TASKS).map(&payload).collect();
    let start = Instant::now();
    let results = pool.map(inputs.clone());
    let took = start.elapsed();
    for (got, sent) in results.into_iter().zip(inputs) {
        if got? != sent {
            return Err("the pool answered another task's payload".into());
        }
    }
    Ok(took)
}

fn shell_per_task() -> Result<Duration> {
    let start = Instant::now();
    for chunk in (0..TASKS).collect::<Vec<_>>().chunks(10) {
        let children: Vec<_> = chunk
            .iter()
            .map(|i| {
                StdCommand::new("sh")
                    .args(["-c", &format!("echo task {i}")])
                    .stdout(Stdio::piped())
                    .spawn()
            })
            .collect::<std::io::Result<_>>()?;
        for c in children {
            let out = c.wait_with_output()?;
            if !out.status.success() {
                return Err("sh -c failed".into());
            }
        }
    }
    Ok(start.elapsed())
}

fn round_trip(rounds: u32) -> Result<Duration> {
    let mut cmd = worker_command()?;
    cmd.env(SPIN_VAR, "1");
    let mut w = Worker::spawn(&cmd)?;
    w.set_wait(zipc::Wait::Spin);
    for _ in 0..1000 {
        w.send(&[0; 8])?;
        drop(w.recv()?);
    }
    let start = Instant::now();
    for _ in 0..rounds {
        w.send(&[0; 8])?;
        drop(w.recv()?);
    }
    let took = start.elapsed() / rounds;
    w.wait()?;
    Ok(took)
}

/// The core channel's own 8-byte ping-pong, both ends busy-polling, between this thread and
/// an echo thread: what the worker round trip is measured against.
fn core_ping_pong(rounds: u32) -> Result<Duration> {
    let config = zipc::Config::default().capacity(1 << 20);
    let (mut to_echo, mut echo_rx) = zipc::bytes::channel(config.clone())?;
    let (mut echo_tx, mut from_echo) = zipc::bytes::channel(config)?;
    for end in [&mut to_echo, &mut echo_tx] {
        end.set_wait(zipc::Wait::Spin);
    }
    for end in [&mut echo_rx, &mut from_echo] {
        end.set_wait(zipc::Wait::Spin);
    }
    let echo = std::thread::spawn(move || -> zipc::Result<()> {
        loop {
            let frame = match echo_rx.recv() {
                Ok(frame) => frame,
                Err(zipc::Error::Disconnected) => return Ok(()),
                Err(e) => return Err(e),
            };
            echo_tx.send(&frame)?;
        }
    });
    for _ in 0..1000 {
        to_echo.send(&[0; 8])?;
        drop(from_echo.recv()?);
    }
    let start = Instant::now();
    for _ in 0..rounds {
        to_echo.send(&[0; 8])?;
        drop(from_echo.recv()?);
    }
    let took = start.elapsed() / rounds;
    drop(to_echo);
    echo.join().map_err(|_| "the echo thread panicked")??;
    Ok(took)
}

/// Runs the pool benchmarks and prints their results.
pub(crate) fn run(options: &Options) -> Result<()> {
    let started = Instant::now();
    let cmd = worker_command()?;
    let (bare_each, worker_each) = spawns_one_by_one(&cmd)?;
    let bare: Duration = bare_each.iter().sum();
    let serial: Duration = worker_each.iter().sum();
    let parallel = workers_concurrently(&cmd)?;
    let pool = Pool::builder(worker_command()?).size(10).build()?;
    pool_map(&pool, |i| (i as u64).to_le_bytes().to_vec())?; // warm
    let dispatch = pool_map(&pool, |i| (i as u64).to_le_bytes().to_vec())?;
    let batch = pool_map(&pool, |i| format!("task {i}\n").into_bytes())?;
    drop(pool);
    let shell = shell_per_task()?;
    let rounds = if options.quick { 10_000 } else { 100_000 };
    let rt = round_trip(rounds)?;
    let core = core_ping_pong(rounds)?;
    let row = |what, d: Duration| PoolRow::new(what, d, TASKS);
    let median = |v: &[Duration]| v[v.len() / 2].as_secs_f64();
    let results = PoolResults::new(
        options.quick,
        TASKS,
        vec![
            row("bare spawn + wait of this binary", bare),
            row("zipc worker: spawn, connect, 1 task, wait", serial),
            row("  the same, 100 at once", parallel),
            row("warm pool of 10: dispatch 100 tiny tasks", dispatch),
            row("batch processor: pool of 10, echo-sized tasks", batch),
            row("batch processor: sh -c per task, 10 at once", shell),
        ],
        median(&worker_each) / median(&bare_each),
        (dispatch, shell.as_secs_f64() / batch.as_secs_f64()),
        (rt, core),
        started.elapsed(),
    );
    crate::print(options.format, &results, crate::pool_report::table)
}

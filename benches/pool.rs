//! Criterion benches of the process layer: spawning a worker against a bare spawn of the same
//! binary, a warm pool's dispatch of 100 tiny tasks, and the worker round trip.
//!
//! The bench binary is its own worker: started with `ZIPC_BENCH_ROLE` set, it runs the echo
//! worker (`worker` mode) or exits at once (`exit` mode, the bare spawn) instead of criterion.
//!
//! Run with `cargo bench --bench pool`; CI only builds it (`cargo bench --no-run`).
//! `zipc bench pool` measures the same things, plus the seed's batch processor against
//! `sh -c`, and prints the ratios to the targets.

use criterion::{Criterion, criterion_group};
use std::process::{Command as StdCommand, Stdio};
use zipc::process::{Command, Pool, Worker};

const ROLE_VAR: &str = "ZIPC_BENCH_ROLE";

/// The echo worker: answers each frame with itself until the parent closes.
fn echo_worker() -> zipc::Result<()> {
    let mut parent = zipc::worker::connect()?;
    let (tx, rx) = parent.split()?;
    loop {
        match rx.recv() {
            Ok(frame) => tx.send(&frame)?,
            Err(zipc::Error::Disconnected) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

fn this_binary(role: &str) -> Command {
    let mut cmd = Command::new(std::env::current_exe().expect("current exe"));
    cmd.env(ROLE_VAR, role);
    cmd
}

fn spawn(c: &mut Criterion) {
    let mut group = c.benchmark_group("spawn");
    group.sample_size(30);
    let exe = std::env::current_exe().expect("current exe");
    group.bench_function("bare spawn + wait", |b| {
        b.iter(|| {
            let status = StdCommand::new(&exe)
                .env(ROLE_VAR, "exit")
                .stdin(Stdio::null())
                .status()
                .expect("spawn");
            assert!(status.success());
        })
    });
    let cmd = this_binary("worker");
    group.bench_function("zipc worker: spawn, connect, 1 task, wait", |b| {
        b.iter(|| {
            let mut w = Worker::spawn(&cmd).expect("spawn worker");
            w.send(b"x").expect("send");
            drop(w.recv().expect("recv"));
            w.wait().expect("wait");
        })
    });
    group.finish();
}

fn dispatch(c: &mut Criterion) {
    let pool = Pool::builder(this_binary("worker"))
        .size(10)
        .build()
        .expect("pool");
    let inputs: Vec<Vec<u8>> = (0u64..100).map(|i| i.to_le_bytes().to_vec()).collect();
    c.bench_function("warm pool of 10: map 100 tiny tasks", |b| {
        b.iter(|| {
            for (answer, input) in pool.map(inputs.clone()).into_iter().zip(&inputs) {
                assert_eq!(&answer.expect("answer"), input);
            }
        })
    });
}

fn round_trip(c: &mut Criterion) {
    let mut w = Worker::spawn(&this_binary("worker")).expect("spawn worker");
    c.bench_function("worker round trip, 8 bytes, both ends adaptive", |b| {
        b.iter(|| {
            w.send(&[0; 8]).expect("send");
            drop(w.recv().expect("recv"));
        })
    });
    w.wait().expect("wait");
}

/// The criterion group (its generated function has no doc comment to carry).
#[allow(missing_docs)]
mod group {
    use super::*;

    criterion_group!(benches, spawn, dispatch, round_trip);
}

fn main() {
    match std::env::var(ROLE_VAR).as_deref() {
        Ok("worker") => {
            if let Err(e) = echo_worker() {
                eprintln!("bench worker: {e}");
                std::process::exit(1);
            }
        }
        Ok("exit") => {}
        _ => {
            group::benches();
            Criterion::default().configure_from_args().final_summary();
        }
    }
}

//! A parent and its echo worker: the program spawns itself as the worker, with a channel each
//! way already wired, sends it frames and checks the echoes.
//!
//! ```sh
//! cargo run --release --example parent_worker            # 1,000,000 frames of 64 bytes
//! cargo run --release --example parent_worker -- 100000 4096
//! ```

use std::time::Instant;
use zipc::process::{Command, Worker};

const WORKER_ARG: &str = "--zipc-echo-worker";

fn main() -> zipc::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(WORKER_ARG) {
        return echo();
    }
    let frames: u64 = args
        .get(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let size: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(64);
    if size < 8 {
        return Err(zipc::Error::InvalidArgument(
            "frames carry an 8-byte sequence number: a size of at least 8".into(),
        ));
    }

    let start = Instant::now();
    let mut worker = Worker::spawn(Command::new(std::env::current_exe()?).arg(WORKER_ARG))?;
    let pid = worker.pid();
    let (tx, rx) = worker.split()?;
    println!("worker {pid} connected in {:.2?}", start.elapsed());

    // One thread sends while this one checks the echoes: with both rings full, a single
    // thread that only sent would wait for a worker that waits for it.
    let start = Instant::now();
    std::thread::scope(|s| -> zipc::Result<()> {
        let sender = s.spawn(move || -> zipc::Result<()> {
            for seq in 0..frames {
                let mut loan = tx.loan(size)?;
                loan[..8].copy_from_slice(&seq.to_le_bytes());
                loan[8..].fill(seq as u8);
                loan.commit();
            }
            Ok(())
        });
        for seq in 0..frames {
            let frame = rx.recv()?;
            let ok = frame.len() == size
                && frame[..8] == seq.to_le_bytes()
                && frame[8..].iter().all(|&b| b == seq as u8);
            if !ok {
                return Err(zipc::Error::Corrupted(format!("echo {seq} differs")));
            }
        }
        sender.join().expect("the sender thread panicked")
    })?;
    let elapsed = start.elapsed().as_secs_f64();
    let status = worker.wait()?;

    let per_s = frames as f64 / elapsed;
    let mb_s = per_s * size as f64 * 2.0 / 1e6;
    println!("{frames} frames of {size} B sent and echoed back in {elapsed:.3} s");
    println!(
        "{:.2} M frames/s echoed, {mb_s:.0} MB/s through the worker (both directions)",
        per_s / 1e6
    );
    println!("worker exited: {status}");
    Ok(())
}

/// The worker: sends back every frame, until the parent closes.
fn echo() -> zipc::Result<()> {
    let mut parent = zipc::worker::connect()?;
    // A single-threaded process: connect removed the variable, so children of this one
    // do not inherit it.
    assert!(std::env::var_os(zipc::process::FDS_VAR).is_none());
    let (tx, rx) = parent.split()?;
    loop {
        match rx.recv() {
            Ok(frame) => tx.send(&frame)?,
            Err(zipc::Error::Disconnected) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

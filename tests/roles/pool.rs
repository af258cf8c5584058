//! The worker of tests/pool.rs: answers each request until the parent closes.
//!
//! - `sleep:<ms>`: sleeps, then answers `slept`;
//! - `die`: SIGKILLs itself;
//! - `die-once:<path>`: SIGKILLs itself if it made the file `path` now, else answers
//!   `survived`;
//! - `pid`: answers its process id;
//! - `hold:<n>:<dir>`: leaves a file named by its process id in `dir`, waits until `dir` holds
//!   `n` of them (`n` workers hold such a task at once), then answers its process id;
//! - `gate:<path>`: waits until the file `path` exists, then answers `opened`;
//! - anything else: echoes it.

use std::path::Path;
use std::time::{Duration, Instant};
use zipc::{Error, worker};

/// How long `hold` and `gate` wait before they give up (and answer so, failing the test).
const GIVE_UP: Duration = Duration::from_secs(120);

pub fn run(role: &str, _args: &[&str]) {
    assert_eq!(role, "worker", "unknown role pool:{role}");
    let mut parent = worker::connect().unwrap();
    let mut request = Vec::new();
    loop {
        // `recv_into` works over every transport (`recv`, in place, over shm alone).
        match parent.recv_into(&mut request) {
            Ok(()) => {}
            Err(Error::Disconnected) => return,
            Err(e) => panic!("worker recv: {e}"),
        }
        let text = String::from_utf8_lossy(&request).into_owned();
        let reply = if let Some(ms) = text.strip_prefix("sleep:") {
            std::thread::sleep(Duration::from_millis(ms.parse().unwrap()));
            b"slept".to_vec()
        } else if text == "die" {
            die()
        } else if let Some(path) = text.strip_prefix("die-once:") {
            let created = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
                .is_ok();
            if created {
                die()
            }
            b"survived".to_vec()
        } else if text == "pid" {
            std::process::id().to_string().into_bytes()
        } else if let Some(hold) = text.strip_prefix("hold:") {
            let (n, dir) = hold.split_once(':').expect("hold:<n>:<dir>");
            hold_until(n.parse().unwrap(), Path::new(dir))
        } else if let Some(path) = text.strip_prefix("gate:") {
            wait_for(&format!("the gate {path}"), || Path::new(path).exists())
                .map_or_else(|e| e.into_bytes(), |()| b"opened".to_vec())
        } else {
            std::mem::take(&mut request)
        };
        parent.send(&reply).unwrap();
    }
}

/// Leaves a mark in `dir` and waits until `n` workers have: the reply is this process's id,
/// or why it gave up.
fn hold_until(n: usize, dir: &Path) -> Vec<u8> {
    let pid = std::process::id().to_string();
    std::fs::write(dir.join(&pid), b"").unwrap();
    let held = || std::fs::read_dir(dir).unwrap().count() >= n;
    match wait_for(&format!("{n} holders in {}", dir.display()), held) {
        Ok(()) => pid.into_bytes(),
        Err(e) => e.into_bytes(),
    }
}

/// Polls `cond` until it holds, or says it never did.
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) -> Result<(), String> {
    let start = Instant::now();
    while !cond() {
        if start.elapsed() > GIVE_UP {
            return Err(format!("gave up after {GIVE_UP:?} waiting for {what}"));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

fn die() -> ! {
    nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL).unwrap();
    unreachable!("SIGKILL returned")
}

//! The workers of tests/process.rs.

use crate::common::check_frame;
use crate::shared::process::{FRAMES, MAX_EXTRA, Reading, fd_list, inheritable_fds, reading};
use std::time::Duration;
use zipc::process::{Command, FDS_VAR, Worker};
use zipc::{Error, worker};

pub fn run(role: &str, args: &[&str]) {
    match role {
        "check-echo" => check_echo(),
        "typed-double" => typed_double(),
        "echo-any" => {
            // Any transport: report which, then echo through a reused buffer.
            let mut parent = worker::connect().unwrap();
            parent
                .send(parent.transport().to_string().as_bytes())
                .unwrap();
            let mut buf = Vec::new();
            loop {
                match parent.recv_into(&mut buf) {
                    Ok(()) => parent.send(&buf).unwrap(),
                    Err(Error::Disconnected) => break,
                    Err(e) => panic!("worker recv: {e}"),
                }
            }
        }
        "echo" => {
            let mut parent = worker::connect().unwrap();
            let (tx, rx) = parent.split().unwrap();
            loop {
                match rx.recv() {
                    Ok(frame) => tx.send(&frame).unwrap(),
                    Err(Error::Disconnected) => break,
                    Err(e) => panic!("worker recv: {e}"),
                }
            }
        }
        "sleep" => {
            let mut parent = worker::connect().unwrap();
            parent.send(b"ready").unwrap();
            // Until the parent closes, or kills us.
            assert!(matches!(parent.recv(), Err(Error::Disconnected)));
        }
        "sleep-unconnected" => std::thread::sleep(Duration::from_secs(30)),
        "exit-early" => std::process::exit(3),
        "send-and-exit" => {
            let mut parent = worker::connect().unwrap();
            parent.send(b"last words").unwrap();
            // No destructor runs: the ring sees a dead producer, not a closed one.
            std::process::exit(0);
        }
        "report" => report(),
        "middle" => {
            let mut parent = worker::connect().unwrap();
            // It never connects, so only the death signal can end it before its 30 s sleep.
            let mut cmd = Command::new(std::env::current_exe().unwrap());
            cmd.arg("process:sleep-unconnected");
            let grandchild = Worker::spawn(&cmd).unwrap();
            parent.send(&grandchild.pid().to_le_bytes()).unwrap();
            // Until killed: the grandchild must then die with us.
            let _ = parent.recv();
        }
        "not-a-worker" => {
            let expect = args.first().expect("the words the error must hold");
            match worker::connect() {
                Err(Error::InvalidArgument(msg)) => {
                    assert!(msg.contains(expect), "{msg:?} does not mention {expect:?}")
                }
                other => panic!("connect gave {other:?}"),
            }
        }
        other => panic!("unknown role process:{other}"),
    }
}

/// Checks every frame from the parent and sends it back, until the parent closes.
fn check_echo() {
    let mut parent = worker::connect().unwrap();
    let (tx, rx) = parent.split().unwrap();
    let mut seq = 0;
    loop {
        match rx.recv() {
            Ok(frame) => {
                check_frame(seq, MAX_EXTRA, &frame);
                tx.send(&frame).unwrap();
                seq += 1;
            }
            Err(Error::Disconnected) => break,
            Err(e) => panic!("worker recv: {e}"),
        }
    }
    assert_eq!(seq, FRAMES);
}

/// Checks every `Reading` from the parent and answers it with its value doubled.
fn typed_double() {
    let mut parent = worker::connect().unwrap();
    let (tx, rx) = parent.split().unwrap();
    let mut seq = 0;
    loop {
        let mut r = match rx.recv() {
            Ok(frame) => *frame.value::<Reading>().unwrap(),
            Err(Error::Disconnected) => break,
            Err(e) => panic!("worker recv: {e}"),
        };
        assert_eq!(r, reading(seq));
        r.value *= 2.0;
        tx.send_value(&r).unwrap();
        seq += 1;
    }
    assert_eq!(seq, FRAMES);
}

/// Sends the parent what this process sees: its environment, directory and CPUs.
fn report() {
    let var = std::env::var(FDS_VAR).unwrap();
    let fds = fd_list(&inheritable_fds());
    let mut parent = worker::connect().unwrap();
    parent.send(format!("var {var}").as_bytes()).unwrap();
    parent.send(format!("fds {fds}").as_bytes()).unwrap();
    for (key, value) in std::env::vars_os() {
        let line = format!("env {}={}", key.to_string_lossy(), value.to_string_lossy());
        parent.send(line.as_bytes()).unwrap();
    }
    let cwd = std::env::current_dir().unwrap();
    parent
        .send(format!("cwd {}", cwd.display()).as_bytes())
        .unwrap();
    let set = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)).unwrap();
    let cpus: Vec<String> = (0..nix::sched::CpuSet::count())
        .filter(|&c| set.is_set(c).unwrap())
        .map(|c| c.to_string())
        .collect();
    parent
        .send(format!("cpus {}", cpus.join(",")).as_bytes())
        .unwrap();
    parent.send(b"end").unwrap();
    assert!(matches!(parent.recv(), Err(Error::Disconnected)));
}

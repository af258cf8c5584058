//! zipc's side: two named byte channels for the ping-pong, one for the stream.

use crate::{FRAME, drain, finish, pump, read_line, spawn_peer, time_trips, unique};
use std::time::Duration;
use zipc::{Config, Error, Wait, bytes};

fn wait_arg(wait: Wait) -> &'static str {
    if matches!(wait, Wait::Spin) {
        "spin"
    } else {
        "adaptive"
    }
}

fn wait_of(arg: &str) -> Wait {
    if arg == "spin" {
        Wait::Spin
    } else {
        Wait::Adaptive
    }
}

pub(crate) fn ping(wait: Wait, warmup: u64, trips: u64) -> Vec<u64> {
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

pub(crate) fn stream(wait: Wait, budget: Duration) -> f64 {
    let name = unique("stream");
    let mut tx = bytes::create(&name, Config::default().capacity(1 << 20)).unwrap();
    tx.set_wait(wait);
    let (child, mut out) = spawn_peer(&["zipc-sink", wait_arg(wait), &name]);
    let (start, n) = pump(budget, &mut out, |frame| tx.send(frame).unwrap());
    drop(tx);
    finish(child, &mut out, start, n)
}

/// The peer's roles: `zipc-echo WAIT PING PONG`, `zipc-sink WAIT NAME`.
pub(crate) fn peer(role: &str, args: &[&str], out: &mut impl std::io::Write) {
    let wait = wait_of(args[0]);
    match role {
        "zipc-echo" => {
            let mut rx = bytes::open(args[1]).unwrap();
            let mut tx = bytes::create(args[2], Config::default().capacity(4096)).unwrap();
            rx.set_wait(wait);
            tx.set_wait(wait);
            writeln!(out, "ready").unwrap();
            loop {
                match rx.recv() {
                    Ok(frame) => tx.send(&frame).unwrap(),
                    Err(Error::Disconnected) => return,
                    Err(e) => panic!("zipc echo: {e}"),
                }
            }
        }
        _ => {
            let mut rx = bytes::open(args[1]).unwrap();
            rx.set_wait(wait);
            writeln!(out, "ready").unwrap();
            let mut dst = vec![0u8; FRAME];
            drain(out, || match rx.recv() {
                Ok(frame) => {
                    dst.copy_from_slice(&frame);
                    Some(crate::stamp(&dst))
                }
                Err(Error::Disconnected) => None,
                Err(e) => panic!("zipc sink: {e}"),
            });
        }
    }
}

//! shmem-ipc's side: its ring of `u64`s each way for the ping-pong and a ring of bytes for the
//! stream, busy-polled through the low-level ring (`sender_mut`, `receiver_mut`: no eventfd
//! signal). The parent makes the rings; the peer inherits their memfds and eventfds.

use crate::{END, FRAME, drain, finish, pump, read_line, spawn_peer, time_trips};
use nix::fcntl::{FcntlArg, FdFlag, fcntl};
use shmem_ipc::sharedring::{Receiver, Sender};
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::time::Duration;

/// Slots of the ping-pong rings.
const VALUES: usize = 512;
/// Bytes of the stream's ring: zipc's 1 MiB.
const BYTES: usize = 1 << 20;

/// A ring's three fds: its memfd, then the signals for "not empty" and "not full".
fn fds_of(memfd: &File, empty: &File, full: &File) -> [RawFd; 3] {
    [memfd.as_raw_fd(), empty.as_raw_fd(), full.as_raw_fd()]
}

/// Runs `spawn` with `fds` inheritable, then makes them close-on-exec again (this process is
/// single-threaded: no other spawn can catch them in between).
fn inheriting<R>(fds: &[RawFd], spawn: impl FnOnce(&[String]) -> R) -> R {
    let flags = |flag| {
        for &fd in fds {
            fcntl(fd, FcntlArg::F_SETFD(flag)).unwrap();
        }
    };
    flags(FdFlag::empty());
    let numbers: Vec<String> = fds.iter().map(RawFd::to_string).collect();
    let r = spawn(&numbers);
    flags(FdFlag::FD_CLOEXEC);
    r
}

/// Takes the three inherited fds named in `args`.
fn take(args: &[&str]) -> [File; 3] {
    args.iter()
        .map(|n| {
            let fd: RawFd = n.parse().unwrap();
            // SAFETY: the parent handed this fd to this process, which takes it once, here.
            unsafe { File::from_raw_fd(fd) }
        })
        .collect::<Vec<_>>()
        .try_into()
        .unwrap()
}

fn send_value(tx: &mut Sender<u64>, v: u64) {
    loop {
        let mut sent = false;
        let write = |p: *mut u64, room: usize| {
            if room == 0 {
                return 0;
            }
            // SAFETY: `p` points at `room` free slots of the ring, as its `send` says.
            unsafe { p.write(v) };
            sent = true;
            1
        };
        tx.sender_mut().send(write).unwrap();
        if sent {
            return;
        }
        std::hint::spin_loop();
    }
}

fn recv_value(rx: &mut Receiver<u64>) -> u64 {
    loop {
        let mut got = None;
        let read = |p: *const u64, ready: usize| {
            if ready == 0 {
                return 0;
            }
            // SAFETY: `p` points at `ready` written slots of the ring, as its `recv` says.
            got = Some(unsafe { p.read() });
            1
        };
        rx.receiver_mut().recv(read).unwrap();
        if let Some(v) = got {
            return v;
        }
        std::hint::spin_loop();
    }
}

/// Copies `frame` into the byte ring, a part at a time as room frees up.
fn send_frame(tx: &mut Sender<u8>, frame: &[u8]) {
    let mut done = 0;
    while done < frame.len() {
        let write = |p: *mut u8, room: usize| {
            let n = room.min(frame.len() - done);
            // SAFETY: `p` points at `room` free bytes of the ring; `n` fit there and in `frame`.
            unsafe { std::ptr::copy_nonoverlapping(frame[done..].as_ptr(), p, n) };
            done += n;
            n
        };
        tx.sender_mut().send(write).unwrap();
    }
}

/// Copies the next `dst.len()` bytes out of the byte ring.
fn recv_frame(rx: &mut Receiver<u8>, dst: &mut [u8]) {
    let mut done = 0;
    while done < dst.len() {
        let len = dst.len();
        let read = |p: *const u8, ready: usize| {
            let n = ready.min(len - done);
            // SAFETY: `p` points at `ready` written bytes of the ring; `n` fit there and in `dst`.
            unsafe { std::ptr::copy_nonoverlapping(p, dst[done..].as_mut_ptr(), n) };
            done += n;
            n
        };
        rx.receiver_mut().recv(read).unwrap();
    }
}

pub(crate) fn ping(warmup: u64, trips: u64) -> Vec<u64> {
    let mut tx = Sender::<u64>::new(VALUES).unwrap();
    let mut rx = Receiver::<u64>::new(VALUES).unwrap();
    let mut fds = fds_of(tx.memfd().as_file(), tx.empty_signal(), tx.full_signal()).to_vec();
    fds.extend(fds_of(
        rx.memfd().as_file(),
        rx.empty_signal(),
        rx.full_signal(),
    ));
    let (mut child, mut out) = inheriting(&fds, |n| {
        let mut args = vec!["shmem-echo"];
        args.extend(n.iter().map(String::as_str));
        spawn_peer(&args)
    });
    assert_eq!(read_line(&mut out), "ready");
    let times = time_trips(warmup, trips, |i| {
        send_value(&mut tx, i);
        assert_eq!(recv_value(&mut rx), i, "round trip {i} came back wrong");
    });
    send_value(&mut tx, END);
    assert!(child.wait().unwrap().success());
    times
}

pub(crate) fn stream(budget: Duration) -> f64 {
    let mut tx = Sender::<u8>::new(BYTES).unwrap();
    let fds = fds_of(tx.memfd().as_file(), tx.empty_signal(), tx.full_signal());
    let (child, mut out) = inheriting(&fds, |n| spawn_peer(&["shmem-sink", &n[0], &n[1], &n[2]]));
    let (start, n) = pump(budget, &mut out, |frame| send_frame(&mut tx, frame));
    // Its rings have no end: a last frame stamped END says it.
    let mut end = vec![0u8; FRAME];
    end[..8].copy_from_slice(&END.to_le_bytes());
    send_frame(&mut tx, &end);
    finish(child, &mut out, start, n)
}

/// The peer's roles: `shmem-echo PING-FDS... PONG-FDS...`, `shmem-sink FDS...` (three fds a
/// ring).
pub(crate) fn peer(role: &str, args: &[&str], out: &mut impl std::io::Write) {
    if role == "shmem-echo" {
        let [memfd, empty, full] = take(&args[..3]);
        let mut rx = Receiver::<u64>::open(VALUES, memfd, empty, full).unwrap();
        let [memfd, empty, full] = take(&args[3..6]);
        let mut tx = Sender::<u64>::open(VALUES, memfd, empty, full).unwrap();
        writeln!(out, "ready").unwrap();
        loop {
            match recv_value(&mut rx) {
                END => return,
                v => send_value(&mut tx, v),
            }
        }
    }
    let [memfd, empty, full] = take(&args[..3]);
    let mut rx = Receiver::<u8>::open(BYTES, memfd, empty, full).unwrap();
    writeln!(out, "ready").unwrap();
    let mut dst = vec![0u8; FRAME];
    drain(out, || {
        recv_frame(&mut rx, &mut dst);
        Some(crate::stamp(&dst))
    });
}

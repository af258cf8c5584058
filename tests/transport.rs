//! One conformance suite, run over every transport (the `conformance!` macro instantiates it
//! per transport): frames of 0 B to 16 MiB, ordering, timeouts, peer close, a peer killed
//! mid-stream (the peer is the zipc-test-roles binary, tests/roles/transport.rs). Then what is
//! particular to one transport: fd passing over Unix sockets, stale socket files, bad input,
//! SIGPIPE on pipes.

#![cfg(not(loom))]

mod common;
#[path = "common/shared.rs"]
mod shared;

use common::unique_name;
use shared::transport::{PATIENCE, pattern, stream_len};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::process::Child;
use std::time::{Duration, Instant};
use zipc::transport::{self, Address, Kind, MAX_FRAME, Pipe, Shm, Tcp, Transport, UnixSocket};
use zipc::{Config, Error};

type End = Box<dyn Transport>;

// ---------------------------------------------------------------------------------------
// Frames both sides can make and check.

fn check(seq: u64, len: usize, got: &[u8]) {
    assert_eq!(got.len(), len, "length of frame {seq}");
    assert!(got == pattern(seq, len).as_slice(), "bytes of frame {seq}");
}

fn is_end(e: &Error) -> bool {
    matches!(e, Error::Disconnected | Error::PeerGone)
}

// ---------------------------------------------------------------------------------------
// Peers in another process.

/// Starts the peer (tests/roles/transport.rs) playing `role` at `addr`, with `fds` inherited.
fn spawn(role: &str, addr: &str, fds: &[RawFd], env: &[(&str, String)]) -> Child {
    let exe = env!("CARGO_BIN_EXE_zipc-test-roles");
    let mut cmd = common::role_command(exe, &format!("transport:{role}"), &[addr], fds);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("spawn the peer")
}

fn socket_path(tag: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("zipc-{}.sock", unique_name(tag)))
}

/// A listener at `addr`, a peer that connects to it playing `role`, and our accepted end.
fn listen_for_child(addr: Address, role: &str) -> (End, Child) {
    let mut listener = transport::listen(&addr).unwrap();
    let addr = listener.address().unwrap();
    let child = spawn(role, &addr.to_string(), &[], &[]);
    let end = listener.accept_timeout(PATIENCE).unwrap();
    (end, child)
}

fn shm_child(role: &str) -> (End, Child) {
    listen_for_child(Address::Shm(unique_name("link")), role)
}

fn unix_child(role: &str) -> (End, Child) {
    listen_for_child(Address::Unix(socket_path("child")), role)
}

fn tcp_child(role: &str) -> (End, Child) {
    listen_for_child("tcp:127.0.0.1:0".parse().unwrap(), role)
}

fn pipe_child(role: &str) -> (End, Child) {
    let (ours, theirs) = Pipe::pair().unwrap();
    let (r, w) = theirs.into_fds().unwrap();
    let fds = Pipe::fds_var_value(r.as_fd(), w.as_fd()).unwrap();
    let child = spawn(
        role,
        "pipe:",
        &[r.as_raw_fd(), w.as_raw_fd()],
        &[(Pipe::FDS_VAR, fds)],
    );
    (Box::new(ours), child)
}

// ---------------------------------------------------------------------------------------
// In-process pairs.

fn shm_pair() -> (End, End) {
    // A small ring, so that frames from 32 KiB up are chunked.
    let (a, b) = Shm::pair(Config::default().capacity(64 * 1024)).unwrap();
    (Box::new(a), Box::new(b))
}

fn unix_pair() -> (End, End) {
    let (a, b) = UnixSocket::pair().unwrap();
    (Box::new(a), Box::new(b))
}

fn pipe_pair() -> (End, End) {
    let (a, b) = Pipe::pair().unwrap();
    (Box::new(a), Box::new(b))
}

fn tcp_pair() -> (End, End) {
    let listener = Tcp::listen("127.0.0.1:0").unwrap();
    let a = Tcp::connect(listener.local_addr().unwrap()).unwrap();
    let b = listener.accept_timeout(PATIENCE).unwrap();
    (Box::new(a), Box::new(b))
}

// ---------------------------------------------------------------------------------------
// The suite.

mod suite {
    use super::*;
    use std::thread;

    const SIZES: &[usize] = &[
        0,
        1,
        7,
        8,
        100,
        4095,
        4096,
        4097,
        32 * 1024 - 16,
        32 * 1024,
        65535,
        65536,
        65537,
        200_000,
        (1 << 20) - 1,
        1 << 20,
        (1 << 20) + 1,
        16 << 20,
    ];

    pub fn frames_of_every_size(kind: Kind, (mut a, mut b): (End, End)) {
        assert_eq!(a.kind(), kind);
        let t = thread::spawn(move || {
            for (i, &len) in SIZES.iter().enumerate() {
                a.send(&pattern(i as u64, len)).unwrap();
            }
            let mut buf = Vec::new();
            for (i, &len) in SIZES.iter().enumerate() {
                a.recv(&mut buf).unwrap();
                check(100 + i as u64, len, &buf);
            }
        });
        let mut buf = Vec::new();
        for (i, &len) in SIZES.iter().enumerate() {
            b.recv(&mut buf).unwrap();
            check(i as u64, len, &buf);
        }
        for (i, &len) in SIZES.iter().enumerate() {
            b.send(&pattern(100 + i as u64, len)).unwrap();
        }
        t.join().unwrap();
    }

    pub fn frames_arrive_in_order(mut a: End, mut b: End) {
        const N: u64 = 3000;
        let len = |seq: u64| common::frame_len(seq, 70_000);
        let t = thread::spawn(move || {
            let mut frame = Vec::new();
            for seq in 0..N {
                frame.resize(len(seq), 0);
                common::fill_frame(seq, &mut frame);
                a.send(&frame).unwrap();
            }
            a
        });
        let mut buf = Vec::new();
        for seq in 0..N {
            b.recv(&mut buf).unwrap();
            common::check_frame(seq, 70_000, &buf);
        }
        let a = t.join().unwrap();
        assert!(matches!(b.try_recv(&mut buf), Err(Error::WouldBlock)));
        drop(a);
    }

    pub fn recv_times_out_and_the_link_still_works(mut a: End, mut b: End) {
        let mut buf = vec![1, 2, 3];
        assert!(matches!(b.try_recv(&mut buf), Err(Error::WouldBlock)));
        let timeout = Duration::from_millis(50);
        let start = Instant::now();
        assert!(matches!(
            b.recv_timeout(&mut buf, timeout),
            Err(Error::Timeout)
        ));
        assert!(
            start.elapsed() >= timeout,
            "gave up after {:?}",
            start.elapsed()
        );
        a.send(b"after the timeout").unwrap();
        b.recv_timeout(&mut buf, PATIENCE).unwrap();
        assert_eq!(buf, b"after the timeout");
    }

    /// A peer that does not read: sends time out, and once it reads it gets every frame
    /// whose send succeeded, whole and in order (and the one that timed out only if part of
    /// it had gone out), then what came next.
    pub fn send_times_out_on_a_peer_that_does_not_read(mut a: End, mut b: End) {
        let mut ok = 0u64;
        loop {
            match a.send_timeout(&pattern(ok, 1000), Duration::from_millis(50)) {
                Ok(()) => ok += 1,
                Err(Error::Timeout) => break,
                Err(e) => panic!("after {ok} frames: {e}"),
            }
            assert!(ok < 1_000_000, "sends never time out");
        }
        let reader = thread::spawn(move || {
            let mut buf = Vec::new();
            let mut seq = 0;
            loop {
                b.recv(&mut buf).unwrap();
                if buf == b"after" {
                    return seq;
                }
                check(seq, 1000, &buf);
                seq += 1;
            }
        });
        a.send(b"after").unwrap();
        let got = reader.join().unwrap();
        assert!(
            (ok..=ok + 1).contains(&got),
            "{ok} sends succeeded, {got} frames arrived"
        );
    }

    /// A frame larger than any buffer of the link, to a peer that does not read: `Timeout`,
    /// and the part sent is finished by the next send; the peer gets the frame whole.
    pub fn a_timed_out_large_frame_is_finished_by_the_next_send(mut a: End, mut b: End) {
        let big = pattern(7, 16 << 20);
        assert!(matches!(
            a.send_timeout(&big, Duration::from_millis(50)),
            Err(Error::Timeout)
        ));
        let reader = thread::spawn(move || {
            let mut buf = Vec::new();
            b.recv(&mut buf).unwrap();
            check(7, 16 << 20, &buf);
            b.recv(&mut buf).unwrap();
            assert_eq!(buf, b"after");
        });
        a.send(b"after").unwrap();
        reader.join().unwrap();
    }

    /// Receives that time out in the middle of large frames lose nothing.
    pub fn recv_timeouts_in_the_middle_of_frames_lose_nothing(mut a: End, mut b: End) {
        let t = thread::spawn(move || {
            for seq in 0..3 {
                a.send(&pattern(seq, 4 << 20)).unwrap();
            }
            a
        });
        let mut buf = Vec::new();
        for seq in 0..3 {
            loop {
                match b.recv_timeout(&mut buf, Duration::from_micros(200)) {
                    Ok(()) => break,
                    Err(Error::Timeout) => assert!(buf.is_empty()),
                    Err(e) => panic!("{e}"),
                }
            }
            check(seq, 4 << 20, &buf);
        }
        t.join().unwrap();
    }

    /// The peer closes: everything it sent arrives, then `Disconnected`, again and again;
    /// sending to it fails; the closed end refuses everything.
    pub fn peer_close(mut a: End, mut b: End) {
        let t = thread::spawn(move || {
            for seq in 0..10 {
                a.send(&pattern(seq, 70_000)).unwrap();
            }
            a.close().unwrap();
            a
        });
        let mut buf = Vec::new();
        for seq in 0..10 {
            b.recv_timeout(&mut buf, PATIENCE).unwrap();
            check(seq, 70_000, &buf);
        }
        let mut a = t.join().unwrap();
        assert!(matches!(b.recv(&mut buf), Err(Error::Disconnected)));
        assert!(matches!(b.try_recv(&mut buf), Err(Error::Disconnected)));
        // A socket may take a few sends before it hears of the close: TCP learns of it from
        // the peer's reset, which a loaded machine may deliver milliseconds later.
        let deadline = Instant::now() + PATIENCE;
        let err = loop {
            if let Err(e) = b.send_timeout(b"hello?", PATIENCE) {
                break e;
            }
            assert!(Instant::now() < deadline, "sending to a closed peer fails");
            thread::sleep(Duration::from_millis(1));
        };
        assert!(is_end(&err), "{err}");
        assert!(matches!(a.send(b"x"), Err(Error::Disconnected)));
        assert!(matches!(a.recv(&mut buf), Err(Error::Disconnected)));
        assert!(a.poll_fd().is_none());
        a.close().unwrap();
    }

    /// A dropped end is a close for the peer.
    pub fn peer_drop(mut a: End, mut b: End) {
        a.send(b"last words").unwrap();
        drop(a);
        let mut buf = Vec::new();
        b.recv_timeout(&mut buf, PATIENCE).unwrap();
        assert_eq!(buf, b"last words");
        assert!(matches!(b.recv(&mut buf), Err(Error::Disconnected)));
    }

    pub fn too_large_is_refused_and_nothing_is_sent(mut a: End, mut b: End) {
        // Zeroed pages that are never touched: the length is refused before any byte is read.
        let huge = vec![0u8; MAX_FRAME + 1];
        match a.send(&huge) {
            Err(Error::TooLarge { len, max }) => assert_eq!((len, max), (MAX_FRAME + 1, MAX_FRAME)),
            other => panic!("{other:?}"),
        }
        let mut buf = Vec::new();
        assert!(matches!(b.try_recv(&mut buf), Err(Error::WouldBlock)));
        a.send(b"fine").unwrap();
        b.recv_timeout(&mut buf, PATIENCE).unwrap();
        assert_eq!(buf, b"fine");
    }

    pub fn poll_fd_says_when_a_frame_waits(kind: Kind, mut a: End, mut b: End) {
        let Some(fd) = b.poll_fd() else {
            assert_eq!(kind, Kind::Shm, "only shm has no pollable descriptor");
            return;
        };
        let raw = fd.as_raw_fd();
        let poll = |ms| {
            let mut p = libc::pollfd {
                fd: raw,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one pollfd that lives for the call.
            unsafe { libc::poll(&mut p, 1, ms) }
        };
        assert_eq!(poll(0), 0);
        a.send(b"wake up").unwrap();
        assert_eq!(poll(PATIENCE.as_millis() as i32), 1);
        let mut buf = Vec::new();
        b.try_recv(&mut buf).unwrap();
        assert_eq!(buf, b"wake up");
    }

    /// A peer that sends until it is killed: every frame that arrives is whole and in order,
    /// then the end is `PeerGone` or `Disconnected`, and stays so.
    pub fn peer_killed_while_sending((mut end, mut child): (End, Child)) {
        let mut buf = Vec::new();
        let mut seq = 0;
        while seq < 300 {
            end.recv_timeout(&mut buf, PATIENCE).unwrap();
            check(seq, stream_len(seq), &buf);
            seq += 1;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let err = loop {
            match end.recv_timeout(&mut buf, PATIENCE) {
                Ok(()) => {
                    check(seq, stream_len(seq), &buf);
                    seq += 1;
                }
                Err(e) => break e,
            }
        };
        assert!(is_end(&err), "after {seq} frames: {err}");
        let again = end.recv_timeout(&mut buf, PATIENCE).unwrap_err();
        assert!(is_end(&again), "{again}");
    }

    /// A peer that receives until it is killed: sending to it then fails.
    pub fn peer_killed_while_receiving((mut end, mut child): (End, Child)) {
        for seq in 0..50 {
            end.send_timeout(&pattern(seq, 65536), PATIENCE).unwrap();
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let start = Instant::now();
        let err = loop {
            match end.send_timeout(&pattern(0, 65536), PATIENCE) {
                Ok(()) => assert!(start.elapsed() < PATIENCE, "sends to a dead peer go on"),
                Err(e) => break e,
            }
        };
        assert!(is_end(&err), "{err}");
    }
}

macro_rules! conformance {
    ($($name:ident: $kind:expr, $pair:path, $child:path;)*) => {$(
        mod $name {
            use super::*;

            #[test]
            fn frames_of_every_size() {
                suite::frames_of_every_size($kind, $pair());
            }
            #[test]
            fn frames_arrive_in_order() {
                let (a, b) = $pair();
                suite::frames_arrive_in_order(a, b);
            }
            #[test]
            fn recv_times_out_and_the_link_still_works() {
                let (a, b) = $pair();
                suite::recv_times_out_and_the_link_still_works(a, b);
            }
            #[test]
            fn send_times_out_on_a_peer_that_does_not_read() {
                let (a, b) = $pair();
                suite::send_times_out_on_a_peer_that_does_not_read(a, b);
            }
            #[test]
            fn a_timed_out_large_frame_is_finished_by_the_next_send() {
                let (a, b) = $pair();
                suite::a_timed_out_large_frame_is_finished_by_the_next_send(a, b);
            }
            #[test]
            fn recv_timeouts_in_the_middle_of_frames_lose_nothing() {
                let (a, b) = $pair();
                suite::recv_timeouts_in_the_middle_of_frames_lose_nothing(a, b);
            }
            #[test]
            fn peer_close() {
                let (a, b) = $pair();
                suite::peer_close(a, b);
            }
            #[test]
            fn peer_drop() {
                let (a, b) = $pair();
                suite::peer_drop(a, b);
            }
            #[test]
            fn too_large_is_refused_and_nothing_is_sent() {
                let (a, b) = $pair();
                suite::too_large_is_refused_and_nothing_is_sent(a, b);
            }
            #[test]
            fn poll_fd_says_when_a_frame_waits() {
                let (a, b) = $pair();
                suite::poll_fd_says_when_a_frame_waits($kind, a, b);
            }
            #[test]
            fn peer_killed_while_sending() {
                suite::peer_killed_while_sending($child("send-forever"));
            }
            #[test]
            fn peer_killed_while_receiving() {
                suite::peer_killed_while_receiving($child("recv-forever"));
            }
        }
    )*};
}

conformance! {
    shm: Kind::Shm, shm_pair, shm_child;
    unix_socket: Kind::UnixSocket, unix_pair, unix_child;
    pipe: Kind::Pipe, pipe_pair, pipe_child;
    tcp: Kind::Tcp, tcp_pair, tcp_child;
}

// ---------------------------------------------------------------------------------------
// Addresses and the choice of transport.

#[test]
fn listen_and_connect_by_address_in_one_process() {
    for addr in [
        Address::Shm(unique_name("addr")),
        Address::Unix(socket_path("addr")),
        "tcp:127.0.0.1:0".parse().unwrap(),
    ] {
        let mut listener = transport::listen(&addr).unwrap();
        let addr = listener.address().unwrap();
        let mut a = transport::connect(&addr).unwrap();
        let mut b = listener.accept_timeout(PATIENCE).unwrap();
        assert_eq!(a.kind(), addr.kind());
        a.send(b"ping").unwrap();
        let mut buf = Vec::new();
        b.recv_timeout(&mut buf, PATIENCE).unwrap();
        assert_eq!(buf, b"ping");
        b.send(b"pong").unwrap();
        a.recv_timeout(&mut buf, PATIENCE).unwrap();
        assert_eq!(buf, b"pong");
    }
}

#[test]
fn nobody_listening_is_not_found_and_connect_timeout_gives_up() {
    for addr in [
        Address::Shm(unique_name("nobody")),
        Address::Unix(socket_path("nobody")),
    ] {
        assert!(matches!(transport::connect(&addr), Err(Error::NotFound(_))));
        assert!(matches!(
            transport::connect_timeout(&addr, Duration::from_millis(20)),
            Err(Error::Timeout)
        ));
    }
    assert!(matches!(
        transport::listen(&Address::Pipe),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn a_shm_link_takes_one_peer() {
    let name = unique_name("one-peer");
    let mut listener = Shm::listen(&name, Config::default()).unwrap();
    let _a = Shm::connect(&name).unwrap();
    assert!(matches!(Shm::connect(&name), Err(Error::Busy(_))));
    let _b = listener.accept_timeout(PATIENCE).unwrap();
    assert!(matches!(
        listener.accept_timeout(Duration::from_millis(1)),
        Err(Error::InvalidArgument(_))
    ));
    // Nobody connects to a second listener: accept times out.
    let mut lonely = Shm::listen(&unique_name("lonely"), Config::default()).unwrap();
    assert!(matches!(
        lonely.accept_timeout(Duration::from_millis(20)),
        Err(Error::Timeout)
    ));
}

#[test]
fn select_follows_the_rule() {
    use transport::{Locality, select};
    assert_eq!(select(true), Kind::Shm);
    assert_eq!(select(Locality::Local), Kind::Shm);
    assert_eq!(select(Locality::LocalWithoutSharedMemory), Kind::UnixSocket);
    assert_eq!(select(false), Kind::Tcp);
    assert_eq!(select(Locality::Remote), Kind::Tcp);
}

// ---------------------------------------------------------------------------------------
// Unix sockets: stale socket files.

#[test]
fn a_socket_file_left_by_a_dead_owner_is_replaced() {
    let path = socket_path("stale");
    // std's listener leaves its file behind when it drops: what a killed owner leaves.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    assert!(matches!(
        UnixSocket::connect(&path),
        Err(Error::NotFound(_))
    ));
    let listener = UnixSocket::listen(&path).unwrap();
    let mut a = UnixSocket::connect(&path).unwrap();
    let mut b = listener.accept_timeout(PATIENCE).unwrap();
    a.send(b"on the new socket").unwrap();
    let mut buf = Vec::new();
    b.recv_timeout(&mut buf, PATIENCE).unwrap();
    assert_eq!(buf, b"on the new socket");
    drop(listener);
    assert!(!path.exists(), "the listener removes its file");
}

#[test]
fn a_live_owners_socket_is_not_taken() {
    let path = socket_path("live");
    let listener = UnixSocket::listen(&path).unwrap();
    assert!(matches!(UnixSocket::listen(&path), Err(Error::Exists(_))));
    // A live listener of another socket type is not taken either.
    let other = socket_path("live-stream");
    let _stream = std::os::unix::net::UnixListener::bind(&other).unwrap();
    assert!(matches!(UnixSocket::listen(&other), Err(Error::Exists(_))));
    std::fs::remove_file(&other).unwrap();
    // The owner still works: its probe connection closes at once, then real peers come.
    let mut probe = listener.accept_timeout(PATIENCE).unwrap();
    let mut buf = Vec::new();
    assert!(matches!(probe.recv(&mut buf), Err(Error::Disconnected)));
    let mut a = UnixSocket::connect(&path).unwrap();
    let mut b = listener.accept_timeout(PATIENCE).unwrap();
    a.send(b"still here").unwrap();
    b.recv_timeout(&mut buf, PATIENCE).unwrap();
    assert_eq!(buf, b"still here");
}

#[test]
fn a_file_that_is_not_a_socket_is_never_removed() {
    let path = socket_path("regular");
    std::fs::write(&path, b"precious").unwrap();
    assert!(matches!(
        UnixSocket::listen(&path),
        Err(Error::InvalidArgument(_))
    ));
    assert_eq!(std::fs::read(&path).unwrap(), b"precious");
    std::fs::remove_file(&path).unwrap();
}

// ---------------------------------------------------------------------------------------
// Unix sockets: descriptors.

fn memfd_with(contents: &[u8]) -> OwnedFd {
    let name = std::ffi::CString::new("zipc-test").unwrap();
    // SAFETY: a NUL-terminated name and valid flags.
    let raw = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    assert!(raw >= 0);
    // SAFETY: a fresh descriptor, ours alone.
    let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) };
    let mut file = std::fs::File::from(fd);
    std::io::Write::write_all(&mut file, contents).unwrap();
    file.into()
}

#[test]
fn a_memfd_sent_over_a_unix_socket_maps_with_the_same_contents() {
    let contents: Vec<u8> = (0..10_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let memfd = memfd_with(&contents);
    let (mut a, mut b) = UnixSocket::pair().unwrap();
    // Also across chunks: the descriptors ride on the first datagram of a large frame.
    let frame = pattern(3, 1 << 20);
    let t = std::thread::spawn(move || {
        a.send_with_fds(&frame, &[memfd.as_fd()]).unwrap();
        a
    });
    let mut buf = Vec::new();
    let fds = b.recv_with_fds_timeout(&mut buf, PATIENCE).unwrap();
    t.join().unwrap();
    check(3, 1 << 20, &buf);
    assert_eq!(fds.len(), 1);
    // SAFETY: F_GETFD on a descriptor we own.
    let fd_flags = unsafe { libc::fcntl(fds[0].as_raw_fd(), libc::F_GETFD) };
    assert_eq!(fd_flags & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
    let map = memmap2::MmapOptions::new()
        .len(contents.len())
        .map_raw_read_only(&fds[0])
        .unwrap();
    // SAFETY: the mapping is `contents.len()` bytes of a memfd nobody writes any more.
    let mapped = unsafe { std::slice::from_raw_parts(map.as_ptr(), contents.len()) };
    assert!(mapped == contents.as_slice());
}

#[test]
fn more_descriptors_than_a_message_carries_is_a_clear_error() {
    let (mut a, mut b) = UnixSocket::pair().unwrap();
    let file = std::fs::File::open("/dev/null").unwrap();
    let too_many = vec![file.as_fd(); transport::MAX_FDS + 1];
    match a.send_with_fds(b"x", &too_many) {
        Err(Error::InvalidArgument(why)) => assert!(why.contains("253"), "{why}"),
        other => panic!("{other:?}"),
    }
    let mut buf = Vec::new();
    assert!(
        matches!(b.try_recv(&mut buf), Err(Error::WouldBlock)),
        "nothing was sent"
    );
    // The most there may be goes through.
    a.send_with_fds(b"full", &too_many[..transport::MAX_FDS])
        .unwrap();
    let fds = b.recv_with_fds_timeout(&mut buf, PATIENCE).unwrap();
    assert_eq!(
        (buf.as_slice(), fds.len()),
        (&b"full"[..], transport::MAX_FDS)
    );
    // A plain receive closes the descriptors that came with a frame. They are copies of a
    // pipe's write end: once every copy is closed, its read end sees the end of the stream.
    // (Counting this process's fds would race with the tests running beside this one.)
    let (read, write) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_NONBLOCK | nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    a.send_with_fds(b"unwanted", &[write.as_fd(), write.as_fd()])
        .unwrap();
    drop(write);
    b.recv_timeout(&mut buf, PATIENCE).unwrap();
    assert_eq!(buf, b"unwanted");
    let mut byte = [0u8; 1];
    assert_eq!(
        nix::unistd::read(read.as_raw_fd(), &mut byte),
        Ok(0),
        "a received copy of the write end is still open"
    );
}

#[test]
fn descriptors_cut_short_by_the_receivers_limit_are_a_clear_error_and_not_leaked() {
    let path = socket_path("ctrunc");
    let listener = UnixSocket::listen(&path).unwrap();
    let mut child = spawn("fd-limit", &format!("unix:{}", path.display()), &[], &[]);
    let mut end = listener.accept_timeout(PATIENCE).unwrap();
    let mut buf = Vec::new();
    end.recv_timeout(&mut buf, PATIENCE).unwrap();
    assert_eq!(buf, b"ready");
    let file = std::fs::File::open("/dev/null").unwrap();
    end.send_with_fds(b"ten files", &[file.as_fd(); 10])
        .unwrap();
    end.send(b"next").unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "peer failed: {status}");
}

// ---------------------------------------------------------------------------------------
// Bad input.

#[test]
fn a_datagram_outside_the_protocol_is_corrupted() {
    use nix::sys::socket::{AddressFamily, MsgFlags, SockFlag, SockType, send, socketpair};
    for garbage in [
        &b"abc"[..],
        &[9, 0, 0, 0, 1, 0, 0, 0, 0xff][..],
        &[3, 0, 0, 0, 5, 0, 0, 0, 1][..],
    ] {
        let (raw, ours) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap();
        let mut end = UnixSocket::from_fd(ours).unwrap();
        send(raw.as_raw_fd(), garbage, MsgFlags::empty()).unwrap();
        let mut buf = Vec::new();
        assert!(
            matches!(end.recv(&mut buf), Err(Error::Corrupted(_))),
            "{garbage:?}"
        );
        assert!(
            matches!(end.try_recv(&mut buf), Err(Error::Corrupted(_))),
            "it stays broken"
        );
    }
}

#[test]
fn an_oversized_length_on_a_pipe_is_corrupted_and_a_torn_frame_is_peer_gone() {
    let (raw, mut end) = Pipe::pair().unwrap();
    let (_, w) = raw.into_fds().unwrap();
    let mut w = std::fs::File::from(w);
    std::io::Write::write_all(&mut w, &(MAX_FRAME as u64 + 1).to_le_bytes()).unwrap();
    let mut buf = Vec::new();
    assert!(matches!(end.recv(&mut buf), Err(Error::Corrupted(_))));

    let (raw, mut end) = Pipe::pair().unwrap();
    let (_, w) = raw.into_fds().unwrap();
    let mut w = std::fs::File::from(w);
    std::io::Write::write_all(&mut w, &100u64.to_le_bytes()).unwrap();
    std::io::Write::write_all(&mut w, &[1; 40]).unwrap();
    drop(w);
    assert!(matches!(end.recv(&mut buf), Err(Error::PeerGone)));
}

#[test]
fn a_ring_frame_outside_the_protocol_is_corrupted() {
    let (mut raw_tx, rx) = zipc::bytes::channel(Config::default()).unwrap();
    let (tx, _raw_rx) = zipc::bytes::channel(Config::default()).unwrap();
    let mut end = Shm::from_channels(tx, rx);
    raw_tx.send(b"abc").unwrap();
    let mut buf = Vec::new();
    assert!(matches!(end.recv(&mut buf), Err(Error::Corrupted(_))));
}

#[test]
fn descriptors_of_the_wrong_kind_are_refused() {
    let file = std::fs::File::open("/dev/null").unwrap();
    let fd = || OwnedFd::from(file.try_clone().unwrap());
    assert!(matches!(
        Pipe::from_fds(fd(), fd()),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        UnixSocket::from_fd(fd()),
        Err(Error::InvalidArgument(_))
    ));
    let (s, _) = std::os::unix::net::UnixStream::pair().unwrap();
    assert!(matches!(
        UnixSocket::from_fd(s.into()),
        Err(Error::InvalidArgument(_))
    ));
}

// ---------------------------------------------------------------------------------------
// Pipes and SIGPIPE.

#[test]
fn a_pipe_without_a_reader_is_disconnected_not_sigpipe() {
    let status = spawn("sigpipe", "pipe:", &[], &[]).wait().unwrap();
    assert!(status.success(), "peer failed: {status}");
}

#[test]
fn a_killed_shm_peers_segment_is_removed_by_the_survivor() {
    let name = unique_name("reap");
    let mut listener = transport::listen(&Address::Shm(name.clone())).unwrap();
    let mut child = spawn("send-forever", &format!("shm:{name}"), &[], &[]);
    let mut end = listener.accept_timeout(PATIENCE).unwrap();
    let mut buf = Vec::new();
    end.recv_timeout(&mut buf, PATIENCE).unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        common::shm_exists(&format!("{name}.b2a")),
        "a killed creator cannot unlink"
    );
    drop(end);
    drop(listener);
    assert!(!common::shm_exists(&format!("{name}.b2a")));
    assert!(!common::shm_exists(&format!("{name}.a2b")));
}

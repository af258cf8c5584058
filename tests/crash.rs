//! A peer killed with SIGKILL mid-stream: every frame it committed arrives, intact, then
//! `PeerGone` within 100 ms of the kill; a killed consumer is `PeerGone` to its producer. The
//! peers are the zipc-test-roles binary (tests/roles/crash.rs).

#![cfg(not(loom))]

mod common;
#[path = "common/shared.rs"]
mod shared;

use common::{check_frame, unique_name};
use shared::crash::MAX_EXTRA;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};
use zipc::shm::protocol::CONTROL_OFFSET;
use zipc::{Config, Error, bytes};

/// The spec's bound on noticing a dead peer.
const PEER_GONE_BOUND: Duration = Duration::from_millis(100);

/// Starts the peer (tests/roles/crash.rs) playing `role`, its argument the descriptor `fd`
/// (inherited) or the segment name `name`.
fn spawn(role: &str, fd: Option<&OwnedFd>, name: &str) -> std::process::Child {
    let exe = env!("CARGO_BIN_EXE_zipc-test-roles");
    common::spawn_on(exe, &format!("crash:{role}"), fd, name)
}

/// Receives from a producer that is killed after `before_kill` frames; checks every frame and
/// that `PeerGone` comes within the bound once the last one is in.
fn receive_through_a_kill(rx: &mut bytes::Consumer, mut child: std::process::Child) -> u64 {
    let before_kill = 20_000;
    let mut seq = 0;
    while seq < before_kill {
        check_frame(seq, MAX_EXTRA, &rx.recv().unwrap());
        seq += 1;
    }
    child.kill().unwrap();
    // From the signal to the error: the promise. (The reap comes after, and is not timed.)
    let killed = Instant::now();
    loop {
        match rx.recv() {
            Ok(frame) => {
                check_frame(seq, MAX_EXTRA, &frame);
                seq += 1;
            }
            Err(Error::PeerGone) => break,
            Err(e) => panic!("after frame {seq}: {e}"),
        }
    }
    let took = killed.elapsed();
    child.wait().unwrap();
    assert!(took < PEER_GONE_BOUND, "PeerGone after {took:?}");
    // Nothing is delivered after PeerGone, and asking again says the same.
    assert!(matches!(rx.try_recv(), Err(Error::PeerGone)));
    seq
}

/// The ring's two positions, read from the segment: equal when every committed frame was taken.
fn positions(fd: &OwnedFd) -> (u64, u64) {
    let map = memmap2::MmapOptions::new()
        .len(CONTROL_OFFSET + 256)
        .map_raw_read_only(fd)
        .unwrap();
    // SAFETY: the mapping is CONTROL_OFFSET + 256 bytes; tail and head are aligned u64s at
    // CONTROL_OFFSET and CONTROL_OFFSET + 128, read volatile since another process wrote them.
    unsafe {
        let base = map.as_ptr().add(CONTROL_OFFSET);
        (
            base.cast::<u64>().read_volatile(),
            base.add(128).cast::<u64>().read_volatile(),
        )
    }
}

#[test]
fn killed_producer_delivers_everything_committed_then_peer_gone() {
    let fd = bytes::memfd(Config::default().capacity(64 * 1024)).unwrap();
    let mut rx = bytes::Consumer::from_fd(fd.try_clone().unwrap()).unwrap();
    let child = spawn("producer-fd", Some(&fd), "");
    let got = receive_through_a_kill(&mut rx, child);
    rx.release_space(); // space goes back in batches: store the consumer's position now
    let (tail, head) = positions(&fd);
    assert_eq!(
        tail, head,
        "every published byte was consumed ({got} frames)"
    );
}

#[test]
fn killed_producer_is_seen_by_a_spinning_consumer() {
    let fd = bytes::memfd(Config::default().capacity(64 * 1024)).unwrap();
    let mut rx = bytes::Consumer::from_fd(fd.try_clone().unwrap()).unwrap();
    rx.set_wait(zipc::Wait::Spin);
    let child = spawn("producer-fd", Some(&fd), "");
    receive_through_a_kill(&mut rx, child);
}

#[test]
fn killed_named_creator_is_peer_gone_and_its_name_can_be_taken_over() {
    let name = unique_name("crash");
    let child = spawn("producer-named", None, &name);
    let mut rx = common::open_when_created(&name, bytes::open);
    receive_through_a_kill(&mut rx, child);
    // A killed creator cannot unlink; the survivor did, once it had drained the ring.
    assert!(
        !common::shm_exists(&name),
        "the survivor removes a dead creator's name"
    );
    // The name is free for a new creator, while the survivor still holds the old segment.
    let tx = bytes::create(&name, Config::default()).unwrap();
    drop(tx);
    drop(rx);
    assert!(!common::shm_exists(&name));
}

#[test]
fn killed_consumer_is_peer_gone_to_the_producer() {
    let fd = bytes::memfd(Config::default().capacity(4096)).unwrap();
    let mut tx = bytes::Producer::from_fd(fd.try_clone().unwrap()).unwrap();
    let frame = [9u8; 1000];
    while tx.try_send(&frame).is_ok() {}
    let mut child = spawn("consumer-fd", Some(&fd), "");
    // Room appears once the consumer attached and took two frames.
    tx.send_timeout(&frame, Duration::from_secs(20)).unwrap();
    child.kill().unwrap();
    // From the signal to the error: the promise. (The reap comes after, and is not timed.)
    let killed = Instant::now();
    let err = loop {
        if let Err(e) = tx.send(&frame) {
            break e;
        }
    };
    let took = killed.elapsed();
    child.wait().unwrap();
    assert!(matches!(err, Error::PeerGone), "{err}");
    assert!(took < PEER_GONE_BOUND, "PeerGone after {took:?}");
}

#[test]
fn a_consumer_that_never_attached_is_not_taken_for_dead() {
    let (tx, _fd) = {
        let fd = bytes::memfd(Config::default().capacity(4096)).unwrap();
        (
            bytes::Producer::from_fd(fd.try_clone().unwrap()).unwrap(),
            fd,
        )
    };
    let mut tx = tx;
    while tx.try_send(&[1; 100]).is_ok() {}
    assert!(matches!(
        tx.send_timeout(&[1; 100], Duration::from_millis(60)),
        Err(Error::Timeout)
    ));
}

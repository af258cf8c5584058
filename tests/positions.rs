//! Ring positions anywhere in u64: they count bytes modulo 2^64, so a channel whose
//! positions start just below 2^64 carries traffic across the wrap like anywhere else (no
//! overflow panic in a debug build, no spurious `Corrupted` in a release one), and a peer's
//! position is judged by its distance from ours, whatever its value.
#![cfg(not(loom))]

use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;
use zipc::shm::protocol::CONTROL_OFFSET;
use zipc::{Config, Error, bytes};

/// The ring's control block starts at `CONTROL_OFFSET`: the producer's position first, then
/// the consumer's, each on a cache-line pair of its own (128 bytes). `layout_is_as_assumed`
/// checks these against a real channel.
const TAIL: u64 = CONTROL_OFFSET as u64;
const HEAD: u64 = CONTROL_OFFSET as u64 + 128;
const CAP: u64 = 4096;

fn segment() -> OwnedFd {
    bytes::memfd(Config::default().capacity(CAP as usize)).unwrap()
}

fn file(fd: &OwnedFd) -> File {
    File::from(fd.try_clone().unwrap())
}

fn write_u64(fd: &OwnedFd, offset: u64, value: u64) {
    file(fd).write_all_at(&value.to_le_bytes(), offset).unwrap();
}

fn read_u64(fd: &OwnedFd, offset: u64) -> u64 {
    let mut b = [0u8; 8];
    file(fd).read_exact_at(&mut b, offset).unwrap();
    u64::from_le_bytes(b)
}

/// A 100-byte frame, different for each `i`.
fn frame(i: usize) -> Vec<u8> {
    (0..100).map(|j| (i * 7 + j) as u8).collect()
}

/// Sends and receives `count` frames of 100 bytes through a segment whose two positions were
/// both set to `start` before either end attached, and returns where the producer ended.
fn traffic_from(start: u64, count: usize) -> u64 {
    let fd = segment();
    write_u64(&fd, TAIL, start);
    write_u64(&fd, HEAD, start);
    let mut tx = bytes::Producer::from_fd(fd.try_clone().unwrap()).unwrap();
    let mut rx = bytes::Consumer::from_fd(fd.try_clone().unwrap()).unwrap();
    for i in 0..count {
        tx.send(&frame(i))
            .unwrap_or_else(|e| panic!("send {i} from {start}: {e}"));
        let got = rx
            .recv()
            .unwrap_or_else(|e| panic!("recv {i} from {start}: {e}"));
        assert_eq!(&*got, &frame(i)[..], "frame {i} from {start}");
    }
    assert!(matches!(rx.try_recv(), Err(Error::WouldBlock)));
    drop(tx);
    drop(rx);
    let (tail, head) = (read_u64(&fd, TAIL), read_u64(&fd, HEAD));
    assert_eq!(tail, head, "everything sent was released");
    tail
}

#[test]
fn layout_is_as_assumed() {
    // One 100-byte frame is 8 header bytes and 104 payload bytes: both positions move to 112.
    assert_eq!(traffic_from(0, 1), 112);
}

#[test]
fn honest_traffic_crosses_the_top_of_u64() {
    let start = (u64::MAX - 2 * CAP) & !7;
    let end = traffic_from(start, 200);
    // 200 frames of 112 bytes, and some padding at the ring's end: the positions wrapped.
    assert!(end < start, "the positions did not wrap: {start} -> {end}");
    let moved = end.wrapping_sub(start);
    assert!(
        (200 * 112..200 * 112 + 200 * 112 / 4).contains(&moved),
        "{moved} bytes for 200 frames"
    );
}

#[test]
fn traffic_from_every_offset_near_the_wrap() {
    // Start on each 8-byte step of the last ring below 2^64, so the wrap falls inside a frame,
    // on a header, and inside the padding.
    for back in (8..=CAP).step_by(8 * 17) {
        let start = 0u64.wrapping_sub(back);
        let end = traffic_from(start, 60);
        assert!(end < start, "from {start}: {end}");
    }
}

/// What attaching each end of a segment whose positions are `(tail, head)` gives: the
/// consumer's error and the producer's, if any.
fn attach(tail: u64, head: u64) -> [(&'static str, Option<Error>); 2] {
    let fd = segment();
    write_u64(&fd, TAIL, tail);
    write_u64(&fd, HEAD, head);
    let consumer = bytes::Consumer::from_fd(fd.try_clone().unwrap()).err();
    let producer = bytes::Producer::from_fd(fd).err();
    [("consumer", consumer), ("producer", producer)]
}

#[test]
fn a_peer_position_is_judged_by_its_distance_not_its_value() {
    let top = 0u64.wrapping_sub(64);
    // (tail, head, valid): valid when both are aligned and the fill `tail - head`, counted
    // modulo 2^64, is at most the ring.
    let cases = [
        (0, 0, true),
        (CAP, 0, true),
        (CAP + 8, 0, false),
        (0, 8, false),
        (top, top, true),
        (32, top, true),
        (CAP - 64, top, true),
        (CAP - 56, top, false),
        (top, 32, false),
        (!7, !7, true),
        (u64::MAX, u64::MAX, false),
        (top + 4, top, false),
        (top, top + 4, false),
    ];
    for (tail, head, valid) in cases {
        for (end, r) in attach(tail, head) {
            match r {
                None => assert!(valid, "{end} attached to tail {tail}, head {head}"),
                Some(Error::Corrupted(m)) => {
                    assert!(!valid, "{end} refused tail {tail}, head {head}: {m}");
                    assert!(m.contains("position"), "{m}");
                }
                Some(e) => panic!("{end} at tail {tail}, head {head}: {e}"),
            }
        }
    }
}

#[test]
fn a_consumer_attached_across_the_wrap_receives_what_is_there() {
    // The producer published 3 frames from just below 2^64 and went away; a consumer that
    // attaches later finds the positions on both sides of the wrap, and the frames intact.
    let fd = segment();
    let start = 0u64.wrapping_sub(200);
    write_u64(&fd, TAIL, start);
    write_u64(&fd, HEAD, start);
    let mut tx = bytes::Producer::from_fd(fd.try_clone().unwrap()).unwrap();
    for i in 0..3 {
        tx.send(&frame(i)).unwrap();
    }
    drop(tx);
    let tail = read_u64(&fd, TAIL);
    assert!(tail < start, "the producer's position wrapped: {tail}");
    let mut rx = bytes::Consumer::from_fd(fd).unwrap();
    for i in 0..3 {
        assert_eq!(&*rx.recv().unwrap(), &frame(i)[..]);
    }
    assert!(matches!(rx.recv(), Err(Error::Disconnected)));
}

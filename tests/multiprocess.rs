//! A million frames of random sizes cross between two processes intact: memfd and named
//! segments, byte and typed channels. The test binary re-runs itself as the producer.

mod common;

use common::{check_frame, fill_frame, frame_len, inherited, role, spawn, unique_name, wait_ok};
use std::os::fd::AsFd;
use zipc::{Config, Error, bytes, typed};

const FRAMES: u64 = 1_000_000;
/// Payload bytes beyond the 16-byte sequence number and checksum: 0..=MAX_EXTRA.
const MAX_EXTRA: u64 = 240;

#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct Record {
    seq: u64,
    values: [u32; 10],
    checksum: u64,
}

impl Record {
    fn new(seq: u64) -> Record {
        let mut rng = common::Rng(seq | 1);
        let values = std::array::from_fn(|_| rng.next() as u32);
        Record {
            seq,
            values,
            checksum: common::checksum(bytemuck::bytes_of(&values)),
        }
    }
}

fn produce_bytes(mut tx: bytes::Producer) {
    for seq in 0..FRAMES {
        let mut loan = tx.loan(frame_len(seq, MAX_EXTRA)).unwrap();
        fill_frame(seq, &mut loan);
        loan.commit();
    }
}

fn consume_bytes(rx: &mut bytes::Consumer) {
    for seq in 0..FRAMES {
        check_frame(seq, MAX_EXTRA, &rx.recv().unwrap());
    }
    assert!(matches!(rx.recv(), Err(Error::Disconnected)));
}

fn produce_typed(mut tx: typed::Producer<Record>) {
    for seq in 0..FRAMES {
        if seq % 2 == 0 {
            tx.send(&Record::new(seq)).unwrap();
        } else {
            let mut loan = tx.loan().unwrap();
            *loan = Record::new(seq);
            loan.commit();
        }
    }
}

fn consume_typed(rx: &mut typed::Consumer<Record>) {
    for seq in 0..FRAMES {
        let r = rx.recv().unwrap();
        assert_eq!(r.seq, seq);
        assert_eq!(r.checksum, common::checksum(bytemuck::bytes_of(&r.values)));
        assert_eq!(*r, Record::new(seq));
    }
    assert!(matches!(rx.recv(), Err(Error::Disconnected)));
}

/// The peer side of every test here.
#[test]
fn peer() {
    let Some((role, fd, arg)) = role() else {
        return;
    };
    match role.as_str() {
        "bytes-fd" => produce_bytes(bytes::Producer::from_fd(inherited(fd.unwrap())).unwrap()),
        "bytes-named" => produce_bytes(bytes::create(&arg, Config::default()).unwrap()),
        "typed-fd" => produce_typed(typed::Producer::from_fd(inherited(fd.unwrap())).unwrap()),
        "typed-named" => {
            produce_typed(typed::create(&arg, Config::default().capacity(64 * 1024)).unwrap())
        }
        other => panic!("unknown role {other}"),
    }
    std::process::exit(0);
}

#[test]
fn million_byte_frames_over_a_memfd() {
    let fd = bytes::memfd(Config::default().capacity(64 * 1024)).unwrap();
    let mut rx = bytes::Consumer::from_fd(fd.try_clone().unwrap()).unwrap();
    let child = spawn("peer", "bytes-fd", Some(fd.as_fd()), "");
    drop(fd);
    consume_bytes(&mut rx);
    wait_ok(child);
}

#[test]
fn million_byte_frames_over_a_named_segment() {
    let name = unique_name("bytes");
    let child = spawn("peer", "bytes-named", None, &name);
    let mut rx = common::open_when_created(&name, bytes::open);
    consume_bytes(&mut rx);
    wait_ok(child);
    assert!(
        !common::shm_exists(&name),
        "the creator unlinks its segment"
    );
}

#[test]
fn million_typed_records_over_a_memfd() {
    let fd = typed::memfd::<Record>(Config::default().capacity(16 * 1024)).unwrap();
    let mut rx = typed::Consumer::<Record>::from_fd(fd.try_clone().unwrap()).unwrap();
    let child = spawn("peer", "typed-fd", Some(fd.as_fd()), "");
    drop(fd);
    consume_typed(&mut rx);
    wait_ok(child);
}

#[test]
fn million_typed_records_over_a_named_segment() {
    let name = unique_name("typed");
    let child = spawn("peer", "typed-named", None, &name);
    let mut rx = common::open_when_created(&name, typed::open::<Record>);
    consume_typed(&mut rx);
    wait_ok(child);
    assert!(!common::shm_exists(&name));
}

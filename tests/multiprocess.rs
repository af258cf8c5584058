//! A million frames of random sizes cross between two processes intact: memfd and named
//! segments, byte and typed channels. The producer is the zipc-test-roles binary
//! (tests/roles/multiprocess.rs).

#![cfg(not(loom))]

mod common;
#[path = "common/shared.rs"]
mod shared;

use common::{check_frame, unique_name, wait_ok};
use shared::multiprocess::{FRAMES, MAX_EXTRA, Record};
use std::os::fd::OwnedFd;
use zipc::{Config, Error, bytes, typed};

/// Starts the producer (tests/roles/multiprocess.rs) playing `role`, its argument the
/// descriptor `fd` (inherited) or the segment name `name`.
fn spawn(role: &str, fd: Option<&OwnedFd>, name: &str) -> std::process::Child {
    let exe = env!("CARGO_BIN_EXE_zipc-test-roles");
    common::spawn_on(exe, &format!("multiprocess:{role}"), fd, name)
}

fn consume_bytes(rx: &mut bytes::Consumer) {
    for seq in 0..FRAMES {
        check_frame(seq, MAX_EXTRA, &rx.recv().unwrap());
    }
    assert!(matches!(rx.recv(), Err(Error::Disconnected)));
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

#[test]
fn million_byte_frames_over_a_memfd() {
    let fd = bytes::memfd(Config::default().capacity(64 * 1024)).unwrap();
    let mut rx = bytes::Consumer::from_fd(fd.try_clone().unwrap()).unwrap();
    let child = spawn("bytes-fd", Some(&fd), "");
    drop(fd);
    consume_bytes(&mut rx);
    wait_ok(child);
}

#[test]
fn million_byte_frames_over_a_named_segment() {
    let name = unique_name("bytes");
    let child = spawn("bytes-named", None, &name);
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
    let child = spawn("typed-fd", Some(&fd), "");
    drop(fd);
    consume_typed(&mut rx);
    wait_ok(child);
}

#[test]
fn million_typed_records_over_a_named_segment() {
    let name = unique_name("typed");
    let child = spawn("typed-named", None, &name);
    let mut rx = common::open_when_created(&name, typed::open::<Record>);
    consume_typed(&mut rx);
    wait_ok(child);
    assert!(!common::shm_exists(&name));
}

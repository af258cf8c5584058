//! Bad input gets a clear error and loses nothing: garbled headers and positions, frames
//! longer than the ring, unsealed or short memfds, names taken or malformed, a full /dev/shm.

#![cfg(not(loom))]

mod common;

use common::unique_name;
use memmap2::{MmapOptions, MmapRaw};
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::time::Duration;
use zipc::shm::protocol::{CONTROL_OFFSET, DATA_OFFSET};
use zipc::{Config, Error, bytes, typed};

/// Maps a segment fd read-write, as a hostile peer would.
fn map(fd: &impl AsFd, len: usize) -> MmapRaw {
    MmapOptions::new().len(len).map_raw(&fd.as_fd()).unwrap()
}

fn poke<T: Copy>(map: &MmapRaw, offset: usize, value: T) {
    assert!(offset + size_of::<T>() <= map.len());
    // SAFETY: in bounds (checked above) and aligned by the callers' offsets; this test owns
    // both ends, so no one reads the word concurrently.
    unsafe {
        map.as_mut_ptr()
            .add(offset)
            .cast::<T>()
            .write_volatile(value)
    }
}

const TAIL: usize = CONTROL_OFFSET;
const HEAD: usize = CONTROL_OFFSET + 128;
const DATA: usize = DATA_OFFSET as usize;

fn memfd_with(poke_at: usize, value: u64) -> Error {
    let fd = bytes::memfd(Config::default().capacity(4096)).unwrap();
    poke(&map(&fd, DATA + 4096), poke_at, value);
    bytes::Consumer::from_fd(fd).unwrap_err()
}

#[test]
fn wrong_magic_is_corrupted() {
    let e = memfd_with(0, 0x1234);
    assert!(
        matches!(e, Error::Corrupted(ref m) if m.contains("magic")),
        "{e}"
    );
}

#[test]
fn wrong_version_is_incompatible() {
    let fd = bytes::memfd(Config::default().capacity(4096)).unwrap();
    poke(&map(&fd, DATA + 4096), 8, 99u32);
    let e = bytes::Consumer::from_fd(fd).unwrap_err();
    assert!(
        matches!(e, Error::Incompatible(ref m) if m.contains("version 99")),
        "{e}"
    );
}

#[test]
fn wrong_sizes_are_corrupted() {
    // capacity (offset 16), total length (32), data offset (40).
    for (offset, value) in [
        (16, 8192u64),
        (16, 3000),
        (16, 1 << 50),
        (32, 1 << 20),
        (40, 0),
    ] {
        let e = memfd_with(offset, value);
        assert!(
            matches!(e, Error::Corrupted(_)),
            "offset {offset} = {value}: {e}"
        );
    }
}

#[test]
fn a_byte_channel_is_not_a_typed_one() {
    let fd = bytes::memfd(Config::default()).unwrap();
    let e = typed::Consumer::<u64>::from_fd(fd).unwrap_err();
    assert!(matches!(e, Error::Incompatible(_)), "{e}");
    let fd = typed::memfd::<u64>(Config::default()).unwrap();
    let e = typed::Consumer::<u32>::from_fd(fd).unwrap_err();
    assert!(
        matches!(e, Error::Incompatible(ref m) if m.contains("8-byte")),
        "{e}"
    );
}

#[test]
fn wild_tail_is_never_trusted() {
    // The consumer reads frames by their headers, not by the producer's position: a wild tail
    // changes nothing it receives, and a consumer attaching to it is refused.
    for wild in [7u64, 1 << 20, u64::MAX - 7] {
        let fd = bytes::memfd(Config::default().capacity(4096)).unwrap();
        let mut tx = bytes::Producer::from_fd(fd.try_clone().unwrap()).unwrap();
        let mut rx = bytes::Consumer::from_fd(fd.try_clone().unwrap()).unwrap();
        tx.send(b"ok").unwrap();
        poke(&map(&tx, DATA + 4096), TAIL, wild);
        assert_eq!(&*rx.recv().unwrap(), b"ok");
        assert!(matches!(rx.try_recv(), Err(Error::WouldBlock)));
        drop(rx);
        let e = bytes::Consumer::from_fd(fd).unwrap_err();
        assert!(
            matches!(e, Error::Corrupted(ref m) if m.contains("producer")),
            "{wild}: {e}"
        );
    }
}

#[test]
fn wild_head_is_corrupted_on_send() {
    for wild in [3u64, 1 << 20, u64::MAX] {
        let (mut tx, _rx) = bytes::channel(Config::default().capacity(4096)).unwrap();
        while tx.try_send(&[0; 500]).is_ok() {}
        poke(&map(&tx, DATA + 4096), HEAD, wild);
        let e = tx
            .send_timeout(&[0; 500], Duration::from_secs(5))
            .unwrap_err();
        assert!(
            matches!(e, Error::Corrupted(ref m) if m.contains("consumer")),
            "{wild}: {e}"
        );
    }
}

#[test]
fn wild_positions_at_attach_are_corrupted() {
    let fd = bytes::memfd(Config::default().capacity(4096)).unwrap();
    let m = map(&fd, DATA + 4096);
    poke(&m, TAIL, 8192u64);
    let e = bytes::Consumer::from_fd(fd.try_clone().unwrap()).unwrap_err();
    assert!(matches!(e, Error::Corrupted(_)), "{e}");
    let e = bytes::Producer::from_fd(fd).unwrap_err();
    assert!(matches!(e, Error::Corrupted(_)), "{e}");
}

#[test]
fn frame_longer_than_the_ring_is_corrupted() {
    for header in [
        u64::from(u32::MAX) | (0xD1 << 32),
        4000 | (0xD1 << 32),
        16 | (0x55 << 32),
    ] {
        let (mut tx, mut rx) = bytes::channel(Config::default().capacity(4096)).unwrap();
        tx.send(&[1; 16]).unwrap();
        poke(&map(&tx, DATA + 4096), DATA, header);
        let e = rx.recv().unwrap_err();
        assert!(
            matches!(e, Error::Corrupted(ref m) if m.contains("frame")),
            "{header:#x}: {e}"
        );
    }
}

fn raw_memfd(len: i64, seal: bool) -> OwnedFd {
    // SAFETY: a NUL-terminated name; the flags are valid.
    let raw =
        unsafe { libc::memfd_create(c"raw".as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
    assert!(raw >= 0);
    // SAFETY: a fresh descriptor nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    use std::os::fd::AsRawFd;
    // SAFETY: ftruncate and fcntl on the descriptor we own.
    unsafe {
        assert_eq!(libc::ftruncate(fd.as_raw_fd(), len), 0);
        if seal {
            let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
            assert_eq!(libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals), 0);
        }
    }
    fd
}

#[test]
fn unsealed_memfd_is_refused() {
    let e = bytes::Consumer::from_fd(raw_memfd(8192, false)).unwrap_err();
    assert!(
        matches!(e, Error::Incompatible(ref m) if m.contains("sealed")),
        "{e}"
    );
}

#[test]
fn short_memfd_is_corrupted() {
    for len in [0, 100, 4096] {
        let e = bytes::Consumer::from_fd(raw_memfd(len, true)).unwrap_err();
        assert!(matches!(e, Error::Corrupted(_)), "{len}: {e}");
    }
}

#[test]
fn a_zeroed_segment_is_not_ready() {
    // Sized right but never initialised: no ready word, so the bounded wait gives up.
    let e = bytes::Consumer::from_fd(raw_memfd(8192, true)).unwrap_err();
    assert!(
        matches!(e, Error::Corrupted(ref m) if m.contains("header")),
        "{e}"
    );
}

#[test]
fn a_name_that_exists_is_refused_while_its_owner_lives() {
    let name = unique_name("exists");
    let _tx = bytes::create(&name, Config::default()).unwrap();
    let e = bytes::create(&name, Config::default()).unwrap_err();
    assert!(matches!(e, Error::Exists(_)), "{e}");
}

#[test]
fn a_stale_name_is_replaced() {
    let name = unique_name("stale");
    common::stale_segment(&name, 8192);
    let tx = bytes::create(&name, Config::default()).unwrap();
    drop(tx);
    assert!(!common::shm_exists(&name));
}

#[test]
fn an_empty_name_is_waited_for_then_not_found_and_replaced_once_old() {
    // A creator that died between shm_open and sizing left an empty object.
    let name = unique_name("empty");
    common::stale_segment(&name, 0);
    // Young, it may be a creator at work: it stays.
    let e = bytes::create(&name, Config::default()).unwrap_err();
    assert!(matches!(e, Error::Exists(_)), "{e}");
    let start = std::time::Instant::now();
    let e = bytes::open(&name).unwrap_err();
    assert!(matches!(e, Error::NotFound(_)), "{e}");
    assert!(start.elapsed() >= Duration::from_secs(1), "not waited for");
    // Empty for longer than a creation takes: stale, replaced.
    let tx = bytes::create(&name, Config::default()).unwrap();
    drop(tx);
    assert!(!common::shm_exists(&name));
}

#[test]
fn list_and_clean_tell_a_live_owner_from_a_dead_one() {
    let live = unique_name("live");
    let stale = unique_name("dead");
    let _tx = bytes::create(&live, Config::default()).unwrap();
    common::stale_segment(&stale, 8192);
    let listed = zipc::shm::list().unwrap();
    let find = |n: &str| listed.iter().find(|s| s.name == n).cloned().unwrap();
    assert!(find(&live).owner_alive);
    assert!(!find(&stale).owner_alive);
    assert_eq!(find(&stale).bytes, 8192);
    assert!(
        !zipc::shm::remove_if_stale(&live).unwrap(),
        "a live owner's segment stays"
    );
    assert!(common::shm_exists(&live));
    assert!(zipc::shm::remove_if_stale(&stale).unwrap());
    assert!(!common::shm_exists(&stale));
}

#[test]
fn bad_names_are_refused() {
    let long = "x".repeat(201);
    for name in [
        "",
        "a/b",
        "/abs",
        "../up",
        "tab\t",
        "sp ace",
        "nul\0",
        long.as_str(),
    ] {
        let e = bytes::create(name, Config::default()).unwrap_err();
        assert!(matches!(e, Error::InvalidName(_)), "{name:?}: {e}");
        let e = bytes::open(name).unwrap_err();
        assert!(matches!(e, Error::InvalidName(_)), "{name:?}: {e}");
    }
}

#[test]
fn opening_a_missing_name_is_not_found() {
    let e = bytes::open(&unique_name("missing")).unwrap_err();
    assert!(matches!(e, Error::NotFound(_)), "{e}");
}

#[test]
fn a_second_live_consumer_is_busy() {
    let name = unique_name("busy");
    let _tx = bytes::create(&name, Config::default()).unwrap();
    let rx = bytes::open(&name).unwrap();
    assert!(matches!(bytes::open(&name), Err(Error::Busy(_))));
    drop(rx);
    // Once the first is gone, a replacement may attach.
    bytes::open(&name).unwrap();
}

#[test]
fn capacity_out_of_range_is_invalid() {
    for cap in [0, usize::MAX] {
        let e = bytes::channel(Config::default().capacity(cap)).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{cap}: {e}");
    }
    // Small capacities round up to a page, others to a power of two.
    let (tx, _rx) = bytes::channel(Config::default().capacity(1)).unwrap();
    assert_eq!(tx.capacity(), 4096);
    let (tx, _rx) = bytes::channel(Config::default().capacity(5000)).unwrap();
    assert_eq!(tx.capacity(), 8192);
}

#[test]
fn an_oversized_frame_is_refused_and_loses_nothing() {
    let (mut tx, mut rx) = bytes::channel(Config::default().capacity(4096)).unwrap();
    assert_eq!(tx.max_frame_len(), 2040);
    tx.send(b"before").unwrap();
    let e = tx.send(&[0; 2041]).unwrap_err();
    assert!(
        matches!(
            e,
            Error::TooLarge {
                len: 2041,
                max: 2040
            }
        ),
        "{e}"
    );
    tx.send(&[7; 2040]).unwrap();
    assert_eq!(&*rx.recv().unwrap(), b"before");
    assert_eq!(&*rx.recv().unwrap(), &[7; 2040][..]);
}

#[test]
fn a_typed_element_larger_than_half_the_ring_is_invalid() {
    let e = typed::channel::<[u64; 512]>(Config::default().capacity(4096)).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
}

#[test]
fn a_full_dev_shm_is_an_error_not_a_signal() {
    // More than any /dev/shm holds: the reservation fails at create time, and nothing is left.
    let name = unique_name("full");
    let e = bytes::create(&name, Config::default().capacity(1 << 40)).unwrap_err();
    assert!(matches!(e, Error::NoSpace { .. }), "{e}");
    assert!(!common::shm_exists(&name));
}

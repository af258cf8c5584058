//! Regression tests for what a channel promises across races, bad fds and dead peers: one
//! creator wins a name, only memory that cannot shrink under the mapping is attached, and the
//! survivor of a crash leaves nothing in `/dev/shm`.
#![cfg(not(loom))]

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Barrier};
use std::time::Duration;
use zipc::{Config, Error, bytes, typed};

/// A name no other test (or concurrent test run) uses.
fn unique(tag: &str) -> String {
    static N: std::sync::Mutex<u32> = std::sync::Mutex::new(0);
    let n = {
        let mut n = N.lock().unwrap();
        *n += 1;
        *n
    };
    format!("rel-{tag}-{}-{n}", std::process::id())
}

fn shm_path(name: &str) -> String {
    format!("/dev/shm/zipc.{name}")
}

/// Removes the name at the end of a test, whatever happened.
struct Unlink(String);
impl Drop for Unlink {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(shm_path(&self.0));
    }
}

/// A stale image at `name`: a sized segment file whose owner lock nobody holds (its creator
/// died after sizing it).
fn stale_image(name: &str) {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(shm_path(name))
        .unwrap();
    file.set_len(8192).unwrap();
}

/// Makes the producer of the named channel `name` dead to the kernel, as its process's death
/// would: every mapping of the segment is unmapped and its fd (whose open file description
/// holds the producer's liveness lock) closed, and the producer is forgotten, so that it never
/// closes the channel nor unlinks the name. No other end of the channel may be open in this
/// process (its mapping would go too).
fn simulate_death(producer: bytes::Producer, name: &str) {
    let raw = producer.as_fd().as_raw_fd();
    std::mem::forget(producer);
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let path = shm_path(name);
    for line in maps.lines().filter(|l| l.ends_with(&path)) {
        let range = line.split_whitespace().next().unwrap();
        let (start, end) = range.split_once('-').unwrap();
        let start = usize::from_str_radix(start, 16).unwrap();
        let end = usize::from_str_radix(end, 16).unwrap();
        // SAFETY: the only end mapping this segment was forgotten and never touches its
        // memory again; unmapping is what a process's death does to its mappings.
        let unmapped = unsafe { libc::munmap(start as *mut libc::c_void, end - start) };
        assert_eq!(unmapped, 0);
    }
    // SAFETY: the forgotten producer owned `raw` and will never touch it again; closing it
    // is what a process's death does to its descriptors.
    drop(unsafe { OwnedFd::from_raw_fd(raw) });
}

#[test]
fn two_creators_racing_for_a_stale_name_have_exactly_one_winner() {
    const ROUNDS: usize = 2000;
    for round in 0..ROUNDS {
        let name = unique("race");
        let _guard = Unlink(name.clone());
        stale_image(&name);
        let barrier = Arc::new(Barrier::new(2));
        let racers: Vec<_> = (0..2u8)
            .map(|id| {
                let (barrier, name) = (barrier.clone(), name.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    bytes::create(&name, Config::default().capacity(4096)).map(|p| (id, p))
                })
            })
            .collect();
        let results: Vec<_> = racers.into_iter().map(|r| r.join().unwrap()).collect();
        let winners: Vec<_> = results.iter().filter(|r| r.is_ok()).collect();
        assert_eq!(winners.len(), 1, "round {round}: {results:?}");
        for r in &results {
            if let Err(e) = r {
                assert!(matches!(e, Error::Exists(_)), "round {round}: {e}");
            }
        }
        // The name is the winner's: a frame it sends reaches a consumer opened by name.
        let (id, mut winner) = results.into_iter().find_map(Result::ok).unwrap();
        winner.send(&[id]).unwrap();
        let mut rx = bytes::open(&name).unwrap();
        assert_eq!(&*rx.recv().unwrap(), &[id], "round {round}");
        drop(winner);
        assert!(matches!(rx.recv(), Err(Error::Disconnected)));
        assert!(!std::path::Path::new(&shm_path(&name)).exists());
    }
}

#[test]
fn a_named_producers_fd_attaches_a_consumer() {
    let name = unique("fd");
    let _guard = Unlink(name.clone());
    let mut tx = bytes::create(&name, Config::default()).unwrap();
    let fd = tx.as_fd().try_clone_to_owned().unwrap();
    let mut rx = bytes::Consumer::from_fd(fd).unwrap();
    tx.send(b"via the fd").unwrap();
    assert_eq!(&*rx.recv().unwrap(), b"via the fd");
    // The consumer knows the channel's name: a second one is told which channel is held.
    let e = bytes::open(&name).unwrap_err();
    assert!(matches!(e, Error::Busy(_)), "{e}");
    let text = e.to_string();
    assert!(text.contains(&format!("{name:?}")), "{text}");
    assert!(text.contains(&std::process::id().to_string()), "{text}");
}

#[test]
fn a_file_on_a_disk_is_refused() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let path = dir.join(format!("segment-{}", std::process::id()));
    // A well-formed channel image, copied out of a real segment: only where it lives is wrong.
    let image = {
        let fd = bytes::memfd(Config::default().capacity(4096)).unwrap();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::fs::File::from(fd), &mut bytes).unwrap();
        bytes
    };
    std::fs::write(&path, &image).unwrap();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    let e = bytes::Consumer::from_fd(file.try_clone().unwrap().into()).unwrap_err();
    assert!(matches!(e, Error::Incompatible(_)), "{e}");
    assert!(e.to_string().contains("disk"), "{e}");
    let e = bytes::Producer::from_fd(file.into()).unwrap_err();
    assert!(matches!(e, Error::Incompatible(_)), "{e}");
}

#[test]
fn an_unsealed_memfd_and_a_socket_are_refused() {
    // SAFETY: a plain memfd_create with a valid name; the result is checked below.
    let raw = unsafe { libc::memfd_create(c"unsealed".as_ptr(), libc::MFD_ALLOW_SEALING) };
    assert!(raw >= 0);
    // SAFETY: a fresh descriptor that nothing else owns.
    let memfd = unsafe { OwnedFd::from_raw_fd(raw) };
    std::fs::File::from(memfd.try_clone().unwrap())
        .set_len(8192)
        .unwrap();
    let e = bytes::Consumer::from_fd(memfd).unwrap_err();
    assert!(matches!(e, Error::Incompatible(_)), "{e}");
    assert!(e.to_string().contains("not sealed"), "{e}");

    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    let e = bytes::Consumer::from_fd(a.into()).unwrap_err();
    assert!(matches!(e, Error::Incompatible(_)), "{e}");
}

#[test]
fn the_survivor_removes_the_name_of_a_dead_creator_once_drained() {
    let name = unique("survivor");
    let _guard = Unlink(name.clone());
    let mut tx = bytes::create(&name, Config::default()).unwrap();
    for i in 0u8..10 {
        tx.send(&[i]).unwrap();
    }
    simulate_death(tx, &name);
    let mut rx = bytes::open(&name).unwrap();
    for i in 0u8..10 {
        assert_eq!(&*rx.recv().unwrap(), &[i]);
        // Not drained yet: the name stays for now.
        assert!(std::path::Path::new(&shm_path(&name)).exists());
    }
    assert!(matches!(rx.recv(), Err(Error::PeerGone)));
    assert!(!std::path::Path::new(&shm_path(&name)).exists());
}

#[test]
fn a_survivor_that_drops_after_draining_removes_the_name_too() {
    let name = unique("survivor-drop");
    let _guard = Unlink(name.clone());
    let tx = bytes::create(&name, Config::default()).unwrap();
    simulate_death(tx, &name);
    let rx = bytes::open(&name).unwrap();
    drop(rx);
    assert!(!std::path::Path::new(&shm_path(&name)).exists());
}

#[test]
fn the_survivor_leaves_a_name_that_names_another_segment() {
    let name = unique("survivor-replaced");
    let _guard = Unlink(name.clone());
    let tx = bytes::create(&name, Config::default()).unwrap();
    simulate_death(tx, &name);
    let mut rx = bytes::open(&name).unwrap();
    // A new creator replaces the stale segment before the survivor notices the death.
    let mut fresh = bytes::create(&name, Config::default()).unwrap();
    assert!(matches!(rx.recv(), Err(Error::PeerGone)));
    drop(rx);
    fresh.send(b"still here").unwrap();
    let mut rx2 = bytes::open(&name).unwrap();
    assert_eq!(&*rx2.recv().unwrap(), b"still here");
}

#[test]
fn frames_sent_before_the_consumer_exists_are_all_delivered() {
    let name = unique("rendezvous");
    let _guard = Unlink(name.clone());
    let (dropping, dropped) = std::sync::mpsc::channel();
    let producer = {
        let name = name.clone();
        std::thread::spawn(move || {
            let mut tx = bytes::create(&name, Config::default()).unwrap();
            for i in 0u32..100 {
                tx.send(&i.to_le_bytes()).unwrap();
            }
            dropping.send(()).unwrap();
            // No consumer yet: the drop keeps the name and the frames until one attaches.
            drop(tx);
        })
    };
    dropped.recv().unwrap();
    let mut rx = bytes::open_timeout(&name, Duration::from_secs(30)).unwrap();
    for i in 0u32..100 {
        assert_eq!(&*rx.recv().unwrap(), &i.to_le_bytes());
    }
    assert!(matches!(rx.recv(), Err(Error::Disconnected)));
    producer.join().unwrap();
    drop(rx);
    assert!(!std::path::Path::new(&shm_path(&name)).exists());
}

#[test]
fn a_consumer_may_wait_for_the_producer_to_create_the_name() {
    let name = unique("early");
    let _guard = Unlink(name.clone());
    let consumer = {
        let name = name.clone();
        std::thread::spawn(move || {
            let mut rx = bytes::open_timeout(&name, Duration::from_secs(30)).unwrap();
            rx.recv().unwrap().to_vec()
        })
    };
    let mut tx = bytes::create(&name, Config::default()).unwrap();
    tx.wait_for_consumer(Duration::from_secs(30)).unwrap();
    assert!(tx.is_connected());
    tx.send(b"late producer").unwrap();
    assert_eq!(consumer.join().unwrap(), b"late producer");
    // The consumer's thread dropped it: closed, so no longer connected.
    assert!(!tx.is_connected());
    tx.close().unwrap();
}

#[test]
fn open_timeout_names_what_did_not_appear() {
    let name = unique("never");
    let start = std::time::Instant::now();
    let e = bytes::open_timeout(&name, Duration::from_millis(30)).unwrap_err();
    assert!(start.elapsed() >= Duration::from_millis(30));
    assert!(matches!(e, Error::NotFound(_)), "{e}");
    assert!(e.to_string().contains(&format!("{name:?}")), "{e}");
    let e = typed::open_timeout::<u64>(&name, Duration::ZERO).unwrap_err();
    assert!(matches!(e, Error::NotFound(_)), "{e}");
}

#[test]
fn close_counts_the_frames_no_consumer_took() {
    let name = unique("undelivered");
    let _guard = Unlink(name.clone());
    let config = Config::default().linger(Duration::from_millis(20));
    let mut tx = bytes::create(&name, config).unwrap();
    let mut wait = tx.batch();
    for _ in 0..3 {
        wait.send(b"nobody reads this").unwrap();
    }
    drop(wait);
    let e = tx.close().unwrap_err();
    assert!(matches!(e, Error::Undelivered { frames: 3, .. }), "{e}");
    assert!(e.to_string().contains("3 committed frame"), "{e}");
    // The name went with the producer.
    assert!(!std::path::Path::new(&shm_path(&name)).exists());
}

#[test]
fn close_after_every_frame_was_received_is_ok_at_once() {
    let name = unique("delivered");
    let _guard = Unlink(name.clone());
    let mut tx = bytes::create(&name, Config::default().linger(Duration::from_secs(3600))).unwrap();
    let mut rx = bytes::open(&name).unwrap();
    tx.send(b"one").unwrap();
    assert_eq!(&*rx.recv().unwrap(), b"one");
    drop(rx);
    // Everything was released: no wait, even with an hour of linger.
    tx.close().unwrap();
    // An unnamed channel never waits, whatever it holds.
    let (mut tx, rx) = bytes::channel(Config::default()).unwrap();
    tx.send(b"kept").unwrap();
    drop(rx);
    tx.close().unwrap();
}

#[test]
fn a_typed_mismatch_names_both_kinds_in_words() {
    let name = unique("typed");
    let _guard = Unlink(name.clone());
    let _tx = typed::create::<[u64; 3]>(&name, Config::default()).unwrap();
    let e = bytes::open(&name).unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, Error::Incompatible(_)), "{text}");
    assert!(
        text.contains("typed channel of 24-byte elements") && text.contains("byte-frame"),
        "{text}"
    );
    let e = typed::open::<u32>(&name).unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("u32") && text.contains(&format!("{name:?}")),
        "{text}"
    );
}

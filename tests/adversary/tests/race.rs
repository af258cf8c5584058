//! Create/open races on one name, fresh or stale (a segment whose creator died: a copy of a
//! live image with no owner lock, or what a SIGKILLed creator left): exactly one creator
//! wins (`Ok`), every other gets `Exists`; an opener racing with them gets `NotFound` (and
//! tries again), or a stale image's dead producer (`PeerGone`, and tries again), or the
//! winner's fully built channel — never a half-built one: what it receives is the frame
//! the winner sent. Racers are threads (released by a barrier) and processes (released by
//! a line on their stdin).
//!
//! Rounds: `ZIPC_RACE_ROUNDS` (default 500 with threads, a third of that with processes);
//! `cargo test -p zipc-adversary --test race -- --ignored` runs 1,000 of each.

use std::os::unix::fs::OpenOptionsExt;
use std::sync::{Arc, Barrier, mpsc};
use std::time::Duration;
use zipc::{Config, Error, bytes};
use zipc_adversary::{
    Peer, Rng, ShmGuard, env_count, my_prefix, nonce_frame, open_racer, seed, segments_with_prefix,
    shm_exists, shm_path,
};

const PEER: &str = env!("CARGO_BIN_EXE_zipc-peer");
/// For a child to start, or a racer to finish; large, since the machine may be loaded.
const BOUND: Duration = Duration::from_secs(20);
/// Creators per round.
const CREATORS: usize = 3;

#[derive(Clone, Copy, Debug)]
enum Before {
    /// Nothing of that name.
    Fresh,
    /// A complete image of a channel whose creator is gone (no owner lock).
    StaleImage,
    /// What a creator SIGKILLed after `create` left.
    KilledCreator,
}

/// A channel image as its creator left it (header ready, producer attached), taken from a
/// live one; written under a new name it is a stale segment whose owner lock is free.
fn live_image() -> Vec<u8> {
    let guard = ShmGuard::new("race-image");
    let tx = bytes::create(guard.name(), Config::default().capacity(4096)).expect("create");
    let image = std::fs::read(shm_path(guard.name())).expect("read the live image");
    drop(tx);
    image
}

fn prepare(before: Before, name: &str, image: &[u8]) {
    match before {
        Before::Fresh => {}
        Before::StaleImage => {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(shm_path(name))
                .expect("write a stale image");
            f.write_all(image).expect("write a stale image");
        }
        Before::KilledCreator => {
            let mut child = Peer::spawn(PEER, &["stale", name]);
            child.expect("ready", BOUND);
            child.kill();
            child.wait();
        }
    }
    assert_eq!(
        shm_exists(name),
        !matches!(before, Before::Fresh),
        "{before:?}: the name {name:?} before the race"
    );
}

fn pick(rng: &mut Rng) -> Before {
    match rng.below(8) {
        0..=2 => Before::Fresh,
        3..=6 => Before::StaleImage,
        _ => Before::KilledCreator,
    }
}

/// Checks a round's outcome: one winner, the others `Exists`, the opener got the winner's
/// frame. `results` holds each creator's `Some(nonce)` (won) or `None` (`Exists`).
fn judge(round: u64, before: Before, results: &[Option<u64>], opened: Result<u64, String>) {
    let winners: Vec<u64> = results.iter().flatten().copied().collect();
    assert_eq!(
        winners.len(),
        1,
        "round {round} ({before:?}): {} of {CREATORS} creators won the name (results \
         {results:?}); exactly one may",
        winners.len()
    );
    let opened = opened.unwrap_or_else(|e| panic!("round {round} ({before:?}): the opener: {e}"));
    assert_eq!(
        opened, winners[0],
        "round {round} ({before:?}): the opener received another frame than the winner sent"
    );
}

fn thread_rounds(base: u64, rounds: u64) {
    let mut rng = Rng::new(base);
    let image = live_image();
    for round in 0..rounds {
        let before = pick(&mut rng);
        let guard = ShmGuard::new("race-threads");
        let name = guard.name().to_owned();
        prepare(before, &name, &image);
        let go = Arc::new(Barrier::new(CREATORS + 1));
        let (report, results) = mpsc::channel();
        // Dropped (here, or by a failing assertion) to let the winner go.
        let (done, hold) = mpsc::channel::<()>();
        let hold = Arc::new(std::sync::Mutex::new(hold));
        let mut threads = Vec::new();
        for id in 0..CREATORS as u64 {
            let (go, report, hold, name) = (go.clone(), report.clone(), hold.clone(), name.clone());
            threads.push(std::thread::spawn(move || {
                go.wait();
                match bytes::create(&name, Config::default().capacity(4096)) {
                    Ok(mut tx) => {
                        let nonce = round << 8 | id;
                        tx.send(&nonce_frame(nonce))
                            .expect("send the winner's frame");
                        let _ = report.send(Ok(Some(nonce)));
                        // Hold the name until the opener has its answer.
                        let _ = hold.lock().map(|h| h.recv());
                    }
                    Err(Error::Exists(_)) => {
                        let _ = report.send(Ok(None));
                    }
                    Err(e) => {
                        let _ = report.send(Err(format!("creator {id}: {e:?} ({e})")));
                    }
                }
            }));
        }
        let opener = {
            let (go, name) = (go.clone(), name.clone());
            std::thread::spawn(move || {
                go.wait();
                open_racer(&name, BOUND)
            })
        };
        let results: Vec<Option<u64>> = (0..CREATORS)
            .map(|_| {
                results
                    .recv_timeout(BOUND)
                    .unwrap_or_else(|_| panic!("round {round}: a creator did not answer"))
                    .unwrap_or_else(|e| panic!("round {round} ({before:?}): {e}"))
            })
            .collect();
        // Only one winner waits on `hold`: with more, the assertion below fails anyway.
        let opened = if results.iter().flatten().count() == 1 {
            opener.join().expect("the opener thread")
        } else {
            Err("not asked: more than one winner".into())
        };
        drop(done);
        judge(round, before, &results, opened);
        for t in threads {
            t.join().expect("a creator thread");
        }
        assert!(
            !shm_exists(&name),
            "round {round} ({before:?}): the winner dropped its producer, the name stays"
        );
    }
    let left = segments_with_prefix(&format!("{}race-threads", my_prefix()));
    assert!(left.is_empty(), "segments left in /dev/shm: {left:?}");
}

fn process_rounds(base: u64, rounds: u64) {
    let mut rng = Rng::new(base ^ 0x44);
    let image = live_image();
    for round in 0..rounds {
        let before = pick(&mut rng);
        let guard = ShmGuard::new("race-procs");
        let name = guard.name();
        prepare(before, name, &image);
        let mut creators: Vec<Peer> = (0..CREATORS)
            .map(|id| Peer::spawn(PEER, &["create", name, &id.to_string()]))
            .collect();
        let mut opener = Peer::spawn(PEER, &["open", name]);
        for p in creators.iter().chain([&opener]) {
            p.expect("armed", BOUND);
        }
        for p in creators.iter_mut().chain([&mut opener]) {
            p.say(b"go\n");
        }
        let results: Vec<Option<u64>> = creators
            .iter()
            .map(|p| match p.line(BOUND).as_deref() {
                Some("exists") => None,
                Some(l) if l.starts_with("won ") => Some(l[4..].parse().expect("a winner's nonce")),
                other => panic!("round {round} ({before:?}): a creator said {other:?}"),
            })
            .collect();
        let opened = if results.iter().flatten().count() == 1 {
            match opener.line(BOUND) {
                Some(l) if l.starts_with("got ") => Ok(l[4..].parse().expect("a nonce")),
                other => Err(format!("said {other:?}")),
            }
        } else {
            Err("not asked: more than one winner".into())
        };
        for p in creators.iter_mut().chain([&mut opener]) {
            p.hang_up();
        }
        judge(round, before, &results, opened);
        for p in creators.iter_mut().chain([&mut opener]) {
            p.wait_ok();
        }
        assert!(
            !shm_exists(name),
            "round {round} ({before:?}): the winner exited, the name stays"
        );
    }
    let left = segments_with_prefix(&format!("{}race-procs", my_prefix()));
    assert!(left.is_empty(), "segments left in /dev/shm: {left:?}");
}

#[test]
fn threads_race_to_create_and_open() {
    let base = seed("ZIPC_RACE_SEED");
    let rounds = env_count("ZIPC_RACE_ROUNDS", 500);
    eprintln!("threads_race_to_create_and_open: {rounds} rounds, ZIPC_RACE_SEED={base}");
    thread_rounds(base, rounds);
}

#[test]
fn processes_race_to_create_and_open() {
    let base = seed("ZIPC_RACE_SEED");
    let rounds = env_count("ZIPC_RACE_ROUNDS", 500).div_ceil(3);
    eprintln!("processes_race_to_create_and_open: {rounds} rounds, ZIPC_RACE_SEED={base}");
    process_rounds(base, rounds);
}

/// The long run: 1,000 rounds of each.
#[test]
#[ignore = "long: 1,000 racing rounds with threads and with processes"]
fn thousand_races_of_each() {
    let base = seed("ZIPC_RACE_SEED");
    eprintln!("thousand_races_of_each: ZIPC_RACE_SEED={base}");
    thread_rounds(base, 1000);
    process_rounds(base, 1000);
}

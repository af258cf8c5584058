//! A hostile process garbles the live segment of a named channel — header, ring positions,
//! state and wait words, frame headers — while honest ends keep calling: every call returns
//! within its timeout and 50 ms (not counting time its thread waited for a CPU, which the
//! kernel reports: on two busy cores that alone can pass 50 ms), every error is one a garbled segment or a dead peer may
//! cause (`Corrupted`, `Incompatible`, `PeerGone`, `Timeout`, `Disconnected`, `WouldBlock`),
//! and nothing panics, on either end (the other end is an honest child process that checks
//! itself the same way).
//!
//! Rounds: `ZIPC_HOSTILE_ROUNDS` (default 6), each a fresh channel attacked for
//! `ZIPC_HOSTILE_MILLIS` (default 200) ms; the seed is `ZIPC_HOSTILE_SEED` or the clock's,
//! printed so that a failure can be replayed.

use std::time::Duration;
use zipc::{Config, bytes};
use zipc_adversary::{
    Honest, Peer, Rng, ShmGuard, env_count, honest_consume, honest_produce, seed,
    segments_with_prefix,
};

const PEER: &str = env!("CARGO_BIN_EXE_zipc-peer");
const HOSTILE: &str = env!("CARGO_BIN_EXE_zipc-hostile");
/// For a child to start and say it is ready; large, since the machine may be loaded.
const STARTUP: Duration = Duration::from_secs(20);

#[derive(Clone, Copy, PartialEq)]
enum Attacked {
    /// This process is the consumer; the child creates the channel and produces.
    Consumer,
    /// This process creates the channel and produces; the child consumes.
    Producer,
}

fn attack(tested: Attacked, tag: &str) {
    let rounds = env_count("ZIPC_HOSTILE_ROUNDS", 6);
    let millis = env_count("ZIPC_HOSTILE_MILLIS", 200).to_string();
    let base = seed("ZIPC_HOSTILE_SEED");
    eprintln!("{tag}: {rounds} rounds of {millis} ms, ZIPC_HOSTILE_SEED={base}");
    let (mut worst, mut worst_raw) = (Duration::ZERO, Duration::ZERO);
    for round in 0..rounds {
        let seed = base.wrapping_add(round);
        let guard = ShmGuard::new(tag);
        let name = guard.name();
        let seed_arg = seed.to_string();
        let mut rng = Rng::new(seed);
        let (mut child, mut rx, mut tx) = match tested {
            Attacked::Consumer => {
                let child = Peer::spawn(PEER, &["honest-producer", name, &seed_arg]);
                child.expect("ready", STARTUP);
                let rx = bytes::open(name).unwrap_or_else(|e| panic!("open {name}: {e}"));
                (child, Some(rx), None)
            }
            Attacked::Producer => {
                let tx = bytes::create(name, Config::default().capacity(16 * 1024))
                    .unwrap_or_else(|e| panic!("create {name}: {e}"));
                let child = Peer::spawn(PEER, &["honest-consumer", name, &seed_arg]);
                child.expect("ready", STARTUP);
                (child, None, Some(tx))
            }
        };
        let mut hostile = Peer::spawn(HOSTILE, &[name, &seed_arg, &millis]);
        hostile.expect("attacking", STARTUP);
        let stop = || hostile.exited();
        let result: Result<Honest, String> = match (&mut rx, &mut tx) {
            (Some(rx), _) => honest_consume(rx, &mut rng, stop),
            (_, Some(tx)) => honest_produce(tx, &mut rng, stop),
            _ => unreachable!("one end is this process's"),
        };
        let h = result.unwrap_or_else(|e| panic!("round {round} (seed {seed}): {e}"));
        hostile.wait_ok();
        child.hang_up();
        let line = child.line(STARTUP).unwrap_or_else(|| {
            panic!("round {round} (seed {seed}): the honest child said nothing")
        });
        assert!(
            line.starts_with("ok"),
            "round {round} (seed {seed}): the honest child: {line}"
        );
        child.wait_ok();
        worst = worst.max(h.worst_overrun);
        worst_raw = worst_raw.max(h.worst_raw_overrun);
        eprintln!(
            "{tag} round {round}: this end: {}; child: {line}",
            h.summary()
        );
    }
    eprintln!(
        "{tag}: worst overrun beyond a timeout {worst:?} not counting waits for a CPU, \
         {worst_raw:?} on the clock"
    );
    let left = segments_with_prefix(&format!("{}{tag}", zipc_adversary::my_prefix()));
    assert!(left.is_empty(), "segments left in /dev/shm: {left:?}");
}

#[test]
fn consumer_under_attack() {
    attack(Attacked::Consumer, "hostile-rx");
}

#[test]
fn producer_under_attack() {
    attack(Attacked::Producer, "hostile-tx");
}

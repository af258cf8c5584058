//! Kill storms: a producer, a consumer and a process-layer worker (streaming to its parent,
//! or receiving from it) SIGKILLed at random points, round after round — after a random
//! number of frames, after a random delay, between `loan` and `commit` (the child says when
//! it holds the loan), while a consumer holds a frame unreleased, in the middle of a batch.
//! Every round checks that:
//!
//! - what was received is a prefix `0..k` of what was sent (no gap, no duplicate), every
//!   frame intact (length, sequence number, checksum), and `k` at least what the child had
//!   committed when it was killed (exactly that when it was killed holding a loan);
//! - the survivor gets `PeerGone` within 100 ms of the kill (`PEER_GONE_BOUND`, the
//!   documented bound), not counting the time the survivor's thread or the dying child
//!   waited for a CPU (the kernel's run delay: on two busy cores a thread can wait longer
//!   than that for a core, and the child's locks go only when it runs its exit); the worst
//!   latency is printed both ways;
//! - every child is reaped, and nothing is left in /dev/shm.
//!
//! Rounds per test: `ZIPC_STORM_ROUNDS` (default 30); seed: `ZIPC_STORM_SEED`, printed.
//! `cargo test -p zipc-adversary --test storm -- --ignored` runs 1,000 rounds of each.

use std::os::fd::AsFd;
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};
use zipc::process::{Command, Worker};
use zipc::{Config, Error, bytes};
use zipc_adversary::{
    Peer, Rng, ShmGuard, check_frame, cpu_wait, cpu_wait_of, env_count, make_frame, my_prefix,
    seed, segments_with_prefix, shm_exists, spawn_with_fd, waited,
};

const PEER: &str = env!("CARGO_BIN_EXE_zipc-peer");
/// The documented bound on noticing a dead peer, from the kill to the error.
const PEER_GONE_BOUND: Duration = Duration::from_millis(100);
/// For a child to start and say it is ready; large, since the machine may be loaded.
const STARTUP: Duration = Duration::from_secs(20);
/// Past this after the kill, `PeerGone` is not late but missing.
const GIVE_UP: Duration = Duration::from_secs(10);
/// The ring of every storm channel (the peers use the same for the channels they create).
const CAPACITY: usize = 64 * 1024;

fn rounds() -> u64 {
    env_count("ZIPC_STORM_ROUNDS", 30)
}

/// The kill-to-`PeerGone` latencies of a test: checked against the bound, and logged.
#[derive(Default)]
struct Latency {
    worst: Duration,
    worst_raw: Duration,
    sum: Duration,
    n: u32,
}

/// What the scheduler took of a kill-to-error interval: the time the survivor's thread and
/// the dying child each waited for a CPU, from just before the kill.
struct Sched {
    own: Option<Duration>,
    child: Option<Duration>,
    pid: u32,
}

impl Sched {
    /// Read just before the kill.
    fn before(pid: u32) -> Sched {
        Sched {
            own: cpu_wait(),
            child: cpu_wait_of(pid),
            pid,
        }
    }

    /// Read after the error, before the child is reaped. Only the larger of the two waits
    /// counts: they may overlap.
    fn queued(&self) -> Duration {
        waited(self.own, cpu_wait()).max(waited(self.child, cpu_wait_of(self.pid)))
    }
}

impl Latency {
    /// Checks one latency: `took` on the clock, of which `queued` was waiting for a CPU (the
    /// bound is on what is left: the library's own latency, not the machine's load).
    fn add(&mut self, round: u64, what: &str, took: Duration, queued: Duration) {
        let own = took.saturating_sub(queued);
        self.worst = self.worst.max(own);
        self.worst_raw = self.worst_raw.max(took);
        self.sum += took;
        self.n += 1;
        assert!(
            own < PEER_GONE_BOUND,
            "round {round} ({what}): PeerGone {took:?} after the kill ({queued:?} of it waiting \
             for a CPU), beyond {PEER_GONE_BOUND:?}"
        );
    }

    fn report(&self, test: &str) {
        if self.n > 0 {
            eprintln!(
                "{test}: {} kills, PeerGone after {:?} on average, {:?} at worst on the clock, \
                 {:?} at worst not counting waits for a CPU",
                self.n,
                self.sum / self.n,
                self.worst_raw,
                self.worst
            );
        }
    }
}

/// The child was killed by our SIGKILL, not ended by a failed check of its own.
fn assert_killed(child: &mut Peer, round: u64, what: &str) {
    let status = child.wait();
    let lines = child.rest(Duration::from_secs(1));
    let bad: Vec<_> = lines.iter().filter(|l| l.starts_with("bad")).collect();
    assert!(
        bad.is_empty(),
        "round {round} ({what}): the child said {bad:?}"
    );
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "round {round} ({what}): the child ended with {status}, not by the kill"
    );
}

/// Receives the frames that follow `*seq` until `PeerGone`, checking each; returns the time
/// from `killed` to the error.
fn drain_to_peer_gone(
    mut recv: impl FnMut(u64, Duration) -> zipc::Result<Result<(), String>>,
    seq: &mut u64,
    killed: Instant,
    round: u64,
    what: &str,
) -> Duration {
    loop {
        let left = GIVE_UP.saturating_sub(killed.elapsed());
        assert!(
            !left.is_zero(),
            "round {round} ({what}): no PeerGone {GIVE_UP:?} after the kill (frame {seq} next)"
        );
        match recv(*seq, left) {
            Ok(Ok(())) => *seq += 1,
            Ok(Err(e)) => panic!("round {round} ({what}): {e}"),
            Err(Error::PeerGone) => return killed.elapsed(),
            Err(e) => panic!("round {round} ({what}): after frame {seq}: {e:?} ({e})"),
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum ProducerKill {
    /// After the consumer received K frames, the producer going on.
    AfterFrames,
    /// As `AfterFrames`, with a producer that sends in batches.
    InBatch,
    /// A random 0..5 ms after the producer attached.
    AfterDelay,
    /// Holding a loan for frame K, half written: frames 0..K and nothing else arrive.
    InLoan,
}

/// One round of a killed producer, of a memfd channel or of a named one it created.
fn producer_round(rng: &mut Rng, round: u64, named: Option<&str>, lat: &mut Latency) {
    let kill = match rng.below(4) {
        0 => ProducerKill::AfterFrames,
        1 => ProducerKill::InBatch,
        2 => ProducerKill::AfterDelay,
        _ => ProducerKill::InLoan,
    };
    let k = rng.below(3000);
    let mode = match kill {
        ProducerKill::InBatch => "batch",
        ProducerKill::InLoan => "loan",
        _ => "run",
    };
    let k_arg = k.to_string();
    let what = format!("{kill:?}, k {k}");
    let (mut child, mut rx) = match named {
        None => {
            let fd = bytes::memfd(Config::default().capacity(CAPACITY)).expect("memfd");
            let rx = bytes::Consumer::from_fd(fd.try_clone().expect("dup")).expect("consumer");
            let fd_arg = std::os::fd::AsRawFd::as_raw_fd(&fd).to_string();
            let child = spawn_with_fd(PEER, &["produce-fd", &fd_arg, mode, &k_arg], fd.as_fd());
            child.expect("go", STARTUP);
            (child, rx)
        }
        Some(name) => {
            let child = Peer::spawn(PEER, &["produce-named", name, mode, &k_arg]);
            child.expect("go", STARTUP);
            let rx = bytes::open(name).unwrap_or_else(|e| panic!("open {name}: {e}"));
            (child, rx)
        }
    };
    let kill_at = Instant::now() + Duration::from_micros(rng.below(5000));
    let mut seq = 0u64;
    let check = |rx: &mut bytes::Consumer, seq: u64, t: Duration| {
        rx.recv_timeout(t).map(|f| check_frame(seq, &f))
    };
    // Receive until the kill point.
    loop {
        let due = match kill {
            ProducerKill::AfterFrames | ProducerKill::InBatch => seq >= k,
            ProducerKill::AfterDelay => Instant::now() >= kill_at,
            ProducerKill::InLoan => match child.try_line() {
                Some(l) if l == format!("loan {k}") => true,
                Some(l) => panic!("round {round} ({what}): the producer said {l:?}"),
                None => false,
            },
        };
        if due {
            break;
        }
        assert!(
            Instant::now() < kill_at + STARTUP,
            "round {round} ({what}): the kill point was not reached within {STARTUP:?}"
        );
        match check(&mut rx, seq, Duration::from_millis(2)) {
            Ok(Ok(())) => seq += 1,
            Ok(Err(e)) => panic!("round {round} ({what}): {e}"),
            Err(Error::Timeout) => {}
            Err(e) => panic!("round {round} ({what}): before the kill, frame {seq}: {e}"),
        }
    }
    // Frames the producer had committed when killed, at least.
    let committed = seq;
    if matches!(kill, ProducerKill::AfterFrames | ProducerKill::InBatch) {
        for _ in 0..rng.below(2000) {
            std::hint::spin_loop();
        }
    }
    let sched = Sched::before(child.pid());
    child.kill();
    let killed = Instant::now();
    let took = drain_to_peer_gone(|s, t| check(&mut rx, s, t), &mut seq, killed, round, &what);
    let queued = sched.queued();
    assert_killed(&mut child, round, &what);
    lat.add(round, &what, took, queued);
    assert!(
        matches!(rx.try_recv(), Err(Error::PeerGone)),
        "round {round} ({what}): PeerGone is not final"
    );
    match kill {
        ProducerKill::InLoan => assert_eq!(
            seq, k,
            "round {round} ({what}): the {k} committed frames and not the loaned one arrive"
        ),
        _ => assert!(
            seq >= committed,
            "round {round} ({what}): {seq} frames arrived, {committed} were committed"
        ),
    }
}

fn leftovers(tag: &str) -> Vec<String> {
    segments_with_prefix(&format!("{}{tag}", my_prefix()))
}

#[test]
fn killed_producer_storm() {
    let base = seed("ZIPC_STORM_SEED");
    eprintln!("killed_producer_storm: ZIPC_STORM_SEED={base}");
    producer_storm(base, rounds());
}

fn producer_storm(base: u64, rounds: u64) {
    let mut rng = Rng::new(base);
    let mut lat = Latency::default();
    for round in 0..rounds {
        producer_round(&mut rng, round, None, &mut lat);
    }
    lat.report("killed_producer_storm");
}

/// A killed creator of a named channel: as above, and once its consumer is done (it got
/// `PeerGone` and dropped), the dead creator's name is gone from /dev/shm.
#[test]
fn killed_named_producer_storm_leaves_no_segment() {
    let base = seed("ZIPC_STORM_SEED");
    eprintln!("killed_named_producer_storm_leaves_no_segment: ZIPC_STORM_SEED={base}");
    named_producer_storm(base, rounds());
}

fn named_producer_storm(base: u64, rounds: u64) {
    let mut rng = Rng::new(base ^ 0x11);
    let mut lat = Latency::default();
    for round in 0..rounds {
        let guard = ShmGuard::new("storm-named");
        producer_round(&mut rng, round, Some(guard.name()), &mut lat);
        assert!(
            !shm_exists(guard.name()),
            "round {round}: the SIGKILLed creator's segment {:?} is still in /dev/shm after \
             its consumer got PeerGone and closed",
            guard.name()
        );
    }
    lat.report("killed_named_producer_storm");
    let left = leftovers("storm-named");
    assert!(left.is_empty(), "segments left in /dev/shm: {left:?}");
}

#[derive(Clone, Copy, Debug)]
enum ConsumerKill {
    /// After it checked K frames, going on.
    AfterFrames,
    /// Holding frame K unreleased.
    Holding,
    /// A random 0..5 ms after it attached.
    AfterDelay,
}

#[test]
fn killed_consumer_storm() {
    let base = seed("ZIPC_STORM_SEED");
    eprintln!("killed_consumer_storm: ZIPC_STORM_SEED={base}");
    consumer_storm(base, rounds());
}

/// The producer of a memfd channel outlives its consumer: `PeerGone` within the bound, then
/// a replacement consumer attaches and receives a contiguous run of frames that ends with
/// the last one sent (starting at or before the one the dead consumer held).
fn consumer_storm(base: u64, rounds: u64) {
    let mut rng = Rng::new(base ^ 0x22);
    let mut lat = Latency::default();
    for round in 0..rounds {
        let kill = match rng.below(3) {
            0 => ConsumerKill::AfterFrames,
            1 => ConsumerKill::Holding,
            _ => ConsumerKill::AfterDelay,
        };
        let k = 1 + rng.below(3000);
        let what = format!("{kill:?}, k {k}");
        let mode = if matches!(kill, ConsumerKill::Holding) {
            "hold"
        } else {
            "run"
        };
        let fd = bytes::memfd(Config::default().capacity(CAPACITY)).expect("memfd");
        let mut tx = bytes::Producer::from_fd(fd.try_clone().expect("dup")).expect("producer");
        let fd_arg = std::os::fd::AsRawFd::as_raw_fd(&fd).to_string();
        let k_arg = k.to_string();
        let mut child = spawn_with_fd(PEER, &["consume-fd", &fd_arg, mode, &k_arg], fd.as_fd());
        child.expect("go", STARTUP);
        let kill_at = Instant::now() + Duration::from_micros(rng.below(5000));
        let mut sent = 0u64;
        let mut frame = make_frame(0);
        loop {
            let due = match (kill, child.try_line()) {
                (_, Some(l)) if l.starts_with("bad") => {
                    panic!("round {round} ({what}): the consumer said {l:?}")
                }
                (ConsumerKill::AfterFrames, Some(l)) => l == format!("at {k}"),
                (ConsumerKill::Holding, Some(l)) => l == format!("hold {k}"),
                (ConsumerKill::AfterDelay, _) => Instant::now() >= kill_at,
                (_, _) => false,
            };
            if due {
                break;
            }
            assert!(
                Instant::now() < kill_at + STARTUP,
                "round {round} ({what}): the kill point was not reached within {STARTUP:?}"
            );
            match tx.send_timeout(&frame, Duration::from_millis(2)) {
                Ok(()) => {
                    sent += 1;
                    frame = make_frame(sent);
                }
                Err(Error::Timeout) => {}
                Err(e) => panic!("round {round} ({what}): before the kill, frame {sent}: {e}"),
            }
        }
        let sched = Sched::before(child.pid());
        child.kill();
        let killed = Instant::now();
        let took = loop {
            let left = GIVE_UP.saturating_sub(killed.elapsed());
            assert!(
                !left.is_zero(),
                "round {round} ({what}): no PeerGone {GIVE_UP:?} after the kill"
            );
            match tx.send_timeout(&frame, left) {
                Ok(()) => {
                    sent += 1;
                    frame = make_frame(sent);
                }
                Err(Error::PeerGone) => break killed.elapsed(),
                Err(e) => panic!("round {round} ({what}): after the kill, frame {sent}: {e}"),
            }
        };
        let queued = sched.queued();
        assert_killed(&mut child, round, &what);
        lat.add(round, &what, took, queued);
        // A replacement takes over where the dead one last gave space back.
        let mut rx = bytes::Consumer::from_fd(fd.try_clone().expect("dup"))
            .unwrap_or_else(|e| panic!("round {round} ({what}): a replacement consumer: {e}"));
        let (mut first, mut next) = (None, 0u64);
        loop {
            match rx.try_recv() {
                Ok(f) => {
                    if first.is_none() {
                        let head = f.get(..8).expect("a frame head");
                        next = u64::from_le_bytes(head.try_into().expect("8 bytes"));
                        first = Some(next);
                    }
                    check_frame(next, &f).unwrap_or_else(|e| panic!("round {round} ({what}): {e}"));
                    next += 1;
                }
                Err(Error::WouldBlock) => break,
                Err(e) => panic!("round {round} ({what}): the replacement: {e}"),
            }
        }
        if first.is_some() {
            assert_eq!(
                next, sent,
                "round {round} ({what}): the replacement's frames end at {next}, {sent} were sent"
            );
        }
        if matches!(kill, ConsumerKill::Holding) {
            // The held frame was never released: the replacement starts with it or before.
            assert!(
                first.is_some_and(|f| f <= k),
                "round {round} ({what}): the replacement starts at {first:?}, after the frame \
                 {k} the dead consumer held"
            );
        }
        drop(tx);
        assert!(
            matches!(rx.try_recv(), Err(Error::Disconnected)),
            "round {round} ({what}): the replacement does not see the producer's close"
        );
    }
    lat.report("killed_consumer_storm");
}

#[derive(Clone, Copy, Debug)]
enum WorkerKill {
    /// After the parent received K frames, the worker streaming on.
    AfterFrames,
    /// A random 0..10 ms after the spawn (before or after it connected).
    AfterDelay,
    /// Holding a loan for frame K: it closed its consumer end to say so.
    InLoan,
    /// Receiving (and checking) the parent's frames, after the parent sent K.
    WhileReceiving,
}

#[test]
fn killed_worker_storm() {
    let base = seed("ZIPC_STORM_SEED");
    eprintln!("killed_worker_storm: ZIPC_STORM_SEED={base}");
    worker_storm(base, rounds());
}

fn worker_storm(base: u64, rounds: u64) {
    let mut rng = Rng::new(base ^ 0x33);
    let mut lat = Latency::default();
    for round in 0..rounds {
        let kill = match rng.below(4) {
            0 => WorkerKill::AfterFrames,
            1 => WorkerKill::AfterDelay,
            2 => WorkerKill::InLoan,
            _ => WorkerKill::WhileReceiving,
        };
        let k = rng.below(3000);
        let what = format!("{kill:?}, k {k}");
        let mode = match kill {
            WorkerKill::InLoan => "loan",
            WorkerKill::WhileReceiving => "recv",
            _ => "run",
        };
        let mut cmd = Command::new(PEER);
        cmd.arg("worker")
            .arg(mode)
            .arg(k.to_string())
            .ring_capacity(CAPACITY);
        let mut worker = Worker::spawn(&cmd).unwrap_or_else(|e| panic!("spawn a worker: {e}"));
        let kill_at = Instant::now() + Duration::from_micros(rng.below(10_000));
        let (mut seq, mut sent) = (0u64, 0u64);
        let check =
            |w: &mut Worker, seq: u64, t: Duration| w.recv_timeout(t).map(|f| check_frame(seq, &f));
        loop {
            let due = match kill {
                WorkerKill::AfterFrames => seq >= k,
                WorkerKill::WhileReceiving => sent >= k,
                WorkerKill::AfterDelay => Instant::now() >= kill_at,
                // The worker closes its consumer end once it holds the loan.
                WorkerKill::InLoan => match worker.try_send(b"?") {
                    Err(Error::Disconnected) => true,
                    Ok(()) | Err(Error::WouldBlock) => false,
                    Err(e) => panic!("round {round} ({what}): a send to the worker: {e}"),
                },
            };
            if due {
                break;
            }
            assert!(
                Instant::now() < kill_at + STARTUP,
                "round {round} ({what}): the kill point was not reached within {STARTUP:?}"
            );
            if matches!(kill, WorkerKill::WhileReceiving) {
                match worker.send_timeout(&make_frame(sent), Duration::from_millis(2)) {
                    Ok(()) => sent += 1,
                    Err(Error::Timeout) => {}
                    Err(e) => panic!("round {round} ({what}): before the kill, send {sent}: {e}"),
                }
                continue;
            }
            match check(&mut worker, seq, Duration::from_millis(2)) {
                Ok(Ok(())) => seq += 1,
                Ok(Err(e)) => panic!("round {round} ({what}): {e}"),
                Err(Error::Timeout) => {}
                Err(e) => panic!("round {round} ({what}): before the kill, frame {seq}: {e}"),
            }
        }
        let committed = seq;
        let sched = Sched::before(worker.pid());
        worker.kill().expect("SIGKILL the worker");
        let killed = Instant::now();
        if matches!(kill, WorkerKill::WhileReceiving) {
            // The sender learns of the death once it has to wait for space.
            let took = loop {
                let left = GIVE_UP.saturating_sub(killed.elapsed());
                assert!(
                    !left.is_zero(),
                    "round {round} ({what}): no PeerGone {GIVE_UP:?} after the kill"
                );
                match worker.send_timeout(&make_frame(sent), left) {
                    Ok(()) => sent += 1,
                    Err(Error::PeerGone) => break killed.elapsed(),
                    Err(e) => panic!("round {round} ({what}): after the kill, send {sent}: {e}"),
                }
            };
            lat.add(round, &what, took, sched.queued());
        }
        let took = drain_to_peer_gone(
            |s, t| check(&mut worker, s, t),
            &mut seq,
            killed,
            round,
            &what,
        );
        if !matches!(kill, WorkerKill::WhileReceiving) {
            lat.add(round, &what, took, sched.queued());
        }
        match kill {
            WorkerKill::InLoan => assert_eq!(
                seq, k,
                "round {round} ({what}): the {k} committed frames and not the loaned one arrive"
            ),
            _ => assert!(
                seq >= committed,
                "round {round} ({what}): {seq} frames arrived, {committed} were committed"
            ),
        }
        // Sends go on while the ring has room; the one that has to wait learns of the death.
        let frame = [7u8; 1000];
        let mut room = 0;
        let err = loop {
            match worker.send_timeout(&frame, GIVE_UP) {
                Ok(()) if room <= CAPACITY / frame.len() => room += 1,
                Ok(()) => panic!("round {round} ({what}): the dead worker's ring takes it all"),
                Err(e) => break e,
            }
        };
        assert!(
            matches!(err, Error::PeerGone | Error::Disconnected),
            "round {round} ({what}): a send to the dead worker: {err:?}"
        );
        let status = worker.wait().expect("reap the worker");
        assert_eq!(
            status.signal(),
            Some(libc::SIGKILL),
            "round {round} ({what}): the worker ended with {status}, not by the kill"
        );
    }
    lat.report("killed_worker_storm");
}

/// The long run: 1,000 rounds of each storm.
#[test]
#[ignore = "long: 1,000 rounds of each storm (a few minutes)"]
fn thousand_rounds_of_each_storm() {
    let base = seed("ZIPC_STORM_SEED");
    eprintln!("thousand_rounds_of_each_storm: ZIPC_STORM_SEED={base}");
    producer_storm(base, 1000);
    named_producer_storm(base, 1000);
    consumer_storm(base, 1000);
    worker_storm(base, 1000);
}

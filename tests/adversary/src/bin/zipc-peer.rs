//! The honest peers the adversarial tests start, one role per invocation (the first argument).
//! Each writes what it reached to stdout, one line at a time, so that the test can act (kill
//! it, say) at that point; a check that fails is a `bad ...` line and exit status 1.
//!
//! - `produce-fd FD MODE K` / `produce-named NAME MODE K`: the producer of a memfd channel
//!   (inherited fd) or of a named one it creates; writes `go` once attached, then sends frames
//!   0, 1, 2, ... (sequence number and checksum). MODE `run` sends forever, `batch` sends in
//!   batches of 1 to 16, `loan` sends K frames, takes a loan for frame K, writes half of it,
//!   writes `loan K` and waits to be killed.
//! - `consume-fd FD MODE K`: the consumer of a memfd channel; checks every frame; writes
//!   `at K` after K frames (MODE `run`, and goes on), or holds frame K unreleased and writes
//!   `hold K` (MODE `hold`, then waits to be killed).
//! - `worker MODE K`: a process-layer worker (`zipc::worker::connect`) that streams frames
//!   to its parent; MODE `run` forever, `loan` sends K frames, takes a loan for frame K and
//!   then closes its consumer end (the parent sees `Disconnected` on its sends: the sign that
//!   the loan is taken) and waits to be killed; MODE `recv` receives and checks the parent's
//!   frames instead.
//! - `honest-producer NAME SEED` / `honest-consumer NAME SEED`: creates (producer) or opens
//!   (consumer) a named channel, writes `ready`, then makes calls with timeouts until stdin
//!   closes, checking each (see `zipc_adversary::honest_produce`); writes `ok SUMMARY`.
//! - `create NAME ID` / `open NAME`: a racer. Writes `armed`, waits for a line on stdin, then
//!   `bytes::create` (writes `won NONCE`, sends one frame holding the nonce, and holds the
//!   name until stdin closes; or `exists`) or opens the channel until it has a frame from a
//!   live creator (writes `got NONCE`).
//! - `stale NAME`: creates the named channel, writes `ready` and waits to be killed.

use std::time::Duration;
use zipc::{Config, Error, bytes};
use zipc_adversary::{
    Rng, announce, check_frame, fill_frame, frame_len, honest_consume, honest_produce, inherited,
    nonce_frame, open_racer, read_line, stdin_closed,
};

/// The ring of the storm channels: small, so that the producer often waits for space.
const STORM_CAPACITY: usize = 64 * 1024;
/// The ring of the attacked channels.
const HOSTILE_CAPACITY: usize = 16 * 1024;

fn bad(what: &str) -> ! {
    announce(&format!("bad {what}"));
    std::process::exit(1)
}

/// Blocks until killed (the parent's stdin may be the test harness's: it is not read).
fn wait_for_the_kill() -> ! {
    loop {
        std::thread::park();
    }
}

fn produce(mut tx: bytes::Producer, mode: &str, k: u64) -> ! {
    announce("go");
    let mut rng = Rng::new(k);
    let mut seq = 0u64;
    loop {
        if mode == "loan" && seq == k {
            let len = frame_len(seq);
            let mut loan = tx.loan(len).unwrap_or_else(|e| bad(&format!("loan: {e}")));
            let mut frame = vec![0; len];
            fill_frame(seq, &mut frame);
            loan[..len / 2].copy_from_slice(&frame[..len / 2]);
            announce(&format!("loan {k}"));
            wait_for_the_kill();
        }
        if mode == "batch" {
            let n = 1 + rng.below(16);
            let mut batch = tx.batch();
            for _ in 0..n {
                let mut loan = batch
                    .loan(frame_len(seq))
                    .unwrap_or_else(|e| bad(&format!("batch loan: {e}")));
                fill_frame(seq, &mut loan);
                loan.commit();
                seq += 1;
            }
            continue;
        }
        let mut loan = tx
            .loan(frame_len(seq))
            .unwrap_or_else(|e| bad(&format!("loan: {e}")));
        fill_frame(seq, &mut loan);
        loan.commit();
        seq += 1;
    }
}

fn consume(mut rx: bytes::Consumer, mode: &str, k: u64) -> ! {
    announce("go");
    let mut seq = 0u64;
    loop {
        let frame = rx
            .recv()
            .unwrap_or_else(|e| bad(&format!("recv of frame {seq}: {e}")));
        if let Err(e) = check_frame(seq, &frame) {
            bad(&e);
        }
        if seq == k && mode == "hold" {
            announce(&format!("hold {k}"));
            // The frame stays unreleased: the kill lands while it is held.
            let _held = frame;
            wait_for_the_kill();
        }
        drop(frame);
        seq += 1;
        if seq == k {
            announce(&format!("at {k}"));
        }
    }
}

fn worker(mode: &str, k: u64) -> ! {
    let parent = zipc::worker::connect().unwrap_or_else(|e| bad(&format!("connect: {e}")));
    let (mut tx, rx, _control) = parent
        .into_parts()
        .unwrap_or_else(|(_, e)| bad(&format!("into_parts: {e}")));
    let mut rx = Some(rx);
    let mut seq = 0u64;
    if mode == "recv" {
        // The parent streams; every frame is checked (a failure ends the process, which the
        // parent sees as an exit rather than its kill).
        let mut rx = rx.take().expect("the consumer end");
        loop {
            let frame = rx
                .recv()
                .unwrap_or_else(|e| bad(&format!("recv of frame {seq}: {e}")));
            if let Err(e) = check_frame(seq, &frame) {
                bad(&e);
            }
            seq += 1;
        }
    }
    loop {
        let len = frame_len(seq);
        let mut loan = tx.loan(len).unwrap_or_else(|e| bad(&format!("loan: {e}")));
        fill_frame(seq, &mut loan);
        if mode == "loan" && seq == k {
            // Loaned and written, never committed; the closed consumer end tells the parent.
            drop(rx.take());
            let _loan = loan;
            wait_for_the_kill();
        }
        loan.commit();
        seq += 1;
    }
}

fn honest(role: &str, name: &str, seed: u64) {
    let mut rng = Rng::new(seed);
    let config = Config::default().capacity(HOSTILE_CAPACITY);
    let summary = if role == "honest-producer" {
        let mut tx =
            bytes::create(name, config).unwrap_or_else(|e| bad(&format!("create {name}: {e}")));
        announce("ready");
        honest_produce(&mut tx, &mut rng, stdin_closed)
    } else {
        let mut rx = bytes::open(name).unwrap_or_else(|e| bad(&format!("open {name}: {e}")));
        announce("ready");
        honest_consume(&mut rx, &mut rng, stdin_closed)
    };
    match summary {
        Ok(h) => announce(&format!("ok {}", h.summary())),
        Err(e) => bad(&e),
    }
}

fn create_racer(name: &str, id: u64) {
    announce("armed");
    if read_line().is_none() {
        return;
    }
    match bytes::create(name, Config::default().capacity(4096)) {
        Ok(mut tx) => {
            let nonce = u64::from(std::process::id()) << 16 | id;
            announce(&format!("won {nonce}"));
            tx.send(&nonce_frame(nonce))
                .unwrap_or_else(|e| bad(&format!("send: {e}")));
            // Hold the name until the parent has the opener's answer.
            while read_line().is_some() {}
        }
        Err(Error::Exists(_)) => announce("exists"),
        Err(e) => bad(&format!("create {name}: {e:?} ({e})")),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| -> &str {
        args.get(i)
            .map(String::as_str)
            .unwrap_or_else(|| bad(&format!("argument {i} missing in {args:?}")))
    };
    let num = |i: usize| -> u64 {
        arg(i)
            .parse()
            .unwrap_or_else(|_| bad(&format!("argument {i} of {args:?} is not a number")))
    };
    let config = || Config::default().capacity(STORM_CAPACITY);
    match arg(0) {
        "produce-fd" => {
            let tx = bytes::Producer::from_fd(inherited(arg(1)))
                .unwrap_or_else(|e| bad(&format!("attach: {e}")));
            produce(tx, arg(2), num(3))
        }
        "produce-named" => {
            let tx = bytes::create(arg(1), config())
                .unwrap_or_else(|e| bad(&format!("create {}: {e}", arg(1))));
            produce(tx, arg(2), num(3))
        }
        "consume-fd" => {
            let rx = bytes::Consumer::from_fd(inherited(arg(1)))
                .unwrap_or_else(|e| bad(&format!("attach: {e}")));
            consume(rx, arg(2), num(3))
        }
        "worker" => worker(arg(1), num(2)),
        role @ ("honest-producer" | "honest-consumer") => honest(role, arg(1), num(2)),
        "create" => create_racer(arg(1), num(2)),
        "open" => {
            announce("armed");
            if read_line().is_some() {
                match open_racer(arg(1), Duration::from_secs(10)) {
                    Ok(nonce) => announce(&format!("got {nonce}")),
                    Err(e) => bad(&e),
                }
            }
        }
        "stale" => {
            let _tx = bytes::create(arg(1), Config::default().capacity(4096))
                .unwrap_or_else(|e| bad(&format!("create {}: {e}", arg(1))));
            announce("ready");
            wait_for_the_kill();
        }
        other => bad(&format!("unknown role {other:?}")),
    }
}

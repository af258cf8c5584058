//! Ring positions near `u64::MAX`: positions are byte counts that only grow, and a segment
//! may carry any the attach checks accept (a long-lived channel, a segment reused by a
//! replacement end). Honest traffic from there must flow — every frame intact, no error, no
//! panic — or the ends must refuse the positions when they attach (`Corrupted`); what they
//! must not do is accept them and then fail (an overflow panic in a debug build, a spurious
//! `Corrupted` in a release one) on frames nobody garbled.

use std::os::fd::OwnedFd;
use zipc::shm::protocol::CONTROL_OFFSET;
use zipc::{Config, Error, bytes};
use zipc_adversary::{Rng, check_frame, make_frame};

const CAPACITY: u64 = 4096;

/// Writes the ring's two positions (tail at the control block's start, head a cache line
/// pair later) into a segment no end is attached to.
fn set_positions(fd: &OwnedFd, pos: u64) {
    let map = memmap2::MmapOptions::new()
        .len(CONTROL_OFFSET + 256)
        .map_raw(fd)
        .expect("map the control block");
    // SAFETY: the mapping is CONTROL_OFFSET + 256 bytes, so both 8-aligned words at
    // CONTROL_OFFSET and CONTROL_OFFSET + 128 lie inside it; no end is attached yet, and the
    // writes are volatile since the memory is shared.
    unsafe {
        let base = map.as_mut_ptr().add(CONTROL_OFFSET);
        base.cast::<u64>().write_volatile(pos);
        base.add(128).cast::<u64>().write_volatile(pos);
    }
}

/// Sends and receives `bytes` worth of frames from position `pos`; the error says what
/// went wrong, with the frame.
fn traffic(pos: u64, bytes: u64, seed: u64) -> Result<u64, String> {
    let fd = bytes::memfd(Config::default().capacity(CAPACITY as usize)).expect("memfd");
    set_positions(&fd, pos);
    let tx = bytes::Producer::from_fd(fd.try_clone().expect("dup"));
    let rx = bytes::Consumer::from_fd(fd);
    let (mut tx, mut rx) = match (tx, rx) {
        (Ok(tx), Ok(rx)) => (tx, rx),
        // Refused at attach: the positions are not carried, and nothing pretends they are.
        (Err(Error::Corrupted(_)), _) | (_, Err(Error::Corrupted(_))) => return Ok(0),
        (Err(e), _) | (_, Err(e)) => return Err(format!("attach at {pos:#x}: {e:?} ({e})")),
    };
    let mut rng = Rng::new(seed);
    let (mut sent, mut got, mut moved) = (0u64, 0u64, 0u64);
    while moved < bytes {
        // A few frames ahead, at most what fits, then take them.
        for _ in 0..1 + rng.below(3) {
            let frame = make_frame(sent);
            match tx.try_send(&frame) {
                Ok(()) => {
                    sent += 1;
                    moved += frame.len() as u64 + 8;
                }
                Err(Error::WouldBlock) => break,
                Err(e) => {
                    return Err(format!(
                        "send of frame {sent} ({moved} bytes past {pos:#x}): {e:?} ({e})"
                    ));
                }
            }
        }
        while got < sent {
            let f = rx.try_recv().map_err(|e| {
                format!("recv of frame {got} ({moved} bytes past {pos:#x}): {e:?} ({e})")
            })?;
            check_frame(got, &f)?;
            got += 1;
        }
    }
    Ok(got)
}

/// Runs `traffic`, turning a panic inside zipc into an error that says where.
fn guarded(pos: u64, bytes: u64, seed: u64) -> Result<u64, String> {
    std::panic::catch_unwind(|| traffic(pos, bytes, seed)).unwrap_or_else(|p| {
        let msg = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(format!("panicked: {msg}"))
    })
}

#[test]
fn honest_traffic_from_positions_near_u64_max() {
    // The highest position the attach checks accept, and a few below it, 8-aligned.
    let top = (u64::MAX - 2 * CAPACITY) & !7;
    let mut failures = Vec::new();
    for (i, back) in [0, 8, CAPACITY / 2, CAPACITY, 2 * CAPACITY, 5 * CAPACITY]
        .into_iter()
        .enumerate()
    {
        let pos = top - back;
        // Far enough to cross where u64 arithmetic on positions would overflow.
        match guarded(pos, back + 8 * CAPACITY, i as u64) {
            Ok(_) => {}
            Err(e) => failures.push(format!("from position {pos:#x}: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "honest traffic near u64::MAX failed:\n{}",
        failures.join("\n")
    );
}

#[test]
fn honest_traffic_from_ordinary_positions() {
    // The same traffic far from the end of the range: the harness itself is sound.
    for pos in [0, 8, 1 << 40, (1 << 62) + 4096] {
        let got = guarded(pos, 8 * CAPACITY, pos).unwrap_or_else(|e| panic!("{pos:#x}: {e}"));
        assert!(got > 0, "{pos:#x}: no frame moved");
    }
}

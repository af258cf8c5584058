//! The hostile peer: maps the live segment of a named channel (`/dev/shm/zipc.NAME`,
//! `MAP_SHARED`) and garbles it for a bounded time — bits and words of the header, of the
//! ring's control block (positions, state, wait words, pids) and of frame headers in the data
//! area — with a seeded generator, so that a run can be repeated.
//!
//! `zipc-hostile NAME SEED MILLIS`: writes `attacking` once mapped, `done OPS` at the end.
//! Three changes in four are put back after a short while (a transient value), the others
//! stay.

use std::time::{Duration, Instant};
use zipc_adversary::{Rng, announce, shm_path};

/// Where the data area starts.
const DATA: usize = zipc::shm::protocol::DATA_OFFSET as usize;
/// The ring's control block: tail, head and state, then the two wait words (seq, waiting) and
/// the two pids, each group on its own 128-byte line.
const CONTROL: usize = zipc::shm::protocol::CONTROL_OFFSET;
const CONTROL_WORDS: [usize; 6] = [
    CONTROL,       // producer position (tail)
    CONTROL + 128, // consumer position (head)
    CONTROL + 256, // state bits
    CONTROL + 384, // data_ready: seq, waiting
    CONTROL + 512, // space_ready: seq, waiting
    CONTROL + 640, // pids
];

struct Map {
    ptr: *mut u8,
    len: usize,
}

impl Map {
    fn read(&self, off: usize) -> u64 {
        assert!(off.is_multiple_of(8) && off + 8 <= self.len);
        // SAFETY: `off` is 8-aligned and the word lies inside the mapping (asserted); the
        // memory is other processes' to write too, so it is read volatile, never referenced.
        unsafe { self.ptr.add(off).cast::<u64>().read_volatile() }
    }

    fn write(&self, off: usize, v: u64) {
        assert!(off.is_multiple_of(8) && off + 8 <= self.len);
        // SAFETY: as in `read`; a shared writable mapping, written volatile.
        unsafe { self.ptr.add(off).cast::<u64>().write_volatile(v) }
    }
}

/// A value for a position word: near the current one, near the ends of the range, or noise.
fn position(rng: &mut Rng, cur: u64, cap: u64) -> u64 {
    match rng.below(6) {
        0 => cur.wrapping_add(8 * rng.below(cap / 4)),
        1 => cur.wrapping_sub(8 * rng.below(cap / 4)),
        2 => cur.wrapping_add(cap + 8 * rng.below(4)),
        3 => u64::MAX - rng.below(4 * cap),
        4 => cur | 1 << rng.below(64),
        _ => rng.next_u64(),
    }
}

/// A frame header word: `len | kind << 32`, plausible or not.
fn frame_header(rng: &mut Rng, cap: u64) -> u64 {
    let kind: u64 = match rng.below(6) {
        0 => 0x00D1,
        1 => 0x00FA,
        2 => 0x005D,
        3 => 0,
        _ => rng.below(1 << 32),
    };
    let len: u64 = match rng.below(7) {
        0 => 0,
        1 => rng.below(64),
        2 => cap / 2 - 8 + rng.below(3) * 8 - 8,
        3 => cap - 8 * rng.below(3),
        4 => u64::from(u32::MAX) - rng.below(8),
        5 => rng.below(cap),
        _ => rng.below(1 << 32),
    };
    len | kind << 32
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [name, seed, millis] = args.as_slice() else {
        eprintln!("usage: zipc-hostile NAME SEED MILLIS");
        std::process::exit(2);
    };
    let seed: u64 = seed.parse().expect("SEED is a number");
    let millis: u64 = millis.parse().expect("MILLIS is a number");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(shm_path(name))
        .unwrap_or_else(|e| panic!("open the segment {name:?}: {e}"));
    let len = file.metadata().expect("segment size").len() as usize;
    assert!(len > DATA, "segment {name:?} is {len} bytes");
    let raw = memmap2::MmapOptions::new()
        .len(len)
        .map_raw(&file)
        .expect("map the segment");
    let map = Map {
        ptr: raw.as_mut_ptr(),
        len,
    };
    let cap = (len - DATA) as u64;
    let mut rng = Rng::new(seed);
    announce("attacking");
    let end = Instant::now() + Duration::from_millis(millis);
    let mut ops = 0u64;
    while Instant::now() < end {
        // Where: the header, the control block, or a frame header in the data area (the one
        // the consumer reads next, the one the producer writes next, or any).
        let (off, value) = match rng.below(10) {
            0 => {
                let off = 8 * rng.below(16) as usize;
                (off, map.read(off) ^ 1 << rng.below(64))
            }
            1..=4 => {
                let off = CONTROL_WORDS[rng.below(CONTROL_WORDS.len() as u64) as usize];
                let cur = map.read(off);
                let v = match (off - CONTROL) / 128 {
                    0 | 1 => position(&mut rng, cur, cap),
                    _ => match rng.below(3) {
                        0 => cur ^ 1 << rng.below(64),
                        1 => 0,
                        _ => rng.next_u64(),
                    },
                };
                (off, v)
            }
            _ => {
                let pos = match rng.below(3) {
                    0 => map.read(CONTROL + 128),
                    1 => map.read(CONTROL),
                    _ => 8 * rng.below(cap / 8),
                };
                let off = DATA + (pos & (cap - 1) & !7) as usize;
                let cur = map.read(off);
                let v = match rng.below(3) {
                    0 => cur ^ 1 << rng.below(64),
                    1 => cur ^ 1 << rng.below(32),
                    _ => frame_header(&mut rng, cap),
                };
                (off, v)
            }
        };
        let old = map.read(off);
        map.write(off, value);
        if rng.below(4) != 0 {
            for _ in 0..rng.below(2000) {
                std::hint::spin_loop();
            }
            map.write(off, old);
        }
        ops += 1;
        // Pacing, so that honest traffic runs between the blows (a change that stays breaks
        // the channel for good; the test starts a fresh one each round).
        if ops.is_multiple_of(8) {
            std::thread::sleep(Duration::from_micros(rng.below(200)));
        } else {
            for _ in 0..rng.below(500) {
                std::hint::spin_loop();
            }
        }
    }
    announce(&format!("done {ops}"));
}

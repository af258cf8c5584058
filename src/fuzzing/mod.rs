//! Entry points of the fuzz targets in `fuzz/`, compiled only under `cfg(fuzzing)` (which
//! `cargo fuzz` sets). Each plays the fuzzer's bytes as what a garbled or hostile peer could
//! leave in shared memory (or send over a control socket), then drives the code that reads
//! it. A panic, an access outside the memory (AddressSanitizer), an endless loop (the
//! fuzzer's timeout) or an error that the API does not document for the call is a finding.
//!
//! - [`ring`](fn@ring): positions, frame headers and payload words of a heap ring, driving
//!   `RingProducer` and `RingConsumer` directly. Its honest mode (any start position, no
//!   garbling) also checks that every frame comes back as sent and nothing is `Corrupted`.
//! - [`segment`](fn@segment): an image of a segment's header, control block and data area
//!   written into a fresh memfd, opened as a byte or typed channel's consumer and producer,
//!   and driven with sends, receives and more garbling between them.
//! - [`side`](fn@side): side-segment descriptors in the ring and the control messages (bytes
//!   and fds) that should back them, as a consumer with a control socket receives them.
//!
//! The seeds in `fuzz/corpus/` come from [`seeds`], which records real channels.

mod ring;
mod segment;
mod side;

pub use ring::ring;
pub use segment::segment;
pub use side::side;

use crate::Config;
use crate::channel::{Shared, bytes, typed};
use crate::error::Error;
use crate::ring::{KIND_DATA, KIND_PAD};
use crate::shm::{CONTROL_OFFSET, DATA_OFFSET};
use std::fs::File;
use std::hint::black_box;
use std::os::unix::fs::FileExt;

/// The fuzzer's bytes, read front to back; past the end every read is zero.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }
    fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        b.iter_mut().for_each(|x| *x = self.byte());
        u64::from_le_bytes(b)
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(self.0.len());
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head.to_vec()
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The bytes of frame number `seq`, `len` long.
fn pattern(seq: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (seq.wrapping_mul(131) as usize + i * 7) as u8)
        .collect()
}

/// The element of the typed channels the targets use: 20 bytes, 4-aligned.
type Elem = [u32; 5];

/// The bytes of a segment image the targets take: the header, the control block, then the
/// data area (the page between the control block and the data area is padding nobody reads).
fn image_len(cap: u64) -> usize {
    CONTROL_OFFSET + size_of::<Shared>() + cap as usize
}

/// The offset in the segment of byte `at` of an image.
fn image_offset(at: usize) -> u64 {
    let front = CONTROL_OFFSET + size_of::<Shared>();
    if at < front {
        at as u64
    } else {
        DATA_OFFSET + (at - front) as u64
    }
}

/// An error of `try_recv`.
fn check_recv(e: Error) {
    match e {
        Error::WouldBlock | Error::Disconnected | Error::PeerGone | Error::Corrupted(_) => {}
        e => panic!("try_recv: {e}"),
    }
}

/// The seed corpus: `(target, name, bytes)` for each seed, recorded from real channels (a
/// byte and a typed one after some traffic, across the ring's end and with positions just
/// below 2^64) and from the formats the targets read. Deterministic: the same every run.
pub fn seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut out = Vec::new();
    // ring: honest runs from a few start positions, and a garbled one.
    for (i, start) in [0u64, 4096 - 24, 0u64.wrapping_sub(40), 1 << 40]
        .into_iter()
        .enumerate()
    {
        let mut s = vec![3, 0];
        s.extend(start.to_le_bytes());
        for round in 0..24u8 {
            // push (len, short), sometimes a held one, then publish and pop.
            s.extend([
                if round % 5 == 0 { 0x20 } else { 0 },
                round * 3,
                0,
                round % 3,
            ]);
            s.extend([1, 2 + (round % 2) * 0x10, 7]);
        }
        out.push(("ring", format!("honest-{i}"), s));
    }
    let mut s = vec![3, 1];
    s.extend(0u64.wrapping_sub(16).to_le_bytes());
    s.extend(0u64.wrapping_sub(32).to_le_bytes());
    s.push(2);
    s.extend([0]);
    s.extend((8 | (u64::from(KIND_DATA) << 32)).to_le_bytes());
    s.extend([5]);
    s.extend((u64::from(KIND_PAD) << 32).to_le_bytes());
    s.extend([0, 16, 0, 0, 2, 2, 0x15, 0, 0, 0, 0, 0, 0, 0, 0, 2, 4, 0]);
    out.push(("ring", "garbled".into(), s));

    // segment: images of real channels.
    for (typed_ends, start, frames) in [
        (false, 0u64, 0usize),
        (false, 0, 5),
        (false, 0, 60),
        (false, 0u64.wrapping_sub(4096 + 64), 30),
        (true, 0, 7),
        (true, 0u64.wrapping_sub(512), 40),
    ] {
        let (flags, image) = channel_image(typed_ends, start, frames);
        let ops: Vec<u8> = vec![1, 1, 0x21, 1, 4 * 10, 1, 3, 4 * 20, 0x41, 1, 3 | 4, 1];
        let mut s = vec![flags, ops.len() as u8];
        s.extend(ops);
        s.extend(image);
        let kind = if typed_ends { "typed" } else { "bytes" };
        out.push(("segment", format!("{kind}-{start:x}-{frames}"), s));
    }

    // side: descriptors backed by well-formed messages and sealed memfds, and ones that are not.
    let desc = |seq: u64, len: u64| {
        let mut d = seq.to_le_bytes().to_vec();
        d.extend(len.to_le_bytes());
        d
    };
    let all_seals = 2 | 4 | 8 | 16;
    let mut s = vec![3];
    for (seq, len) in [(0u64, 300u64), (1, 5000), (2, 17)] {
        s.push(2);
        s.extend(desc(seq, len));
        // A message: tag + descriptor, one memfd of `len` bytes, sealed.
        s.extend([1 | 2 | 4, 17, b'S']);
        s.extend(desc(seq, len));
        s.push(all_seals);
        s.extend((len as u16).to_le_bytes());
    }
    s.push(0);
    out.push(("side", "sealed".into(), s));
    let mut s = vec![2, 2];
    s.extend(desc(0, 64));
    s.extend([1 | 2 | 4, 17, b'S']);
    s.extend(desc(0, 64));
    s.extend([2 | 4 | 16, 64, 0]); // not sealed against writes
    s.push(0x82);
    s.push(8);
    s.extend(desc(1, 8)[..8].iter());
    s.extend([1 | 8, 3, b'x', b'y', b'z', 1]); // a hello-like message with a non-memfd
    s.push(1);
    out.push(("side", "unsealed-and-short".into(), s));
    out
}

/// The flags byte and the image of a channel whose positions started at `start` and that
/// carried `frames` frames, the last few left unreceived.
fn channel_image(typed_ends: bool, start: u64, frames: usize) -> (u8, Vec<u8>) {
    let cap = 4096u64;
    let config = Config::default().capacity(cap as usize);
    let fd = if typed_ends {
        typed::memfd::<Elem>(config)
    } else {
        bytes::memfd(config)
    }
    .expect("a fresh segment");
    let file = File::from(fd.try_clone().expect("dup"));
    let (tail_at, head_at) = (CONTROL_OFFSET as u64, CONTROL_OFFSET as u64 + 128);
    file.write_all_at(&start.to_le_bytes(), tail_at)
        .expect("write");
    file.write_all_at(&start.to_le_bytes(), head_at)
        .expect("write");
    let unreceived = frames.min(3);
    if typed_ends {
        let mut p = typed::Producer::<Elem>::from_fd(fd.try_clone().expect("dup")).expect("p");
        let mut c = typed::Consumer::<Elem>::from_fd(fd.try_clone().expect("dup")).expect("c");
        for i in 0..frames as u32 {
            p.send(&[i, i * 3, 7, 8, 9]).expect("send");
            if (i as usize) < frames - unreceived {
                black_box(*c.recv().expect("recv"));
            }
        }
    } else {
        let mut p = bytes::Producer::from_fd(fd.try_clone().expect("dup")).expect("p");
        let mut c = bytes::Consumer::from_fd(fd.try_clone().expect("dup")).expect("c");
        for i in 0..frames {
            p.send(&pattern(i as u64, (i * 37) % 300)).expect("send");
            if i < frames - unreceived {
                black_box(c.recv().expect("recv").len());
            }
        }
    }
    let mut image = vec![0u8; image_len(cap)];
    let front = CONTROL_OFFSET + size_of::<Shared>();
    file.read_exact_at(&mut image[..front], 0).expect("read");
    file.read_exact_at(&mut image[front..], DATA_OFFSET)
        .expect("read");
    // The ends dropped above marked themselves closed, and left their pids and wait words:
    // clear all of the control block past the positions, for a channel both of whose ends
    // may attach again; and a fixed creator, so that the seeds are the same every run.
    image[CONTROL_OFFSET + 2 * 128..front].fill(0);
    image[52..56].copy_from_slice(&1u32.to_le_bytes());
    image[56..64].fill(0);
    (u8::from(typed_ends), image)
}

//! The lock-free SPSC ring of variable-length frames: a pure memory protocol, no syscalls.
//!
//! Positions are u64 byte counts (`index = pos & (capacity - 1)`) taken modulo 2^64: every
//! sum and difference of positions wraps, and positions are only ever compared through their
//! distance, `tail - head` (wrapping), which is the fill and is checked to lie in
//! `0 ..= capacity` wherever a position is read from shared memory. The capacity is a power
//! of two, so it divides 2^64 and `pos & (capacity - 1)` names the same index on both sides of
//! a wrap: crossing 2^64 is like crossing any multiple of the capacity. Hence an end may
//! attach at any 8-aligned position a peer left (no bound near the top of u64 to enforce, no
//! overflow that honest traffic could reach two rings later, in any build profile), and there
//! is still no ABA: a position's value comes back only after 2^64 bytes, while the two ends
//! are never more than `capacity` apart. The producer owns `tail`, the consumer owns `head`;
//! each keeps its own position locally (the copy in shared memory is only ever written by its
//! owner and read by the peer).
//!
//! A frame is an 8-byte header, `len: u32 | kind: u32` (a little-endian u64, never zero),
//! then the payload, padded to 8 bytes. A frame never wraps: when one does not fit before the
//! end, the producer writes a padding frame up to the end and starts at index 0. A frame's
//! total size is at most half the capacity, so that it always fits once the ring drains.
//!
//! **The header is the publication.** The producer writes the payload, zeroes the word where
//! the next header will go (the *terminator*), then stores the header with Release. The
//! consumer polls the header word at `head` (Acquire): zero means nothing yet, anything else
//! is a frame whose bytes are visible. So a message costs the consumer one cache line (header
//! and small payload together), not two (a shared tail, then the frame): this is what brings
//! one-way latency near the raw cache-line floor. `tail` is still stored at each publish, for
//! a producer that attaches later and for checks, but the consumer's fast path never reads it.
//! With padding, the padding header is stored last, so the frame after it is whole when seen.
//!
//! Trust: everything read from shared memory (the peer's position, a frame header) is read
//! once into a local, checked, then used. A garbled value is `Error::Corrupted`; it never
//! leads to an access outside the data area, an endless loop or a panic.

mod consumer;
mod pending;
mod producer;
#[cfg(all(test, not(loom)))]
mod tests;

pub(crate) use consumer::RingConsumer;
pub(crate) use producer::RingProducer;

use crate::error::Error;
use crate::sync::{AtomicU32, AtomicU64, Ordering};
use crossbeam_utils::CachePadded;
use std::ptr::NonNull;

/// Bytes of a frame header.
pub(crate) const FRAME_HEADER: u64 = 8;
/// A frame that carries a payload.
pub(crate) const KIND_DATA: u32 = 0x00D1;
/// A frame that fills the ring up to its end.
pub(crate) const KIND_PAD: u32 = 0x00FA;
/// A frame whose payload describes a side segment (a frame too big for the ring, sent as a
/// memfd of its own over a control socket: see `channel::side`).
pub(crate) const KIND_SIDE: u32 = 0x005D;

const PRODUCER_CLOSED: u32 = 1 << 0;
const CONSUMER_CLOSED: u32 = 1 << 1;
const PRODUCER_ATTACHED: u32 = 1 << 2;
const CONSUMER_ATTACHED: u32 = 1 << 3;

/// The two ends of a ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    Producer,
    Consumer,
}

impl Side {
    fn closed_bit(self) -> u32 {
        match self {
            Side::Producer => PRODUCER_CLOSED,
            Side::Consumer => CONSUMER_CLOSED,
        }
    }
    fn attached_bit(self) -> u32 {
        match self {
            Side::Producer => PRODUCER_ATTACHED,
            Side::Consumer => CONSUMER_ATTACHED,
        }
    }
    /// The other end.
    pub(crate) fn peer(self) -> Side {
        match self {
            Side::Producer => Side::Consumer,
            Side::Consumer => Side::Producer,
        }
    }
}

/// The ring's shared words. In shared memory it starts all-zero, which is its initial state.
#[repr(C)]
pub(crate) struct Control {
    /// Producer position: bytes ever published. Written only by the producer.
    tail: CachePadded<AtomicU64>,
    /// Consumer position: bytes ever released. Written only by the consumer.
    head: CachePadded<AtomicU64>,
    /// `*_ATTACHED` and `*_CLOSED` bits.
    state: CachePadded<AtomicU32>,
}

impl Control {
    /// A fresh control block on the heap (for loom, unit tests and the fuzz targets; shared
    /// memory starts zeroed).
    #[cfg(any(test, loom, fuzzing))]
    pub(crate) fn new() -> Self {
        Control {
            tail: CachePadded::new(AtomicU64::new(0)),
            head: CachePadded::new(AtomicU64::new(0)),
            state: CachePadded::new(AtomicU32::new(0)),
        }
    }

    /// The two position words (tail, head), for the fuzz targets to set and garble as a
    /// hostile peer would.
    #[cfg(fuzzing)]
    pub(crate) fn positions(&self) -> (&AtomicU64, &AtomicU64) {
        (&self.tail, &self.head)
    }

    /// Marks `side` attached (and no longer closed: a replacement end may attach again).
    pub(crate) fn attach(&self, side: Side) {
        self.state.fetch_and(!side.closed_bit(), Ordering::SeqCst);
        self.state.fetch_or(side.attached_bit(), Ordering::SeqCst);
    }

    /// Marks `side` closed. Whatever it published before stays readable.
    pub(crate) fn close(&self, side: Side) {
        self.state.fetch_or(side.closed_bit(), Ordering::SeqCst);
    }

    /// Whether `side` closed its end.
    pub(crate) fn is_closed(&self, side: Side) -> bool {
        self.state.load(Ordering::Acquire) & side.closed_bit() != 0
    }

    /// Whether `side` ever attached.
    pub(crate) fn is_attached(&self, side: Side) -> bool {
        self.state.load(Ordering::Acquire) & side.attached_bit() != 0
    }
}

/// The data area. Header words are accessed as atomics; payload bytes through raw pointers.
/// Under loom the header words are loom atomics beside the bytes, and one tracked cell per
/// 8-byte word makes loom check every payload access for a happens-before edge.
#[derive(Clone)]
pub(crate) struct Memory {
    ptr: NonNull<u8>,
    cap: u64,
    #[cfg(loom)]
    words: std::sync::Arc<[AtomicU64]>,
    #[cfg(loom)]
    cells: std::sync::Arc<[crate::sync::UnsafeCell<()>]>,
}

impl Memory {
    /// # Safety
    /// `ptr` is 8-aligned and valid for reads and writes of `cap` bytes (a power of two, at
    /// least 16) for as long as any ring built on this `Memory` lives.
    pub(crate) unsafe fn new(ptr: NonNull<u8>, cap: u64) -> Memory {
        debug_assert!(cap.is_power_of_two() && cap >= 16);
        debug_assert!((ptr.as_ptr() as usize).is_multiple_of(8));
        Memory {
            ptr,
            cap,
            #[cfg(loom)]
            words: (0..cap / 8).map(|_| AtomicU64::new(0)).collect(),
            #[cfg(loom)]
            cells: (0..cap / 8)
                .map(|_| crate::sync::UnsafeCell::new(()))
                .collect(),
        }
    }

    /// Tells loom that `len` payload bytes at `idx` are written now (a no-op otherwise).
    #[inline(always)]
    fn track_write(&self, _idx: u64, _len: u64) {
        #[cfg(loom)]
        for w in _idx / 8..(_idx + _len).div_ceil(8) {
            self.cells[w as usize].with_mut(|_| ());
        }
    }

    /// Tells loom that `len` payload bytes at `idx` are read now (a no-op otherwise).
    #[inline(always)]
    fn track_read(&self, _idx: u64, _len: u64) {
        #[cfg(loom)]
        for w in _idx / 8..(_idx + _len).div_ceil(8) {
            self.cells[w as usize].with(|_| ());
        }
    }

    /// A pointer to byte `idx`; `idx <= cap` by the callers' checks (`cap` itself only for
    /// the empty payload of a frame in the last 8 bytes).
    #[inline(always)]
    fn at(&self, idx: u64) -> *mut u8 {
        debug_assert!(idx <= self.cap);
        // SAFETY: idx <= cap (every caller masks or checks it), so the result stays inside the
        // area `new`'s contract makes valid, or one past its end.
        unsafe { self.ptr.as_ptr().add(idx as usize) }
    }

    /// The header word at `idx` (8-aligned, `idx + 8 <= cap`).
    #[inline(always)]
    fn word(&self, idx: u64) -> &AtomicU64 {
        debug_assert!(idx.is_multiple_of(8) && idx + FRAME_HEADER <= self.cap);
        #[cfg(loom)]
        {
            &self.words[(idx / 8) as usize]
        }
        #[cfg(not(loom))]
        // SAFETY: idx is 8-aligned and idx + 8 <= cap, so the word lies inside the area and is
        // aligned; `AtomicU64` has the layout of a u64, and atomics may be shared.
        unsafe {
            &*self.at(idx).cast::<AtomicU64>()
        }
    }

    /// Stores a header (or, with 0, a terminator): Release, so that everything written
    /// before is visible to whoever loads it.
    #[inline(always)]
    fn store_header(&self, idx: u64, word: u64) {
        self.word(idx).store(word.to_le(), Ordering::Release);
    }

    /// Loads the header word at `idx` (Acquire): 0 when nothing was published there.
    #[inline(always)]
    fn load_header(&self, idx: u64) -> u64 {
        u64::from_le(self.word(idx).load(Ordering::Acquire))
    }
}

/// What a garbled ring looked like: a small value on the hot path, formatted only when it
/// becomes an [`Error`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Corrupt {
    /// A peer's position `pos` outside `lo ..= hi` (a window that may wrap past 2^64) or
    /// not 8-aligned.
    Position {
        whose: &'static str,
        pos: u64,
        lo: u64,
        hi: u64,
    },
    /// A frame header that does not fit the ring at `idx`.
    Frame { len: u32, kind: u32, idx: u64 },
}

/// A ring operation's result: the only failure is a garbled ring.
pub(crate) type Result<T> = std::result::Result<T, Corrupt>;

impl From<Corrupt> for Error {
    #[cold]
    fn from(c: Corrupt) -> Error {
        Error::Corrupted(match c {
            Corrupt::Position { whose, pos, lo, hi } => {
                format!(
                    "{whose} position {pos} is outside {lo}..={hi} (counted modulo 2^64) \
                     or unaligned"
                )
            }
            Corrupt::Frame { len, kind, idx } => format!(
                "frame header (length {len}, kind {kind:#x}) at index {idx} does not fit the ring"
            ),
        })
    }
}

/// A header word.
#[inline(always)]
fn header(len: u64, kind: u32) -> u64 {
    len | (u64::from(kind) << 32)
}

/// Rounds a payload length up to the frame it occupies.
#[inline(always)]
pub(crate) fn frame_len(len: u64) -> u64 {
    FRAME_HEADER + len.next_multiple_of(8)
}

/// The largest payload a ring of `cap` bytes carries: a frame of at most half the ring.
pub(crate) fn max_payload(cap: u64) -> u64 {
    (cap / 2 - FRAME_HEADER).min(u64::from(u32::MAX) & !7)
}

/// Space reserved by the producer: a frame starting at position `start` with a payload of up
/// to `len` bytes, after `pad` bytes of padding.
#[derive(Debug)]
pub(crate) struct Reservation {
    start: u64,
    len: u64,
    pad: u64,
}

/// A readable frame: payload at index `idx`, `len` bytes; releasing it moves head to `next`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peeked {
    idx: u64,
    /// The payload length (at most `u32::MAX`), with [`SIDE_FLAG`] set for a side-segment
    /// descriptor: a flag bit rather than a field keeps `Peeked`, and every `Frame`, at three
    /// words on the hot path.
    len: u64,
    next: u64,
}

/// In [`Peeked::len`]: the frame is of kind `KIND_SIDE`.
const SIDE_FLAG: u64 = 1 << 63;

impl Peeked {
    /// Payload length.
    #[inline(always)]
    pub(crate) fn len(&self) -> usize {
        (self.len & !SIDE_FLAG) as usize
    }

    /// Whether the payload is a side-segment descriptor (kind `KIND_SIDE`).
    #[inline(always)]
    pub(crate) fn is_side(&self) -> bool {
        self.len & SIDE_FLAG != 0
    }
}

/// Checks that `pos` (read from shared memory) is a valid position, 8-aligned and within
/// the window `lo ..= hi`, positions counted modulo 2^64 (so the window may wrap: `lo` is
/// then above `hi`). The window is never wider than the ring.
#[inline(always)]
fn check_pos(pos: u64, lo: u64, hi: u64, whose: &'static str) -> Result<u64> {
    if pos.is_multiple_of(8) && pos.wrapping_sub(lo) <= hi.wrapping_sub(lo) {
        Ok(pos)
    } else {
        Err(Corrupt::Position { whose, pos, lo, hi })
    }
}

//! The lock-free SPSC ring of variable-length frames: a pure memory protocol, no syscalls.
//!
//! Positions are monotonically increasing u64 byte counts (`index = pos & (capacity - 1)`),
//! so there is no ABA and `tail - head` is the fill. The producer owns `tail`, the consumer
//! owns `head`; each keeps its own position locally (the copy in shared memory is only ever
//! written by its owner and read by the peer) and caches the peer's, reloading it (Acquire)
//! only when the cached one says full or empty.
//!
//! A frame is an 8-byte header, `len: u32 | kind: u32` (little-endian u64), then the payload,
//! padded to 8 bytes. A frame never wraps: when one does not fit before the end, the producer
//! writes a padding frame up to the end and starts at index 0. A frame's total size is at most
//! half the capacity, so that it always fits once the ring drains.
//!
//! Trust: everything read from shared memory (the peer's position, a frame header) is read
//! once into a local, checked, then used. A garbled value is `Error::Corrupted`; it never
//! leads to an access outside the data area, an endless loop or a panic.

#[cfg(test)]
mod tests;

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
    /// A fresh control block on the heap (for loom and unit tests; shared memory starts zeroed).
    #[cfg(any(test, loom))]
    pub(crate) fn new() -> Self {
        Control {
            tail: CachePadded::new(AtomicU64::new(0)),
            head: CachePadded::new(AtomicU64::new(0)),
            state: CachePadded::new(AtomicU32::new(0)),
        }
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

/// The data area, and under loom one tracked cell per 8-byte word so that loom checks every
/// access to frame bytes for a happens-before edge.
#[derive(Clone)]
pub(crate) struct Memory {
    ptr: NonNull<u8>,
    cap: u64,
    #[cfg(loom)]
    cells: std::sync::Arc<[crate::sync::UnsafeCell<()>]>,
}

impl Memory {
    /// # Safety
    /// `ptr` is 8-aligned and valid for reads and writes of `cap` bytes (a power of two, at
    /// least 16) for as long as any ring built on this `Memory` lives.
    pub(crate) unsafe fn new(ptr: NonNull<u8>, cap: u64) -> Memory {
        debug_assert!(cap.is_power_of_two() && cap >= 16);
        debug_assert!(ptr.as_ptr() as usize % 8 == 0);
        Memory {
            ptr,
            cap,
            #[cfg(loom)]
            cells: (0..cap / 8)
                .map(|_| crate::sync::UnsafeCell::new(()))
                .collect(),
        }
    }

    /// Tells loom that `len` bytes at `idx` are written now (a no-op otherwise).
    #[inline(always)]
    fn track_write(&self, _idx: u64, _len: u64) {
        #[cfg(loom)]
        for w in _idx / 8..(_idx + _len).div_ceil(8) {
            self.cells[w as usize].with_mut(|_| ());
        }
    }

    /// Tells loom that `len` bytes at `idx` are read now (a no-op otherwise).
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

    #[inline(always)]
    fn write_header(&self, idx: u64, len: u32, kind: u32) {
        debug_assert!(idx % 8 == 0 && idx + FRAME_HEADER <= self.cap);
        self.track_write(idx, FRAME_HEADER);
        let word = u64::from(len) | (u64::from(kind) << 32);
        // SAFETY: idx is 8-aligned and idx + 8 <= cap, so the u64 lies inside the area and is
        // aligned; the producer owns this free space until it publishes it.
        unsafe { self.at(idx).cast::<u64>().write_volatile(word.to_le()) }
    }

    #[inline(always)]
    fn read_header(&self, idx: u64) -> (u32, u32) {
        debug_assert!(idx % 8 == 0 && idx + FRAME_HEADER <= self.cap);
        self.track_read(idx, FRAME_HEADER);
        // SAFETY: idx is 8-aligned and idx + 8 <= cap; a volatile read of a plain u64 that the
        // producer published before the tail we acquired.
        let word = u64::from_le(unsafe { self.at(idx).cast::<u64>().read_volatile() });
        (word as u32, (word >> 32) as u32)
    }
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

/// Space reserved by the producer: a frame starting at position `start`, payload up to `len`.
#[derive(Debug)]
pub(crate) struct Reservation {
    start: u64,
    len: u64,
}

/// A readable frame: payload at index `idx`, `len` bytes; releasing it moves head to `next`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peeked {
    idx: u64,
    len: u64,
    next: u64,
}

impl Peeked {
    /// Payload length.
    pub(crate) fn len(&self) -> usize {
        self.len as usize
    }
}

/// The producer's end of a ring.
pub(crate) struct RingProducer {
    ctl: NonNull<Control>,
    mem: Memory,
    mask: u64,
    max: u64,
    /// Next write position (frames committed up to here), `published <= tail`.
    tail: u64,
    /// The value last stored in `ctl.tail`.
    published: u64,
    /// The consumer's position as last loaded, `published - cap <= head_cache <= published`.
    head_cache: u64,
}

/// The consumer's end of a ring.
pub(crate) struct RingConsumer {
    ctl: NonNull<Control>,
    mem: Memory,
    mask: u64,
    max: u64,
    /// Next read position, `head <= tail_cache`; may run ahead of the stored head over padding.
    head: u64,
    /// The producer's position as last loaded, `tail_cache - head <= cap`.
    tail_cache: u64,
    /// The value last stored in `ctl.head`, `released <= head`.
    released: u64,
    /// Release space to the producer once this many bytes were freed (an eighth of the ring),
    /// rather than frame by frame: one store of `head` and one wake check per batch, not per
    /// frame. It cannot deadlock: a consumer that caught up holds back less than this, so the
    /// producer sees at least `cap - cap/8` free, more than the largest frame (`cap/2`).
    release_every: u64,
}

/// What a garbled ring looked like: a small value on the hot path, formatted only when it
/// becomes an [`Error`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Corrupt {
    /// A peer's position `pos` outside `lo ..= hi` or not 8-aligned.
    Position {
        whose: &'static str,
        pos: u64,
        lo: u64,
        hi: u64,
    },
    /// A frame header that does not fit the ring at `idx`.
    Frame {
        len: u32,
        kind: u32,
        idx: u64,
        published: u64,
    },
}

/// A ring operation's result: the only failure is a garbled ring.
pub(crate) type Result<T> = std::result::Result<T, Corrupt>;

impl From<Corrupt> for Error {
    #[cold]
    fn from(c: Corrupt) -> Error {
        Error::Corrupted(match c {
            Corrupt::Position { whose, pos, lo, hi } => {
                format!("{whose} position {pos} is outside {lo}..={hi} or unaligned")
            }
            Corrupt::Frame {
                len,
                kind,
                idx,
                published,
            } => format!(
                "frame header (length {len}, kind {kind:#x}) at index {idx} does not fit \
                 the {published} bytes published"
            ),
        })
    }
}

/// Checks that `pos` (read from shared memory) is a valid position, 8-aligned and within
/// `lo ..= hi`.
#[inline(always)]
fn check_pos(pos: u64, lo: u64, hi: u64, whose: &'static str) -> Result<u64> {
    if pos % 8 == 0 && lo <= pos && pos <= hi {
        Ok(pos)
    } else {
        Err(Corrupt::Position { whose, pos, lo, hi })
    }
}

impl RingProducer {
    /// Attaches the producer to a ring, taking up the positions stored in it.
    ///
    /// # Safety
    /// `ctl` points at a `Control` that lives, like `mem`, as long as the returned value; no
    /// other `RingProducer` uses this ring at the same time.
    pub(crate) unsafe fn new(ctl: NonNull<Control>, mem: Memory) -> Result<RingProducer> {
        let cap = mem.cap;
        // SAFETY: the caller guarantees `ctl` is live.
        let c = unsafe { ctl.as_ref() };
        let tail = c.tail.load(Ordering::Acquire);
        let head = c.head.load(Ordering::Acquire);
        check_pos(tail, 0, u64::MAX - cap, "producer")?;
        check_pos(head, tail.saturating_sub(cap), tail, "consumer")?;
        Ok(RingProducer {
            ctl,
            mask: cap - 1,
            max: max_payload(cap),
            mem,
            tail,
            published: tail,
            head_cache: head,
        })
    }

    fn ctl(&self) -> &Control {
        // SAFETY: `new`'s contract keeps the control block alive as long as `self`.
        unsafe { self.ctl.as_ref() }
    }

    /// The largest payload a frame may carry.
    pub(crate) fn max_payload(&self) -> usize {
        self.max as usize
    }

    /// Reserves a frame of `len <= max_payload()` payload bytes, or `Ok(None)` if the ring
    /// lacks space now.
    /// Nothing becomes visible to the consumer until [`commit`](Self::commit) and
    /// [`publish`](Self::publish).
    #[inline]
    pub(crate) fn try_reserve(&mut self, len: usize) -> Result<Option<Reservation>> {
        let len = len as u64;
        debug_assert!(
            len <= self.max,
            "callers check the length against max_payload"
        );
        let cap = self.mask + 1;
        let frame = frame_len(len);
        let idx = self.tail & self.mask;
        let pad = if cap - idx < frame { cap - idx } else { 0 };
        let need = pad + frame;
        if self.tail + need - self.head_cache > cap {
            let head = self.ctl().head.load(Ordering::Acquire);
            self.head_cache = check_pos(head, self.head_cache, self.published, "consumer")?;
            if self.tail + need - self.head_cache > cap {
                return Ok(None);
            }
        }
        if pad > 0 {
            self.mem
                .write_header(idx, (pad - FRAME_HEADER) as u32, KIND_PAD);
        }
        let start = self.tail + pad;
        self.mem.track_write(start & self.mask, frame);
        Ok(Some(Reservation { start, len }))
    }

    /// The payload of a reservation: `r.len()` bytes, 8-aligned, writable until committed.
    #[inline(always)]
    pub(crate) fn payload(&self, r: &Reservation) -> *mut u8 {
        self.mem.at((r.start & self.mask) + FRAME_HEADER)
    }

    /// Commits the first `len <= r.len()` bytes of a reservation as one frame. It becomes
    /// visible at the next [`publish`](Self::publish).
    #[inline]
    pub(crate) fn commit(&mut self, r: Reservation, len: usize) {
        let len = (len as u64).min(r.len);
        self.mem
            .write_header(r.start & self.mask, len as u32, KIND_DATA);
        self.tail = r.start + frame_len(len);
    }

    /// Makes every committed frame visible with one Release store. Returns whether there was
    /// anything new.
    #[inline]
    pub(crate) fn publish(&mut self) -> bool {
        if self.tail == self.published {
            return false;
        }
        self.ctl().tail.store(self.tail, Ordering::Release);
        self.published = self.tail;
        true
    }

    /// Whether the consumer has released space since the producer last looked (for a waiter).
    pub(crate) fn has_new_space(&self) -> bool {
        self.ctl().head.load(Ordering::Acquire) != self.head_cache
    }

    /// The ring's size in bytes.
    pub(crate) fn capacity(&self) -> usize {
        (self.mask + 1) as usize
    }
}

impl RingConsumer {
    /// Attaches the consumer to a ring, taking up the positions stored in it.
    ///
    /// # Safety
    /// As for [`RingProducer::new`], for the consumer's end.
    pub(crate) unsafe fn new(ctl: NonNull<Control>, mem: Memory) -> Result<RingConsumer> {
        let cap = mem.cap;
        // SAFETY: the caller guarantees `ctl` is live.
        let c = unsafe { ctl.as_ref() };
        let head = c.head.load(Ordering::Acquire);
        let tail = c.tail.load(Ordering::Acquire);
        check_pos(head, 0, u64::MAX - cap, "consumer")?;
        check_pos(tail, head, head + cap, "producer")?;
        Ok(RingConsumer {
            ctl,
            mask: cap - 1,
            max: max_payload(cap),
            mem,
            head,
            tail_cache: tail,
            released: head,
            release_every: cap / 8,
        })
    }

    fn ctl(&self) -> &Control {
        // SAFETY: `new`'s contract keeps the control block alive as long as `self`.
        unsafe { self.ctl.as_ref() }
    }

    /// Loads the producer's position and checks it.
    #[inline]
    fn reload_tail(&mut self) -> Result<()> {
        let tail = self.ctl().tail.load(Ordering::Acquire);
        let cap = self.mask + 1;
        self.tail_cache = check_pos(
            tail,
            self.tail_cache.max(self.head),
            self.head + cap,
            "producer",
        )?;
        Ok(())
    }

    /// The next frame, if one is published, checked against the ring; it stays in place until
    /// [`release`](Self::release).
    #[inline]
    pub(crate) fn try_peek(&mut self) -> Result<Option<Peeked>> {
        let cap = self.mask + 1;
        let mut skipped_pad = false;
        loop {
            if self.head == self.tail_cache {
                self.reload_tail()?;
                if self.head == self.tail_cache {
                    return Ok(None);
                }
            }
            let idx = self.head & self.mask;
            let (len32, kind) = self.mem.read_header(idx);
            let len = u64::from(len32);
            let garbled = Corrupt::Frame {
                len: len32,
                kind,
                idx,
                published: self.tail_cache - self.head,
            };
            match kind {
                // Padding never starts at index 0: any frame fits there.
                KIND_PAD if !skipped_pad && idx != 0 => {
                    let skip = cap - idx;
                    if len != skip - FRAME_HEADER || self.head + skip > self.tail_cache {
                        return Err(garbled);
                    }
                    self.head += skip;
                    skipped_pad = true;
                }
                KIND_DATA => {
                    let frame = frame_len(len);
                    if len > self.max || idx + frame > cap || self.head + frame > self.tail_cache {
                        return Err(garbled);
                    }
                    self.mem.track_read(idx, frame);
                    return Ok(Some(Peeked {
                        idx: idx + FRAME_HEADER,
                        len,
                        next: self.head + frame,
                    }));
                }
                _ => {
                    return Err(garbled);
                }
            }
        }
    }

    /// The payload of a peeked frame.
    #[inline(always)]
    pub(crate) fn payload(&self, p: &Peeked) -> *const u8 {
        self.mem.at(p.idx)
    }

    /// Frees a peeked frame's space. The producer sees it at once if `urgent` (it may be
    /// waiting) or an eighth of the ring is freed, otherwise at the next
    /// [`publish_head`](Self::publish_head). Returns whether it stored `head`.
    #[inline]
    pub(crate) fn release(&mut self, p: Peeked, urgent: bool) -> bool {
        self.head = p.next;
        if urgent || self.head - self.released >= self.release_every {
            self.publish_head()
        } else {
            false
        }
    }

    /// Gives every freed byte back to the producer with one Release store. Returns whether
    /// there was anything to give.
    #[inline]
    pub(crate) fn publish_head(&mut self) -> bool {
        if self.head == self.released {
            return false;
        }
        self.ctl().head.store(self.head, Ordering::Release);
        self.released = self.head;
        true
    }

    /// Whether the producer has published something the consumer has not seen (for a waiter).
    pub(crate) fn has_new_data(&self) -> bool {
        self.ctl().tail.load(Ordering::Acquire) != self.tail_cache
    }

    /// The largest payload a frame may carry.
    pub(crate) fn max_payload(&self) -> usize {
        self.max as usize
    }
}

// SAFETY: the ends hold raw pointers into memory whose lifetime `new`'s contract ties to them;
// each end is the only user of its side of the protocol, so moving it to another thread is fine.
unsafe impl Send for RingProducer {}
// SAFETY: as above.
unsafe impl Send for RingConsumer {}

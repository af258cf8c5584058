//! The producer's end of a ring: reserving space, committing frames, publishing them.

use super::{
    Control, FRAME_HEADER, KIND_DATA, KIND_PAD, KIND_SIDE, Memory, Reservation, Result, check_pos,
    frame_len, header, max_payload,
};
use crate::sync::Ordering;
use std::ptr::NonNull;

/// The producer's end of a ring.
pub(crate) struct RingProducer {
    ctl: NonNull<Control>,
    pub(super) mem: Memory,
    pub(super) mask: u64,
    pub(super) max: u64,
    /// Next write position (frames committed up to here), `published <= tail`.
    pub(super) tail: u64,
    /// The value last stored in `ctl.tail`.
    pub(super) published: u64,
    /// The consumer's position as last loaded, `tail - cap <= head_cache <= tail` (modulo
    /// 2^64: `tail - head_cache`, wrapping, is at most `cap`).
    head_cache: u64,
    /// In a batch: the first header committed and not stored yet (index, word). Frames after it
    /// are stored as they come, but the consumer cannot reach them before this one.
    held: Option<(u64, u64)>,
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
        // Any aligned position is a place to start (see the module docs); the consumer's
        // lies at most a ring behind it.
        check_pos(tail, 0, u64::MAX, "producer")?;
        check_pos(head, tail.wrapping_sub(cap), tail, "consumer")?;
        Ok(RingProducer {
            ctl,
            mask: cap - 1,
            max: max_payload(cap),
            mem,
            tail,
            published: tail,
            head_cache: head,
            held: None,
        })
    }

    pub(super) fn ctl(&self) -> &Control {
        // SAFETY: `new`'s contract keeps the control block alive as long as `self`.
        unsafe { self.ctl.as_ref() }
    }

    /// The largest payload a frame may carry.
    pub(crate) fn max_payload(&self) -> usize {
        self.max as usize
    }

    /// Reserves a frame of `len <= max_payload()` payload bytes, or `Ok(None)` if the ring
    /// lacks space now. Nothing is written to shared memory but the payload the caller writes.
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
        // The frame, its padding, and the terminator after it.
        let need = pad + frame + FRAME_HEADER;
        // `tail - head_cache` is the fill, at most `cap`, and `need` at most `cap + 8`: the
        // sum stays far below 2^64.
        if self.tail.wrapping_sub(self.head_cache) + need > cap {
            let head = self.ctl().head.load(Ordering::Acquire);
            self.head_cache = check_pos(head, self.head_cache, self.tail, "consumer")?;
            if self.tail.wrapping_sub(self.head_cache) + need > cap {
                return Ok(None);
            }
        }
        let start = self.tail.wrapping_add(pad);
        self.mem
            .track_write((start & self.mask) + FRAME_HEADER, frame - FRAME_HEADER);
        Ok(Some(Reservation { start, len, pad }))
    }

    /// The payload of a reservation: `len` bytes, 8-aligned, writable until committed.
    #[inline(always)]
    pub(crate) fn payload(&self, r: &Reservation) -> *mut u8 {
        self.mem.at((r.start & self.mask) + FRAME_HEADER)
    }

    /// Commits the first `len <= r.len` bytes of a reservation as one frame: the consumer can
    /// take it at once, or, with `hold`, not before the next [`publish`](Self::publish) (a
    /// batch: the first held header gates every frame after it).
    #[inline]
    pub(crate) fn commit(&mut self, r: Reservation, len: usize, hold: bool) {
        self.commit_kind(r, len, KIND_DATA, hold);
    }

    /// As [`commit`](Self::commit), for a frame of `kind` (`KIND_DATA` or `KIND_SIDE`).
    #[inline]
    pub(crate) fn commit_kind(&mut self, r: Reservation, len: usize, kind: u32, hold: bool) {
        debug_assert!(kind == KIND_DATA || kind == KIND_SIDE);
        let len = (len as u64).min(r.len);
        let idx = r.start & self.mask;
        let end = r.start.wrapping_add(frame_len(len));
        self.mem.store_header(end & self.mask, 0);
        let frame = header(len, kind);
        let gate = if r.pad > 0 {
            // The frame at index 0 goes first; the padding that leads to it publishes both.
            self.mem.store_header(idx, frame);
            r.start.wrapping_sub(r.pad) & self.mask
        } else {
            idx
        };
        let gate_word = if r.pad > 0 {
            header(r.pad - FRAME_HEADER, KIND_PAD)
        } else {
            frame
        };
        if hold && self.held.is_none() {
            self.held = Some((gate, gate_word));
        } else {
            self.mem.store_header(gate, gate_word);
        }
        self.tail = end;
    }

    /// Makes every committed frame visible (the held header, if a batch holds one) and
    /// stores `tail`. Returns whether there was anything new.
    #[inline]
    pub(crate) fn publish(&mut self) -> bool {
        if let Some((idx, word)) = self.held.take() {
            self.mem.store_header(idx, word);
        }
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

// SAFETY: the producer holds raw pointers into memory whose lifetime `new`'s contract ties to it,
// and is the only user of its side of the protocol, so moving it to another thread is fine.
unsafe impl Send for RingProducer {}

//! The consumer's end of a ring: peeking at frames, checking them, releasing their space.

use super::{
    Control, Corrupt, FRAME_HEADER, KIND_DATA, KIND_PAD, KIND_SIDE, Memory, Peeked, Result,
    SIDE_FLAG, check_pos, frame_len, max_payload,
};
use crate::sync::Ordering;
use std::ptr::NonNull;

/// The consumer's end of a ring.
pub(crate) struct RingConsumer {
    ctl: NonNull<Control>,
    mem: Memory,
    mask: u64,
    max: u64,
    /// Next read position.
    pub(super) head: u64,
    /// The value last stored in `ctl.head`, `released <= head` (modulo 2^64).
    released: u64,
    /// Release space to the producer once this many bytes were freed (an eighth of the ring),
    /// rather than frame by frame: one store of `head` and one wake check per batch, not per
    /// frame. It cannot deadlock: a consumer that caught up holds back less than this, so the
    /// producer sees at least `cap - cap/8` free, more than the largest frame (`cap/2`) and its
    /// terminator.
    release_every: u64,
}

impl RingConsumer {
    /// Attaches the consumer to a ring, taking up the positions stored in it.
    ///
    /// # Safety
    /// As for [`RingProducer::new`](super::RingProducer::new), for the consumer's end.
    pub(crate) unsafe fn new(ctl: NonNull<Control>, mem: Memory) -> Result<RingConsumer> {
        let cap = mem.cap;
        // SAFETY: the caller guarantees `ctl` is live.
        let c = unsafe { ctl.as_ref() };
        let head = c.head.load(Ordering::Acquire);
        let tail = c.tail.load(Ordering::Acquire);
        // As for the producer: any aligned position, the producer's at most a ring ahead.
        check_pos(head, 0, u64::MAX, "consumer")?;
        check_pos(tail, head, head.wrapping_add(cap), "producer")?;
        Ok(RingConsumer {
            ctl,
            mask: cap - 1,
            max: max_payload(cap),
            mem,
            head,
            released: head,
            release_every: cap / 8,
        })
    }

    fn ctl(&self) -> &Control {
        // SAFETY: `new`'s contract keeps the control block alive as long as `self`.
        unsafe { self.ctl.as_ref() }
    }

    /// The next frame, if one is published, checked against the ring; it stays in place until
    /// [`release`](Self::release).
    #[inline]
    pub(crate) fn try_peek(&mut self) -> Result<Option<Peeked>> {
        let cap = self.mask + 1;
        let mut skipped_pad = false;
        loop {
            let idx = self.head & self.mask;
            let word = self.mem.load_header(idx);
            if word == 0 {
                return Ok(None);
            }
            let (len32, kind) = (word as u32, (word >> 32) as u32);
            let len = u64::from(len32);
            let garbled = Corrupt::Frame {
                len: len32,
                kind,
                idx,
            };
            match kind {
                // Padding never starts at index 0 (any frame fits there), nor follows padding.
                KIND_PAD if !skipped_pad && idx != 0 => {
                    if len != cap - idx - FRAME_HEADER {
                        return Err(garbled);
                    }
                    self.head = self.head.wrapping_add(cap - idx);
                    skipped_pad = true;
                }
                KIND_DATA => {
                    let frame = frame_len(len);
                    if len > self.max || idx + frame > cap {
                        return Err(garbled);
                    }
                    self.mem
                        .track_read(idx + FRAME_HEADER, frame - FRAME_HEADER);
                    return Ok(Some(Peeked {
                        idx: idx + FRAME_HEADER,
                        len,
                        next: self.head.wrapping_add(frame),
                    }));
                }
                // Not data: the caller's slow path takes it (`try_peek_side`).
                KIND_SIDE => return Ok(None),
                _ => return Err(garbled),
            }
        }
    }

    /// The next frame if it is a side-segment descriptor (kind `KIND_SIDE`, which
    /// [`try_peek`](Self::try_peek) leaves alone so that data frames pay nothing for it),
    /// checked as a data frame is. Padding before it is skipped as `try_peek` skips it.
    #[cold]
    #[inline(never)]
    pub(crate) fn try_peek_side(&mut self) -> Result<Option<Peeked>> {
        let idx = self.head & self.mask;
        let word = self.mem.load_header(idx);
        let (len, kind) = (u64::from(word as u32), (word >> 32) as u32);
        if kind != KIND_SIDE {
            return Ok(None);
        }
        let frame = frame_len(len);
        if len > self.max || idx + frame > self.mask + 1 {
            return Err(Corrupt::Frame {
                len: len as u32,
                kind: KIND_SIDE,
                idx,
            });
        }
        self.mem
            .track_read(idx + FRAME_HEADER, frame - FRAME_HEADER);
        Ok(Some(Peeked {
            idx: idx + FRAME_HEADER,
            len: len | SIDE_FLAG,
            next: self.head.wrapping_add(frame),
        }))
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
        if urgent || self.head.wrapping_sub(self.released) >= self.release_every {
            self.publish_head()
        } else {
            false
        }
    }

    /// Whether `p`, peeked earlier, is still the next frame (not released since).
    #[inline]
    pub(crate) fn is_next(&self, p: &Peeked) -> bool {
        p.next.wrapping_sub(frame_len(p.len() as u64)) == self.head
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

    /// Whether a frame (or padding) is published at `head` (for a waiter).
    pub(crate) fn has_new_data(&self) -> bool {
        self.mem.load_header(self.head & self.mask) != 0
    }

    /// The largest payload a frame may carry.
    pub(crate) fn max_payload(&self) -> usize {
        self.max as usize
    }
}

// SAFETY: as for `RingProducer`: the consumer holds raw pointers into memory whose lifetime
// `new`'s contract ties to it, and is the only user of its side of the protocol, so moving it
// to another thread is fine.
unsafe impl Send for RingConsumer {}

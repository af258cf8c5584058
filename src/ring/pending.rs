//! What a closing producer asks of its ring: how many frames it published that the consumer
//! has not released.

use super::{
    Corrupt, FRAME_HEADER, KIND_DATA, KIND_PAD, KIND_SIDE, Result, RingProducer, frame_len,
};
use crate::sync::Ordering;

impl RingProducer {
    /// Whether every published frame was released by the consumer.
    pub(crate) fn all_released(&self) -> bool {
        self.ctl().head.load(Ordering::Acquire) == self.published
    }

    /// The frames (padding not counted) between the consumer's released position and the
    /// published tail, read from their headers. Those headers are the producer's own, but the
    /// memory is shared: each is checked as the consumer checks it, and the walk is bounded
    /// by the distance to the tail.
    pub(crate) fn unreleased_frames(&self) -> Result<u64> {
        let cap = self.mask + 1;
        let tail = self.published;
        let head = self.ctl().head.load(Ordering::Acquire);
        if !head.is_multiple_of(8) || tail.wrapping_sub(head) > cap {
            return Err(Corrupt::Position {
                whose: "consumer",
                pos: head,
                lo: tail.wrapping_sub(cap),
                hi: tail,
            });
        }
        let (mut pos, mut frames) = (head, 0);
        while pos != tail {
            let idx = pos & self.mask;
            let word = self.mem.load_header(idx);
            let (len, kind) = (u64::from(word as u32), (word >> 32) as u32);
            let step = match kind {
                KIND_PAD if idx != 0 => cap - idx,
                KIND_DATA | KIND_SIDE if len <= self.max => frame_len(len),
                _ => 0,
            };
            if step == 0 || idx + step > cap || step > tail.wrapping_sub(pos) {
                return Err(Corrupt::Frame {
                    len: word as u32,
                    kind,
                    idx,
                });
            }
            if kind != KIND_PAD {
                frames += 1;
            }
            pos = pos.wrapping_add(step);
        }
        debug_assert!(frames <= cap / FRAME_HEADER);
        Ok(frames)
    }
}

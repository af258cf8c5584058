//! The receiving end of a byte channel, and the frames it reads in place.

use super::{Deadline, KIND_BYTES};
use crate::channel::Link;
use crate::channel::side::{MAX_SIDE_LEN, SideLink};
use crate::error::{Error, Result};
use crate::ring::{Peeked, RingConsumer, Side};
use crate::shm::Segment;
use crate::wait::{Wait, Waiter, wait_for};
use std::ops::Deref;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// The receiving end of a byte channel.
pub struct Consumer {
    ring: RingConsumer,
    link: Link,
    wait: Wait,
    /// Where side segments come from, if this end has a control socket.
    side: Option<SideLink>,
    /// The side segment of the frame at the head, mapped while its [`Frame`] lives or while
    /// it is [kept](Frame::keep) (here, not in the frame, so that a ring frame carries nothing
    /// to drop).
    side_map: Option<memmap2::Mmap>,
    /// The frame last [kept](Frame::keep), for [`release_kept`](Consumer::release_kept).
    kept: Option<Peeked>,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer").finish_non_exhaustive()
    }
}

struct DataWaiter<'a> {
    ring: &'a mut RingConsumer,
    link: &'a Link,
}

impl DataWaiter<'_> {
    fn give_back_space(&mut self) {
        if self.ring.publish_head() {
            self.link.peer_word().notify();
        }
    }
}

impl Waiter for DataWaiter<'_> {
    type Output = Peeked;
    fn poll(&mut self) -> Result<Option<Peeked>> {
        // A producer waiting for space gets what was released so far while we spin.
        if self.link.peer_word().has_waiter() {
            self.give_back_space();
        }
        if let Some(p) = self.ring.try_peek()? {
            return Ok(Some(p));
        }
        Ok(self.ring.try_peek_side()?)
    }
    fn before_sleep(&mut self) {
        self.give_back_space();
    }
    fn changed(&self) -> bool {
        self.ring.has_new_data() || self.link.peer_closed()
    }
    fn check_peer(&mut self) -> Result<()> {
        match self.link.check_peer() {
            // Frames published before the close or the death come first.
            Err(Error::Disconnected | Error::PeerGone) if self.ring.has_new_data() => Ok(()),
            other => other,
        }
    }
}

impl Consumer {
    /// Attaches as the consumer of the channel segment `fd` (from [`memfd`](super::memfd), or
    /// inherited).
    /// The fd is reopened and the original closed.
    ///
    /// # Errors
    /// `Busy` if a live consumer is attached; `Corrupted`/`Incompatible` for a bad segment.
    pub fn from_fd(fd: OwnedFd) -> Result<Consumer> {
        Self::attach(Segment::from_fd(fd)?, KIND_BYTES, 0)
    }

    /// An end over `ring`, attached through `link`, with the default wait and nothing held.
    fn with(ring: RingConsumer, link: Link) -> Consumer {
        Consumer {
            ring,
            link,
            wait: Wait::default(),
            side: None,
            side_map: None,
            kept: None,
        }
    }

    pub(crate) fn attach(seg: Segment, kind: u32, slot: u64) -> Result<Consumer> {
        let (link, mem) = Link::attach(seg, Side::Consumer, kind, slot)?;
        // SAFETY: as for the producer; the consumer lock makes this the only consumer.
        let ring = unsafe { RingConsumer::new(link.control(), mem)? };
        Ok(Consumer::with(ring, link))
    }

    #[cfg(loom)]
    pub(crate) fn on_heap(heap: &std::sync::Arc<crate::channel::Heap>) -> Result<Consumer> {
        let (link, mem) = Link::attach_heap(heap, Side::Consumer);
        // SAFETY: the heap ring lives as long as the link's Arc; tests make one consumer.
        let ring = unsafe { RingConsumer::new(link.control(), mem)? };
        Ok(Consumer::with(ring, link))
    }

    /// The largest frame this channel carries: half the ring, or with a control socket (a
    /// worker's ends) 1 TiB.
    pub fn max_frame_len(&self) -> usize {
        if self.side.is_some() {
            MAX_SIDE_LEN
        } else {
            self.ring.max_payload()
        }
    }

    /// Receives side segments over `socket` (the other end of the producer's).
    pub(crate) fn set_side_socket(&mut self, socket: OwnedFd) {
        self.side = Some(SideLink::new(socket));
    }

    /// As [`recv`](Self::recv), giving up at `deadline`: `WouldBlock` for
    /// [`Deadline::Now`] (without sleeping), `Timeout` once an [`At`](Deadline::At) passed.
    ///
    /// # Errors
    /// As for `recv`, and `WouldBlock` or `Timeout`.
    #[inline]
    pub fn recv_deadline(&mut self, deadline: Deadline) -> Result<Frame<'_>> {
        let peeked = match self.ring.try_peek() {
            Ok(Some(p)) => p,
            // Side segments come this way too (`try_peek` leaves them to the slow path).
            _ => self.recv_slow(deadline)?,
        };
        Ok(Frame {
            consumer: self,
            peeked,
        })
    }

    /// Maps the side segment a descriptor frame announces into `side_map`. The descriptor
    /// stays in the ring until the frame drops, as a data frame would.
    #[cold]
    #[inline(never)]
    fn map_side(&mut self, peeked: &Peeked) -> Result<()> {
        if self.side_map.is_some() {
            // Kept (`Frame::keep`) and received again: the descriptor never left the head.
            return Ok(());
        }
        let Some(side) = self.side.as_mut() else {
            return Err(Error::Corrupted(
                "a side-segment descriptor on a channel without a control socket".into(),
            ));
        };
        // SAFETY: as in `Frame::deref`: the descriptor lies inside the ring, published, and
        // the producer leaves it alone until it is released below.
        let descriptor =
            unsafe { std::slice::from_raw_parts(self.ring.payload(peeked), peeked.len()) };
        let map = side.recv(descriptor)?;
        self.side_map = Some(map);
        Ok(())
    }

    /// Unmaps the side segment of the frame received last.
    #[cold]
    #[inline(never)]
    fn unmap_side(&mut self) {
        self.side_map = None;
    }

    /// Frees a frame's space in the ring.
    #[inline]
    fn release(&mut self, peeked: Peeked) {
        if self
            .ring
            .release(peeked, self.link.peer_word().has_waiter())
        {
            self.link.peer_word().notify();
        }
    }

    /// Everything but an immediate frame: a side segment, a garbled ring, a closed or dead
    /// peer, waiting.
    #[cold]
    #[inline(never)]
    fn recv_slow(&mut self, deadline: Deadline) -> Result<Peeked> {
        let peeked = self.wait_frame(deadline).inspect_err(|e| {
            if matches!(e, Error::PeerGone) {
                // Drained: PeerGone comes only after every frame the producer committed.
                self.link.clean_up_after_dead_peer();
            }
        })?;
        if peeked.is_side() {
            self.map_side(&peeked)?;
        }
        Ok(peeked)
    }

    /// Waits for the next frame, data or side-segment descriptor.
    fn wait_frame(&mut self, deadline: Deadline) -> Result<Peeked> {
        let mut w = DataWaiter {
            ring: &mut self.ring,
            link: &self.link,
        };
        let deadline = match deadline {
            Deadline::Now => {
                if let Some(p) = w.poll()? {
                    return Ok(p);
                }
                w.check_peer()?;
                let next = w.poll()?;
                // Giving up for now: hand back the space released lazily so far.
                w.give_back_space();
                return next.ok_or(Error::WouldBlock);
            }
            Deadline::At(t) => Some(t),
            Deadline::Never => None,
        };
        wait_for(&mut w, self.link.my_word(), deadline, self.wait)
    }

    /// How this end waits for frames (default [`Wait::Adaptive`]).
    pub fn set_wait(&mut self, wait: Wait) {
        self.wait = wait;
    }

    /// Makes every byte of the frames dropped so far free for the producer now. Dropped frames
    /// give their space back in batches (an eighth of the ring), and at once whenever the ring
    /// runs empty or the producer waits; call this when you will not receive for a while.
    pub fn release_space(&mut self) {
        if self.ring.publish_head() {
            self.link.peer_word().notify();
        }
    }

    /// Frees the frame last [kept](Frame::keep), without receiving it again (nor reading the
    /// ring: its header's cache line may be the producer's to write by now). Returns false,
    /// and frees nothing, when there is no such frame or it was received again since.
    ///
    /// ```
    /// # fn main() -> zipc::Result<()> {
    /// let (mut tx, mut rx) = zipc::bytes::channel(zipc::Config::default())?;
    /// tx.send(b"held")?;
    /// rx.recv()?.keep();
    /// assert!(rx.release_kept());
    /// assert!(!rx.release_kept());
    /// assert!(matches!(rx.try_recv(), Err(zipc::Error::WouldBlock)));
    /// # Ok(())
    /// # }
    /// ```
    #[inline]
    pub fn release_kept(&mut self) -> bool {
        match self.kept.take() {
            // Positions only grow: the kept frame is still the next one exactly when `head`
            // has not moved past its start.
            Some(p) if self.ring.is_next(&p) => {
                if p.is_side() {
                    self.unmap_side();
                }
                self.release(p);
                true
            }
            _ => false,
        }
    }

    crate::wait::deadline_forms! {
        /// The next frame, in place, waiting for one. Dropping the [`Frame`] frees its space.
        ///
        /// # Errors
        /// `Disconnected` once the producer closed and every frame it sent was received;
        /// `PeerGone` likewise when the producer died; `Corrupted` for a garbled ring.
        pub fn recv / try_recv / recv_timeout () -> Result<Frame<'_>> = recv_deadline;
    }
}

impl AsFd for Consumer {
    /// The segment's fd.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.link.as_fd()
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.ring.publish_head();
        if !self.ring.has_new_data() && matches!(self.link.check_peer(), Err(Error::PeerGone)) {
            self.link.clean_up_after_dead_peer();
        }
        self.link.close();
    }
}

/// A received frame, read in place. Dropping it frees its space in the ring (or unmaps its
/// side segment).
pub struct Frame<'a> {
    consumer: &'a mut Consumer,
    /// Where the frame is in the ring; for a side segment, where its descriptor is (the bytes
    /// are in `consumer.side_map`).
    peeked: Peeked,
}

impl Frame<'_> {
    /// The frame read in place as one `Pod` value (as
    /// [`Producer::send_value`](super::Producer::send_value) sends it).
    ///
    /// # Errors
    /// `InvalidArgument` when the frame is not exactly `size_of::<T>()` bytes, or its bytes
    /// are not aligned for `T` (frames in the ring are 8-aligned).
    pub fn value<T: bytemuck::Pod>(&self) -> Result<&T> {
        bytemuck::try_from_bytes(self).map_err(|e| {
            Error::InvalidArgument(format!(
                "a frame of {} bytes is not one {} ({} bytes, aligned to {}): {e}",
                self.len(),
                std::any::type_name::<T>(),
                std::mem::size_of::<T>(),
                std::mem::align_of::<T>()
            ))
        })
    }

    /// Leaves the frame in the ring instead of freeing it: the next receive returns it again,
    /// in place, and its bytes stay put until then, or until
    /// [`Consumer::release_kept`] frees it. For a caller that holds a frame across calls that
    /// cannot share a borrow (the C API's `zipc_recv` and `zipc_release`).
    ///
    /// ```
    /// # fn main() -> zipc::Result<()> {
    /// let (mut tx, mut rx) = zipc::bytes::channel(zipc::Config::default())?;
    /// tx.send(b"once")?;
    /// rx.recv()?.keep();
    /// assert_eq!(&*rx.recv()?, b"once"); // the same frame, freed this time
    /// assert!(matches!(rx.try_recv(), Err(zipc::Error::WouldBlock)));
    /// # Ok(())
    /// # }
    /// ```
    pub fn keep(self) {
        self.consumer.kept = Some(self.peeked);
        // Dropping is what frees the frame; the frame owns nothing else.
        std::mem::forget(self);
    }
}

impl Deref for Frame<'_> {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        if self.peeked.is_side() {
            return self.consumer.side_map.as_deref().unwrap_or_default();
        }
        // SAFETY: the peeked frame was checked to lie inside the ring and was published before
        // the tail we acquired; the producer does not touch it until we release it on drop.
        unsafe {
            std::slice::from_raw_parts(self.consumer.ring.payload(&self.peeked), self.peeked.len())
        }
    }
}

impl Drop for Frame<'_> {
    #[inline]
    fn drop(&mut self) {
        if self.peeked.is_side() {
            self.consumer.unmap_side();
        }
        self.consumer.release(self.peeked);
    }
}

impl std::fmt::Debug for Frame<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frame").field("len", &self.len()).finish()
    }
}

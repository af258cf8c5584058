//! The sending end of a byte channel.

use super::loan::{Batch, Loan};
use super::{Deadline, KIND_BYTES};
use crate::channel::Link;
use crate::channel::side::{DESCRIPTOR_LEN, MAX_SIDE_LEN, SideLink};
use crate::error::{Error, Result};
use crate::ring::{KIND_SIDE, Reservation, RingProducer, Side};
use crate::shm::Segment;
use crate::wait::{Wait, Waiter, wait_for};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

/// The sending end of a byte channel.
///
/// Dropping it closes the channel: the consumer receives every frame committed, then
/// `Disconnected`. For a named channel with frames no consumer holds yet, the drop first waits
/// up to the [linger time](crate::Config::linger) for one to attach; [`close`](Self::close)
/// does the same and says how many frames were left undelivered.
pub struct Producer {
    pub(super) ring: RingProducer,
    link: Link,
    wait: Wait,
    /// Where frames too big for the ring go, if this end has a control socket.
    pub(super) side: Option<SideLink>,
    /// How long closing waits for a consumer while frames are undelivered (named only).
    linger: Duration,
    /// Set once closed, so that the drop after [`Producer::close`] does nothing more.
    closed: bool,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("capacity", &self.capacity())
            .finish_non_exhaustive()
    }
}

/// Waits for a live consumer to attach (or, with `or_released`, for every frame to be released).
struct ConsumerWaiter<'a> {
    ring: &'a RingProducer,
    link: &'a Link,
    or_released: bool,
}

impl Waiter for ConsumerWaiter<'_> {
    type Output = ();
    fn poll(&mut self) -> Result<Option<()>> {
        let done = (self.or_released && self.ring.all_released()) || self.link.peer_connected();
        Ok(done.then_some(()))
    }
    fn changed(&self) -> bool {
        self.ring.has_new_space() || self.link.peer_connected()
    }
    fn check_peer(&mut self) -> Result<()> {
        // No consumer, or a dead one, is what this waits out: never an error.
        Ok(())
    }
}

struct SpaceWaiter<'a> {
    ring: &'a mut RingProducer,
    link: &'a Link,
    len: usize,
}

impl Waiter for SpaceWaiter<'_> {
    type Output = Reservation;
    fn poll(&mut self) -> Result<Option<Reservation>> {
        Ok(self.ring.try_reserve(self.len)?)
    }
    fn changed(&self) -> bool {
        self.ring.has_new_space() || self.link.peer_closed()
    }
    fn check_peer(&mut self) -> Result<()> {
        self.link.check_peer()
    }
}

impl Producer {
    /// Attaches as the producer of the channel segment `fd` (from [`memfd`](super::memfd), or
    /// inherited).
    /// The fd is reopened and the original closed.
    ///
    /// # Errors
    /// `Busy` if a live producer is attached; `Corrupted`/`Incompatible` for a bad segment.
    pub fn from_fd(fd: OwnedFd) -> Result<Producer> {
        Self::attach(Segment::from_fd(fd)?, KIND_BYTES, 0)
    }

    /// An end over `ring`, attached through `link`, with the default wait and nothing held.
    fn with(ring: RingProducer, link: Link) -> Producer {
        Producer {
            ring,
            link,
            wait: Wait::default(),
            side: None,
            linger: crate::channel::DEFAULT_LINGER,
            closed: false,
        }
    }

    pub(crate) fn attach(seg: Segment, kind: u32, slot: u64) -> Result<Producer> {
        let (link, mem) = Link::attach(seg, Side::Producer, kind, slot)?;
        // SAFETY: the control block and memory live in the segment the link owns, and the
        // link's producer lock makes this the only producer.
        let ring = unsafe { RingProducer::new(link.control(), mem)? };
        Ok(Producer::with(ring, link))
    }

    #[cfg(loom)]
    pub(crate) fn on_heap(heap: &std::sync::Arc<crate::channel::Heap>) -> Result<Producer> {
        let (link, mem) = Link::attach_heap(heap, Side::Producer);
        // SAFETY: the heap ring lives as long as the link's Arc; tests make one producer.
        let ring = unsafe { RingProducer::new(link.control(), mem)? };
        Ok(Producer::with(ring, link))
    }

    /// Whether a consumer is attached now: it has not closed and its process lives.
    pub fn is_connected(&self) -> bool {
        self.link.peer_connected()
    }

    /// Waits up to `timeout` for a consumer to attach (at once if one is attached).
    ///
    /// ```
    /// # fn main() -> zipc::Result<()> {
    /// let fd = zipc::bytes::memfd(zipc::Config::default())?;
    /// let mut tx = zipc::bytes::Producer::from_fd(fd.try_clone()?)?;
    /// assert!(!tx.is_connected());
    /// let rx = std::thread::spawn(move || zipc::bytes::Consumer::from_fd(fd));
    /// tx.wait_for_consumer(std::time::Duration::from_secs(10))?;
    /// assert!(tx.is_connected());
    /// # drop(rx.join().unwrap()?);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// `Timeout` when none attached within `timeout`.
    pub fn wait_for_consumer(&mut self, timeout: Duration) -> Result<()> {
        self.wait_consumer(Deadline::after(timeout), false)
    }

    fn wait_consumer(&mut self, deadline: Deadline, or_released: bool) -> Result<()> {
        let mut w = ConsumerWaiter {
            ring: &self.ring,
            link: &self.link,
            or_released,
        };
        if w.poll()?.is_some() {
            return Ok(());
        }
        let deadline = match deadline {
            Deadline::Now => return Err(Error::Timeout),
            Deadline::At(t) => Some(t),
            Deadline::Never => None,
        };
        wait_for(&mut w, self.link.my_word(), deadline, Wait::Sleep)
    }

    /// Sets how long closing this producer waits for a consumer while frames are undelivered
    /// (see [`Config::linger`](crate::Config::linger); only a named channel waits).
    pub fn set_linger(&mut self, linger: Duration) {
        self.linger = linger;
    }

    /// Closes the channel, as dropping it does, and reports what became of the frames: the
    /// consumer receives every committed frame, then `Disconnected`.
    ///
    /// A named channel whose frames no live consumer holds waits up to the
    /// [linger time](crate::Config::linger) for one to attach (the name and the frames stay until
    /// then). A memfd channel's frames stay with the memory, for whoever holds its fd.
    ///
    /// # Errors
    /// `Undelivered` with the count of frames no consumer took when the linger time ran out
    /// (nor was a live consumer attached at the end); `Corrupted` when the consumer garbled
    /// its position, so that the count cannot be made.
    pub fn close(mut self) -> Result<()> {
        self.finish()
    }

    /// Publishes, closes, and for a named channel lingers (see [`close`](Self::close)).
    fn finish(&mut self) -> Result<()> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        self.ring.publish();
        self.link.close();
        if !self.link.is_named() || self.ring.all_released() {
            return Ok(());
        }
        match self.wait_consumer(Deadline::after(self.linger), true) {
            Ok(()) => Ok(()),
            Err(Error::Timeout) => match self.ring.unreleased_frames()? {
                0 => Ok(()),
                frames => Err(Error::Undelivered {
                    frames,
                    linger: self.linger,
                }),
            },
            Err(e) => Err(e),
        }
    }

    /// The largest frame [`send`](Self::send) carries: half the ring, or with a control
    /// socket (a worker's ends) 1 TiB.
    pub fn max_frame_len(&self) -> usize {
        if self.side.is_some() {
            MAX_SIDE_LEN
        } else {
            self.ring.max_payload()
        }
    }

    /// The largest [`loan`](Self::loan): half the ring.
    pub fn max_loan_len(&self) -> usize {
        self.ring.max_payload()
    }

    /// Sends frames too big for the ring as side segments over `socket` (one end of a
    /// `SOCK_SEQPACKET` pair whose other end the consumer holds).
    pub(crate) fn set_side_socket(&mut self, socket: OwnedFd) {
        self.side = Some(SideLink::new(socket));
    }

    /// How this end waits for space (default [`Wait::Adaptive`]).
    pub fn set_wait(&mut self, wait: Wait) {
        self.wait = wait;
    }

    /// The ring size in bytes.
    pub fn capacity(&self) -> usize {
        self.ring.capacity()
    }

    #[inline]
    fn reserve(&mut self, len: usize, deadline: Deadline) -> Result<Reservation> {
        if len <= self.ring.max_payload()
            && !self.link.peer_closed()
            && let Ok(Some(r)) = self.ring.try_reserve(len)
        {
            return Ok(r);
        }
        self.reserve_slow(len, deadline)
    }

    /// Everything but an immediate success: the checks that fail, and waiting for space.
    #[cold]
    #[inline(never)]
    fn reserve_slow(&mut self, len: usize, deadline: Deadline) -> Result<Reservation> {
        let max = self.ring.max_payload();
        if len > max {
            return Err(Error::TooLarge { len, max });
        }
        if self.link.peer_closed() {
            return Err(Error::Disconnected);
        }
        if let Some(r) = self.ring.try_reserve(len)? {
            return Ok(r);
        }
        // The consumer cannot free what it cannot see: publish staged frames before waiting.
        self.flush();
        let deadline = match deadline {
            Deadline::Now => {
                self.link.check_peer()?;
                return Err(Error::WouldBlock);
            }
            Deadline::At(t) => Some(t),
            Deadline::Never => None,
        };
        let mut w = SpaceWaiter {
            ring: &mut self.ring,
            link: &self.link,
            len,
        };
        wait_for(&mut w, self.link.my_word(), deadline, self.wait)
    }

    #[inline]
    pub(crate) fn loan_until(
        &mut self,
        len: usize,
        deadline: Deadline,
        publish: bool,
    ) -> Result<Loan<'_>> {
        let res = self.reserve(len, deadline)?;
        Ok(Loan {
            producer: self,
            res: Some(res),
            len,
            publish,
        })
    }

    /// As [`loan`](Self::loan), giving up at `deadline`: `WouldBlock` for
    /// [`Deadline::Now`] (without sleeping), `Timeout` once an [`At`](Deadline::At) passed.
    ///
    /// # Errors
    /// As for `loan`, and `WouldBlock` or `Timeout`.
    #[inline]
    pub fn loan_deadline(&mut self, len: usize, deadline: Deadline) -> Result<Loan<'_>> {
        self.loan_until(len, deadline, true)
    }

    crate::wait::deadline_forms! {
        /// Reserves `len` bytes in the ring, waiting for space, and lends them for writing in
        /// place. Nothing is sent until [`Loan::commit`]; a dropped loan sends nothing.
        ///
        /// # Errors
        /// `TooLarge` beyond [`max_frame_len`](Self::max_frame_len); `Disconnected` or `PeerGone`
        /// when the consumer closed or died; `Corrupted` when the consumer garbled its position.
        pub fn loan / try_loan / loan_timeout (len: usize) -> Result<Loan<'_>> = loan_deadline;
    }

    /// As [`send`](Self::send), giving up at `deadline`: `WouldBlock` for
    /// [`Deadline::Now`] (without sleeping), `Timeout` once an [`At`](Deadline::At) passed.
    /// Nothing is sent when it gives up.
    ///
    /// # Errors
    /// As for `send`, and `WouldBlock` or `Timeout`.
    #[inline]
    pub fn send_deadline(&mut self, data: &[u8], deadline: Deadline) -> Result<()> {
        if data.len() > self.ring.max_payload() && self.side.is_some() {
            return self.send_side(data, deadline);
        }
        let mut loan = self.loan_until(data.len(), deadline, true)?;
        loan.copy_from_slice(data);
        loan.commit();
        Ok(())
    }

    /// Sends `data` as a side segment: its fd over the control socket, then its descriptor
    /// in the ring. Nothing is sent when either waits past the deadline.
    #[cold]
    #[inline(never)]
    pub(super) fn send_side(&mut self, data: &[u8], deadline: Deadline) -> Result<()> {
        if data.len() > MAX_SIDE_LEN {
            return Err(Error::TooLarge {
                len: data.len(),
                max: MAX_SIDE_LEN,
            });
        }
        // Room for the descriptor first: an fd sent must be announced.
        let res = self.reserve(DESCRIPTOR_LEN, deadline)?;
        let Some(side) = self.side.as_mut() else {
            return Err(Error::TooLarge {
                len: data.len(),
                max: self.ring.max_payload(),
            });
        };
        // On error the reservation is dropped uncommitted: nothing reaches the consumer.
        let descriptor = side.send(data, deadline)?;
        // SAFETY: the reservation holds at least DESCRIPTOR_LEN writable bytes inside the
        // ring, which only this producer touches until it commits them.
        unsafe {
            std::ptr::copy_nonoverlapping(
                descriptor.as_ptr(),
                self.ring.payload(&res),
                DESCRIPTOR_LEN,
            );
        }
        self.ring.commit_kind(res, DESCRIPTOR_LEN, KIND_SIDE, false);
        self.flush();
        Ok(())
    }

    crate::wait::deadline_forms! {
        /// Copies `data` into the ring as one frame, waiting for space. Beyond half the ring, an
        /// end with a control socket sends it as a side segment (see the module docs).
        ///
        /// # Errors
        /// As for [`loan`](Self::loan), with `TooLarge` beyond
        /// [`max_frame_len`](Self::max_frame_len); `NoSpace` when memory for a side segment is
        /// short.
        pub fn send / try_send / send_timeout (data: &[u8]) -> Result<()> = send_deadline;
    }

    /// Sends one `Pod` value as a frame of its bytes, waiting for space; the consumer reads
    /// it back in place with [`Frame::value`](super::Frame::value).
    ///
    /// ```
    /// # fn main() -> zipc::Result<()> {
    /// let (mut tx, mut rx) = zipc::bytes::channel(zipc::Config::default())?;
    /// tx.send_value(&[1.5f64, -2.0])?;
    /// assert_eq!(rx.recv()?.value::<[f64; 2]>()?, &[1.5, -2.0]);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As for [`send`](Self::send).
    #[inline]
    pub fn send_value<T: bytemuck::Pod>(&mut self, value: &T) -> Result<()> {
        self.send(bytemuck::bytes_of(value))
    }

    /// Starts a batch: frames committed through it become visible together, with one store,
    /// when the batch drops (or at [`Batch::flush`]).
    ///
    /// ```
    /// # fn main() -> zipc::Result<()> {
    /// let (mut tx, mut rx) = zipc::bytes::channel(zipc::Config::default())?;
    /// let mut batch = tx.batch();
    /// for i in 0u8..10 {
    ///     batch.send(&[i])?;
    /// }
    /// drop(batch);
    /// for i in 0u8..10 {
    ///     assert_eq!(&*rx.recv()?, &[i]);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn batch(&mut self) -> Batch<'_> {
        Batch { producer: self }
    }

    /// Publishes committed frames that a batch staged.
    #[inline]
    pub(super) fn flush(&mut self) {
        if self.ring.publish() {
            self.link.peer_word().notify();
        }
    }
}

impl AsFd for Producer {
    /// The segment's fd, to hand to the process that attaches the consumer.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.link.as_fd()
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        // What `close` would report has nobody to go to here.
        let _ = self.finish();
    }
}

//! Byte-frame channels: each frame is a byte slice of any length up to half the ring.
//!
//! Ends that have a control socket (a worker's and its parent's) carry frames of any size:
//! [`Producer::send`] sends a frame too big for the ring as a sealed memfd of its own, and
//! [`Consumer::recv`] maps it read-only. Loans stay within the ring.
//!
//! The producer writes in place ([`Producer::loan`] → [`Loan`] → [`Loan::commit`]) or copies
//! ([`Producer::send`]); the consumer reads in place ([`Consumer::recv`] → [`Frame`], which
//! frees its space when dropped).
//!
//! # Examples
//!
//! ```
//! # fn main() -> zipc::Result<()> {
//! let (mut tx, mut rx) = zipc::bytes::channel(zipc::Config::default())?;
//!
//! // Write in place, then publish.
//! let mut loan = tx.loan(5)?;
//! loan.copy_from_slice(b"hello");
//! loan.commit();
//! // Or copy a slice in.
//! tx.send(b"world")?;
//!
//! assert_eq!(&*rx.recv()?, b"hello");
//! assert_eq!(&*rx.recv()?, b"world");
//! drop(tx);
//! assert!(matches!(rx.recv(), Err(zipc::Error::Disconnected)));
//! # Ok(())
//! # }
//! ```

use super::side::{DESCRIPTOR_LEN, MAX_SIDE_LEN, SideLink};
use super::{Config, KIND_BYTES, Link};
use crate::error::{Error, Result};
use crate::ring::{KIND_SIDE, Peeked, Reservation, RingConsumer, RingProducer, Side};
use crate::shm::Segment;
use crate::wait::{Wait, Waiter, wait_for};
use std::ops::{Deref, DerefMut};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

/// A channel within this process (or to hand to a child: see [`memfd`]), over a sealed memfd.
///
/// # Errors
/// `InvalidArgument` for a capacity out of range, `NoSpace` when shared memory is full.
pub fn channel(config: Config) -> Result<(Producer, Consumer)> {
    let seg = Segment::create_anonymous(config.layout(KIND_BYTES, 0)?)?;
    let consumer = Consumer::from_fd(seg.as_fd().try_clone_to_owned()?)?;
    let producer = Producer::attach(seg, KIND_BYTES, 0)?;
    Ok((producer, consumer))
}

/// A new channel segment with neither end attached, as a sealed memfd: hand it (or a
/// duplicate) to [`Producer::from_fd`] in one process and [`Consumer::from_fd`] in another.
///
/// # Errors
/// As for [`channel`].
pub fn memfd(config: Config) -> Result<OwnedFd> {
    let seg = Segment::create_anonymous(config.layout(KIND_BYTES, 0)?)?;
    Ok(seg.as_fd().try_clone_to_owned()?)
}

/// Creates the named channel `name` and returns its producer; another process opens it with
/// [`open`]. The name is removed when the producer drops.
///
/// # Errors
/// `InvalidName`, `Exists` (a live producer holds the name), `InvalidArgument`, `NoSpace`.
pub fn create(name: &str, config: Config) -> Result<Producer> {
    let seg = Segment::create_named(name, config.layout(KIND_BYTES, 0)?)?;
    let mut producer = Producer::attach(seg, KIND_BYTES, 0)?;
    producer.set_linger(config.linger);
    Ok(producer)
}

/// Opens the named channel `name` as its consumer.
///
/// # Errors
/// `InvalidName`, `NotFound`, `Busy` (a live consumer has it), `Corrupted`/`Incompatible` for a
/// segment that is not a byte channel of this zipc version.
pub fn open(name: &str) -> Result<Consumer> {
    Consumer::attach(Segment::open_named(name)?, KIND_BYTES, 0)
}

/// As [`open`], waiting up to `timeout` for a producer to create `name`: the consumer may start
/// first. Frames the producer committed before are all there.
///
/// ```
/// # fn main() -> zipc::Result<()> {
/// # let name = format!("doc-open-timeout-{}", std::process::id());
/// use std::time::Duration;
/// let maker = {
///     let name = name.clone();
///     std::thread::spawn(move || -> zipc::Result<()> {
///         let mut tx = zipc::bytes::create(&name, zipc::Config::default())?;
///         tx.send(b"first")?;
///         tx.close() // waits (up to the linger time) for the consumer to attach
///     })
/// };
/// let mut rx = zipc::bytes::open_timeout(&name, Duration::from_secs(10))?;
/// assert_eq!(&*rx.recv()?, b"first");
/// maker.join().unwrap()?;
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// As for [`open`]; `NotFound` when `name` did not appear within `timeout`.
pub fn open_timeout(name: &str, timeout: Duration) -> Result<Consumer> {
    Consumer::attach(Segment::open_named_within(name, timeout)?, KIND_BYTES, 0)
}

/// When a blocking call gives up.
#[derive(Clone, Copy)]
pub(crate) enum Deadline {
    Now,
    At(Instant),
    Never,
}

impl Deadline {
    pub(crate) fn after(timeout: Duration) -> Deadline {
        Instant::now()
            .checked_add(timeout)
            .map_or(Deadline::Never, Deadline::At)
    }
}

/// The sending end of a byte channel.
///
/// Dropping it closes the channel: the consumer receives every frame committed, then
/// `Disconnected`. For a named channel with frames no consumer holds yet, the drop first waits
/// up to the [linger time](Config::linger) for one to attach; [`close`](Self::close) does the
/// same and says how many frames were left undelivered.
pub struct Producer {
    ring: RingProducer,
    link: Link,
    wait: Wait,
    /// Where frames too big for the ring go, if this end has a control socket.
    side: Option<SideLink>,
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
    /// Attaches as the producer of the channel segment `fd` (from [`memfd`], or inherited).
    /// The fd is reopened and the original closed.
    ///
    /// # Errors
    /// `Busy` if a live producer is attached; `Corrupted`/`Incompatible` for a bad segment.
    pub fn from_fd(fd: OwnedFd) -> Result<Producer> {
        Self::attach(Segment::from_fd(fd)?, KIND_BYTES, 0)
    }

    pub(crate) fn attach(seg: Segment, kind: u32, slot: u64) -> Result<Producer> {
        let (link, mem) = Link::attach(seg, Side::Producer, kind, slot)?;
        // SAFETY: the control block and memory live in the segment the link owns, and the
        // link's producer lock makes this the only producer.
        let ring = unsafe { RingProducer::new(link.control(), mem)? };
        Ok(Producer {
            ring,
            link,
            wait: Wait::default(),
            side: None,
            linger: super::DEFAULT_LINGER,
            closed: false,
        })
    }

    #[cfg(loom)]
    pub(crate) fn on_heap(heap: &std::sync::Arc<super::Heap>) -> Result<Producer> {
        let (link, mem) = Link::attach_heap(heap, Side::Producer);
        // SAFETY: the heap ring lives as long as the link's Arc; tests make one producer.
        let ring = unsafe { RingProducer::new(link.control(), mem)? };
        Ok(Producer {
            ring,
            link,
            wait: Wait::default(),
            side: None,
            linger: super::DEFAULT_LINGER,
            closed: false,
        })
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
    /// (see [`Config::linger`]; only a named channel waits).
    pub fn set_linger(&mut self, linger: Duration) {
        self.linger = linger;
    }

    /// Closes the channel, as dropping it does, and reports what became of the frames: the
    /// consumer receives every committed frame, then `Disconnected`.
    ///
    /// A named channel whose frames no live consumer holds waits up to the
    /// [linger time](Config::linger) for one to attach (the name and the frames stay until
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

    /// Reserves `len` bytes in the ring, waiting for space, and lends them for writing in
    /// place. Nothing is sent until [`Loan::commit`]; a dropped loan sends nothing.
    ///
    /// # Errors
    /// `TooLarge` beyond [`max_frame_len`](Self::max_frame_len); `Disconnected` or `PeerGone`
    /// when the consumer closed or died; `Corrupted` when the consumer garbled its position.
    #[inline]
    pub fn loan(&mut self, len: usize) -> Result<Loan<'_>> {
        self.loan_until(len, Deadline::Never, true)
    }

    /// As [`loan`](Self::loan), but `WouldBlock` instead of waiting.
    ///
    /// # Errors
    /// As for `loan`, and `WouldBlock`.
    #[inline]
    pub fn try_loan(&mut self, len: usize) -> Result<Loan<'_>> {
        self.loan_until(len, Deadline::Now, true)
    }

    /// As [`loan`](Self::loan), waiting at most `timeout`.
    ///
    /// # Errors
    /// As for `loan`, and `Timeout`.
    pub fn loan_timeout(&mut self, len: usize, timeout: Duration) -> Result<Loan<'_>> {
        self.loan_until(len, Deadline::after(timeout), true)
    }

    #[inline]
    fn send_until(&mut self, data: &[u8], deadline: Deadline) -> Result<()> {
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
    fn send_side(&mut self, data: &[u8], deadline: Deadline) -> Result<()> {
        if data.len() > MAX_SIDE_LEN {
            return Err(Error::TooLarge {
                len: data.len(),
                max: MAX_SIDE_LEN,
            });
        }
        // Room for the descriptor first: an fd sent must be announced.
        let res = self.reserve(DESCRIPTOR_LEN, deadline)?;
        let (until, wait) = match deadline {
            Deadline::Now => (None, false),
            Deadline::At(t) => (Some(t), true),
            Deadline::Never => (None, true),
        };
        let Some(side) = self.side.as_mut() else {
            return Err(Error::TooLarge {
                len: data.len(),
                max: self.ring.max_payload(),
            });
        };
        // On error the reservation is dropped uncommitted: nothing reaches the consumer.
        let descriptor = side.send(data, until, wait)?;
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

    /// Copies `data` into the ring as one frame, waiting for space. Beyond half the ring, an
    /// end with a control socket sends it as a side segment (see the module docs).
    ///
    /// # Errors
    /// As for [`loan`](Self::loan), with `TooLarge` beyond
    /// [`max_frame_len`](Self::max_frame_len); `NoSpace` when memory for a side segment is
    /// short.
    #[inline]
    pub fn send(&mut self, data: &[u8]) -> Result<()> {
        self.send_until(data, Deadline::Never)
    }

    /// Sends one `Pod` value as a frame of its bytes, waiting for space; the consumer reads
    /// it back in place with [`Frame::value`].
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

    /// As [`send`](Self::send), but `WouldBlock` instead of waiting.
    ///
    /// # Errors
    /// As for `send`, and `WouldBlock`.
    #[inline]
    pub fn try_send(&mut self, data: &[u8]) -> Result<()> {
        self.send_until(data, Deadline::Now)
    }

    /// As [`send`](Self::send), waiting at most `timeout`.
    ///
    /// # Errors
    /// As for `send`, and `Timeout`.
    pub fn send_timeout(&mut self, data: &[u8], timeout: Duration) -> Result<()> {
        self.send_until(data, Deadline::after(timeout))
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
    fn flush(&mut self) {
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

/// Frames staged by a producer and published together. See [`Producer::batch`].
pub struct Batch<'a> {
    producer: &'a mut Producer,
}

impl Batch<'_> {
    /// Lends `len` bytes in place; its commit is published with the batch.
    ///
    /// # Errors
    /// As for [`Producer::loan`]. When the ring is full, the frames staged so far are
    /// published before waiting.
    #[inline]
    pub fn loan(&mut self, len: usize) -> Result<Loan<'_>> {
        self.producer.loan_until(len, Deadline::Never, false)
    }

    /// Copies `data` in as one frame, published with the batch.
    ///
    /// # Errors
    /// As for [`Producer::send`].
    #[inline]
    pub fn send(&mut self, data: &[u8]) -> Result<()> {
        if data.len() > self.producer.ring.max_payload() && self.producer.side.is_some() {
            // A side segment publishes itself, and what the batch staged before it.
            return self.producer.send_side(data, Deadline::Never);
        }
        let mut loan = self.loan(data.len())?;
        loan.copy_from_slice(data);
        loan.commit();
        Ok(())
    }

    /// Publishes what the batch staged so far.
    pub fn flush(&mut self) {
        self.producer.flush();
    }
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        self.producer.flush();
    }
}

/// Bytes lent in place by [`Producer::loan`]. Write them, then [`commit`](Loan::commit).
///
/// A loan dropped without a commit sends nothing and leaves the ring as it was: loaning the
/// same length again at once lends the same bytes (the C API's `zipc_loan` and `zipc_commit`,
/// two calls that cannot share a borrow, rely on it).
pub struct Loan<'a> {
    producer: &'a mut Producer,
    res: Option<Reservation>,
    len: usize,
    publish: bool,
}

impl Loan<'_> {
    /// Sends the loaned bytes as one frame.
    #[inline]
    pub fn commit(mut self) {
        let len = self.len;
        self.finish(len);
    }

    /// Sends the first `len` loaned bytes as one frame.
    ///
    /// # Errors
    /// `InvalidArgument` if `len` is more than was loaned (nothing is sent, the loan is kept).
    pub fn commit_len(mut self, len: usize) -> std::result::Result<(), (Self, Error)> {
        if len > self.len {
            let e = Error::InvalidArgument(format!("commit of {len} bytes, {} loaned", self.len));
            return Err((self, e));
        }
        self.finish(len);
        Ok(())
    }

    #[inline]
    fn finish(&mut self, len: usize) {
        if let Some(res) = self.res.take() {
            let p = &mut *self.producer;
            p.ring.commit(res, len, !self.publish);
            if self.publish {
                p.flush();
            }
        }
    }
}

impl Deref for Loan<'_> {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        let res = self.res.as_ref().expect("a live loan has its reservation");
        // SAFETY: the reservation is `len` writable bytes inside the ring that only this
        // producer may touch until it commits; the loan borrows the producer mutably.
        unsafe { std::slice::from_raw_parts(self.producer.ring.payload(res), self.len) }
    }
}

impl DerefMut for Loan<'_> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [u8] {
        let res = self.res.as_ref().expect("a live loan has its reservation");
        // SAFETY: as in `deref`; `&mut self` makes this the only reference.
        unsafe { std::slice::from_raw_parts_mut(self.producer.ring.payload(res), self.len) }
    }
}

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
    /// Attaches as the consumer of the channel segment `fd` (from [`memfd`], or inherited).
    /// The fd is reopened and the original closed.
    ///
    /// # Errors
    /// `Busy` if a live consumer is attached; `Corrupted`/`Incompatible` for a bad segment.
    pub fn from_fd(fd: OwnedFd) -> Result<Consumer> {
        Self::attach(Segment::from_fd(fd)?, KIND_BYTES, 0)
    }

    pub(crate) fn attach(seg: Segment, kind: u32, slot: u64) -> Result<Consumer> {
        let (link, mem) = Link::attach(seg, Side::Consumer, kind, slot)?;
        // SAFETY: as for the producer; the consumer lock makes this the only consumer.
        let ring = unsafe { RingConsumer::new(link.control(), mem)? };
        Ok(Consumer {
            ring,
            link,
            wait: Wait::default(),
            side: None,
            side_map: None,
            kept: None,
        })
    }

    #[cfg(loom)]
    pub(crate) fn on_heap(heap: &std::sync::Arc<super::Heap>) -> Result<Consumer> {
        let (link, mem) = Link::attach_heap(heap, Side::Consumer);
        // SAFETY: the heap ring lives as long as the link's Arc; tests make one consumer.
        let ring = unsafe { RingConsumer::new(link.control(), mem)? };
        Ok(Consumer {
            ring,
            link,
            wait: Wait::default(),
            side: None,
            side_map: None,
            kept: None,
        })
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

    #[inline]
    fn recv_until(&mut self, deadline: Deadline) -> Result<Frame<'_>> {
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

    /// The next frame, in place, waiting for one. Dropping the [`Frame`] frees its space.
    ///
    /// # Errors
    /// `Disconnected` once the producer closed and every frame it sent was received;
    /// `PeerGone` likewise when the producer died; `Corrupted` for a garbled ring.
    #[inline]
    pub fn recv(&mut self) -> Result<Frame<'_>> {
        self.recv_until(Deadline::Never)
    }

    /// As [`recv`](Self::recv), but `WouldBlock` instead of waiting.
    ///
    /// # Errors
    /// As for `recv`, and `WouldBlock`.
    #[inline]
    pub fn try_recv(&mut self) -> Result<Frame<'_>> {
        self.recv_until(Deadline::Now)
    }

    /// As [`recv`](Self::recv), waiting at most `timeout`.
    ///
    /// # Errors
    /// As for `recv`, and `Timeout`.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Frame<'_>> {
        self.recv_until(Deadline::after(timeout))
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
    /// The frame read in place as one `Pod` value (as [`Producer::send_value`] sends it).
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

impl std::fmt::Debug for Loan<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loan").field("len", &self.len).finish()
    }
}

impl std::fmt::Debug for Batch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch").finish_non_exhaustive()
    }
}

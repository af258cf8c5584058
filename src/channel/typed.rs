//! Typed channels: each frame is one `T: bytemuck::Pod`, written and read in place.
//!
//! The names are those of [`bytes`](crate::bytes): a [`Producer`] lends a [`Loan`] or sends,
//! alone or in a [`Batch`]; a [`Consumer`] receives a [`Frame`], which it may
//! [keep](Frame::keep). `bytemuck` comes re-exported as [`zipc::bytemuck`](crate::bytemuck).
//!
//! # Examples
//!
//! ```
//! # fn main() -> zipc::Result<()> {
//! // The derives come through zipc's re-export: no bytemuck dependency of your own.
//! #[derive(Clone, Copy, zipc::bytemuck::Pod, zipc::bytemuck::Zeroable)]
//! #[bytemuck(crate = "zipc::bytemuck")]
//! #[repr(C)]
//! struct Tick {
//!     seq: u64,
//!     price: f64,
//! }
//!
//! let (mut tx, mut rx) = zipc::typed::channel::<Tick>(zipc::Config::default())?;
//! let mut loan = tx.loan()?;
//! loan.seq = 1;
//! loan.price = 101.5;
//! loan.commit();
//! tx.send(&Tick { seq: 2, price: 99.0 })?;
//!
//! assert_eq!(rx.recv()?.seq, 1);
//! assert_eq!(rx.recv()?.price, 99.0);
//! # Ok(())
//! # }
//! ```

use super::bytes;
use super::{Config, KIND_TYPED};
use crate::Deadline;
use crate::error::{Error, Result};
use crate::shm::Segment;
use bytemuck::Pod;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

/// The element size written into the segment header, checked by every opener.
fn slot<T: Pod>() -> u64 {
    const {
        assert!(
            align_of::<T>() <= 8,
            "zipc frames are 8-byte aligned: T must align to at most 8"
        )
    };
    size_of::<T>() as u64
}

/// A typed channel over a sealed memfd (within a process, or handed to a child).
///
/// # Errors
/// As for [`bytes::channel`]; `InvalidArgument` when `T` does not fit in half the ring.
pub fn channel<T: Pod>(config: Config) -> Result<(Producer<T>, Consumer<T>)> {
    let seg = Segment::create_anonymous(layout::<T>(&config)?)?;
    let consumer = Consumer::from_fd(seg.as_fd().try_clone_to_owned()?)?;
    let producer = Producer::wrap(bytes::Producer::attach(seg, KIND_TYPED, slot::<T>())?);
    Ok((producer, consumer))
}

/// A typed channel segment with neither end attached (see [`bytes::memfd`]).
///
/// # Errors
/// As for [`channel`].
pub fn memfd<T: Pod>(config: Config) -> Result<OwnedFd> {
    let seg = Segment::create_anonymous(layout::<T>(&config)?)?;
    Ok(seg.as_fd().try_clone_to_owned()?)
}

/// Creates the named typed channel `name` and returns its producer.
///
/// # Errors
/// As for [`bytes::create`].
pub fn create<T: Pod>(name: &str, config: Config) -> Result<Producer<T>> {
    let seg = Segment::create_named(name, layout::<T>(&config)?)?;
    let mut producer = Producer::wrap(
        bytes::Producer::attach(seg, KIND_TYPED, slot::<T>()).map_err(for_type::<T>)?,
    );
    producer.set_linger(config.linger);
    Ok(producer)
}

/// Adds the element type to an `Incompatible` error of an end of `T`s.
fn for_type<T>(e: Error) -> Error {
    match e {
        Error::Incompatible(what) => Error::Incompatible(format!(
            "{what} (this end's elements are {}, {} bytes)",
            std::any::type_name::<T>(),
            size_of::<T>()
        )),
        other => other,
    }
}

/// Opens the named typed channel `name` as its consumer. The element size must match.
///
/// # Errors
/// As for [`bytes::open`]; `Incompatible` for another element size.
pub fn open<T: Pod>(name: &str) -> Result<Consumer<T>> {
    Consumer::attach(Segment::open_named(name)?)
}

/// As [`open`], waiting up to `timeout` for a producer to create `name`.
///
/// # Errors
/// As for [`bytes::open_timeout`]; `Incompatible` for another element size.
pub fn open_timeout<T: Pod>(name: &str, timeout: Duration) -> Result<Consumer<T>> {
    Consumer::attach(Segment::open_named_within(name, timeout)?)
}

fn layout<T: Pod>(config: &Config) -> Result<crate::shm::Layout> {
    let layout = config.layout(KIND_TYPED, slot::<T>())?;
    let max = crate::ring::max_payload(layout.capacity);
    if slot::<T>() > max {
        return Err(Error::InvalidArgument(format!(
            "a {}-byte element does not fit a {}-byte ring (at most {max} bytes a frame)",
            slot::<T>(),
            layout.capacity
        )));
    }
    Ok(layout)
}

/// The sending end of a typed channel.
pub struct Producer<T: Pod> {
    inner: bytes::Producer,
    _t: PhantomData<fn(T)>,
}

impl<T: Pod> std::fmt::Debug for Producer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("typed::Producer").finish_non_exhaustive()
    }
}

impl<T: Pod> Producer<T> {
    fn wrap(inner: bytes::Producer) -> Self {
        Producer {
            inner,
            _t: PhantomData,
        }
    }

    /// Attaches as the producer of the typed channel segment `fd`.
    ///
    /// # Errors
    /// As for [`bytes::Producer::from_fd`]; `Incompatible` for another element size.
    pub fn from_fd(fd: OwnedFd) -> Result<Self> {
        let seg = Segment::from_fd(fd)?;
        Ok(Self::wrap(
            bytes::Producer::attach(seg, KIND_TYPED, slot::<T>()).map_err(for_type::<T>)?,
        ))
    }

    /// How this end waits for space (default [`Wait::Adaptive`](crate::Wait::Adaptive)).
    pub fn set_wait(&mut self, wait: crate::Wait) {
        self.inner.set_wait(wait);
    }

    /// Whether a consumer is attached now (see [`bytes::Producer::is_connected`]).
    pub fn is_connected(&self) -> bool {
        self.inner.is_connected()
    }

    /// Waits up to `timeout` for a consumer to attach.
    ///
    /// # Errors
    /// As for [`bytes::Producer::wait_for_consumer`].
    pub fn wait_for_consumer(&mut self, timeout: Duration) -> Result<()> {
        self.inner.wait_for_consumer(timeout)
    }

    /// Sets how long closing waits for a consumer (see [`Config::linger`]).
    pub fn set_linger(&mut self, linger: Duration) {
        self.inner.set_linger(linger);
    }

    /// Closes the channel and says whether every value reached a consumer.
    ///
    /// # Errors
    /// As for [`bytes::Producer::close`].
    pub fn close(self) -> Result<()> {
        self.inner.close()
    }

    /// The ring size in bytes (see [`bytes::Producer::capacity`]).
    pub fn capacity(&self) -> usize {
        self.inner.capacity()
    }

    /// Starts a batch: values committed through it become visible together, with one store,
    /// when the batch drops (or at [`Batch::flush`]).
    ///
    /// ```
    /// # fn main() -> zipc::Result<()> {
    /// let (mut tx, mut rx) = zipc::typed::channel::<u32>(zipc::Config::default())?;
    /// let mut batch = tx.batch();
    /// for i in 0..10 {
    ///     batch.send(&i)?;
    /// }
    /// drop(batch);
    /// for i in 0..10 {
    ///     assert_eq!(*rx.recv()?, i);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn batch(&mut self) -> Batch<'_, T> {
        Batch {
            inner: self.inner.batch(),
            _t: PhantomData,
        }
    }

    /// As [`loan`](Self::loan), giving up at `deadline`: `WouldBlock` for
    /// [`Deadline::Now`] (without sleeping), `Timeout` once an [`At`](Deadline::At) passed.
    ///
    /// # Errors
    /// As for `loan`, and `WouldBlock` or `Timeout`.
    pub fn loan_deadline(&mut self, deadline: Deadline) -> Result<Loan<'_, T>> {
        Ok(Loan {
            inner: self.inner.loan_until(size_of::<T>(), deadline, true)?,
            _t: PhantomData,
        })
    }

    /// As [`send`](Self::send), giving up at `deadline` (see
    /// [`loan_deadline`](Self::loan_deadline)). Nothing is sent when it gives up.
    ///
    /// # Errors
    /// As for `send`, and `WouldBlock` or `Timeout`.
    pub fn send_deadline(&mut self, value: &T, deadline: Deadline) -> Result<()> {
        let mut loan = self.loan_deadline(deadline)?;
        *loan = *value;
        loan.commit();
        Ok(())
    }

    crate::wait::deadline_forms! {
        /// Lends one `T` in the ring to write in place, waiting for space. Its bytes are
        /// whatever the slot last held: set every field you care about.
        ///
        /// # Errors
        /// As for [`bytes::Producer::loan`].
        pub fn loan / try_loan / loan_timeout () -> Result<Loan<'_, T>> = loan_deadline;

        /// Copies `value` into the ring, waiting for space.
        ///
        /// # Errors
        /// As for [`loan`](Self::loan).
        pub fn send / try_send / send_timeout (value: &T) -> Result<()> = send_deadline;
    }
}

impl<T: Pod> AsFd for Producer<T> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

/// Values staged by a producer and published together. See [`Producer::batch`].
pub struct Batch<'a, T: Pod> {
    inner: bytes::Batch<'a>,
    _t: PhantomData<fn(T)>,
}

impl<T: Pod> Batch<'_, T> {
    /// Lends one `T` in place; its commit is published with the batch.
    ///
    /// # Errors
    /// As for [`Producer::loan`]. When the ring is full, the values staged so far are
    /// published before waiting.
    pub fn loan(&mut self) -> Result<Loan<'_, T>> {
        Ok(Loan {
            inner: self.inner.loan(size_of::<T>())?,
            _t: PhantomData,
        })
    }

    /// Copies `value` in, published with the batch.
    ///
    /// # Errors
    /// As for [`Producer::send`].
    pub fn send(&mut self, value: &T) -> Result<()> {
        let mut loan = self.loan()?;
        *loan = *value;
        loan.commit();
        Ok(())
    }

    /// Publishes what the batch staged so far.
    pub fn flush(&mut self) {
        self.inner.flush();
    }
}

impl<T: Pod> std::fmt::Debug for Batch<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("typed::Batch").finish_non_exhaustive()
    }
}

/// One `T` lent in place by [`Producer::loan`]; [`commit`](Loan::commit) sends it.
pub struct Loan<'a, T: Pod> {
    inner: bytes::Loan<'a>,
    _t: PhantomData<&'a mut T>,
}

impl<T: Pod> Loan<'_, T> {
    /// Sends the value.
    pub fn commit(self) {
        self.inner.commit();
    }
}

impl<T: Pod> Deref for Loan<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        bytemuck::from_bytes(&self.inner)
    }
}

impl<T: Pod> DerefMut for Loan<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        bytemuck::from_bytes_mut(&mut self.inner)
    }
}

/// The receiving end of a typed channel.
pub struct Consumer<T: Pod> {
    inner: bytes::Consumer,
    _t: PhantomData<fn() -> T>,
}

impl<T: Pod> std::fmt::Debug for Consumer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("typed::Consumer").finish_non_exhaustive()
    }
}

impl<T: Pod> Consumer<T> {
    fn attach(seg: Segment) -> Result<Self> {
        Ok(Consumer {
            inner: bytes::Consumer::attach(seg, KIND_TYPED, slot::<T>()).map_err(for_type::<T>)?,
            _t: PhantomData,
        })
    }

    /// Attaches as the consumer of the typed channel segment `fd`.
    ///
    /// # Errors
    /// As for [`bytes::Consumer::from_fd`]; `Incompatible` for another element size.
    pub fn from_fd(fd: OwnedFd) -> Result<Self> {
        Self::attach(Segment::from_fd(fd)?)
    }

    fn frame(frame: bytes::Frame<'_>) -> Result<Frame<'_, T>> {
        if bytemuck::try_from_bytes::<T>(&frame).is_err() {
            return Err(Error::Corrupted(format!(
                "a {}-byte frame in a channel of {}-byte elements",
                frame.len(),
                size_of::<T>()
            )));
        }
        Ok(Frame {
            frame,
            _t: PhantomData,
        })
    }

    /// How this end waits for values (default [`Wait::Adaptive`](crate::Wait::Adaptive)).
    pub fn set_wait(&mut self, wait: crate::Wait) {
        self.inner.set_wait(wait);
    }

    /// Frees the frame last [kept](Frame::keep), without receiving it again (see
    /// [`bytes::Consumer::release_kept`]). Returns false, and frees nothing, when there is no
    /// such frame or it was received again since.
    pub fn release_kept(&mut self) -> bool {
        self.inner.release_kept()
    }

    /// As [`recv`](Self::recv), giving up at `deadline`: `WouldBlock` for
    /// [`Deadline::Now`] (without sleeping), `Timeout` once an [`At`](Deadline::At) passed.
    ///
    /// # Errors
    /// As for `recv`, and `WouldBlock` or `Timeout`.
    pub fn recv_deadline(&mut self, deadline: Deadline) -> Result<Frame<'_, T>> {
        Self::frame(self.inner.recv_deadline(deadline)?)
    }

    crate::wait::deadline_forms! {
        /// The next value, in place, waiting for one. Dropping the [`Frame`] frees its slot.
        ///
        /// # Errors
        /// As for [`bytes::Consumer::recv`].
        pub fn recv / try_recv / recv_timeout () -> Result<Frame<'_, T>> = recv_deadline;
    }
}

impl<T: Pod> AsFd for Consumer<T> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

/// A received value, read in place. Dropping it frees its slot.
pub struct Frame<'a, T: Pod> {
    frame: bytes::Frame<'a>,
    _t: PhantomData<&'a T>,
}

impl<T: Pod> Frame<'_, T> {
    /// Leaves the value in the ring instead of freeing it: the next receive returns it again,
    /// in place, and its bytes stay put until then, or until [`Consumer::release_kept`] frees
    /// it (see [`bytes::Frame::keep`]).
    ///
    /// ```
    /// # fn main() -> zipc::Result<()> {
    /// let (mut tx, mut rx) = zipc::typed::channel::<u64>(zipc::Config::default())?;
    /// tx.send(&7)?;
    /// rx.recv()?.keep();
    /// assert_eq!(*rx.recv()?, 7); // the same value, freed this time
    /// assert!(matches!(rx.try_recv(), Err(zipc::Error::WouldBlock)));
    /// # Ok(())
    /// # }
    /// ```
    pub fn keep(self) {
        self.frame.keep();
    }
}

impl<T: Pod> Deref for Frame<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // Size and alignment were checked when the frame was made.
        bytemuck::from_bytes(&self.frame)
    }
}

impl<T: Pod + std::fmt::Debug> std::fmt::Debug for Loan<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Loan").field(&**self).finish()
    }
}

impl<T: Pod + std::fmt::Debug> std::fmt::Debug for Frame<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Frame").field(&**self).finish()
    }
}

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

mod consumer;
mod loan;
mod producer;

pub use consumer::{Consumer, Frame};
pub use loan::{Batch, Loan};
pub use producer::Producer;

use super::{Config, KIND_BYTES};
use crate::error::Result;
use crate::shm::Segment;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

// The wait layer's deadline, at the path the process layer imports it from.
pub(crate) use crate::wait::Deadline;

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

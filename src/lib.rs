//! zipc: shared-memory IPC for Rust, with zero-copy channels callable from C.
//!
//! A lock-free single-producer, single-consumer ring of variable-length frames lives in a
//! shared segment (a sealed memfd, or a named POSIX shm object). The producer writes frames in
//! place and publishes them with one store; the consumer reads them in place. When a side has
//! to wait it spins briefly, then sleeps on a futex in the segment; the other side makes the
//! wake-up syscall only when someone sleeps. Each end holds a lock that the kernel drops when
//! its process dies, so a killed peer is reported as [`Error::PeerGone`] — after everything it
//! had committed was delivered.
//!
//! # Examples
//!
//! ```
//! # fn main() -> zipc::Result<()> {
//! let (mut tx, mut rx) = zipc::bytes::channel(zipc::Config::default().capacity(64 * 1024))?;
//! let sender = std::thread::spawn(move || -> zipc::Result<()> {
//!     for i in 0u32..1000 {
//!         tx.send(&i.to_le_bytes())?;
//!     }
//!     Ok(())
//! });
//! for i in 0u32..1000 {
//!     let frame = rx.recv()?;
//!     assert_eq!(&*frame, &i.to_le_bytes());
//! }
//! sender.join().unwrap()?;
//! assert!(matches!(rx.recv(), Err(zipc::Error::Disconnected)));
//! # Ok(())
//! # }
//! ```
//!
//! Across processes, create a named channel in one and open it in the other
//! ([`bytes::create`], [`bytes::open`]), or hand the fd of a [`bytes::memfd`] to a child and
//! attach there with [`bytes::Consumer::from_fd`].

#![cfg_attr(loom, allow(dead_code, unused_imports))]

mod channel;
mod error;
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing;
pub mod process;
mod ring;
pub mod shm;
mod sync;
mod sys;
pub mod transport;
mod wait;
pub mod zerocopy;

/// The `Pod` and `Zeroable` traits and derives typed channels need, re-exported so that
/// users need not depend on bytemuck themselves: derive with
/// `#[derive(zipc::bytemuck::Pod, zipc::bytemuck::Zeroable)]` and
/// `#[bytemuck(crate = "zipc::bytemuck")]` (see [`typed`]).
pub use bytemuck;
pub use channel::{Config, bytes, typed};
pub use error::{Error, Result};
pub use process::worker;
pub use wait::{Deadline, Wait};

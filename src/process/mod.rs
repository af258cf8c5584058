//! Workers wired to their channels: a parent spawns a process with a byte channel each way
//! and a control socket already in place; the process picks them up with
//! [`worker::connect`].
//!
//! - [`Command`] builds the worker's command line, environment, working directory, CPU
//!   affinity and ring sizes.
//! - [`Worker::spawn`] creates two sealed memfd rings (parent → worker, worker → parent) and an
//!   `AF_UNIX` `SOCK_SEQPACKET` control pair, hands the child exactly its three fds (their
//!   numbers and identities in `ZIPC_WORKER_FDS`), makes the kernel kill the child when the
//!   parent dies (`PR_SET_PDEATHSIG`), and returns the parent's duplex handle. The child is started
//!   with `clone(CLONE_VM | CLONE_VFORK)`, like `posix_spawn`, so nothing of the parent's
//!   memory is copied, and yet it arms the death signal, sets its affinity and keeps its fds
//!   before `execve`.
//! - [`worker::connect`] (also at `zipc::worker::connect`) is the child's side: it takes the
//!   fds, attaches its ends and tells the parent it is ready.
//!
//! - [`Command::transport`] picks another carrier for the frames: a Unix socket, a pipe pair
//!   or TCP over loopback ([`crate::transport`]); the worker's ends then `send` and
//!   [`recv_into`](Link::recv_into) a buffer rather than lend ring space.
//!
//! - [`Pool`] keeps workers warm and runs tasks on them (one request frame, one reply frame),
//!   with a per-task timeout, retries on a crashed worker, scaling and [stats](Pool::stats).
//!
//! A worker that exits or is killed is [`Error::PeerGone`](crate::Error::PeerGone) on the
//! parent's blocking calls within tens of milliseconds; dropping a [`Worker`] kills and reaps
//! its process.
//!
//! # Examples
//!
//! A program that is its own echo worker (`examples/parent_worker.rs` is the full version):
//!
//! ```no_run
//! use zipc::process::{Command, Worker};
//!
//! fn main() -> zipc::Result<()> {
//!     if std::env::args().any(|a| a == "--worker") {
//!         // The worker: echo every frame until the parent closes.
//!         let mut parent = zipc::worker::connect()?;
//!         let (tx, rx) = parent.split()?;
//!         loop {
//!             match rx.recv() {
//!                 Ok(frame) => tx.send(&frame)?,
//!                 Err(zipc::Error::Disconnected) => return Ok(()),
//!                 Err(e) => return Err(e),
//!             }
//!         }
//!     }
//!     let mut worker = Worker::spawn(Command::new(std::env::current_exe()?).arg("--worker"))?;
//!     worker.send(b"ping")?;
//!     assert_eq!(&*worker.recv()?, b"ping");
//!     assert!(worker.wait()?.success());
//!     Ok(())
//! }
//! ```

mod child;
mod command;
mod control;
mod link;
mod pool;
pub mod worker;

pub use child::Worker;
pub use command::Command;
pub use link::Link;
pub use pool::{Pool, PoolBuilder, PoolStats, Stream, Ticket, WorkerStats};

/// The environment variable that carries the worker's fds: `to_worker,from_worker,control`
/// over shm (the default), or, after the transport's name, `unix:data,control`,
/// `pipe:read,write,control` or `tcp:data,control` ([`Command::transport`]). Each is written
/// `FD@DEV.INO`: the fd's number and the device and inode of its file, by which
/// [`worker::connect`] knows it for the one its parent handed down before it takes it.
pub const FDS_VAR: &str = "ZIPC_WORKER_FDS";

/// The ring size of each direction unless [`Command::ring_capacity`] says otherwise.
pub const DEFAULT_RING_CAPACITY: usize = 128 * 1024;

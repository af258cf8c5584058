//! The crate's one layer of syscalls: every helper that talks to the kernel lives here once,
//! and everything else calls it.
//!
//! The rule for which crate makes a call: nix where it has a safe wrapper that fits (fstat,
//! fstatfs, fcntl flags, writev, sendmsg, sysconf, ...), libc only where nix has none or its
//! wrapper does not fit: futex on a word in shared memory, membarrier, `clone(CLONE_VM |
//! CLONE_VFORK)` to start a worker without copying this process, open-file-description
//! locks, reads into uninitialised memory, the zero-copy calls on raw offsets, and the
//! signal-mask dance around a pipe write.
//!
//! - [`io`]: `-1`/errno conversion, `EINTR` retries, readiness waits, reads and writes;
//! - [`fd`]: memfd and POSIX shm, seals, sizes, OFD locks, and the one `fstat` ([`fd::stat`],
//!   [`fd::FileKind`], [`fd::is_fifo`]);
//! - [`poll`]: waiting for one descriptor until a deadline;
//! - [`proc`]: what `/proc` says of processes and descriptors;
//! - [`futex`], [`barrier`], [`spawn`].

pub(crate) mod barrier;
pub(crate) mod fd;
pub(crate) mod futex;
pub(crate) mod io;
pub(crate) mod poll;
pub(crate) mod proc;
pub(crate) mod spawn;

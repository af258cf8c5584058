//! Thin safe wrappers over the syscalls that nix does not wrap, or wraps in a way that does not
//! fit: futex on a word in shared memory, membarrier, open-file-description locks, memfd seals,
//! the process start time used to tell a live creator from a recycled pid, and starting a
//! worker's process without copying this one (`clone(CLONE_VM | CLONE_VFORK)`).

pub(crate) mod barrier;
pub(crate) mod fd;
pub(crate) mod futex;
pub(crate) mod poll;
pub(crate) mod spawn;

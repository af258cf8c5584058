//! Zero-copy paths between file descriptors: the kernel moves the bytes, user space never
//! copies them.
//!
//! - [`send_file`] sends a range of a [`File`](std::fs::File) to anything that is a file
//!   descriptor — a socket, a pipe, another file. It uses `sendfile(2)` where the kernel takes
//!   it, `splice(2)` through a pipe where it does not, and a `pread`/`write` loop through one
//!   reused buffer where neither is accepted (`EINVAL` or `ENOSYS`: an `O_APPEND` destination,
//!   a file system without splice support, a seccomp filter that denies the call). The
//!   [`Transfer`] it returns says which [`Strategy`] moved the bytes; [`SendFile`] forces one.
//! - [`recv_to_file`] is the other direction: a socket or pipe into a file at an offset, by
//!   `splice(2)`, with the same copy fallback ([`RecvToFile`] forces one).
//! - [`tee`] duplicates the bytes of one pipe into another without consuming them.
//! - [`VmspliceWriter`] maps your buffers into a pipe with `vmsplice(2)` instead of copying
//!   them, and keeps them until the reader has consumed them: see its documentation for why
//!   that has to be so. [`VmspliceWriter::gift`] hands a [`PageBuf`] over to the kernel for
//!   good instead.
//! - [`SplicePipe`] makes a pipe, as large as the system allows up to what you ask (`F_SETPIPE_SZ`).
//!
//! Every call here blocks until it is done, also on descriptors set to `O_NONBLOCK`: where the
//! kernel answers `EAGAIN`, it waits with `poll(2)` and goes on. `EINTR` is retried, short
//! transfers are continued. OS errors come back as [`Error::Io`](crate::Error::Io), ranges
//! that do not fit the file as [`Error::InvalidArgument`](crate::Error::InvalidArgument).
//!
//! Linux only.
//!
//! # Examples
//!
//! ```
//! # fn main() -> zipc::Result<()> {
//! use std::io::{Read, Write};
//! use std::os::unix::net::UnixStream;
//! use zipc::zerocopy::{self, Strategy};
//!
//! let mut file = tempfile()?;
//! file.write_all(b"hello, zero-copy world")?;
//! let (a, mut b) = UnixStream::pair()?;
//! let sent = zerocopy::send_file(&file, 7, 9, &a)?;
//! assert_eq!((sent.bytes, sent.strategy), (9, Strategy::SendFile));
//! let mut got = [0; 9];
//! b.read_exact(&mut got)?;
//! assert_eq!(&got, b"zero-copy");
//! # Ok(())
//! # }
//! # fn tempfile() -> std::io::Result<std::fs::File> {
//! #     let dir = std::env::temp_dir().join(format!("zipc-doc-{}", std::process::id()));
//! #     let f = std::fs::OpenOptions::new().create(true).truncate(true).read(true).write(true).open(&dir)?;
//! #     std::fs::remove_file(&dir)?;
//! #     Ok(f)
//! # }
//! ```

mod sendfile;
mod splice;
mod vmsplice;

pub use sendfile::{SendFile, send_file};
pub use splice::{RecvToFile, SplicePipe, recv_to_file, tee};
pub use vmsplice::{PageBuf, StableBuf, VmspliceWriter};

use crate::sys::io::{self as sys, retry_len, would_block};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// How the bytes of a transfer were moved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Strategy {
    /// `sendfile(2)`: the kernel moves the bytes from the page cache to the destination in
    /// one call, with no pipe of ours in between.
    SendFile,
    /// `splice(2)`: page references are moved into a pipe and from there to the destination
    /// (straight into the destination when it is a pipe itself).
    Splice,
    /// `pread`/`read` and `write` through one reused buffer: two copies, the fallback.
    Copy,
}

impl Strategy {
    /// The strategy to try after this one, when the kernel refuses this one.
    fn next(self) -> Option<Strategy> {
        match self {
            Strategy::SendFile => Some(Strategy::Splice),
            Strategy::Splice => Some(Strategy::Copy),
            Strategy::Copy => None,
        }
    }
}

/// What a transfer did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Transfer {
    /// The strategy that moved the last byte (with automatic fallback, the strategies before
    /// it were refused by the kernel, in practice before moving anything).
    pub strategy: Strategy,
    /// The bytes moved.
    pub bytes: u64,
}

/// Whether the kernel refused the call itself rather than failed it: the signal to fall back.
fn refused(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS))
}

/// Writes all of `buf` to `fd` (a loop over `write(2)`, waiting out `EAGAIN`).
fn write_all(fd: BorrowedFd<'_>, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        // SAFETY: `buf` is valid for reads of `buf.len()` bytes for the duration of the call.
        match retry_len(|| unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) }) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => buf = &buf[n..],
            Err(e) if would_block(&e) => sys::wait(fd, libc::POLLOUT)?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The error of a source that ended before the range it was asked for.
fn ended_early(at: u64, wanted: u64) -> crate::Error {
    crate::Error::Io(io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("the source ended at byte {at}, before byte {wanted}"),
    ))
}

//! [`send_file`]: a range of a file to any descriptor, by `sendfile(2)`, `splice(2)` through a
//! pipe, or a `pread`/`write` loop, whichever the kernel takes first.

use super::{SplicePipe, Strategy, Transfer, ended_early, refused};
use crate::sys::fd::{self, FileKind, is_fifo};
use crate::sys::io::{retry_len, wait, would_block};
use crate::{Error, Result};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

/// The most one `sendfile` or `splice` call is asked to move (the kernel caps a call at a
/// little under 2 GiB anyway).
const MAX_CALL: u64 = 1 << 30;

/// The buffer of the copy fallback, by default.
pub(super) const COPY_BUFFER: usize = 128 * 1024;

/// The pipe of the splice strategy, by default (if `/proc/sys/fs/pipe-max-size` allows).
pub(super) const PIPE_SIZE: usize = 1 << 20;

/// Sends `len` bytes of `src` from `offset` to `dst`, which may be a socket, a pipe or another
/// file (written at its current position, which advances).
///
/// `sendfile(2)` where the kernel takes it; `splice(2)` through a pipe where it answers
/// `EINVAL` or `ENOSYS`; a `pread`/`write` loop through one reused buffer where splice is
/// refused too. `src` must be seekable (a regular file, a memfd, a block device); its position
/// is neither used nor changed, so one `File` can serve several transfers at once. Returns the strategy that moved the bytes and their count, which
/// is always `len` on success. [`SendFile`] forces a strategy, or sets the buffer sizes.
///
/// # Errors
///
/// [`Error::InvalidArgument`] if `offset` is past the end of a regular file or the range does
/// not fit in it (`len` 0 at the very end is fine and moves nothing); [`Error::Io`] for the
/// OS's errors, including `UnexpectedEof` if the file shrinks during the transfer. After an
/// error, an unknown part of the range may have been sent.
pub fn send_file(src: &File, offset: u64, len: u64, dst: impl AsFd) -> Result<Transfer> {
    SendFile::new(src, offset, len).send(dst)
}

/// A [`send_file`] with its options: a forced strategy, buffer and pipe sizes.
///
/// ```
/// # fn main() -> zipc::Result<()> {
/// # let file = std::fs::File::open("Cargo.toml")?;
/// # let len = file.metadata()?.len();
/// # let (dst, mut reader) = std::os::unix::net::UnixStream::pair()?;
/// # let t = std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
/// use zipc::zerocopy::{SendFile, Strategy};
/// let sent = SendFile::new(&file, 0, len).strategy(Strategy::Splice).send(&dst)?;
/// assert_eq!((sent.strategy, sent.bytes), (Strategy::Splice, len));
/// # drop(dst);
/// # assert_eq!(t.join().unwrap()?, len);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy, Debug)]
pub struct SendFile<'a> {
    src: &'a File,
    offset: u64,
    len: u64,
    forced: Option<Strategy>,
    buffer: usize,
    pipe: usize,
}

impl<'a> SendFile<'a> {
    /// `len` bytes of `src` from `offset`, by the first strategy the kernel takes.
    pub fn new(src: &'a File, offset: u64, len: u64) -> SendFile<'a> {
        SendFile {
            src,
            offset,
            len,
            forced: None,
            buffer: COPY_BUFFER,
            pipe: PIPE_SIZE,
        }
    }

    /// Uses `strategy` and no other: if the kernel refuses it, that is the error.
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.forced = Some(strategy);
        self
    }

    /// The size of the one buffer of [`Strategy::Copy`] (default 128 KiB; at least 1).
    pub fn buffer_size(mut self, bytes: usize) -> Self {
        self.buffer = bytes.max(1);
        self
    }

    /// The pipe of [`Strategy::Splice`] asks for this size (default 1 MiB, or the most
    /// `/proc/sys/fs/pipe-max-size` allows).
    pub fn pipe_size(mut self, bytes: usize) -> Self {
        self.pipe = bytes;
        self
    }

    /// Sends the range to `dst`. See [`send_file`].
    pub fn send(&self, dst: impl AsFd) -> Result<Transfer> {
        let dst = dst.as_fd();
        let src = self.src.as_fd();
        let end = check_range(src, self.offset, self.len)?;
        let mut strategy = self.forced.unwrap_or(Strategy::SendFile);
        let mut pos = self.offset;
        while pos < end {
            let result = match strategy {
                Strategy::SendFile => by_sendfile(src, &mut pos, end, dst),
                Strategy::Splice => by_splice(src, &mut pos, end, dst, self.pipe),
                Strategy::Copy => by_copy(src, &mut pos, end, dst, self.buffer),
            };
            match result {
                Ok(()) => {}
                Err(e) if self.forced.is_none() && refused(&e) => match strategy.next() {
                    Some(next) => strategy = next,
                    None => return Err(e.into()),
                },
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    return Err(ended_early(pos, end));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Transfer {
            strategy,
            bytes: self.len,
        })
    }
}

/// Checks that `offset..offset + len` lies within `src` (if it is a regular file, whose size
/// is known), and returns its end.
fn check_range(src: BorrowedFd<'_>, offset: u64, len: u64) -> Result<u64> {
    let end = offset
        .checked_add(len)
        .filter(|&end| end <= i64::MAX as u64)
        .ok_or_else(|| {
            Error::InvalidArgument(format!(
                "the range {offset} + {len} overflows a file offset"
            ))
        })?;
    let st = fd::stat(src)?;
    if st.kind == Some(FileKind::Regular) {
        let size = st.size;
        if offset > size {
            return Err(Error::InvalidArgument(format!(
                "offset {offset} is past the end of the file ({size} bytes)"
            )));
        }
        if end > size {
            return Err(Error::InvalidArgument(format!(
                "{len} bytes from offset {offset} run past the end of the file ({size} bytes)"
            )));
        }
    }
    Ok(end)
}

/// An error meaning the source had no more bytes.
fn eof() -> io::Error {
    io::ErrorKind::UnexpectedEof.into()
}

fn by_sendfile(
    src: BorrowedFd<'_>,
    pos: &mut u64,
    end: u64,
    dst: BorrowedFd<'_>,
) -> io::Result<()> {
    while *pos < end {
        let want = (end - *pos).min(MAX_CALL) as usize;
        let mut off = *pos as libc::off64_t;
        // SAFETY: both descriptors are borrowed and open; `off` is valid for reads and writes
        // for the duration of the call.
        let sent = retry_len(|| unsafe {
            libc::sendfile64(dst.as_raw_fd(), src.as_raw_fd(), &mut off, want)
        });
        match sent {
            Ok(0) => return Err(eof()),
            Ok(n) => *pos += n as u64,
            Err(e) if would_block(&e) => wait(dst, libc::POLLOUT)?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// `splice(2)` from `from` (at `*off_in` if given) to `to` (at `*off_out` if given), up to
/// `len` bytes; `EINTR` retried.
pub(super) fn splice(
    from: BorrowedFd<'_>,
    off_in: Option<&mut i64>,
    to: BorrowedFd<'_>,
    off_out: Option<&mut i64>,
    len: usize,
    flags: libc::c_uint,
) -> io::Result<usize> {
    let off_in = off_in.map_or(std::ptr::null_mut(), |o| o as *mut i64);
    let off_out = off_out.map_or(std::ptr::null_mut(), |o| o as *mut i64);
    // SAFETY: both descriptors are borrowed and open; each offset pointer is null or points to
    // an i64 that the caller lends for the duration of the call.
    retry_len(|| unsafe {
        libc::splice(
            from.as_raw_fd(),
            off_in,
            to.as_raw_fd(),
            off_out,
            len,
            flags,
        )
    })
}

fn by_splice(
    src: BorrowedFd<'_>,
    pos: &mut u64,
    end: u64,
    dst: BorrowedFd<'_>,
    pipe_size: usize,
) -> io::Result<()> {
    if is_fifo(dst)? {
        // Straight from the page cache into the destination pipe.
        while *pos < end {
            let want = (end - *pos).min(MAX_CALL) as usize;
            let mut off = *pos as i64;
            match splice(src, Some(&mut off), dst, None, want, libc::SPLICE_F_MOVE) {
                Ok(0) => return Err(eof()),
                Ok(n) => *pos += n as u64,
                Err(e) if would_block(&e) => wait(dst, libc::POLLOUT)?,
                Err(e) => return Err(e),
            }
        }
        return Ok(());
    }
    let pipe = SplicePipe::with_capacity(pipe_size)?;
    let cap = pipe.capacity()?;
    while *pos < end {
        // Fill our (empty) pipe from the file, then drain it into the destination. `*pos`
        // counts only what reached the destination: if the kernel refuses the drain, the next
        // strategy starts from there (the pipe and what it holds are dropped).
        let want = (end - *pos).min(cap as u64) as usize;
        let mut off = *pos as i64;
        let mut left = match splice(
            src,
            Some(&mut off),
            pipe.writer(),
            None,
            want,
            libc::SPLICE_F_MOVE,
        )? {
            0 => return Err(eof()),
            n => n,
        };
        while left > 0 {
            let more = if *pos + (left as u64) < end {
                libc::SPLICE_F_MORE
            } else {
                0
            };
            match splice(
                pipe.reader(),
                None,
                dst,
                None,
                left,
                libc::SPLICE_F_MOVE | more,
            ) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    left -= n;
                    *pos += n as u64;
                }
                Err(e) if would_block(&e) => wait(dst, libc::POLLOUT)?,
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

fn by_copy(
    src: BorrowedFd<'_>,
    pos: &mut u64,
    end: u64,
    dst: BorrowedFd<'_>,
    buffer: usize,
) -> io::Result<()> {
    let mut buf = vec![0u8; buffer.min((end - *pos).try_into().unwrap_or(usize::MAX))];
    while *pos < end {
        let want = (end - *pos).min(buf.len() as u64) as usize;
        let at = *pos as libc::off64_t;
        // SAFETY: `buf` is valid for writes of `want` bytes for the duration of the call.
        let n = retry_len(|| unsafe {
            libc::pread64(src.as_raw_fd(), buf.as_mut_ptr().cast(), want, at)
        })?;
        if n == 0 {
            return Err(eof());
        }
        super::write_all(dst, &buf[..n])?;
        *pos += n as u64;
    }
    Ok(())
}

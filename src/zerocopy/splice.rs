//! Pipes and what `splice(2)` and `tee(2)` do with them: [`SplicePipe`], [`recv_to_file`], [`tee`].

use super::sendfile::{COPY_BUFFER, PIPE_SIZE, splice};
use super::{Strategy, Transfer, refused};
use crate::sys::fd::is_fifo;
use crate::sys::io::{self as sys, retry_len, unread, wait, would_block};
use crate::{Error, Result};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

/// A pipe: its read end and its write end, both close-on-exec.
#[derive(Debug)]
pub struct SplicePipe {
    read: OwnedFd,
    write: OwnedFd,
}

impl SplicePipe {
    /// A pipe of the system's default capacity (64 KiB on Linux).
    pub fn new() -> Result<SplicePipe> {
        let (read, write) = sys::pipe(false)?;
        Ok(SplicePipe { read, write })
    }

    /// A pipe of `bytes` capacity, or as close below it as the system allows (see
    /// [`set_capacity`](SplicePipe::set_capacity)).
    pub fn with_capacity(bytes: usize) -> Result<SplicePipe> {
        let pipe = SplicePipe::new()?;
        pipe.set_capacity(bytes)?;
        Ok(pipe)
    }

    /// Asks for `bytes` of capacity (`F_SETPIPE_SZ`, which rounds up to a power of two of
    /// pages), and returns the capacity the pipe now has. Above `/proc/sys/fs/pipe-max-size`
    /// an unprivileged process gets that maximum instead; past the per-user limit of pipe
    /// pages (`pipe-user-pages-soft`) the pipe keeps the capacity it has. Neither is an error.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the kernel refuses for another reason (`EBUSY`: the pipe holds more
    /// than `bytes`).
    pub fn set_capacity(&self, bytes: usize) -> Result<usize> {
        let set = |n: usize| sys::set_pipe_size(self.write.as_fd(), n);
        match set(bytes) {
            Ok(n) => Ok(n),
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                let max = std::fs::read_to_string("/proc/sys/fs/pipe-max-size")
                    .ok()
                    .and_then(|s| s.trim().parse::<usize>().ok());
                match max {
                    Some(max) if max < bytes => match set(max) {
                        Ok(n) => Ok(n),
                        Err(e) if e.raw_os_error() == Some(libc::EPERM) => self.capacity(),
                        Err(e) => Err(e.into()),
                    },
                    _ => self.capacity(),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The capacity of the pipe in bytes (`F_GETPIPE_SZ`).
    pub fn capacity(&self) -> Result<usize> {
        Ok(sys::pipe_size(self.write.as_fd())?)
    }

    /// The bytes in the pipe that no one has read yet (`FIONREAD`).
    pub fn unread(&self) -> Result<usize> {
        Ok(unread(self.read.as_fd())?)
    }

    /// The read end.
    pub fn reader(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }

    /// The write end.
    pub fn writer(&self) -> BorrowedFd<'_> {
        self.write.as_fd()
    }

    /// The two ends, read end first. `File::from` makes each a `Read` or a `Write`.
    pub fn into_parts(self) -> (OwnedFd, OwnedFd) {
        (self.read, self.write)
    }
}

/// Receives up to `len` bytes from `src` — a socket or a pipe — into `file` at `offset`, and
/// stops there or at the end of the stream, whichever comes first.
///
/// `splice(2)` moves the bytes: straight from `src` into the file when `src` is a pipe,
/// through a pipe of ours otherwise. Where the kernel refuses (`EINVAL` or `ENOSYS`), a
/// `read`/`pwrite` loop through one reused buffer takes over, with nothing lost or written
/// twice. The file's own position is neither used nor changed. [`RecvToFile`] forces a
/// strategy, or sets the buffer sizes.
///
/// # Errors
///
/// [`Error::InvalidArgument`] if `file` was opened with `O_APPEND` (Linux then writes at the
/// end whatever the offset) or the range overflows a file offset; [`Error::Io`] for the OS's
/// errors. After an error, an unknown part of the stream may have been written.
pub fn recv_to_file(src: impl AsFd, file: &File, offset: u64, len: u64) -> Result<Transfer> {
    RecvToFile::new(file, offset, len).receive(src)
}

/// A [`recv_to_file`] with its options: a forced strategy, buffer and pipe sizes.
#[derive(Clone, Copy, Debug)]
pub struct RecvToFile<'a> {
    file: &'a File,
    offset: u64,
    len: u64,
    forced: Option<Strategy>,
    buffer: usize,
    pipe: usize,
}

impl<'a> RecvToFile<'a> {
    /// Up to `len` bytes into `file` at `offset`, by the first strategy the kernel takes.
    pub fn new(file: &'a File, offset: u64, len: u64) -> RecvToFile<'a> {
        RecvToFile {
            file,
            offset,
            len,
            forced: None,
            buffer: COPY_BUFFER,
            pipe: PIPE_SIZE,
        }
    }

    /// Uses `strategy` and no other: [`Strategy::Splice`] or [`Strategy::Copy`]
    /// ([`Strategy::SendFile`] is for files as the source: [`Error::InvalidArgument`]).
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.forced = Some(strategy);
        self
    }

    /// The size of the one buffer of [`Strategy::Copy`] (default 128 KiB; at least 1).
    pub fn buffer_size(mut self, bytes: usize) -> Self {
        self.buffer = bytes.max(1);
        self
    }

    /// The pipe that [`Strategy::Splice`] uses when `src` is not a pipe asks for this size
    /// (default 1 MiB, or the most `/proc/sys/fs/pipe-max-size` allows).
    pub fn pipe_size(mut self, bytes: usize) -> Self {
        self.pipe = bytes;
        self
    }

    /// Receives from `src`. See [`recv_to_file`].
    pub fn receive(&self, src: impl AsFd) -> Result<Transfer> {
        let src = src.as_fd();
        let file = self.file.as_fd();
        let end = self
            .offset
            .checked_add(self.len)
            .filter(|&end| end <= i64::MAX as u64)
            .unwrap_or(i64::MAX as u64);
        if self.offset > i64::MAX as u64 {
            return Err(Error::InvalidArgument(format!(
                "offset {} overflows a file offset",
                self.offset
            )));
        }
        let fl = sys::status_flags(file)?;
        if fl & libc::O_APPEND != 0 {
            return Err(Error::InvalidArgument(
                "the file is opened with O_APPEND: writes cannot go to an offset".into(),
            ));
        }
        let mut strategy = match self.forced {
            Some(Strategy::SendFile) => {
                return Err(Error::InvalidArgument(
                    "sendfile reads from a file; receive by Splice or Copy".into(),
                ));
            }
            Some(s) => s,
            None => Strategy::Splice,
        };
        let mut pos = self.offset;
        loop {
            let result = match strategy {
                Strategy::Copy => recv_by_copy(src, file, &mut pos, end, self.buffer),
                _ => recv_by_splice(src, file, &mut pos, end, self.pipe, self.buffer),
            };
            match result {
                Ok(()) => {
                    return Ok(Transfer {
                        strategy,
                        bytes: pos - self.offset,
                    });
                }
                Err(e) if self.forced.is_none() && strategy == Strategy::Splice && refused(&e) => {
                    strategy = Strategy::Copy;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Receives into `file` at `*pos` until `end` or the end of the stream; `Ok` either way.
fn recv_by_splice(
    src: BorrowedFd<'_>,
    file: BorrowedFd<'_>,
    pos: &mut u64,
    end: u64,
    pipe_size: usize,
    buffer: usize,
) -> io::Result<()> {
    const CALL: u64 = 1 << 30;
    if is_fifo(src)? {
        while *pos < end {
            let want = (end - *pos).min(CALL) as usize;
            let mut off = *pos as i64;
            match splice(src, None, file, Some(&mut off), want, libc::SPLICE_F_MOVE) {
                Ok(0) => return Ok(()),
                Ok(n) => *pos += n as u64,
                Err(e) if would_block(&e) => wait(src, libc::POLLIN)?,
                Err(e) => return Err(e),
            }
        }
        return Ok(());
    }
    let pipe = SplicePipe::with_capacity(pipe_size).map_err(io::Error::from)?;
    let cap = pipe.capacity().map_err(io::Error::from)? as u64;
    while *pos < end {
        let want = (end - *pos).min(cap) as usize;
        let mut left = match splice(src, None, pipe.writer(), None, want, libc::SPLICE_F_MOVE) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if would_block(&e) => {
                wait(src, libc::POLLIN)?;
                continue;
            }
            Err(e) => return Err(e),
        };
        while left > 0 {
            let mut off = *pos as i64;
            match splice(
                pipe.reader(),
                None,
                file,
                Some(&mut off),
                left,
                libc::SPLICE_F_MOVE,
            ) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    left -= n;
                    *pos += n as u64;
                }
                Err(e) if refused(&e) => {
                    // The bytes in our pipe have left the socket already: write them out by
                    // copy before the caller falls back to copying the rest.
                    let mut buf = vec![0u8; buffer.min(left)];
                    while left > 0 {
                        let want = left.min(buf.len());
                        // SAFETY: `buf` is valid for writes of `want` bytes during the call.
                        let n = retry_len(|| unsafe {
                            libc::read(pipe.reader().as_raw_fd(), buf.as_mut_ptr().cast(), want)
                        })?;
                        if n == 0 {
                            return Err(io::ErrorKind::UnexpectedEof.into());
                        }
                        pwrite_all(file, &buf[..n], *pos)?;
                        left -= n;
                        *pos += n as u64;
                    }
                    return Err(e);
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// Writes all of `buf` to `file` at `at`.
fn pwrite_all(file: BorrowedFd<'_>, mut buf: &[u8], mut at: u64) -> io::Result<()> {
    while !buf.is_empty() {
        let off = at as libc::off64_t;
        // SAFETY: `buf` is valid for reads of `buf.len()` bytes for the duration of the call.
        let n = retry_len(|| unsafe {
            libc::pwrite64(file.as_raw_fd(), buf.as_ptr().cast(), buf.len(), off)
        })?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        buf = &buf[n..];
        at += n as u64;
    }
    Ok(())
}

fn recv_by_copy(
    src: BorrowedFd<'_>,
    file: BorrowedFd<'_>,
    pos: &mut u64,
    end: u64,
    buffer: usize,
) -> io::Result<()> {
    let mut buf = vec![0u8; buffer.min((end - *pos).try_into().unwrap_or(usize::MAX))];
    while *pos < end {
        let want = (end - *pos).min(buf.len() as u64) as usize;
        // SAFETY: `buf` is valid for writes of `want` bytes for the duration of the call.
        match retry_len(|| unsafe { libc::read(src.as_raw_fd(), buf.as_mut_ptr().cast(), want) }) {
            Ok(0) => return Ok(()),
            Ok(n) => {
                pwrite_all(file, &buf[..n], *pos)?;
                *pos += n as u64;
            }
            Err(e) if would_block(&e) => wait(src, libc::POLLIN)?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Duplicates up to `len` bytes at the head of the pipe `src` into the pipe `dst` without
/// consuming them (`tee(2)`): a reader of `src` still reads them. No bytes are copied; both
/// pipes refer to the same pages.
///
/// Blocks until `src` holds something and `dst` has room (also on non-blocking ends, by
/// `poll(2)`). Returns the count duplicated, which may be less than `len` (what `src` held
/// or `dst` had room for); 0 means `src` is empty and has no writers left.
///
/// # Errors
///
/// [`Error::Io`]: `EINVAL` if either is not a pipe or both are the same pipe.
pub fn tee(src: impl AsFd, dst: impl AsFd, len: usize) -> Result<usize> {
    let (src, dst) = (src.as_fd(), dst.as_fd());
    if len == 0 {
        return Ok(0);
    }
    loop {
        // SAFETY: both descriptors are borrowed and open.
        match retry_len(|| unsafe { libc::tee(src.as_raw_fd(), dst.as_raw_fd(), len, 0) }) {
            Ok(n) => return Ok(n),
            Err(e) if would_block(&e) => {
                if unread(src)? == 0 {
                    wait(src, libc::POLLIN)?;
                } else {
                    wait(dst, libc::POLLOUT)?;
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
}

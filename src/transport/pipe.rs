//! [`Pipe`]: a link over two pipes, one each way, with length-prefixed frames.

use super::stream::{ByteIo, FrameReader, FrameWriter};
use super::sys;
use super::{Kind, Transport};
use crate::error::{Error, Result};
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Instant;

/// The pipe buffer asked for with `F_SETPIPE_SZ`; where the limit
/// (`/proc/sys/fs/pipe-max-size` for unprivileged processes) is lower, the largest power of
/// two it allows, and the kernel's default (64 KiB) at worst.
pub const PIPE_SIZE: usize = 1 << 20;

/// One endpoint of a link over two pipes: frames go out on one and come in on the other,
/// each as an 8-byte length and then its bytes (see the [module docs](super)).
///
/// Make a connected pair in one process with [`Pipe::pair`], hand one end's descriptors to a
/// child ([`Pipe::into_fds`], and in the child [`Pipe::from_fds`] or, with the numbers in the
/// [`Pipe::FDS_VAR`] environment variable, [`Pipe::inherited`] — which is what the `pipe:`
/// address means).
///
/// Both descriptors are made non-blocking (`O_NONBLOCK`, which an inherited descriptor shares
/// with every process that holds it). A write to a pipe whose reader is gone is `EPIPE`, never
/// a `SIGPIPE`: unless the process ignores `SIGPIPE` already (as Rust programs do), each write
/// blocks it for the calling thread and takes back a `SIGPIPE` it raised.
///
/// ```
/// use zipc::transport::{Pipe, Transport};
/// # fn main() -> zipc::Result<()> {
/// let (mut a, mut b) = Pipe::pair()?;
/// a.send(b"over a pipe")?;
/// let mut buf = Vec::new();
/// b.recv(&mut buf)?;
/// assert_eq!(buf, b"over a pipe");
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Pipe {
    fds: Option<(OwnedFd, OwnedFd)>,
    io: PipeIo,
    reader: FrameReader,
    writer: FrameWriter,
}

#[derive(Debug)]
struct PipeIo {
    /// Whether writes must keep `SIGPIPE` from the process (it was not ignored at creation).
    guard_sigpipe: bool,
}

impl ByteIo for PipeIo {
    fn read(&self, fd: BorrowedFd<'_>, dst: &mut [MaybeUninit<u8>]) -> io::Result<usize> {
        sys::read(fd, dst)
    }

    fn write(&self, fd: BorrowedFd<'_>, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        if self.guard_sigpipe {
            write_without_sigpipe(fd, bufs)
        } else {
            sys::writev(fd, bufs)
        }
    }
}

/// Whether the process ignores `SIGPIPE` now.
fn sigpipe_ignored() -> bool {
    let mut old = MaybeUninit::<libc::sigaction>::uninit();
    // SAFETY: a null new action only reads the current one into `old`, which lives for the
    // call.
    let r = unsafe { libc::sigaction(libc::SIGPIPE, std::ptr::null(), old.as_mut_ptr()) };
    // SAFETY: sigaction succeeded, so it wrote `old`.
    r == 0 && unsafe { old.assume_init() }.sa_sigaction == libc::SIG_IGN
}

/// `writev` with `SIGPIPE` blocked for this thread; a `SIGPIPE` the write raised is taken
/// back (one that was pending before is left alone), then the old mask is restored.
fn write_without_sigpipe(fd: BorrowedFd<'_>, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    let mut pipe_only = MaybeUninit::<libc::sigset_t>::uninit();
    let mut old = MaybeUninit::<libc::sigset_t>::uninit();
    let mut pending = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: the sigset functions initialise and read the sets we pass, which live for the
    // calls; pthread_sigmask changes only this thread's mask, restored below.
    let (was_blocked, was_pending) = unsafe {
        libc::sigemptyset(pipe_only.as_mut_ptr());
        libc::sigaddset(pipe_only.as_mut_ptr(), libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_BLOCK, pipe_only.as_ptr(), old.as_mut_ptr());
        libc::sigpending(pending.as_mut_ptr());
        (
            libc::sigismember(old.as_ptr(), libc::SIGPIPE) == 1,
            libc::sigismember(pending.as_ptr(), libc::SIGPIPE) == 1,
        )
    };
    let r = sys::writev(fd, bufs);
    if matches!(&r, Err(e) if e.raw_os_error() == Some(libc::EPIPE)) && !was_pending {
        let zero = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: takes the pending SIGPIPE this write raised, if any, without waiting; the
        // set and the timeout live for the call, and a null info pointer is allowed.
        unsafe { libc::sigtimedwait(pipe_only.as_ptr(), std::ptr::null_mut(), &zero) };
    }
    if !was_blocked {
        // SAFETY: restores the mask read above.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, old.as_ptr(), std::ptr::null_mut()) };
    }
    r
}

/// A new pipe, close-on-exec and non-blocking: (read end, write end).
fn new_pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2 writes two descriptors into the array we pass.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } < 0 {
        return Err(Error::Io(io::Error::last_os_error()));
    }
    // SAFETY: pipe2 succeeded: both descriptors are fresh and ours alone.
    let ends = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    grow(ends.1.as_fd());
    Ok(ends)
}

/// Asks for a [`PIPE_SIZE`] buffer, or the largest the limit allows; keeps what there is when
/// nothing more is allowed.
fn grow(fd: BorrowedFd<'_>) {
    #[cfg(target_os = "linux")]
    {
        let mut size = PIPE_SIZE;
        while size > 64 * 1024 {
            // SAFETY: F_SETPIPE_SZ on a borrowed, open descriptor takes an int argument.
            if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, size as libc::c_int) } >= 0
            {
                return;
            }
            size /= 2;
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = fd;
}

/// Whether `Pipe::inherited` was called already in this process.
static INHERITED_TAKEN: std::sync::Mutex<bool> = std::sync::Mutex::new(false);

impl Pipe {
    /// The environment variable that [`Pipe::inherited`] reads: `READ_FD,WRITE_FD` in decimal.
    pub const FDS_VAR: &'static str = "ZIPC_PIPE_FDS";

    /// A connected pair of ends in this process (two new pipes, close-on-exec).
    ///
    /// # Errors
    /// `Io` when pipes cannot be created.
    pub fn pair() -> Result<(Pipe, Pipe)> {
        let (a_read, b_write) = new_pipe()?;
        let (b_read, a_write) = new_pipe()?;
        Ok((Pipe::wrap(a_read, a_write), Pipe::wrap(b_read, b_write)))
    }

    fn wrap(read: OwnedFd, write: OwnedFd) -> Pipe {
        Pipe {
            fds: Some((read, write)),
            io: PipeIo {
                guard_sigpipe: !sigpipe_ignored(),
            },
            reader: FrameReader::new(),
            writer: FrameWriter::new(),
        }
    }

    /// An end over the read end of one pipe and the write end of another (handed over by a
    /// parent, say). Both are made non-blocking, and the write end's buffer is grown to
    /// [`PIPE_SIZE`] where allowed.
    ///
    /// # Errors
    /// `InvalidArgument` when either descriptor is not a pipe (or FIFO); `Io` when its flags
    /// cannot be set.
    pub fn from_fds(read: OwnedFd, write: OwnedFd) -> Result<Pipe> {
        for (fd, what) in [(&read, "read"), (&write, "write")] {
            if sys::file_type(fd.as_fd())? != libc::S_IFIFO {
                return Err(Error::InvalidArgument(format!(
                    "the {what} descriptor {} of a pipe transport is not a pipe",
                    fd.as_raw_fd()
                )));
            }
            sys::set_nonblocking(fd.as_fd(), true)?;
        }
        grow(write.as_fd());
        Ok(Pipe::wrap(read, write))
    }

    /// The end whose descriptors this process inherited, numbered in the environment variable
    /// [`Pipe::FDS_VAR`] as `READ_FD,WRITE_FD`: what the address `pipe:` connects to. It can
    /// be taken once per process.
    ///
    /// # Errors
    /// `NotFound` when the variable is not set; `InvalidArgument` when it is malformed, names
    /// descriptors that are not open pipes, or was taken already.
    pub fn inherited() -> Result<Pipe> {
        let value = std::env::var(Self::FDS_VAR)
            .map_err(|_| Error::NotFound(format!("the environment variable {}", Self::FDS_VAR)))?;
        let bad = || {
            Error::InvalidArgument(format!(
                "{}={value:?}: expected two descriptor numbers, READ_FD,WRITE_FD",
                Self::FDS_VAR
            ))
        };
        let (r, w) = value.split_once(',').ok_or_else(bad)?;
        let r: RawFd = r.trim().parse().map_err(|_| bad())?;
        let w: RawFd = w.trim().parse().map_err(|_| bad())?;
        if r < 0 || w < 0 || r == w {
            return Err(bad());
        }
        let mut taken = INHERITED_TAKEN.lock().unwrap_or_else(|e| e.into_inner());
        if *taken {
            return Err(Error::InvalidArgument(
                "the inherited pipes were taken already".into(),
            ));
        }
        for fd in [r, w] {
            // SAFETY: F_GETFD on any number is harmless: it only says whether it is open.
            if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
                return Err(Error::InvalidArgument(format!(
                    "{}: descriptor {fd} is not open",
                    Self::FDS_VAR
                )));
            }
        }
        *taken = true;
        // SAFETY: the parent handed these open descriptors to this process for the pipe
        // transport (that is what the variable says), and the flag above makes this the only
        // owner in the process.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(r), OwnedFd::from_raw_fd(w)) };
        for fd in [&read, &write] {
            // SAFETY: F_SETFD on a descriptor we own: keep it out of our own children.
            unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
        }
        Pipe::from_fds(read, write)
    }

    /// The two descriptors, (read end, write end), to hand to another process; a frame whose
    /// send timed out and is still pending is dropped.
    ///
    /// # Errors
    /// `Disconnected` when this end was closed.
    pub fn into_fds(mut self) -> Result<(OwnedFd, OwnedFd)> {
        self.fds.take().ok_or(Error::Disconnected)
    }

    fn fds(&self) -> Result<(BorrowedFd<'_>, BorrowedFd<'_>)> {
        match &self.fds {
            Some((r, w)) => Ok((r.as_fd(), w.as_fd())),
            None => Err(Error::Disconnected),
        }
    }
}

impl Transport for Pipe {
    fn kind(&self) -> Kind {
        Kind::Pipe
    }

    fn send_deadline(&mut self, frame: &[u8], deadline: Option<Instant>) -> Result<()> {
        let Some((_, w)) = &self.fds else {
            return Err(Error::Disconnected);
        };
        self.writer.send(&self.io, w.as_fd(), frame, deadline)
    }

    fn recv_deadline(&mut self, buf: &mut Vec<u8>, deadline: Option<Instant>) -> Result<()> {
        let Some((r, _)) = &self.fds else {
            buf.clear();
            return Err(Error::Disconnected);
        };
        self.reader.recv(&self.io, r.as_fd(), buf, deadline)
    }

    fn close(&mut self) -> Result<()> {
        let r = match &self.fds {
            Some((_, w)) if self.writer.has_pending() => {
                self.writer.flush(&self.io, w.as_fd(), None)
            }
            _ => Ok(()),
        };
        self.fds = None;
        r
    }

    fn poll_fd(&self) -> Option<BorrowedFd<'_>> {
        self.fds().ok().map(|(r, _)| r)
    }
}

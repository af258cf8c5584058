//! [`Pipe`]: a link over two pipes, one each way, with length-prefixed frames.

use super::inherit;
use super::stream::{ByteIo, FrameReader, FrameWriter};
use super::until;
use super::{Kind, Transport};
use crate::Deadline;
use crate::error::{Error, Result};
use crate::sys::fd::is_fifo;
use crate::sys::io as sys;
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

/// The pipe buffer asked for with `F_SETPIPE_SZ`; where the limit
/// (`/proc/sys/fs/pipe-max-size` for unprivileged processes) is lower, the largest power of
/// two it allows, and the kernel's default (64 KiB) at worst.
pub const PIPE_SIZE: usize = 1 << 20;

/// One endpoint of a link over two pipes: frames go out on one and come in on the other,
/// each as an 8-byte length and then its bytes (see the [module docs](super)).
///
/// Make a connected pair in one process with [`Pipe::pair`], hand one end's descriptors to a
/// child ([`Pipe::into_fds`], and in the child [`Pipe::from_fds`] or, with the descriptors
/// named in the [`Pipe::FDS_VAR`] environment variable as [`Pipe::fds_var_value`] writes
/// them, [`Pipe::inherited`] — which is what the `pipe:` address means).
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
    let ends = sys::pipe(true)?;
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
            if sys::set_pipe_size(fd, size).is_ok() {
                return;
            }
            size /= 2;
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = fd;
}

/// Whether `Pipe::inherited` took its descriptors already in this process.
static INHERITED_TAKEN: std::sync::Mutex<bool> = std::sync::Mutex::new(false);

impl Pipe {
    /// The environment variable that [`Pipe::inherited`] reads: `READ_FD@DEV.INO,WRITE_FD@DEV.INO`,
    /// each descriptor's number and the identity of its pipe. Write it with
    /// [`Pipe::fds_var_value`].
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
            if !is_fifo(fd.as_fd())? {
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

    /// The end whose descriptors this process inherited, named in the environment variable
    /// [`Pipe::FDS_VAR`] (as [`Pipe::fds_var_value`] writes it): what the address `pipe:`
    /// connects to. It can be taken once per process.
    ///
    /// A number in the environment is not enough to own a descriptor: it may name one that
    /// something else in this process owns. So before anything is taken, each descriptor
    /// must be shown to be the one the parent handed down: open, not close-on-exec (this
    /// process did not make it: what it opens through Rust's standard library or zipc is
    /// close-on-exec), with the device and inode its parent recorded beside the number, a
    /// pipe, and the read end readable and the write end writable. Only then are they
    /// owned (and made close-on-exec, and the variable removed when this process has a
    /// single thread). When any check fails, nothing was closed or changed: the descriptors
    /// named stay as they were, to whoever owns them.
    ///
    /// # Errors
    /// `NotFound` when the variable is not set; `InvalidArgument`, naming the variable and
    /// the descriptor, when it is malformed, names a descriptor that is not open, not the
    /// one its parent recorded, close-on-exec or not a pipe end of the right way, or when the
    /// inherited pipes were taken already.
    pub fn inherited() -> Result<Pipe> {
        let var = Self::FDS_VAR;
        let mut taken = INHERITED_TAKEN.lock().unwrap_or_else(|e| e.into_inner());
        // Before the variable: a claim removes it where that is sound (one thread).
        if *taken {
            return Err(inherit::taken_already(var));
        }
        let value = std::env::var(var).map_err(|_| {
            Error::NotFound(format!(
                "the environment variable {var} (the inherited pipes that pipe: connects to)"
            ))
        })?;
        let bad = || {
            Error::InvalidArgument(format!(
                "{var}={value:?} is not two descriptors READ_FD@DEV.INO,WRITE_FD@DEV.INO as \
                 Pipe::fds_var_value writes them"
            ))
        };
        let (r, w) = value.split_once(',').ok_or_else(bad)?;
        let entries = [
            inherit::parse_entry(r).ok_or_else(bad)?,
            inherit::parse_entry(w).ok_or_else(bad)?,
        ];
        let source = inherit::Source {
            var,
            parent: "a parent that handed it pipes (see Pipe::fds_var_value)",
        };
        let fits = |i: usize, fd: BorrowedFd<'_>| {
            let (end, mode) = [("read", libc::O_RDONLY), ("write", libc::O_WRONLY)][i];
            let pipe = is_fifo(fd)?;
            let flags = sys::status_flags(fd).ok();
            if !pipe || flags.is_none_or(|f| f & libc::O_ACCMODE != mode) {
                return Err(Error::InvalidArgument(format!(
                    "fd {} named in {var} is not the {end} end of a pipe; it was left alone",
                    fd.as_raw_fd()
                )));
            }
            Ok(())
        };
        let mut owned = inherit::claim(&source, &mut taken, &entries, fits)?.into_iter();
        let (Some(read), Some(write)) = (owned.next(), owned.next()) else {
            return Err(bad());
        };
        Pipe::from_fds(read, write)
    }

    /// The value of [`Pipe::FDS_VAR`] for a child that inherits `read` and `write` (the
    /// ends [`Pipe::into_fds`] gives) at the same numbers: `READ_FD@DEV.INO,WRITE_FD@DEV.INO`,
    /// each number with the identity of its pipe, by which the child's [`Pipe::inherited`]
    /// knows them for the ones handed down. Clear their close-on-exec flag in the child
    /// alone (as `pre_exec` can), or the child does not get them.
    ///
    /// ```
    /// use std::os::fd::AsFd;
    /// use zipc::transport::Pipe;
    /// # fn main() -> zipc::Result<()> {
    /// let (_ours, theirs) = Pipe::pair()?;
    /// let (read, write) = theirs.into_fds()?;
    /// let value = Pipe::fds_var_value(read.as_fd(), write.as_fd())?;
    /// let mut child = std::process::Command::new("my-peer");
    /// child.env(Pipe::FDS_VAR, &value);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// `InvalidArgument` when either is not a pipe end of the right way; `Io` when it
    /// cannot be examined.
    pub fn fds_var_value(read: BorrowedFd<'_>, write: BorrowedFd<'_>) -> Result<String> {
        for (fd, end, mode) in [
            (read, "read", libc::O_RDONLY),
            (write, "write", libc::O_WRONLY),
        ] {
            let flags = sys::status_flags(fd).ok();
            if !is_fifo(fd)? || flags.is_none_or(|f| f & libc::O_ACCMODE != mode) {
                return Err(Error::InvalidArgument(format!(
                    "descriptor {} is not the {end} end of a pipe",
                    fd.as_raw_fd()
                )));
            }
        }
        Ok(format!(
            "{},{}",
            inherit::entry(read)?,
            inherit::entry(write)?
        ))
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

    fn send_deadline(&mut self, frame: &[u8], deadline: Deadline) -> Result<()> {
        let Some((_, w)) = &self.fds else {
            return Err(Error::Disconnected);
        };
        until(deadline, |at| {
            self.writer.send(&self.io, w.as_fd(), frame, at)
        })
    }

    fn recv_deadline(&mut self, buf: &mut Vec<u8>, deadline: Deadline) -> Result<()> {
        let Some((r, _)) = &self.fds else {
            buf.clear();
            return Err(Error::Disconnected);
        };
        until(deadline, |at| {
            self.reader.recv(&self.io, r.as_fd(), buf, at)
        })
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

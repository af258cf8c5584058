//! The syscall plumbing every fd-based path shares: turning a `-1` return into the errno,
//! retrying `EINTR`, telling `EAGAIN` apart, waiting for readiness (through
//! [`poll_until`]), the errno a dead or departed peer gives, and reads that append to a `Vec`
//! without zeroing it.

use crate::error::{Error, Result};
use crate::sys::poll::poll_until;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Instant;

/// `ret`, or the errno of a syscall that returned -1.
pub(crate) fn cvt<T: PartialEq + From<i8>>(ret: T) -> io::Result<T> {
    if ret == T::from(-1) {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// `ret` as a byte count, or the errno of a syscall that returned -1.
pub(crate) fn len(ret: isize) -> io::Result<usize> {
    usize::try_from(ret).map_err(|_| io::Error::last_os_error())
}

/// Owns a descriptor that a syscall just returned (`-1`: the errno).
pub(crate) fn owned(raw: libc::c_int) -> io::Result<OwnedFd> {
    let raw = cvt(raw)?;
    // SAFETY: `raw` is a fresh descriptor that the kernel just handed to us and nothing else
    // owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Runs `call` again while it fails with `EINTR`.
pub(crate) fn retry<T>(mut call: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match call() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Runs a syscall that returns a count or -1 until it does not fail with `EINTR`.
pub(crate) fn retry_len(mut call: impl FnMut() -> isize) -> io::Result<usize> {
    retry(|| len(call()))
}

/// Whether `e` says "try again later" (`EAGAIN`/`EWOULDBLOCK`).
pub(crate) fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

/// Waits until `fd` is ready for `events` (`POLLIN`, `POLLOUT`), or has hung up or failed (the
/// next call on it says which), or `deadline` passes (`Timeout`).
pub(crate) fn wait_ready(
    fd: BorrowedFd<'_>,
    events: libc::c_short,
    deadline: Option<Instant>,
) -> Result<()> {
    match poll_until(fd, events, deadline)? {
        Some(_) => Ok(()),
        None => Err(Error::Timeout),
    }
}

/// [`wait_ready`] without a deadline, for the paths that report plain I/O errors.
pub(crate) fn wait(fd: BorrowedFd<'_>, events: libc::c_short) -> io::Result<()> {
    poll_until(fd, events, None).map(drop)
}

/// The error for a failed send or receive: `EPIPE` (the peer closed) is `Disconnected`,
/// `ECONNRESET` (the peer's end went away with data unread, or the connection was reset) is
/// `PeerGone`.
pub(crate) fn peer_error(e: io::Error) -> Error {
    match e.raw_os_error() {
        Some(libc::EPIPE) => Error::Disconnected,
        Some(libc::ECONNRESET) => Error::PeerGone,
        _ => Error::Io(e),
    }
}

/// Appends up to `max` bytes to `buf` with `read`, which fills a prefix of the slice it is
/// given and returns how many bytes it wrote.
pub(crate) fn read_appending(
    buf: &mut Vec<u8>,
    max: usize,
    read: impl FnOnce(&mut [MaybeUninit<u8>]) -> io::Result<usize>,
) -> io::Result<usize> {
    buf.reserve(max);
    let spare = &mut buf.spare_capacity_mut()[..max];
    let n = read(spare)?;
    if n > max {
        return Err(io::Error::other(
            "a read reported more bytes than it was given",
        ));
    }
    // SAFETY: `read` initialised the first `n <= max` bytes of the spare capacity, which
    // `reserve` made at least `max` bytes long.
    unsafe { buf.set_len(buf.len() + n) };
    Ok(n)
}

/// `read(2)` into uninitialised memory (nix's `read` wants initialised bytes), without
/// blocking if `fd` is non-blocking.
pub(crate) fn read(fd: BorrowedFd<'_>, dst: &mut [MaybeUninit<u8>]) -> io::Result<usize> {
    retry_len(|| {
        // SAFETY: the kernel writes at most `dst.len()` bytes into `dst`, which we borrow
        // mutably for the call.
        unsafe { libc::read(fd.as_raw_fd(), dst.as_mut_ptr().cast(), dst.len()) }
    })
}

/// `recv(2)` with `MSG_DONTWAIT` into uninitialised memory.
pub(crate) fn recv(fd: BorrowedFd<'_>, dst: &mut [MaybeUninit<u8>]) -> io::Result<usize> {
    retry_len(|| {
        // SAFETY: as for `read`.
        unsafe {
            libc::recv(
                fd.as_raw_fd(),
                dst.as_mut_ptr().cast(),
                dst.len(),
                libc::MSG_DONTWAIT,
            )
        }
    })
}

/// `writev(2)` of `bufs`.
pub(crate) fn writev(fd: BorrowedFd<'_>, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
    retry(|| nix::sys::uio::writev(fd, bufs).map_err(io::Error::from))
}

/// `sendmsg(2)` of `bufs` on a connected socket with `MSG_DONTWAIT | MSG_NOSIGNAL`: a peer
/// that went away is `EPIPE`, never a `SIGPIPE`.
pub(crate) fn send_nosignal(fd: BorrowedFd<'_>, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
    use nix::sys::socket::{MsgFlags, UnixAddr, sendmsg};
    let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL;
    retry(|| sendmsg::<UnixAddr>(fd.as_raw_fd(), bufs, &[], flags, None).map_err(io::Error::from))
}

/// Sets or clears `O_NONBLOCK` on the open file description of `fd`.
pub(crate) fn set_nonblocking(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    let flags = OFlag::from_bits_retain(fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL)?);
    let new = if on {
        flags | OFlag::O_NONBLOCK
    } else {
        flags - OFlag::O_NONBLOCK
    };
    if new != flags {
        fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(new))?;
    }
    Ok(())
}

/// The status flags (`O_ACCMODE`, `O_APPEND`, `O_NONBLOCK`, ...) of the open file description
/// of `fd` (`F_GETFL`).
pub(crate) fn status_flags(fd: BorrowedFd<'_>) -> io::Result<libc::c_int> {
    Ok(nix::fcntl::fcntl(
        fd.as_raw_fd(),
        nix::fcntl::FcntlArg::F_GETFL,
    )?)
}

/// A new close-on-exec pipe, non-blocking at both ends with `nonblocking`: (read end, write
/// end).
pub(crate) fn pipe(nonblocking: bool) -> io::Result<(OwnedFd, OwnedFd)> {
    use nix::fcntl::OFlag;
    let mut flags = OFlag::O_CLOEXEC;
    if nonblocking {
        flags |= OFlag::O_NONBLOCK;
    }
    Ok(nix::unistd::pipe2(flags)?)
}

/// Asks for `bytes` of pipe capacity (`F_SETPIPE_SZ`) and returns the capacity the pipe now
/// has; `EPERM` past the limit of unprivileged processes.
pub(crate) fn set_pipe_size(fd: BorrowedFd<'_>, bytes: usize) -> io::Result<usize> {
    let n = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    let set = || nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_SETPIPE_SZ(n));
    let got = retry(|| Ok(set()?))?;
    Ok(usize::try_from(got).unwrap_or(0))
}

/// The capacity of a pipe in bytes (`F_GETPIPE_SZ`).
pub(crate) fn pipe_size(fd: BorrowedFd<'_>) -> io::Result<usize> {
    let arg = nix::fcntl::FcntlArg::F_GETPIPE_SZ;
    let got = nix::fcntl::fcntl(fd.as_raw_fd(), arg)?;
    Ok(usize::try_from(got).unwrap_or(0))
}

/// The bytes waiting in a pipe or socket, through either end of a pipe (`FIONREAD`).
pub(crate) fn unread(fd: BorrowedFd<'_>) -> io::Result<usize> {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int to the pointer, which is valid for the call (nix has no
    // wrapper for this ioctl).
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut n) })?;
    Ok(usize::try_from(n).unwrap_or(0))
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::time::Duration;

    #[test]
    fn reads_append_and_a_closed_pipe_is_an_error_or_eof() {
        let (r, w) = pipe(false).unwrap();
        set_nonblocking(r.as_fd(), true).unwrap();
        assert_ne!(status_flags(r.as_fd()).unwrap() & libc::O_NONBLOCK, 0);
        let mut buf = b"ab".to_vec();
        let e = read_appending(&mut buf, 8, |d| read(r.as_fd(), d)).unwrap_err();
        assert!(would_block(&e), "{e}");
        let soon = Some(Instant::now() + Duration::from_millis(1));
        assert!(matches!(
            wait_ready(r.as_fd(), libc::POLLIN, soon),
            Err(Error::Timeout)
        ));
        assert_eq!(writev(w.as_fd(), &[io::IoSlice::new(b"cd")]).unwrap(), 2);
        wait(r.as_fd(), libc::POLLIN).unwrap();
        assert_eq!(
            read_appending(&mut buf, 8, |d| read(r.as_fd(), d)).unwrap(),
            2
        );
        assert_eq!(buf, b"abcd");
        assert_eq!(unread(r.as_fd()).unwrap(), 0);
        assert!(set_pipe_size(w.as_fd(), 128 * 1024).unwrap() >= 128 * 1024);
        assert_eq!(pipe_size(w.as_fd()).unwrap(), pipe_size(r.as_fd()).unwrap());
        set_nonblocking(r.as_fd(), false).unwrap();
        assert_eq!(status_flags(r.as_fd()).unwrap() & libc::O_NONBLOCK, 0);
        drop(r);
        let e = writev(w.as_fd(), &[io::IoSlice::new(b"x")]).unwrap_err();
        assert!(matches!(peer_error(e), Error::Disconnected));
    }

    #[test]
    fn cvt_passes_counts_and_turns_minus_one_into_the_errno() {
        assert_eq!(cvt(3i32).unwrap(), 3);
        assert_eq!(len(7).unwrap(), 7);
        // SAFETY: close of a number that is not open only sets errno.
        let e = cvt(unsafe { libc::close(-5) }).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EBADF));
        assert!(owned(-1).is_err());
    }
}

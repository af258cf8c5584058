//! The syscalls the fd-based transports share: waiting for readiness until a deadline, the
//! errno a dead or departed peer gives, and reads that append to a `Vec` without zeroing it.

use crate::error::{Error, Result};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Instant;

/// Waits until `fd` is ready for `events` (`POLLIN`, `POLLOUT`), or has hung up or failed (the
/// next call on it says which), or `deadline` passes (`Timeout`).
pub(crate) fn wait_ready(
    fd: BorrowedFd<'_>,
    events: libc::c_short,
    deadline: Option<Instant>,
) -> Result<()> {
    match crate::sys::poll::poll_until(fd, events, deadline)? {
        Some(_) => Ok(()),
        None => Err(Error::Timeout),
    }
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

/// Whether `e` says "try again later" (`EAGAIN`/`EWOULDBLOCK`).
pub(crate) fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

/// `ret` as a byte count, or the errno as an error.
pub(crate) fn cvt(ret: isize) -> io::Result<usize> {
    usize::try_from(ret).map_err(|_| io::Error::last_os_error())
}

/// Runs `call` again while it fails with `EINTR`.
pub(crate) fn retry(mut call: impl FnMut() -> io::Result<usize>) -> io::Result<usize> {
    loop {
        match call() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
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

/// `read(2)` into uninitialised memory, without blocking if `fd` is non-blocking.
pub(crate) fn read(fd: BorrowedFd<'_>, dst: &mut [MaybeUninit<u8>]) -> io::Result<usize> {
    retry(|| {
        // SAFETY: the kernel writes at most `dst.len()` bytes into `dst`, which we borrow
        // mutably for the call.
        cvt(unsafe { libc::read(fd.as_raw_fd(), dst.as_mut_ptr().cast(), dst.len()) })
    })
}

/// `recv(2)` with `MSG_DONTWAIT` into uninitialised memory.
pub(crate) fn recv(fd: BorrowedFd<'_>, dst: &mut [MaybeUninit<u8>]) -> io::Result<usize> {
    retry(|| {
        // SAFETY: as for `read`.
        cvt(unsafe {
            libc::recv(
                fd.as_raw_fd(),
                dst.as_mut_ptr().cast(),
                dst.len(),
                libc::MSG_DONTWAIT,
            )
        })
    })
}

/// `writev(2)` of `bufs`.
pub(crate) fn writev(fd: BorrowedFd<'_>, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
    let count = bufs.len().min(libc::c_int::MAX as usize) as libc::c_int;
    retry(|| {
        // SAFETY: `IoSlice` is ABI-compatible with `iovec`, and every slice is borrowed for
        // the call; the kernel only reads them.
        cvt(unsafe { libc::writev(fd.as_raw_fd(), bufs.as_ptr().cast(), count) })
    })
}

/// `sendmsg(2)` of `bufs` on a connected socket with `MSG_DONTWAIT | MSG_NOSIGNAL`: a peer
/// that went away is `EPIPE`, never a `SIGPIPE`.
pub(crate) fn send_nosignal(fd: BorrowedFd<'_>, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
    // SAFETY: `msghdr` is plain old data; all-zero (no address, no control) is valid.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = bufs.as_ptr().cast_mut().cast();
    msg.msg_iovlen = bufs.len() as _;
    retry(|| {
        // SAFETY: `msg` points at `bufs` (IoSlice is ABI-compatible with iovec), borrowed for
        // the call; the kernel only reads them.
        cvt(unsafe {
            libc::sendmsg(
                fd.as_raw_fd(),
                &msg,
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        })
    })
}

/// Owns a descriptor that a syscall just returned (`-1`: the errno).
pub(crate) fn owned(raw: libc::c_int) -> io::Result<OwnedFd> {
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh descriptor that the kernel just handed to us and nothing else
    // owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Sets or clears `O_NONBLOCK` on the open file description of `fd`.
pub(crate) fn set_nonblocking(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    // SAFETY: F_GETFL on a borrowed, open descriptor takes no argument.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    let new = if on {
        flags | libc::O_NONBLOCK
    } else {
        flags & !libc::O_NONBLOCK
    };
    // SAFETY: F_SETFL on a borrowed, open descriptor takes an int argument.
    if new != flags && unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, new) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The file type bits (`S_IFMT`) of `fd`.
pub(crate) fn file_type(fd: BorrowedFd<'_>) -> io::Result<libc::mode_t> {
    let mut st = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat writes a whole `stat` into the buffer we pass, which lives for the call.
    if unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fstat succeeded, so it initialised `st`.
    Ok(unsafe { st.assume_init() }.st_mode & libc::S_IFMT)
}

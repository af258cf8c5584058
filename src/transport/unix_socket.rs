//! [`UnixSocket`]: a link over an `AF_UNIX` `SOCK_SEQPACKET` socket, with file descriptors
//! passed alongside frames (`SCM_RIGHTS`).

use super::chunk::{self, Assembly, HEADER, PendingTx};
use super::stream::End;
use super::until;
use super::{Kind, MAX_FRAME, Transport, deadline_after};
use crate::Deadline;
use crate::error::{Error, Result};
use crate::sys::io::{self as sys, peer_error, read_appending, wait_ready, would_block};
use nix::errno::Errno;
use nix::sys::socket::{
    self as sock, AddressFamily, Backlog, ControlMessage, MsgFlags, SockFlag, SockType, UnixAddr,
    getsockopt, sockopt,
};
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The most descriptors one frame carries: the kernel's `SCM_MAX_FD`.
pub const MAX_FDS: usize = 253;

/// The most frame bytes one datagram carries; a larger frame is sent in chunks. The socket's
/// send buffer can lower it (a datagram must fit in it, with room for a second one).
const MAX_CHUNK: usize = 128 * 1024;
/// The least chunk tried when the kernel refuses a datagram as too large.
const MIN_CHUNK: usize = 4096;

/// Bytes of control buffer for [`MAX_FDS`] descriptors, 8-aligned.
const CMSG_WORDS: usize = {
    // SAFETY: CMSG_SPACE is arithmetic on its argument; it touches no memory.
    let bytes = unsafe { libc::CMSG_SPACE((MAX_FDS * size_of::<RawFd>()) as libc::c_uint) };
    (bytes as usize).div_ceil(8)
};

/// One endpoint of a link over a `SOCK_SEQPACKET` Unix socket.
///
/// Each frame is one datagram with an 8-byte header, or, when it is larger than one datagram
/// may be (about 100 KiB with the default send buffer: the socket's `SO_SNDBUF`, capped by
/// `net.core.wmem_max`, bounds a datagram), a run of datagrams that the receiver puts together
/// again (see the [module docs](super)). Up to [`MAX_FDS`] descriptors travel with a frame
/// ([`send_with_fds`](Self::send_with_fds), [`recv_with_fds`](Self::recv_with_fds)); they
/// arrive close-on-exec. A plain [`recv`](Transport::recv) closes descriptors sent with the
/// frame.
///
/// ```
/// use zipc::transport::{Transport, UnixSocket};
/// use std::os::fd::AsFd;
/// # fn main() -> zipc::Result<()> {
/// let (mut a, mut b) = UnixSocket::pair()?;
/// let file = std::fs::File::open("/dev/null")?;
/// a.send_with_fds(b"a file for you", &[file.as_fd()])?;
/// let mut buf = Vec::new();
/// let fds = b.recv_with_fds(&mut buf)?;
/// assert_eq!((buf.as_slice(), fds.len()), (&b"a file for you"[..], 1));
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct UnixSocket {
    fd: Option<OwnedFd>,
    /// The most frame bytes one datagram carries now.
    chunk: usize,
    /// The rest of a frame whose send timed out after its first datagram.
    pending: Option<PendingTx>,
    /// The frame being received, between receives that timed out in its middle.
    assembly: Assembly,
    partial: Vec<u8>,
    partial_fds: Vec<OwnedFd>,
    /// A datagram of the frame being received lost descriptors (`MSG_CTRUNC`).
    ctrunc: bool,
    end: Option<End>,
}

fn socket(nonblocking: bool) -> Result<OwnedFd> {
    let mut flags = SockFlag::SOCK_CLOEXEC;
    if nonblocking {
        flags |= SockFlag::SOCK_NONBLOCK;
    }
    Ok(
        sock::socket(AddressFamily::Unix, SockType::SeqPacket, flags, None)
            .map_err(io::Error::from)?,
    )
}

fn unix_addr(path: &Path) -> Result<UnixAddr> {
    UnixAddr::new(path).map_err(|e| {
        Error::InvalidArgument(match e {
            Errno::ENAMETOOLONG => format!(
                "the Unix socket path {} is {} bytes, longer than a socket address holds (107)",
                path.display(),
                path.as_os_str().len()
            ),
            e => format!(
                "the Unix socket path {} cannot be a socket address: {}",
                path.display(),
                e.desc()
            ),
        })
    })
}

/// `Io` for `e`, of its kind, saying what could not be done at `path`.
fn io_at(e: impl Into<io::Error>, what: &str, path: &Path) -> Error {
    let e = e.into();
    Error::Io(io::Error::new(
        e.kind(),
        format!("cannot {what} {}: {e}", path.display()),
    ))
}

impl UnixSocket {
    /// A connected pair of ends in this process (`socketpair`, close-on-exec).
    ///
    /// # Errors
    /// `Io` when the sockets cannot be created.
    pub fn pair() -> Result<(UnixSocket, UnixSocket)> {
        let (a, b) = sock::socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(io::Error::from)?;
        Ok((UnixSocket::wrap(a), UnixSocket::wrap(b)))
    }

    /// An end over a connected `SOCK_SEQPACKET` socket (one handed over by a parent, say).
    ///
    /// # Errors
    /// `InvalidArgument` when `fd` is not a `SOCK_SEQPACKET` socket.
    pub fn from_fd(fd: OwnedFd) -> Result<UnixSocket> {
        match getsockopt(&fd, sockopt::SockType) {
            Ok(SockType::SeqPacket) => Ok(UnixSocket::wrap(fd)),
            _ => Err(Error::InvalidArgument(format!(
                "descriptor {} is not a SOCK_SEQPACKET socket",
                fd.as_raw_fd()
            ))),
        }
    }

    fn wrap(fd: OwnedFd) -> UnixSocket {
        // A datagram must fit in the send buffer (less the kernel's 32 bytes); leave room for
        // a second one so that sending streams.
        let sndbuf = getsockopt(&fd, sockopt::SndBuf).unwrap_or(MAX_CHUNK);
        let chunk = (sndbuf / 2).saturating_sub(HEADER + 32) / MIN_CHUNK * MIN_CHUNK;
        UnixSocket {
            fd: Some(fd),
            chunk: chunk.clamp(MIN_CHUNK, MAX_CHUNK),
            pending: None,
            assembly: Assembly::default(),
            partial: Vec::new(),
            partial_fds: Vec::new(),
            ctrunc: false,
            end: None,
        }
    }

    /// Connects to the listener bound at `path`.
    ///
    /// # Errors
    /// `NotFound` when nothing listens there (no such file, or a socket whose owner is gone);
    /// `InvalidArgument` for a path too long for a socket address; `Io` otherwise.
    pub fn connect(path: impl AsRef<Path>) -> Result<UnixSocket> {
        let path = path.as_ref();
        let addr = unix_addr(path)?;
        let fd = socket(false)?;
        loop {
            match sock::connect(fd.as_raw_fd(), &addr) {
                Ok(()) => return Ok(UnixSocket::wrap(fd)),
                Err(Errno::EINTR) => continue,
                Err(Errno::ENOENT | Errno::ECONNREFUSED) => {
                    return Err(Error::NotFound(format!(
                        "a Unix socket listening at {}",
                        path.display()
                    )));
                }
                Err(e) => return Err(io_at(e, "connect to the Unix socket at", path)),
            }
        }
    }

    /// Binds and listens at `path`. A socket file left there by an owner that is gone (a
    /// `connect` to it is refused) is removed first; the file is removed again when the
    /// listener drops.
    ///
    /// Finding out whether the owner lives takes a `connect`: a live owner sees one
    /// connection that closes at once (its receive gives `Disconnected`).
    ///
    /// # Errors
    /// `Exists` when a live socket is bound at `path`; `InvalidArgument` when `path` is
    /// something other than a socket (it is never removed) or too long; `Io` otherwise.
    pub fn listen(path: impl AsRef<Path>) -> Result<UnixListener> {
        let path = path.as_ref();
        let addr = unix_addr(path)?;
        let fd = socket(true)?;
        let mut attempts = 0;
        loop {
            match sock::bind(fd.as_raw_fd(), &addr) {
                Ok(()) => break,
                Err(Errno::EADDRINUSE) if attempts < 3 => {
                    attempts += 1;
                    if !owner_is_gone(path, &addr)? {
                        return Err(Error::Exists(format!(
                            "a live Unix socket at {}",
                            path.display()
                        )));
                    }
                    match std::fs::remove_file(path) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => {
                            return Err(io_at(e, "remove the stale Unix socket file", path));
                        }
                    }
                }
                Err(Errno::EADDRINUSE) => {
                    return Err(Error::Exists(format!(
                        "a Unix socket at {} (bound again each time the stale one was removed)",
                        path.display()
                    )));
                }
                Err(e) => return Err(io_at(e, "bind a Unix socket at", path)),
            }
        }
        let backlog = Backlog::new(128).map_err(io::Error::from)?;
        sock::listen(&fd, backlog).map_err(|e| io_at(e, "listen on the Unix socket at", path))?;
        let meta = std::fs::symlink_metadata(path)
            .map_err(|e| io_at(e, "examine the Unix socket file", path))?;
        Ok(UnixListener {
            fd,
            path: path.to_path_buf(),
            id: (meta.dev(), meta.ino()),
        })
    }

    /// Sends `frame` with the descriptors `fds` (at most [`MAX_FDS`]), which the receiver
    /// gets as new descriptors of the same open files.
    ///
    /// # Errors
    /// `InvalidArgument` for more than [`MAX_FDS`] descriptors (nothing is sent); otherwise as
    /// for [`Transport::send`].
    pub fn send_with_fds(&mut self, frame: &[u8], fds: &[BorrowedFd<'_>]) -> Result<()> {
        self.send_until(frame, fds, None)
    }

    /// As [`send_with_fds`](Self::send_with_fds), waiting at most `timeout`.
    ///
    /// # Errors
    /// As for `send_with_fds`, and `Timeout`.
    pub fn send_with_fds_timeout(
        &mut self,
        frame: &[u8],
        fds: &[BorrowedFd<'_>],
        timeout: Duration,
    ) -> Result<()> {
        self.send_until(frame, fds, deadline_after(timeout))
    }

    /// Receives the next frame into `buf` and returns the descriptors sent with it
    /// (close-on-exec).
    ///
    /// # Errors
    /// As for [`Transport::recv`]; and `Io` when some descriptors sent with the frame could
    /// not be received (`MSG_CTRUNC`: this process is at its limit of open files): the frame
    /// and the descriptors that did arrive are then dropped (closed), and the next frame comes
    /// next.
    pub fn recv_with_fds(&mut self, buf: &mut Vec<u8>) -> Result<Vec<OwnedFd>> {
        self.recv_until(buf, None)
    }

    /// As [`recv_with_fds`](Self::recv_with_fds), waiting at most `timeout`.
    ///
    /// # Errors
    /// As for `recv_with_fds`, and `Timeout`.
    pub fn recv_with_fds_timeout(
        &mut self,
        buf: &mut Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<OwnedFd>> {
        self.recv_until(buf, deadline_after(timeout))
    }

    fn send_until(
        &mut self,
        frame: &[u8],
        fds: &[BorrowedFd<'_>],
        deadline: Option<Instant>,
    ) -> Result<()> {
        if fds.len() > MAX_FDS {
            return Err(Error::InvalidArgument(format!(
                "{} descriptors in one frame; a Unix socket carries at most {MAX_FDS}",
                fds.len()
            )));
        }
        if frame.len() > MAX_FRAME {
            return Err(Error::TooLarge {
                len: frame.len(),
                max: MAX_FRAME,
            });
        }
        let Some(fd) = &self.fd else {
            return Err(Error::Disconnected);
        };
        let fd = fd.as_fd();
        if let Some(mut p) = self.pending.take() {
            let rest = &p.rest[p.done..];
            if let Err((n, e)) = send_chunks(
                fd,
                &mut self.chunk,
                rest,
                p.offset + p.done,
                p.total,
                &[],
                deadline,
            ) {
                p.done += n;
                if matches!(e, Error::Timeout) {
                    self.pending = Some(p);
                }
                return Err(e);
            }
        }
        let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
        match send_chunks(fd, &mut self.chunk, frame, 0, frame.len(), &raw, deadline) {
            Ok(()) => Ok(()),
            Err((sent, e)) => {
                self.pending = PendingTx::left_by(frame, sent, &e);
                Err(e)
            }
        }
    }

    fn recv_until(&mut self, buf: &mut Vec<u8>, deadline: Option<Instant>) -> Result<Vec<OwnedFd>> {
        if self.assembly.in_frame() {
            std::mem::swap(buf, &mut self.partial);
        } else {
            buf.clear();
        }
        if let Err(e) = self.recv_inner(buf, deadline) {
            if self.assembly.in_frame() {
                std::mem::swap(buf, &mut self.partial);
            }
            buf.clear();
            return Err(e);
        }
        let fds = std::mem::take(&mut self.partial_fds);
        if std::mem::take(&mut self.ctrunc) {
            let arrived = fds.len();
            drop(fds);
            buf.clear();
            return Err(Error::Io(io::Error::other(format!(
                "descriptors sent with a frame were cut short (MSG_CTRUNC): this process could \
                 not take them all (is it at RLIMIT_NOFILE?); the frame and the {arrived} \
                 descriptors that arrived were dropped"
            ))));
        }
        Ok(fds)
    }

    fn recv_inner(&mut self, buf: &mut Vec<u8>, deadline: Option<Instant>) -> Result<()> {
        let Some(fd) = &self.fd else {
            return Err(Error::Disconnected);
        };
        let fd = fd.as_fd();
        loop {
            if let Some(end) = &self.end {
                return Err(end.error());
            }
            let room = match self.assembly.total() {
                None => MAX_CHUNK,
                Some(total) => (total - buf.len()).min(MAX_CHUNK),
            };
            let mut header = [0u8; HEADER];
            let (mut got, mut flags) = (0, 0);
            let fds = &mut self.partial_fds;
            let r = read_appending(buf, room, |dst| {
                (got, flags) = recv_message(fd, &mut header, dst, fds)?;
                Ok(got.saturating_sub(HEADER))
            });
            let len = match r {
                Ok(len) => len,
                Err(e) if would_block(&e) => {
                    wait_ready(fd, libc::POLLIN, deadline)?;
                    continue;
                }
                Err(e) => {
                    return Err(match peer_error(e) {
                        Error::Disconnected => self.ended(End::Closed),
                        Error::PeerGone => self.ended(End::Gone),
                        other => other,
                    });
                }
            };
            if flags & libc::MSG_CTRUNC != 0 {
                self.ctrunc = true;
            }
            if got == 0 {
                let end = if self.assembly.in_frame() {
                    End::Gone
                } else {
                    End::Closed
                };
                return Err(self.ended(end));
            }
            let have = buf.len() - len;
            if got < HEADER || flags & libc::MSG_TRUNC != 0 {
                let why = format!(
                    "a datagram of {got} bytes{}, with {have} bytes of its frame in",
                    if got < HEADER {
                        ", shorter than its header"
                    } else {
                        " cut short: longer than the protocol allows"
                    }
                );
                return Err(self.ended(End::Corrupted(why)));
            }
            match self.assembly.accept(&header, have, len) {
                Ok((_, true)) => return Ok(()),
                Ok((total, false)) => buf.reserve(total - buf.len()),
                Err(Error::Corrupted(why)) => return Err(self.ended(End::Corrupted(why))),
                Err(e) => return Err(e),
            }
        }
    }

    fn ended(&mut self, end: End) -> Error {
        let e = end.error();
        self.end = Some(end);
        e
    }
}

/// Sends `data`, which starts at `offset` in a frame of `total` bytes, as datagrams of at
/// most `chunk` bytes, the first with `fds`. On failure, says how much of `data` went out.
fn send_chunks(
    fd: BorrowedFd<'_>,
    chunk: &mut usize,
    data: &[u8],
    offset: usize,
    total: usize,
    fds: &[RawFd],
    deadline: Option<Instant>,
) -> std::result::Result<(), (usize, Error)> {
    let mut sent = 0;
    loop {
        let n = (data.len() - sent).min(*chunk);
        let header = chunk::header(offset + sent, n, total);
        let iov = [IoSlice::new(&header), IoSlice::new(&data[sent..sent + n])];
        let rights = [ControlMessage::ScmRights(fds)];
        let cmsgs: &[ControlMessage<'_>] = if sent == 0 && !fds.is_empty() {
            &rights
        } else {
            &[]
        };
        let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL;
        match sock::sendmsg::<UnixAddr>(fd.as_raw_fd(), &iov, cmsgs, flags, None) {
            Ok(m) if m == HEADER + n => {
                sent += n;
                if sent == data.len() {
                    return Ok(());
                }
            }
            Ok(m) => {
                let e = io::Error::other(format!("a datagram of {} bytes went out as {m}", n + 8));
                return Err((sent, Error::Io(e)));
            }
            Err(Errno::EAGAIN) => {
                if let Err(e) = wait_ready(fd, libc::POLLOUT, deadline) {
                    return Err((sent, e));
                }
            }
            Err(Errno::EINTR) => {}
            // The send buffer shrank under us (someone set SO_SNDBUF): smaller datagrams.
            Err(Errno::EMSGSIZE) if *chunk > MIN_CHUNK => *chunk /= 2,
            Err(e) => return Err((sent, peer_error(e.into()))),
        }
    }
}

/// Receives one datagram without waiting: its first bytes into `header`, the rest into
/// `dst`, descriptors (close-on-exec) appended to `fds`. Returns the bytes received and the
/// message flags (`MSG_TRUNC`, `MSG_CTRUNC`).
fn recv_message(
    fd: BorrowedFd<'_>,
    header: &mut [u8; HEADER],
    dst: &mut [MaybeUninit<u8>],
    fds: &mut Vec<OwnedFd>,
) -> io::Result<(usize, libc::c_int)> {
    let mut iov = [
        libc::iovec {
            iov_base: header.as_mut_ptr().cast(),
            iov_len: HEADER,
        },
        libc::iovec {
            iov_base: dst.as_mut_ptr().cast(),
            iov_len: dst.len(),
        },
    ];
    let mut control = [0u64; CMSG_WORDS];
    // SAFETY: `msghdr` is plain old data; all-zero (no address) is valid, then we fill it.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_mut_ptr();
    msg.msg_iovlen = iov.len() as _;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = size_of_val(&control) as _;
    let n = sys::retry(|| {
        // SAFETY: `msg` points at the two buffers (`header`, `dst`) and the control buffer,
        // all borrowed mutably for the call; the kernel writes within their lengths.
        sys::len(unsafe {
            libc::recvmsg(
                fd.as_raw_fd(),
                &mut msg,
                libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC,
            )
        })
    })?;
    // SAFETY: the kernel filled `msg_controllen` bytes of `control` with well-formed control
    // messages; the CMSG macros walk them within that length.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    while !cmsg.is_null() {
        // SAFETY: `cmsg` is a header inside `control`, as CMSG_FIRSTHDR/NXTHDR returned it.
        let (level, kind, len) =
            unsafe { ((*cmsg).cmsg_level, (*cmsg).cmsg_type, (*cmsg).cmsg_len) };
        if level == libc::SOL_SOCKET && kind == libc::SCM_RIGHTS {
            // SAFETY: arithmetic on a constant.
            let head = unsafe { libc::CMSG_LEN(0) } as usize;
            #[allow(clippy::unnecessary_cast)] // cmsg_len is not usize on every libc
            let count = (len as usize).saturating_sub(head) / size_of::<RawFd>();
            // SAFETY: the data of an SCM_RIGHTS message is `count` ints inside `control`.
            let data = unsafe { libc::CMSG_DATA(cmsg) }.cast::<RawFd>();
            for i in 0..count {
                // SAFETY: `i < count` ints lie inside the message's data (maybe unaligned).
                let raw = unsafe { data.add(i).read_unaligned() };
                // SAFETY: the kernel installed this descriptor in our table for us alone.
                fds.push(unsafe { OwnedFd::from_raw_fd(raw) });
            }
        }
        // SAFETY: as for CMSG_FIRSTHDR: the walk stays within `msg_controllen`.
        cmsg = unsafe { libc::CMSG_NXTHDR(&msg, cmsg) };
    }
    Ok((n, msg.msg_flags))
}

impl Transport for UnixSocket {
    fn kind(&self) -> Kind {
        Kind::UnixSocket
    }

    fn send_deadline(&mut self, frame: &[u8], deadline: Deadline) -> Result<()> {
        until(deadline, |at| self.send_until(frame, &[], at))
    }

    fn recv_deadline(&mut self, buf: &mut Vec<u8>, deadline: Deadline) -> Result<()> {
        // Descriptors sent with the frame are closed here.
        until(deadline, |at| self.recv_until(buf, at)).map(drop)
    }

    fn close(&mut self) -> Result<()> {
        let r = match (&self.fd, self.pending.take()) {
            (Some(fd), Some(p)) => send_chunks(
                fd.as_fd(),
                &mut self.chunk,
                &p.rest[p.done..],
                p.offset + p.done,
                p.total,
                &[],
                None,
            )
            .map_err(|(_, e)| e),
            _ => Ok(()),
        };
        self.fd = None;
        r
    }

    fn poll_fd(&self) -> Option<BorrowedFd<'_>> {
        self.fd.as_ref().map(|f| f.as_fd())
    }
}

/// Whether the socket file at `path` was left by an owner that is gone: a `connect` to it is
/// refused. `Ok(false)` when a live socket answers (of any type).
fn owner_is_gone(path: &Path, addr: &UnixAddr) -> Result<bool> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        // Gone already: bind again.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(true),
        Err(e) => return Err(io_at(e, "examine the Unix socket file", path)),
    };
    if !meta.file_type().is_socket() {
        return Err(Error::InvalidArgument(format!(
            "{} exists and is not a socket; it is left alone",
            path.display()
        )));
    }
    let probe = socket(true)?;
    loop {
        return match sock::connect(probe.as_raw_fd(), addr) {
            // Connected, or a full backlog, or a live socket of another type.
            Ok(()) | Err(Errno::EAGAIN | Errno::EINPROGRESS | Errno::EPROTOTYPE) => Ok(false),
            Err(Errno::ECONNREFUSED | Errno::ENOENT) => Ok(true),
            Err(Errno::EINTR) => continue,
            Err(e) => Err(io_at(e, "connect to the Unix socket at", path)),
        };
    }
}

/// A listening `SOCK_SEQPACKET` socket: [`UnixSocket::listen`]. Dropping it removes its
/// socket file (unless something else was bound there since).
#[derive(Debug)]
pub struct UnixListener {
    fd: OwnedFd,
    path: PathBuf,
    /// Device and inode of the socket file we bound.
    id: (u64, u64),
}

impl UnixListener {
    /// Waits for the next peer.
    ///
    /// # Errors
    /// `Io` when accepting fails.
    pub fn accept(&self) -> Result<UnixSocket> {
        self.accept_deadline(None)
    }

    /// Waits at most `timeout` for the next peer.
    ///
    /// # Errors
    /// `Timeout`, and as for [`accept`](Self::accept).
    pub fn accept_timeout(&self, timeout: Duration) -> Result<UnixSocket> {
        self.accept_deadline(deadline_after(timeout))
    }

    pub(crate) fn accept_deadline(&self, deadline: Option<Instant>) -> Result<UnixSocket> {
        loop {
            match sock::accept4(self.fd.as_raw_fd(), SockFlag::SOCK_CLOEXEC) {
                Ok(raw) => return Ok(UnixSocket::wrap(sys::owned(raw)?)),
                Err(Errno::EAGAIN) => wait_ready(self.fd.as_fd(), libc::POLLIN, deadline)?,
                Err(Errno::EINTR | Errno::ECONNABORTED) => {}
                Err(e) => return Err(Error::Io(e.into())),
            }
        }
    }

    /// The path bound.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl AsFd for UnixListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for UnixListener {
    fn drop(&mut self) {
        if let Ok(meta) = std::fs::symlink_metadata(&self.path)
            && (meta.dev(), meta.ino()) == self.id
        {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

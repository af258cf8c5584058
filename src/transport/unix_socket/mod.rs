//! [`UnixSocket`]: a link over an `AF_UNIX` `SOCK_SEQPACKET` socket, with file descriptors
//! passed alongside frames (`SCM_RIGHTS`).

mod fds;
mod listener;

pub use listener::UnixListener;

use super::chunk::{Assembly, HEADER, PendingTx};
use super::stream::End;
use super::until;
use super::{Kind, MAX_FRAME, Transport};
use crate::Deadline;
use crate::error::{Error, Result};
use crate::sys::io::{peer_error, read_appending, wait_ready, would_block};
use fds::{recv_message, send_chunks};
use nix::errno::Errno;
use nix::sys::socket::{
    self as sock, AddressFamily, SockFlag, SockType, UnixAddr, getsockopt, sockopt,
};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::Path;
use std::time::Instant;

/// The most descriptors one frame carries: the kernel's `SCM_MAX_FD`.
pub const MAX_FDS: usize = 253;

/// The most frame bytes one datagram carries; a larger frame is sent in chunks. The socket's
/// send buffer can lower it (a datagram must fit in it, with room for a second one).
const MAX_CHUNK: usize = 128 * 1024;
/// The least chunk tried when the kernel refuses a datagram as too large.
const MIN_CHUNK: usize = 4096;

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

    /// Sends `frame` with the descriptors `fds` (at most [`MAX_FDS`]), which the receiver
    /// gets as new descriptors of the same open files, giving up at `deadline`.
    ///
    /// # Errors
    /// `InvalidArgument` for more than [`MAX_FDS`] descriptors (nothing is sent); otherwise as
    /// for [`Transport::send_deadline`].
    pub fn send_with_fds_deadline(
        &mut self,
        frame: &[u8],
        fds: &[BorrowedFd<'_>],
        deadline: Deadline,
    ) -> Result<()> {
        until(deadline, |at| self.send_until(frame, fds, at))
    }

    /// Receives the next frame into `buf` and returns the descriptors sent with it
    /// (close-on-exec), giving up at `deadline`.
    ///
    /// # Errors
    /// As for [`Transport::recv_deadline`]; and `Io` when some descriptors sent with the frame
    /// could not be received (`MSG_CTRUNC`: this process is at its limit of open files): the
    /// frame and the descriptors that did arrive are then dropped (closed), and the next frame
    /// comes next.
    pub fn recv_with_fds_deadline(
        &mut self,
        buf: &mut Vec<u8>,
        deadline: Deadline,
    ) -> Result<Vec<OwnedFd>> {
        until(deadline, |at| self.recv_until(buf, at))
    }

    crate::wait::deadline_forms! {
        /// Sends `frame` with the descriptors `fds`, waiting as long as it takes.
        ///
        /// # Errors
        /// As for [`send_with_fds_deadline`](Self::send_with_fds_deadline), but never
        /// `Timeout`.
        pub fn send_with_fds / try_send_with_fds / send_with_fds_timeout
            (frame: &[u8], fds: &[BorrowedFd<'_>]) -> Result<()> = send_with_fds_deadline;

        /// Receives the next frame into `buf` and the descriptors sent with it, waiting as
        /// long as it takes.
        ///
        /// # Errors
        /// As for [`recv_with_fds_deadline`](Self::recv_with_fds_deadline), but never
        /// `Timeout`.
        pub fn recv_with_fds / try_recv_with_fds / recv_with_fds_timeout
            (buf: &mut Vec<u8>) -> Result<Vec<OwnedFd>> = recv_with_fds_deadline;
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

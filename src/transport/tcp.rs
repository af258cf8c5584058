//! [`Tcp`]: a link over a TCP connection, with the framing of [`Pipe`](super::Pipe).

use super::stream::{ByteIo, FrameReader, FrameWriter};
use super::until;
use super::{Kind, Transport, deadline_after};
use crate::Deadline;
use crate::error::{Error, Result};
use crate::sys::io as sys;
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

/// One endpoint of a link over TCP, for a peer on another host: frames are an 8-byte length
/// and then their bytes, `TCP_NODELAY` is set (a small frame leaves at once), and every send
/// is `MSG_NOSIGNAL`. `ECONNRESET` (the peer's end closed with data unread, or the peer's host
/// reset the connection) is `PeerGone`; an orderly end of the stream is `Disconnected`.
///
/// ```
/// use zipc::transport::{Tcp, Transport};
/// # fn main() -> zipc::Result<()> {
/// let listener = Tcp::listen("127.0.0.1:0")?;
/// let mut client = Tcp::connect(listener.local_addr()?)?;
/// let mut server = listener.accept()?;
/// client.send(b"hello")?;
/// let mut buf = Vec::new();
/// server.recv(&mut buf)?;
/// assert_eq!(buf, b"hello");
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Tcp {
    stream: Option<TcpStream>,
    reader: FrameReader,
    writer: FrameWriter,
}

#[derive(Debug)]
struct SocketIo;

impl ByteIo for SocketIo {
    fn read(&self, fd: BorrowedFd<'_>, dst: &mut [MaybeUninit<u8>]) -> io::Result<usize> {
        sys::recv(fd, dst)
    }

    fn write(&self, fd: BorrowedFd<'_>, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        sys::send_nosignal(fd, bufs)
    }
}

/// How the errors name the address `addr`, given as a value of `ToSocketAddrs`: as it reads
/// in `Debug`, without the quotes of a string.
fn shown(addr: &impl std::fmt::Debug) -> String {
    let text = format!("{addr:?}");
    match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(inner) => inner.to_string(),
        None => text,
    }
}

/// `HOST:PORT` as an address writes it (an IPv6 host in brackets).
pub(crate) fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The error for a failed connect to `name`: `NotFound` when nobody listens there.
fn connect_error(e: io::Error, name: &str) -> Error {
    match e.kind() {
        io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound => {
            Error::NotFound(format!("a TCP listener at {name}"))
        }
        io::ErrorKind::TimedOut => Error::Timeout,
        kind => Error::Io(io::Error::new(
            kind,
            format!("cannot connect to TCP address {name}: {e}"),
        )),
    }
}

impl Tcp {
    /// Connects to a listener at `addr` (each address it resolves to is tried in turn).
    ///
    /// # Errors
    /// `NotFound` when the connection is refused; `Io` for other failures (an unknown host,
    /// an unreachable network). Each names `addr`.
    pub fn connect(addr: impl ToSocketAddrs + std::fmt::Debug) -> Result<Tcp> {
        let name = shown(&addr);
        Tcp::connect_named(addr, &name)
    }

    /// As [`connect`](Self::connect), the errors naming the address `name`.
    pub(crate) fn connect_named(addr: impl ToSocketAddrs, name: &str) -> Result<Tcp> {
        let stream = TcpStream::connect(addr).map_err(|e| connect_error(e, name))?;
        Tcp::from_stream(stream)
    }

    /// As [`connect`](Self::connect) to one address, giving up after `timeout`.
    ///
    /// # Errors
    /// `Timeout`, and as for `connect`.
    pub fn connect_timeout(addr: &SocketAddr, timeout: Duration) -> Result<Tcp> {
        let stream = TcpStream::connect_timeout(addr, timeout)
            .map_err(|e| connect_error(e, &addr.to_string()))?;
        Tcp::from_stream(stream)
    }

    /// Binds a listener at `addr` (port 0: one the system chooses; see
    /// [`TcpListener::local_addr`]).
    ///
    /// # Errors
    /// `Exists` when the address is in use; `Io` for other failures. Each names `addr`.
    pub fn listen(addr: impl ToSocketAddrs + std::fmt::Debug) -> Result<TcpListener> {
        let name = shown(&addr);
        Tcp::listen_named(addr, &name)
    }

    /// As [`listen`](Self::listen), the errors naming the address `name`.
    pub(crate) fn listen_named(addr: impl ToSocketAddrs, name: &str) -> Result<TcpListener> {
        let listener = std::net::TcpListener::bind(addr).map_err(|e| match e.kind() {
            io::ErrorKind::AddrInUse => Error::Exists(format!("a TCP listener at {name}")),
            kind => Error::Io(io::Error::new(
                kind,
                format!("cannot listen at TCP address {name}: {e}"),
            )),
        })?;
        listener.set_nonblocking(true)?;
        Ok(TcpListener { listener })
    }

    /// An end over a connected stream; sets `TCP_NODELAY`.
    ///
    /// # Errors
    /// `Io` when the option cannot be set.
    pub fn from_stream(stream: TcpStream) -> Result<Tcp> {
        stream.set_nodelay(true)?;
        stream.set_nonblocking(false)?;
        Ok(Tcp {
            stream: Some(stream),
            reader: FrameReader::new(),
            writer: FrameWriter::new(),
        })
    }

    /// The peer's address.
    ///
    /// # Errors
    /// `Disconnected` when this end was closed; `Io` when the address cannot be read.
    pub fn peer_addr(&self) -> Result<SocketAddr> {
        Ok(self.stream()?.peer_addr()?)
    }

    fn stream(&self) -> Result<&TcpStream> {
        self.stream.as_ref().ok_or(Error::Disconnected)
    }
}

impl Transport for Tcp {
    fn kind(&self) -> Kind {
        Kind::Tcp
    }

    fn send_deadline(&mut self, frame: &[u8], deadline: Deadline) -> Result<()> {
        let Some(s) = &self.stream else {
            return Err(Error::Disconnected);
        };
        until(deadline, |at| {
            self.writer.send(&SocketIo, s.as_fd(), frame, at)
        })
    }

    fn recv_deadline(&mut self, buf: &mut Vec<u8>, deadline: Deadline) -> Result<()> {
        let Some(s) = &self.stream else {
            buf.clear();
            return Err(Error::Disconnected);
        };
        until(deadline, |at| {
            self.reader.recv(&SocketIo, s.as_fd(), buf, at)
        })
    }

    fn close(&mut self) -> Result<()> {
        let Some(s) = self.stream.take() else {
            return Ok(());
        };
        let r = if self.writer.has_pending() {
            self.writer.flush(&SocketIo, s.as_fd(), None)
        } else {
            Ok(())
        };
        // The peer reads every byte sent, then the end of the stream.
        let _ = s.shutdown(Shutdown::Write);
        r
    }

    fn poll_fd(&self) -> Option<BorrowedFd<'_>> {
        self.stream.as_ref().map(|s| s.as_fd())
    }
}

/// A listening TCP socket: [`Tcp::listen`].
#[derive(Debug)]
pub struct TcpListener {
    listener: std::net::TcpListener,
}

impl TcpListener {
    /// Waits for the next peer.
    ///
    /// # Errors
    /// `Io` when accepting fails.
    pub fn accept(&self) -> Result<Tcp> {
        self.accept_deadline(None)
    }

    /// Waits at most `timeout` for the next peer.
    ///
    /// # Errors
    /// `Timeout`, and as for [`accept`](Self::accept).
    pub fn accept_timeout(&self, timeout: Duration) -> Result<Tcp> {
        self.accept_deadline(deadline_after(timeout))
    }

    pub(crate) fn accept_deadline(&self, deadline: Option<Instant>) -> Result<Tcp> {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => return Tcp::from_stream(stream),
                Err(e) if sys::would_block(&e) => {
                    sys::wait_ready(self.listener.as_fd(), libc::POLLIN, deadline)?
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // A connection reset before it was accepted: wait for the next one.
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {}
                Err(e) => return Err(Error::Io(e)),
            }
        }
    }

    /// The address bound (with the port the system chose for port 0).
    ///
    /// # Errors
    /// `Io` when the address cannot be read.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }
}

impl AsFd for TcpListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.listener.as_fd()
    }
}

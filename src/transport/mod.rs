//! Transports: one endpoint of a bidirectional, message-framed link, whatever carries it.
//!
//! A [`Transport`] sends and receives whole frames of 0 bytes to [`MAX_FRAME`] (1 GiB); a
//! frame arrives whole, in order, or not at all. Four carriers implement it, one file each:
//!
//! | type | carrier | for |
//! |---|---|---|
//! | [`Shm`] | two zipc byte channels, one each way | a peer on this host that can map memory |
//! | [`UnixSocket`] | `AF_UNIX` `SOCK_SEQPACKET`, with `SCM_RIGHTS` fd passing | a peer on this host that cannot (or would rather not) map memory; passing fds |
//! | [`Pipe`] | two pipes, length-prefixed frames | a child wired up by inheritance (`pipe:`) |
//! | [`Tcp`] | TCP with the pipe's framing and `TCP_NODELAY` | a peer on another host |
//!
//! Frames larger than one message of the carrier (half of a [`Shm`] ring, about 128 KiB of a
//! Unix socket) travel as several chunks, each with an 8-byte header, and are put together
//! again on the other side; pipes and TCP carry an 8-byte length before each frame.
//!
//! Endpoints are named by an [`Address`] (`shm:NAME`, `unix:PATH`, `pipe:`, `tcp:HOST:PORT`):
//! [`listen`] on one side and [`connect`] on the other give a `Box<dyn Transport>`, and
//! [`select`] says which kind of transport fits a peer.
//!
//! # Errors and the end of a link
//!
//! Every call returns a [`zipc::Error`](crate::Error). When the peer closed its end (or its
//! process exited and the kernel closed its sockets), receiving gives every frame it sent and
//! then [`Error::Disconnected`]; a peer whose death can be told apart from a close gives
//! [`Error::PeerGone`] instead: for [`Shm`] the kernel's word on its liveness lock, for the
//! sockets `ECONNRESET`, and for every transport a stream that ends in the middle of a frame.
//! On pipes and sockets a killed peer usually looks like a close (its fds are closed for it),
//! so callers that care should treat both alike. Sending to a closed peer is `Disconnected`
//! (`EPIPE`) or `PeerGone` (`ECONNRESET`).
//!
//! # Timeouts
//!
//! `recv_timeout` that runs out of time in the middle of a large frame keeps what it has and
//! the next receive goes on where it stopped: nothing is lost. `send_timeout` gives
//! [`Error::Timeout`] when the deadline passes; if some of the frame had gone out by then, the
//! rest is kept by the transport and goes out first at the next send (or at
//! [`close`](Transport::close)), so that the peer never sees a torn frame. `try_send` and
//! `try_recv` say [`Error::WouldBlock`] in the same cases.
//!
//! # Examples
//!
//! ```
//! use zipc::transport::{Shm, Transport};
//! # fn main() -> zipc::Result<()> {
//! let (mut a, mut b) = Shm::pair(zipc::Config::default())?;
//! let echo = std::thread::spawn(move || -> zipc::Result<()> {
//!     let mut buf = Vec::new();
//!     b.recv(&mut buf)?;
//!     b.send(&buf)
//! });
//! a.send(b"ping")?;
//! let mut buf = Vec::new();
//! a.recv(&mut buf)?;
//! assert_eq!(buf, b"ping");
//! echo.join().unwrap()?;
//! # Ok(())
//! # }
//! ```

mod address;
mod chunk;
pub(crate) mod handoff;
pub(crate) mod inherit;
mod pipe;
mod shm;
mod stream;
mod tcp;
mod unix_socket;

pub use address::Address;
pub use pipe::{PIPE_SIZE, Pipe};
pub use shm::{Shm, ShmListener};
pub use tcp::{Tcp, TcpListener};
pub use unix_socket::{MAX_FDS, UnixListener, UnixSocket};

use crate::Deadline;
use crate::error::{Error, Result};
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

/// The largest frame any transport carries: 1 GiB. A larger one is [`Error::TooLarge`].
pub const MAX_FRAME: usize = 1 << 30;

/// One endpoint of a bidirectional, message-framed link. See the [module docs](self).
///
/// Object safe: a process layer can hold a `Box<dyn Transport>` of any kind.
pub trait Transport: Send + std::fmt::Debug {
    /// Which kind of transport this is.
    fn kind(&self) -> Kind;

    /// Sends `frame` whole, giving up at `deadline` ([`Deadline::Never`]: no limit;
    /// [`Deadline::Now`] or an instant already past: only what can go without waiting).
    ///
    /// # Errors
    /// `TooLarge` beyond [`MAX_FRAME`]; `Timeout` at the deadline, `WouldBlock` for
    /// `Deadline::Now` (what went out of the frame by then is completed at the next send); `Disconnected`/`PeerGone` when the peer closed
    /// or died; `Io` for other failures of the carrier.
    fn send_deadline(&mut self, frame: &[u8], deadline: Deadline) -> Result<()>;

    /// Receives the next frame into `buf` (cleared first, then filled with the frame),
    /// giving up at `deadline` as for [`send_deadline`](Self::send_deadline).
    ///
    /// # Errors
    /// `Timeout` at the deadline, `WouldBlock` for `Deadline::Now` (a frame begun is
    /// finished by the next receive);
    /// `Disconnected`/`PeerGone` once every frame the peer sent was received; `Corrupted`
    /// when the peer broke the framing; `Io` for other failures of the carrier.
    fn recv_deadline(&mut self, buf: &mut Vec<u8>, deadline: Deadline) -> Result<()>;

    /// Sends what is still pending of a frame whose send timed out, then closes this end:
    /// the peer receives everything sent and then `Disconnected`. Every later call on this
    /// end is `Disconnected`. Dropping an end closes it too, without finishing a pending
    /// frame (the peer then sees `PeerGone`).
    ///
    /// # Errors
    /// As for sending, when the pending part cannot be delivered; the end is closed anyway.
    fn close(&mut self) -> Result<()>;

    /// A descriptor that polls readable (`POLLIN`) when bytes of a frame, or the end of the
    /// link, are waiting in the kernel; `None` when there is none: [`Shm`] (the core
    /// channel has no pollable descriptor yet) and a closed end. Frames a transport has
    /// already read into its own buffer do not wake a poll: receive with
    /// [`try_recv`](Self::try_recv) until `WouldBlock` before polling again.
    fn poll_fd(&self) -> Option<BorrowedFd<'_>>;

    crate::wait::deadline_forms! {
        /// Sends `frame` whole, waiting as long as it takes.
        ///
        /// # Errors
        /// As for [`send_deadline`](Self::send_deadline), but never `Timeout`.
        fn send / try_send / send_timeout (frame: &[u8]) -> Result<()> = send_deadline;

        /// Receives the next frame into `buf`, waiting as long as it takes.
        ///
        /// # Errors
        /// As for [`recv_deadline`](Self::recv_deadline), but never `Timeout`.
        fn recv / try_recv / recv_timeout (buf: &mut Vec<u8>) -> Result<()> = recv_deadline;
    }
}

/// `Transport` stays object safe.
const _: Option<&dyn Transport> = None;

impl Transport for Box<dyn Transport> {
    fn kind(&self) -> Kind {
        (**self).kind()
    }
    fn send_deadline(&mut self, frame: &[u8], deadline: Deadline) -> Result<()> {
        (**self).send_deadline(frame, deadline)
    }
    fn recv_deadline(&mut self, buf: &mut Vec<u8>, deadline: Deadline) -> Result<()> {
        (**self).recv_deadline(buf, deadline)
    }
    fn close(&mut self) -> Result<()> {
        (**self).close()
    }
    fn poll_fd(&self) -> Option<BorrowedFd<'_>> {
        (**self).poll_fd()
    }
}

/// `Instant::now() + timeout`, or no deadline when that overflows.
pub(crate) fn deadline_after(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// Runs a transport's call with `deadline` as the instant its waits give up at (`Now`: at
/// once), and gives its result as the form asked wants it: `WouldBlock` where `Now` found
/// nothing to do without waiting.
pub(crate) fn until<T>(
    deadline: Deadline,
    call: impl FnOnce(Option<Instant>) -> Result<T>,
) -> Result<T> {
    match call(deadline.instant()) {
        Err(Error::Timeout) if deadline == Deadline::Now => Err(Error::WouldBlock),
        other => other,
    }
}

/// The kinds of transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kind {
    /// [`Shm`]: shared-memory rings.
    Shm,
    /// [`UnixSocket`]: `AF_UNIX` `SOCK_SEQPACKET`.
    UnixSocket,
    /// [`Pipe`]: a pair of pipes.
    Pipe,
    /// [`Tcp`]: a TCP connection.
    Tcp,
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::Shm => "shm",
            Kind::UnixSocket => "unix",
            Kind::Pipe => "pipe",
            Kind::Tcp => "tcp",
        })
    }
}

/// Where the peer runs, as far as choosing a transport goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Locality {
    /// On this host, able to map shared memory.
    Local,
    /// On this host, but unable to map memory (a sandbox without `/dev/shm` or memfd, a
    /// language runtime that only speaks sockets).
    LocalWithoutSharedMemory,
    /// On another host.
    Remote,
}

impl From<bool> for Locality {
    /// `true`: [`Locality::Local`]; `false`: [`Locality::Remote`].
    fn from(local: bool) -> Self {
        if local {
            Locality::Local
        } else {
            Locality::Remote
        }
    }
}

/// The transport for a peer: shared memory for a local one, a Unix socket for a local one
/// that cannot map memory, TCP for a remote one. `local` is a `bool` or a [`Locality`].
///
/// The frame size does not enter into it (an earlier `size_hint` argument changed nothing):
/// shared memory is the fastest local transport in `benches/transport.rs`, and a peer that
/// cannot map memory gets the Unix socket at any size (large frames are chunked).
///
/// ```
/// use zipc::transport::{Kind, Locality, select};
/// assert_eq!(select(true), Kind::Shm);
/// assert_eq!(select(Locality::LocalWithoutSharedMemory), Kind::UnixSocket);
/// assert_eq!(select(false), Kind::Tcp);
/// ```
pub fn select(local: impl Into<Locality>) -> Kind {
    match local.into() {
        Locality::Local => Kind::Shm,
        Locality::LocalWithoutSharedMemory => Kind::UnixSocket,
        Locality::Remote => Kind::Tcp,
    }
}

/// A bound endpoint waiting for its peer: what [`listen`] gives.
#[derive(Debug)]
#[non_exhaustive]
pub enum Listener {
    /// `shm:NAME`: the creator's side of a named link (it accepts one peer); boxed, as it
    /// holds a whole channel end.
    Shm(Box<ShmListener>),
    /// `unix:PATH`: a listening Unix socket.
    Unix(UnixListener),
    /// `tcp:HOST:PORT`: a listening TCP socket.
    Tcp(TcpListener),
}

impl Listener {
    /// Waits for the next peer.
    ///
    /// # Errors
    /// As for the listener's own `accept`.
    pub fn accept(&mut self) -> Result<Box<dyn Transport>> {
        self.accept_deadline(None)
    }

    /// Waits at most `timeout` for the next peer.
    ///
    /// # Errors
    /// `Timeout`, and as for the listener's own `accept`.
    pub fn accept_timeout(&mut self, timeout: Duration) -> Result<Box<dyn Transport>> {
        self.accept_deadline(deadline_after(timeout))
    }

    fn accept_deadline(&mut self, deadline: Option<Instant>) -> Result<Box<dyn Transport>> {
        Ok(match self {
            Listener::Shm(l) => Box::new(l.accept_deadline(deadline)?),
            Listener::Unix(l) => Box::new(l.accept_deadline(deadline)?),
            Listener::Tcp(l) => Box::new(l.accept_deadline(deadline)?),
        })
    }

    /// The address a peer connects to (for `tcp:HOST:0`, with the port the system chose).
    ///
    /// # Errors
    /// `Io` when the socket's address cannot be read.
    pub fn address(&self) -> Result<Address> {
        Ok(match self {
            Listener::Shm(l) => Address::Shm(l.name().to_string()),
            Listener::Unix(l) => Address::Unix(l.path().to_path_buf()),
            Listener::Tcp(l) => {
                let a = l.local_addr()?;
                Address::Tcp {
                    host: a.ip().to_string(),
                    port: a.port(),
                }
            }
        })
    }
}

/// Binds `address` for a peer to [`connect`] to: creates the named shared-memory link, or
/// the listening socket.
///
/// # Errors
/// `InvalidArgument` for `pipe:` (inherited pipes are connected, never listened on); otherwise
/// as for [`Shm::listen`], [`UnixSocket::listen`] or [`Tcp::listen`].
pub fn listen(address: &Address) -> Result<Listener> {
    match address {
        Address::Shm(name) => Ok(Listener::Shm(Box::new(Shm::listen(
            name,
            crate::Config::default().capacity(shm::DEFAULT_CAPACITY),
        )?))),
        Address::Unix(path) => Ok(Listener::Unix(UnixSocket::listen(path)?)),
        Address::Pipe => Err(Error::InvalidArgument(
            "pipe: names inherited pipes: connect to it, there is nothing to listen on".into(),
        )),
        Address::Tcp { host, port } => Ok(Listener::Tcp(Tcp::listen_named(
            (host.as_str(), *port),
            &tcp::host_port(host, *port),
        )?)),
    }
}

/// Connects to the peer listening at `address`, or for `pipe:` takes the inherited pipes
/// (see [`Pipe::inherited`]).
///
/// # Errors
/// As for [`Shm::connect`], [`UnixSocket::connect`], [`Pipe::inherited`] or [`Tcp::connect`]:
/// notably `NotFound` when nobody listens there (yet).
pub fn connect(address: &Address) -> Result<Box<dyn Transport>> {
    Ok(match address {
        Address::Shm(name) => Box::new(Shm::connect(name)?),
        Address::Unix(path) => Box::new(UnixSocket::connect(path)?),
        Address::Pipe => Box::new(Pipe::inherited()?),
        Address::Tcp { host, port } => Box::new(Tcp::connect_named(
            (host.as_str(), *port),
            &tcp::host_port(host, *port),
        )?),
    })
}

/// As [`connect`], trying again every few milliseconds while nobody listens at `address`
/// (`NotFound`), for at most `timeout`: for a peer that may not have bound its address yet.
///
/// # Errors
/// `Timeout` when nobody listened in time; otherwise as for [`connect`].
pub fn connect_timeout(address: &Address, timeout: Duration) -> Result<Box<dyn Transport>> {
    let deadline = deadline_after(timeout);
    loop {
        match connect(address) {
            Err(Error::NotFound(_)) if deadline.is_none_or(|t| Instant::now() < t) => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(Error::NotFound(_)) => return Err(Error::Timeout),
            other => return other,
        }
    }
}

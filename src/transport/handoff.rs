//! Handing a link's carrier to a child process, and taking it back there: what the process
//! layer asks of a transport to wire a worker, without knowing which transport it is.
//!
//! Each carrier implements [`Handoff`]: it makes this process's end and the fds of the
//! child's end, says which fds a child of it is given, and builds the child's end from them.
//! [`of`] and [`by_tag`] find a carrier's [`Ops`] by its [`Kind`] or by its name in the
//! worker's fds variable; nothing else switches on a `Kind`.

use super::{Kind, MAX_FRAME, Pipe, Tcp, Transport, UnixSocket};
use crate::Deadline;
use crate::Wait;
use crate::bytes::{self, Consumer, Producer};
use crate::error::{Error, Result};
use crate::sys::fd::is_fifo;
use crate::{Config, sys};
use nix::sys::socket::{SockType, getsockopt, sockopt};
use std::os::fd::{BorrowedFd, OwnedFd};

/// One side's carrier of a parent–worker link.
// The rings inline: every send and receive goes through them, and there is one `Carrier` per
// link, so the size does not matter but an indirection would.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Carrier {
    /// A ring each way (the default): zero-copy, loans and in-place frames.
    Rings { tx: Producer, rx: Consumer },
    /// A Unix socket, a pipe pair or a TCP connection.
    Other(Box<dyn Transport>),
}

impl std::fmt::Debug for Carrier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.kind())
    }
}

impl Carrier {
    /// Which transport carries the frames.
    pub(crate) fn kind(&self) -> Kind {
        match self {
            Carrier::Rings { .. } => Kind::Shm,
            Carrier::Other(t) => t.kind(),
        }
    }

    /// Sends `frame`, waiting until `deadline`.
    pub(crate) fn send(&mut self, frame: &[u8], deadline: Deadline) -> Result<()> {
        match self {
            Carrier::Rings { tx, .. } => tx.send_deadline(frame, deadline),
            Carrier::Other(t) => t.send_deadline(frame, deadline),
        }
    }

    /// Receives the next frame into `buf` (cleared first), waiting until `deadline`.
    pub(crate) fn recv_into(&mut self, buf: &mut Vec<u8>, deadline: Deadline) -> Result<()> {
        match self {
            Carrier::Rings { rx, .. } => {
                let frame = rx.recv_deadline(deadline)?;
                buf.clear();
                buf.extend_from_slice(&frame);
                Ok(())
            }
            Carrier::Other(t) => t.recv_deadline(buf, deadline),
        }
    }

    /// The two rings, for what only they do: loans, frames in place, split ends.
    ///
    /// # Errors
    /// `InvalidArgument` on another transport.
    pub(crate) fn rings(&mut self) -> Result<(&mut Producer, &mut Consumer)> {
        match self {
            Carrier::Rings { tx, rx } => Ok((tx, rx)),
            Carrier::Other(t) => Err(Error::InvalidArgument(format!(
                "loans and frames in place need the shm transport, and this worker's \
                 link is a {} one: use send and recv_into",
                t.kind()
            ))),
        }
    }

    /// How the rings wait (other transports block in the kernel).
    pub(crate) fn set_wait(&mut self, wait: Wait) {
        if let Carrier::Rings { tx, rx } = self {
            tx.set_wait(wait);
            rx.set_wait(wait);
        }
    }

    /// The largest frame that can be sent.
    pub(crate) fn max_frame_len(&self) -> usize {
        match self {
            Carrier::Rings { tx, .. } => tx.max_frame_len(),
            Carrier::Other(_) => MAX_FRAME,
        }
    }

    /// Lets the rings pass frames too big for them as side segments over `socket` (other
    /// transports carry every size themselves).
    pub(crate) fn set_side_socket(&mut self, socket: BorrowedFd<'_>) -> Result<()> {
        if let Carrier::Rings { tx, rx } = self {
            tx.set_side_socket(socket.try_clone_to_owned()?);
            rx.set_side_socket(socket.try_clone_to_owned()?);
        }
        Ok(())
    }

    /// Flushes what a timed-out send left, so the peer sees a clean end (rings need not).
    pub(crate) fn close(&mut self) -> Result<()> {
        match self {
            Carrier::Rings { .. } => Ok(()),
            Carrier::Other(t) => t.close(),
        }
    }
}

/// What a transport does to be the carrier of a worker's link.
trait Handoff {
    /// The transport.
    const KIND: Kind;
    /// Its name before the fd list in the worker's variable (`None`: a bare list, shm's).
    const TAG: Option<&'static str>;
    /// How many fds the child's end is made of.
    const FDS: usize;
    /// This process's end, and the fds of the child's end (close-on-exec), in the order
    /// [`adopt`](Handoff::adopt) takes them. Rings each hold `ring_capacity` bytes.
    fn for_child(ring_capacity: usize) -> Result<(Carrier, Vec<OwnedFd>)>;
    /// Whether `fd` is what a child's end of this transport is made of.
    fn fits(fd: BorrowedFd<'_>) -> bool;
    /// The child's end, from the fds its parent handed down.
    fn adopt(fds: Vec<OwnedFd>) -> Result<Carrier>;
}

/// A ring each way: the child gets the memfd of each (to it, from it).
struct Rings;

impl Handoff for Rings {
    const KIND: Kind = Kind::Shm;
    const TAG: Option<&'static str> = None;
    const FDS: usize = 2;

    fn for_child(ring_capacity: usize) -> Result<(Carrier, Vec<OwnedFd>)> {
        let config = Config::default().capacity(ring_capacity);
        let to_child = bytes::memfd(config.clone())?;
        let from_child = bytes::memfd(config)?;
        let fds = vec![to_child.try_clone()?, from_child.try_clone()?];
        let tx = Producer::from_fd(to_child)?;
        let rx = Consumer::from_fd(from_child)?;
        Ok((Carrier::Rings { tx, rx }, fds))
    }

    fn fits(fd: BorrowedFd<'_>) -> bool {
        sys::fd::seals(fd).is_ok()
    }

    fn adopt(fds: Vec<OwnedFd>) -> Result<Carrier> {
        let [from_parent, to_parent] = exactly::<2>(fds)?;
        // Attaching reopens each segment close-on-exec and closes the inherited fd.
        let rx = Consumer::from_fd(from_parent)?;
        let tx = Producer::from_fd(to_parent)?;
        Ok(Carrier::Rings { tx, rx })
    }
}

impl Handoff for UnixSocket {
    const KIND: Kind = Kind::UnixSocket;
    const TAG: Option<&'static str> = Some("unix");
    const FDS: usize = 1;

    fn for_child(_: usize) -> Result<(Carrier, Vec<OwnedFd>)> {
        let (mine, theirs) = seqpacket_pair()?;
        Ok((boxed(UnixSocket::from_fd(mine)?), vec![theirs]))
    }

    fn fits(fd: BorrowedFd<'_>) -> bool {
        is_seqpacket(fd)
    }

    fn adopt(fds: Vec<OwnedFd>) -> Result<Carrier> {
        let [fd] = exactly::<1>(fds)?;
        Ok(boxed(UnixSocket::from_fd(fd)?))
    }
}

impl Handoff for Pipe {
    const KIND: Kind = Kind::Pipe;
    const TAG: Option<&'static str> = Some("pipe");
    const FDS: usize = 2;

    fn for_child(_: usize) -> Result<(Carrier, Vec<OwnedFd>)> {
        let (to_read, to_write) = sys::io::pipe(false)?;
        let (from_read, from_write) = sys::io::pipe(false)?;
        let link = Pipe::from_fds(from_read, to_write)?;
        Ok((boxed(link), vec![to_read, from_write]))
    }

    fn fits(fd: BorrowedFd<'_>) -> bool {
        is_fifo(fd).unwrap_or(false)
    }

    fn adopt(fds: Vec<OwnedFd>) -> Result<Carrier> {
        let [read, write] = exactly::<2>(fds)?;
        Ok(boxed(Pipe::from_fds(read, write)?))
    }
}

impl Handoff for Tcp {
    const KIND: Kind = Kind::Tcp;
    const TAG: Option<&'static str> = Some("tcp");
    const FDS: usize = 1;

    fn for_child(_: usize) -> Result<(Carrier, Vec<OwnedFd>)> {
        let (mine, theirs) = loopback_pair()?;
        Ok((boxed(Tcp::from_stream(mine)?), vec![theirs.into()]))
    }

    fn fits(fd: BorrowedFd<'_>) -> bool {
        matches!(getsockopt(&fd, sockopt::SockType), Ok(SockType::Stream))
    }

    fn adopt(fds: Vec<OwnedFd>) -> Result<Carrier> {
        let [fd] = exactly::<1>(fds)?;
        Ok(boxed(Tcp::from_stream(std::net::TcpStream::from(fd))?))
    }
}

/// A carrier's handoff, as values: what [`of`] and [`by_tag`] find.
#[derive(Debug)]
pub(crate) struct Ops {
    /// The transport.
    pub(crate) kind: Kind,
    /// Its name in the worker's variable (`None`: shm's bare list).
    pub(crate) tag: Option<&'static str>,
    /// How many fds the child's end is made of.
    pub(crate) fds: usize,
    /// This process's end and the fds of the child's (close-on-exec).
    pub(crate) for_child: fn(usize) -> Result<(Carrier, Vec<OwnedFd>)>,
    /// Whether an fd is what the child's end is made of.
    pub(crate) fits: fn(BorrowedFd<'_>) -> bool,
    /// The child's end, from its fds.
    pub(crate) adopt: fn(Vec<OwnedFd>) -> Result<Carrier>,
}

const fn ops<T: Handoff>() -> Ops {
    Ops {
        kind: T::KIND,
        tag: T::TAG,
        fds: T::FDS,
        for_child: T::for_child,
        fits: T::fits,
        adopt: T::adopt,
    }
}

/// Every carrier a worker's link can have.
static CARRIERS: [Ops; 4] = [
    ops::<Rings>(),
    ops::<UnixSocket>(),
    ops::<Pipe>(),
    ops::<Tcp>(),
];

/// The handoff of `kind`'s carrier.
pub(crate) fn of(kind: Kind) -> &'static Ops {
    // Every Kind is in CARRIERS (checked by a test); shm's comes first.
    CARRIERS
        .iter()
        .find(|o| o.kind == kind)
        .unwrap_or(&CARRIERS[0])
}

/// The carrier named `tag` in a worker's variable (`None`: shm's bare list).
pub(crate) fn by_tag(tag: Option<&str>) -> Option<&'static Ops> {
    CARRIERS.iter().find(|o| o.tag == tag)
}

fn boxed(t: impl Transport + 'static) -> Carrier {
    Carrier::Other(Box::new(t))
}

/// The fds as an array of `N` (the caller checked their count; a wrong one is refused).
fn exactly<const N: usize>(fds: Vec<OwnedFd>) -> Result<[OwnedFd; N]> {
    let n = fds.len();
    fds.try_into()
        .map_err(|_| Error::InvalidArgument(format!("a worker's link takes {N} fds here, not {n}")))
}

/// A connected `AF_UNIX` `SOCK_SEQPACKET` pair, close-on-exec: (this end, the child's).
pub(crate) fn seqpacket_pair() -> Result<(OwnedFd, OwnedFd)> {
    use nix::sys::socket::{AddressFamily, SockFlag, socketpair};
    let pair = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(std::io::Error::from)?;
    Ok(pair)
}

/// Whether `fd` is a `SOCK_SEQPACKET` socket.
pub(crate) fn is_seqpacket(fd: BorrowedFd<'_>) -> bool {
    matches!(getsockopt(&fd, sockopt::SockType), Ok(SockType::SeqPacket))
}

/// Two ends of a TCP connection over the loopback interface, both in this process.
fn loopback_pair() -> Result<(std::net::TcpStream, std::net::TcpStream)> {
    let listener = std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))?;
    let theirs = std::net::TcpStream::connect(listener.local_addr()?)?;
    let want = theirs.local_addr()?;
    // Another local process may connect to the port first: take only our own connection.
    for _ in 0..16 {
        let (mine, from) = listener.accept()?;
        if from == want {
            return Ok((mine, theirs));
        }
    }
    Err(Error::Io(std::io::Error::new(
        std::io::ErrorKind::ConnectionRefused,
        "other connections kept arriving on the loopback port of a worker's TCP link",
    )))
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn every_kind_has_one_carrier() {
        for kind in [Kind::Shm, Kind::UnixSocket, Kind::Pipe, Kind::Tcp] {
            assert_eq!(CARRIERS.iter().filter(|o| o.kind == kind).count(), 1);
            let o = of(kind);
            assert_eq!(o.kind, kind);
            assert_eq!(by_tag(o.tag).map(|o| o.kind), Some(kind));
            // Each names itself in the variable as it is written elsewhere, shm by a bare list.
            assert_eq!(o.tag.unwrap_or("shm"), kind.to_string());
        }
        assert!(by_tag(Some("ftp")).is_none());
    }

    #[test]
    fn each_carrier_hands_down_fds_its_child_takes() {
        for o in &CARRIERS {
            let (_mine, theirs) = (o.for_child)(64 * 1024).unwrap();
            assert_eq!(theirs.len(), o.fds, "{}", o.kind);
            for fd in &theirs {
                assert!((o.fits)(fd.as_fd()), "{}: its own fd does not fit", o.kind);
            }
            // Another carrier's fds do not fit this one (the pipe's and shm's differ in kind).
            let (_, other) = (of(Kind::Tcp).for_child)(0).unwrap();
            if o.kind != Kind::Tcp {
                assert!(!(o.fits)(other[0].as_fd()), "{}", o.kind);
            }
            let child = (o.adopt)(theirs).unwrap();
            assert_eq!(child.kind(), o.kind);
        }
    }
}

//! [`Link`]: one side's ends of a parent–worker link, the same type on both sides.
//!
//! The parent's [`Worker`](super::Worker) holds one (and derefs to it); the worker's
//! [`connect`](super::worker::connect) returns one. Either way it is the frames to the peer,
//! the frames from it, and the control socket: the peer's hang-up on it is its death, and
//! frames too big for a ring pass their side segments over it.

use super::control::{self, Event};
use crate::Deadline;
use crate::Wait;
use crate::bytes::{Consumer, Frame, Loan, Producer};
use crate::error::{Error, Result};
use crate::transport::Kind;
use crate::transport::handoff::Carrier as Data;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// One side's ends of a parent–worker link: frames to the peer, frames from it.
///
/// On the parent's side (a [`Worker`](super::Worker) derefs to its `Link`), blocking calls made
/// before the worker has called [`connect`](super::worker::connect) wait for it (within their
/// timeout), and a worker that exits first makes them [`Error::PeerGone`]. Once both sides are
/// attached, the peer's death is `PeerGone` on every call that waits, within tens of
/// milliseconds, after every frame it committed was delivered.
///
/// Loans, frames in place and [`split`](Link::split) are the shm transport's (the default);
/// on another transport they are `InvalidArgument`, and [`send`](Link::send) and
/// [`recv_into`](Link::recv_into) work on every one.
pub struct Link {
    data: Data,
    /// The control socket: the peer hangs up on it when its process (or its handle) is gone.
    control: OwnedFd,
    /// Whether the peer is attached: the worker said hello (always, on the worker's side).
    connected: bool,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("transport", &self.data)
            .field("connected", &self.connected)
            .finish_non_exhaustive()
    }
}

impl Link {
    /// A link over `data` and `control`; `connected` when the peer is attached already (the
    /// worker's side). Shm rings pass frames too big for them over the control socket.
    pub(super) fn new(mut data: Data, control: OwnedFd, connected: bool) -> Result<Link> {
        data.set_side_socket(control.as_fd())?;
        Ok(Link {
            data,
            control,
            connected,
        })
    }

    /// Whether the peer's control end is gone: it exited, was killed or dropped its handle.
    pub(super) fn hung_up(&self) -> bool {
        control::hung_up(self.control.as_fd())
    }

    /// The parts: the data path and the control socket.
    pub(super) fn into_inner(self) -> (Data, OwnedFd) {
        (self.data, self.control)
    }

    /// Waits until the peer is attached, or `deadline`. With [`Deadline::Now`] a peer not
    /// attached yet is no error (nothing can have come from it yet); one that hung up
    /// before attaching is `PeerGone` either way. A peer that attached and then died has its
    /// hello read here, so what it committed is still received.
    fn attach(&mut self, deadline: Deadline) -> Result<()> {
        if self.connected {
            return Ok(());
        }
        match control::wait_event(self.control.as_fd(), deadline.instant())? {
            Event::Hello => {
                self.connected = true;
                Ok(())
            }
            Event::HangUp => Err(Error::PeerGone),
            Event::Nothing if deadline == Deadline::Now => Ok(()),
            Event::Nothing => Err(Error::Timeout),
        }
    }

    /// As [`attach`](Self::attach), before a send or a loan: with [`Deadline::Now`] a
    /// peer not attached yet is waited for no more than that (what is sent waits in the ring
    /// for it), and a peer whose control end is gone already is `PeerGone`, whether or not
    /// it said hello first: nothing sent now would reach it.
    fn attach_to_send(&mut self, deadline: Deadline) -> Result<()> {
        if deadline == Deadline::Now && !self.connected && self.hung_up() {
            return Err(Error::PeerGone);
        }
        self.attach(deadline)
    }

    /// A receive's result, but `PeerGone` for a `Timeout` when the peer's control end is
    /// gone: the ring saw nothing in time, and the peer is dead.
    fn or_gone<T>(r: Result<T>, control: &OwnedFd) -> Result<T> {
        match r {
            Err(Error::Timeout) if control::hung_up(control.as_fd()) => Err(Error::PeerGone),
            other => other,
        }
    }

    /// Copies `data` to the peer as one frame, waiting for space (and for the peer to attach)
    /// until `deadline`. A frame beyond half the ring goes as a side segment: a sealed memfd
    /// whose fd passes over the control socket.
    ///
    /// # Errors
    /// `NoSpace` when memory for a side segment is short; `PeerGone` when the peer died
    /// (before attaching, too); `Disconnected` when it closed its end; `Corrupted` for a
    /// garbled ring; `Timeout` at the deadline, `WouldBlock` for [`Deadline::Now`].
    pub fn send_deadline(&mut self, data: &[u8], deadline: Deadline) -> Result<()> {
        self.attach_to_send(deadline)?;
        self.data.send(data, deadline)
    }

    /// Lends `len` bytes of the ring to write in place, waiting for space (and for the peer
    /// to attach) until `deadline`; [`Loan::commit`] sends them.
    ///
    /// # Errors
    /// As for [`send_deadline`](Self::send_deadline); `InvalidArgument` on a transport other
    /// than shm.
    pub fn loan_deadline(&mut self, len: usize, deadline: Deadline) -> Result<Loan<'_>> {
        self.attach_to_send(deadline)?;
        self.data.rings()?.0.loan_deadline(len, deadline)
    }

    /// The next frame from the peer, in place, waiting for one (and for the peer to attach)
    /// until `deadline`. Dropping the [`Frame`] frees its space.
    ///
    /// # Errors
    /// `PeerGone` when the peer died, after every frame it committed; `Disconnected` when it
    /// closed its end, likewise; `Corrupted` for a garbled ring; `Timeout` at the deadline,
    /// `WouldBlock` for [`Deadline::Now`]; `InvalidArgument` on a transport other than shm
    /// (use [`recv_into`](Self::recv_into)).
    pub fn recv_deadline(&mut self, deadline: Deadline) -> Result<Frame<'_>> {
        self.attach(deadline)?;
        let Link { data, control, .. } = self;
        Self::or_gone(data.rings()?.1.recv_deadline(deadline), control)
    }

    /// The next frame from the peer, copied into `buf` (cleared first), waiting for one until
    /// `deadline`: what every transport does.
    ///
    /// # Errors
    /// As for [`recv_deadline`](Self::recv_deadline), but on any transport.
    pub fn recv_into_deadline(&mut self, buf: &mut Vec<u8>, deadline: Deadline) -> Result<()> {
        self.attach(deadline)?;
        let got = self.data.recv_into(buf, deadline);
        Self::or_gone(got, &self.control)
    }

    crate::wait::deadline_forms! {
        /// Copies `data` to the peer as one frame, waiting as long as it takes.
        ///
        /// # Errors
        /// As for [`send_deadline`](Self::send_deadline), but never `Timeout`.
        pub fn send / try_send / send_timeout (data: &[u8]) -> Result<()> = send_deadline;

        /// Lends `len` bytes of the ring to write in place, waiting as long as it takes.
        ///
        /// # Errors
        /// As for [`loan_deadline`](Self::loan_deadline), but never `Timeout`.
        pub fn loan / try_loan / loan_timeout (len: usize) -> Result<Loan<'_>> = loan_deadline;

        /// The next frame from the peer, in place, waiting as long as it takes.
        ///
        /// # Errors
        /// As for [`recv_deadline`](Self::recv_deadline), but never `Timeout`.
        pub fn recv / try_recv / recv_timeout () -> Result<Frame<'_>> = recv_deadline;

        /// The next frame from the peer copied into `buf`, waiting as long as it takes.
        ///
        /// # Errors
        /// As for [`recv_into_deadline`](Self::recv_into_deadline), but never `Timeout`.
        pub fn recv_into / try_recv_into / recv_into_timeout (buf: &mut Vec<u8>) -> Result<()>
            = recv_into_deadline;
    }

    /// Sends one `Pod` value to the peer as a frame of its bytes; read it there in place
    /// with [`Frame::value`].
    ///
    /// # Errors
    /// As for [`send`](Self::send).
    pub fn send_value<T: bytemuck::Pod>(&mut self, value: &T) -> Result<()> {
        self.send(bytemuck::bytes_of(value))
    }

    /// The two ends, to use at once (say, to send back a frame while holding it, or from two
    /// threads). Waits first for the peer to attach, so that the ends see its death.
    ///
    /// # Errors
    /// `PeerGone` when the worker exited before connecting; `InvalidArgument` on a
    /// transport other than shm.
    pub fn split(&mut self) -> Result<(&mut Producer, &mut Consumer)> {
        self.attach(Deadline::Never)?;
        self.data.rings()
    }

    /// How both ends wait (default [`Wait::Adaptive`]).
    pub fn set_wait(&mut self, wait: Wait) {
        self.data.set_wait(wait);
    }

    /// The largest frame that goes to the peer.
    pub fn max_frame_len(&self) -> usize {
        self.data.max_frame_len()
    }

    /// Which transport carries the frames (the parent's choice: [`Command::transport`](super::Command::transport)).
    pub fn transport(&self) -> Kind {
        self.data.kind()
    }

    /// Takes the link apart: the producer to the peer, the consumer from it, and the control
    /// socket. Keep the socket open as long as the link serves: the peer takes its hang-up
    /// as this side's death. Waits first for the peer to attach.
    ///
    /// # Errors
    /// `InvalidArgument` on a transport other than shm (the link comes back with it);
    /// `PeerGone` when the worker exited before connecting.
    #[allow(clippy::result_large_err)]
    pub fn into_parts(
        mut self,
    ) -> std::result::Result<(Producer, Consumer, OwnedFd), (Self, Error)> {
        if let Err(e) = self.attach(Deadline::Never) {
            return Err((self, e));
        }
        match self.data {
            Data::Rings { tx, rx } => Ok((tx, rx, self.control)),
            data => {
                let e = Error::InvalidArgument(format!(
                    "only a shm link comes apart into a producer and a consumer, not a {} one",
                    data.kind()
                ));
                Err((
                    Link {
                        data,
                        control: self.control,
                        connected: self.connected,
                    },
                    e,
                ))
            }
        }
    }
}

impl AsFd for Link {
    /// The control socket's fd.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.control.as_fd()
    }
}

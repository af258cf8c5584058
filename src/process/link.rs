//! [`Link`]: one side's ends of a parent–worker link, the same type on both sides.
//!
//! The parent's [`Worker`](super::Worker) holds one (and derefs to it); the worker's
//! [`connect`](super::worker::connect) returns one. Either way it is the frames to the peer,
//! the frames from it, and the control socket: the peer's hang-up on it is its death, and
//! frames too big for a ring pass their side segments over it.

use super::control::{self, Event};
use crate::Wait;
use crate::bytes::{Consumer, Deadline, Frame, Loan, Producer};
use crate::error::{Error, Result};
use crate::transport::Kind;
use crate::transport::handoff::Carrier as Data;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

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

/// A deadline `timeout` from now (`None` when that is beyond what an Instant holds).
fn deadline_after(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// What is left of `timeout` at `deadline` (a timeout too long for a deadline stays as is).
fn left(deadline: Option<Instant>, timeout: Duration) -> Duration {
    deadline.map_or(timeout, |t| t.saturating_duration_since(Instant::now()))
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

    /// Waits until the peer is attached, or `deadline`.
    fn await_connected(&mut self, deadline: Option<Instant>) -> Result<()> {
        if self.connected {
            return Ok(());
        }
        match control::wait_event(self.control.as_fd(), deadline)? {
            Event::Hello => {
                self.connected = true;
                Ok(())
            }
            Event::HangUp => Err(Error::PeerGone),
            Event::Nothing => Err(Error::Timeout),
        }
    }

    /// Whether the peer is attached, without waiting.
    fn poll_connected(&mut self) -> Result<bool> {
        match self.await_connected(Some(Instant::now())) {
            Ok(()) => Ok(true),
            Err(Error::Timeout) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Copies `data` to the peer as one frame, waiting for space (and for the peer to
    /// attach).
    /// A frame beyond half the ring goes as a side segment: a sealed memfd whose fd
    /// passes over the control socket.
    ///
    /// # Errors
    /// `NoSpace` when memory for a side segment is short; `PeerGone` when the peer died
    /// (before attaching, too); `Disconnected` when it closed its end; `Corrupted` for a
    /// garbled ring.
    pub fn send(&mut self, data: &[u8]) -> Result<()> {
        self.await_connected(None)?;
        self.data.send(data, Deadline::Never)
    }

    /// Sends one `Pod` value to the peer as a frame of its bytes; read it there in place
    /// with [`Frame::value`].
    ///
    /// # Errors
    /// As for [`send`](Self::send).
    pub fn send_value<T: bytemuck::Pod>(&mut self, value: &T) -> Result<()> {
        self.send(bytemuck::bytes_of(value))
    }

    /// As [`send`](Self::send), but `WouldBlock` instead of waiting. Frames sent before the
    /// worker connected wait in the ring for it.
    ///
    /// # Errors
    /// As for `send`, and `WouldBlock`.
    pub fn try_send(&mut self, data: &[u8]) -> Result<()> {
        if !self.connected && self.hung_up() {
            return Err(Error::PeerGone);
        }
        self.data.send(data, Deadline::Now)
    }

    /// As [`send`](Self::send), waiting at most `timeout` in all.
    ///
    /// # Errors
    /// As for `send`, and `Timeout`.
    pub fn send_timeout(&mut self, data: &[u8], timeout: Duration) -> Result<()> {
        let deadline = deadline_after(timeout);
        self.await_connected(deadline)?;
        self.data
            .send(data, Deadline::after(left(deadline, timeout)))
    }

    /// Lends `len` bytes of the ring to write in place, waiting for space (and
    /// for the peer to attach); [`Loan::commit`] sends them.
    ///
    /// # Errors
    /// As for [`send`](Self::send); `InvalidArgument` on a transport other than shm.
    pub fn loan(&mut self, len: usize) -> Result<Loan<'_>> {
        self.await_connected(None)?;
        self.data.rings()?.0.loan(len)
    }

    /// As [`loan`](Self::loan), but `WouldBlock` instead of waiting.
    ///
    /// # Errors
    /// As for `loan`, and `WouldBlock`.
    pub fn try_loan(&mut self, len: usize) -> Result<Loan<'_>> {
        if !self.connected && self.hung_up() {
            return Err(Error::PeerGone);
        }
        self.data.rings()?.0.try_loan(len)
    }

    /// As [`loan`](Self::loan), waiting at most `timeout` in all.
    ///
    /// # Errors
    /// As for `loan`, and `Timeout`.
    pub fn loan_timeout(&mut self, len: usize, timeout: Duration) -> Result<Loan<'_>> {
        let deadline = deadline_after(timeout);
        self.await_connected(deadline)?;
        self.data
            .rings()?
            .0
            .loan_timeout(len, left(deadline, timeout))
    }

    /// The next frame from the peer, in place, waiting for one (and for the peer to
    /// attach). Dropping the [`Frame`] frees its space.
    ///
    /// # Errors
    /// `PeerGone` when the peer died, after every frame it committed; `Disconnected` when
    /// it closed its end, likewise; `Corrupted` for a garbled ring; `InvalidArgument` on a
    /// transport other than shm (use [`recv_into`](Self::recv_into)).
    pub fn recv(&mut self) -> Result<Frame<'_>> {
        self.await_connected(None)?;
        self.data.rings()?.1.recv()
    }

    /// The next frame from the peer, copied into `buf` (cleared first), waiting for one:
    /// what every transport does.
    ///
    /// # Errors
    /// As for [`recv`](Self::recv), but on any transport.
    pub fn recv_into(&mut self, buf: &mut Vec<u8>) -> Result<()> {
        self.await_connected(None)?;
        self.data.recv_into(buf, Deadline::Never)
    }

    /// As [`recv_into`](Self::recv_into), waiting at most `timeout` in all.
    ///
    /// # Errors
    /// As for `recv_into`, and `Timeout`.
    pub fn recv_into_timeout(&mut self, buf: &mut Vec<u8>, timeout: Duration) -> Result<()> {
        let deadline = deadline_after(timeout);
        self.await_connected(deadline)?;
        let got = self
            .data
            .recv_into(buf, Deadline::after(left(deadline, timeout)));
        match got {
            // Nothing came, but the peer's control end is gone: so is the peer.
            Err(Error::Timeout) if self.hung_up() => Err(Error::PeerGone),
            other => other,
        }
    }

    /// As [`recv`](Self::recv), but `WouldBlock` instead of waiting.
    ///
    /// # Errors
    /// As for `recv`, and `WouldBlock`.
    pub fn try_recv(&mut self) -> Result<Frame<'_>> {
        if !self.poll_connected()? {
            return Err(Error::WouldBlock);
        }
        self.data.rings()?.1.try_recv()
    }

    /// As [`recv`](Self::recv), waiting at most `timeout` in all.
    ///
    /// # Errors
    /// As for `recv`, and `Timeout`.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Frame<'_>> {
        let deadline = deadline_after(timeout);
        self.await_connected(deadline)?;
        match self.data.rings()?.1.recv_timeout(left(deadline, timeout)) {
            // The ring saw nothing, but the peer's control end is gone: so is the peer.
            Err(Error::Timeout) if control::hung_up(self.control.as_fd()) => Err(Error::PeerGone),
            other => other,
        }
    }

    /// The two ends, to use at once (say, to send back a frame while holding it, or from two
    /// threads). Waits first for the peer to attach, so that the ends see its death.
    ///
    /// # Errors
    /// `PeerGone` when the worker exited before connecting; `InvalidArgument` on a
    /// transport other than shm.
    pub fn split(&mut self) -> Result<(&mut Producer, &mut Consumer)> {
        self.await_connected(None)?;
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
        if let Err(e) = self.await_connected(None) {
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

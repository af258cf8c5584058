//! The data path between a parent and its worker: two shm rings, read and written in place,
//! or any other [`Transport`], whose frames are copied into a buffer.

use crate::Wait;
use crate::bytes::{Consumer, Deadline, Producer};
use crate::error::{Error, Result};
use crate::transport::{Kind, MAX_FRAME, Transport};
use std::time::Instant;

/// One side's ends of a worker's data path.
// The rings inline: every send and receive goes through them, and there is one `Data` per
// worker, so the size does not matter but an indirection would.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Data {
    /// A ring each way (the default): zero-copy, loans and in-place frames.
    Shm { tx: Producer, rx: Consumer },
    /// A Unix socket, a pipe pair or a TCP connection.
    Other(Box<dyn Transport>),
}

impl std::fmt::Debug for Data {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.kind())
    }
}

impl Data {
    /// Which transport carries the frames.
    pub(crate) fn kind(&self) -> Kind {
        match self {
            Data::Shm { .. } => Kind::Shm,
            Data::Other(t) => t.kind(),
        }
    }

    /// Sends `frame`, waiting until `deadline`.
    pub(crate) fn send(&mut self, frame: &[u8], deadline: Deadline) -> Result<()> {
        match self {
            Data::Shm { tx, .. } => match deadline {
                Deadline::Now => tx.try_send(frame),
                Deadline::At(t) => {
                    tx.send_timeout(frame, t.saturating_duration_since(Instant::now()))
                }
                Deadline::Never => tx.send(frame),
            },
            Data::Other(t) => match deadline {
                Deadline::Now => t.try_send(frame),
                Deadline::At(at) => t.send_deadline(frame, Some(at)),
                Deadline::Never => t.send(frame),
            },
        }
    }

    /// Receives the next frame into `buf` (cleared first), waiting until `deadline`.
    pub(crate) fn recv_into(&mut self, buf: &mut Vec<u8>, deadline: Deadline) -> Result<()> {
        match self {
            Data::Shm { rx, .. } => {
                let frame = match deadline {
                    Deadline::Now => rx.try_recv(),
                    Deadline::At(t) => rx.recv_timeout(t.saturating_duration_since(Instant::now())),
                    Deadline::Never => rx.recv(),
                }?;
                buf.clear();
                buf.extend_from_slice(&frame);
                Ok(())
            }
            Data::Other(t) => match deadline {
                Deadline::Now => t.try_recv(buf),
                Deadline::At(at) => t.recv_deadline(buf, Some(at)),
                Deadline::Never => t.recv(buf),
            },
        }
    }

    /// The two rings, for what only they do: loans, frames in place, split ends.
    ///
    /// # Errors
    /// `InvalidArgument` on another transport.
    pub(crate) fn rings(&mut self) -> Result<(&mut Producer, &mut Consumer)> {
        match self {
            Data::Shm { tx, rx } => Ok((tx, rx)),
            Data::Other(t) => Err(Error::InvalidArgument(format!(
                "loans and frames in place need the shm transport, and this worker's \
                 link is a {} one: use send and recv_into",
                t.kind()
            ))),
        }
    }

    /// How the rings wait (other transports block in the kernel).
    pub(crate) fn set_wait(&mut self, wait: Wait) {
        if let Data::Shm { tx, rx } = self {
            tx.set_wait(wait);
            rx.set_wait(wait);
        }
    }

    /// The largest frame that can be sent.
    pub(crate) fn max_frame_len(&self) -> usize {
        match self {
            Data::Shm { tx, .. } => tx.max_frame_len(),
            Data::Other(_) => MAX_FRAME,
        }
    }
}

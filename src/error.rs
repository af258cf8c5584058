//! The one error type of zipc's channels.

use std::fmt;
use std::io;

/// What went wrong in a zipc operation.
///
/// Every failure of a channel is one of these; none panics. Errors that concern the peer
/// (`Disconnected`, `PeerGone`) come only after every frame the peer committed was delivered.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A `try_` call found the ring full (send) or empty (receive).
    WouldBlock,
    /// A `_timeout` call ran out of time.
    Timeout,
    /// The peer closed its end; everything it had committed was delivered first.
    Disconnected,
    /// The peer process died (its liveness lock was released without a close); everything it
    /// had committed was delivered first.
    PeerGone,
    /// A frame is larger than the channel carries.
    TooLarge {
        /// The length asked for.
        len: usize,
        /// The largest length this channel carries.
        max: usize,
    },
    /// Shared memory holds something the protocol forbids (a garbled index, length or
    /// header). Nothing was read or written outside the segment.
    Corrupted(String),
    /// The segment was made by an incompatible zipc, or for another kind of channel.
    Incompatible(String),
    /// Something of that name already exists and is in use: the text names it (a live
    /// segment named "orders", a TCP address, a socket path).
    Exists(String),
    /// Nothing of that name exists: the text names what was looked for (a segment, a Unix
    /// socket listener, a TCP listener) as the user gave it.
    NotFound(String),
    /// A name zipc does not accept (empty, too long, or with characters other than
    /// ASCII letters, digits, `.`, `-` and `_`).
    InvalidName(String),
    /// A configuration or argument out of range.
    InvalidArgument(String),
    /// That end of the channel is already held by a live process: the text says which end
    /// of which channel and, where known, the holder's pid.
    Busy(String),
    /// Shared memory is full (`/dev/shm` or the memfd limit): the segment was not created.
    NoSpace {
        /// Bytes the segment needed.
        needed: u64,
    },
    /// A named producer closed with frames no consumer took: none attached within the
    /// linger time (see `Config::linger`), or the one attached had closed or died.
    Undelivered {
        /// Frames committed and never released by a consumer.
        frames: u64,
        /// How long the close waited for a consumer.
        linger: std::time::Duration,
    },
    /// Another operating-system error.
    Io(io::Error),
}

/// `Result<T, zipc::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::WouldBlock => f.write_str("the operation would block"),
            Error::Timeout => f.write_str("timed out"),
            Error::Disconnected => f.write_str("the peer closed the channel"),
            Error::PeerGone => f.write_str("the peer process died"),
            Error::TooLarge { len, max } => {
                write!(
                    f,
                    "frame of {len} bytes is larger than the channel's limit of {max} bytes"
                )
            }
            Error::Corrupted(what) => write!(f, "shared memory is corrupted: {what}"),
            Error::Incompatible(what) => write!(f, "incompatible segment: {what}"),
            Error::Exists(what) => write!(f, "{what} already exists"),
            Error::NotFound(what) => write!(f, "{what} was not found"),
            Error::InvalidName(why) => write!(f, "invalid segment name: {why}"),
            Error::InvalidArgument(why) => write!(f, "invalid argument: {why}"),
            Error::Busy(what) => f.write_str(what),
            Error::NoSpace { needed } => {
                write!(
                    f,
                    "no space left in shared memory for a segment of {needed} bytes"
                )
            }
            Error::Undelivered { frames, linger } => write!(
                f,
                "{frames} committed frame(s) were not delivered: no consumer took them within \
                 the linger time of {linger:?}"
            ),
            Error::Io(e) => write!(f, "I/O error: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> Self {
        let kind = match &e {
            Error::Io(inner) => inner.kind(),
            Error::WouldBlock => io::ErrorKind::WouldBlock,
            Error::Timeout => io::ErrorKind::TimedOut,
            Error::Disconnected | Error::PeerGone => io::ErrorKind::BrokenPipe,
            Error::NotFound(_) => io::ErrorKind::NotFound,
            Error::Exists(_) => io::ErrorKind::AlreadyExists,
            Error::InvalidName(_) | Error::InvalidArgument(_) | Error::TooLarge { .. } => {
                io::ErrorKind::InvalidInput
            }
            Error::Corrupted(_) | Error::Incompatible(_) => io::ErrorKind::InvalidData,
            Error::Busy(_) => io::ErrorKind::ResourceBusy,
            Error::NoSpace { .. } => io::ErrorKind::StorageFull,
            Error::Undelivered { .. } => io::ErrorKind::Other,
        };
        match e {
            Error::Io(inner) => inner,
            other => io::Error::new(kind, other.to_string()),
        }
    }
}

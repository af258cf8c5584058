//! The worker's side: [`connect`] takes the channels its parent spawned it with.
//!
//! ```no_run
//! # fn main() -> zipc::Result<()> {
//! // Answer each frame with its length, until the parent closes.
//! let mut parent = zipc::worker::connect()?;
//! loop {
//!     let len = match parent.recv() {
//!         Ok(frame) => frame.len() as u64,
//!         Err(zipc::Error::Disconnected) => return Ok(()),
//!         Err(e) => return Err(e),
//!     };
//!     parent.send(&len.to_le_bytes())?;
//! }
//! # }
//! ```

use super::FDS_VAR;
use super::control;
use super::data::Data;
use crate::Wait;
use crate::bytes::{Consumer, Deadline, Frame, Loan, Producer};
use crate::error::{Error, Result};
use crate::transport::{Kind, Pipe, Tcp, UnixSocket};
use nix::fcntl::{FcntlArg, FdFlag, fcntl};
use nix::sys::socket::{SockType, getsockopt, sockopt};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Mutex;
use std::time::Duration;

/// Whether this process took its fds already: they are taken (and owned) once.
static TAKEN: Mutex<bool> = Mutex::new(false);

/// The worker's ends of its channels: frames from the parent, frames to it.
///
/// The worker dies with its parent (the parent armed `PR_SET_PDEATHSIG`); should it outlive
/// it anyway, its blocking calls return [`Error::PeerGone`].
pub struct Parent {
    data: Data,
    /// Held for the parent: it hangs up when this process (or this handle) is gone.
    control: OwnedFd,
}

impl std::fmt::Debug for Parent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parent")
            .field("transport", &self.data)
            .finish_non_exhaustive()
    }
}

/// Attaches this process to the channels of the parent that spawned it with
/// [`Worker::spawn`](super::Worker::spawn), and tells the parent it is ready.
///
/// It takes ownership of the fds named in `ZIPC_WORKER_FDS` (they are closed when the
/// [`Parent`] drops, and are not inherited by processes this one starts) and removes that
/// variable from the environment when it can do so soundly, that is when this process has a
/// single thread: call it early in `main`. In a process that already has threads the
/// variable stays; a process that inherits it finds the fds it names closed or not zipc's,
/// and its `connect` fails cleanly without touching them.
///
/// # Errors
/// `InvalidArgument` when this process was not started by `Worker::spawn` (the variable is
/// missing or malformed, or the fds it names are not open or not a worker's channels), or
/// when `connect` was called before in this process; `Corrupted`/`Incompatible` for a bad
/// segment; `PeerGone` when the parent is gone.
pub fn connect() -> Result<Parent> {
    let mut taken = TAKEN.lock().unwrap_or_else(|e| e.into_inner());
    if *taken {
        return Err(Error::InvalidArgument(
            "zipc::worker::connect was called before in this process".into(),
        ));
    }
    let value = std::env::var_os(FDS_VAR).ok_or_else(|| {
        Error::InvalidArgument(format!(
            "{FDS_VAR} is not set: this process was not started by zipc::process::Worker::spawn"
        ))
    })?;
    forget_variable();
    let (kind, raw) = parse(&value)?;
    check(kind, &raw)?;
    *taken = true;
    let take = |fd: RawFd| {
        // SAFETY: the fds are open (checked just now) and were handed to this process by its
        // zipc parent for `connect` alone; `TAKEN` makes this the only time they are owned, so
        // nothing else in the process closes them.
        unsafe { OwnedFd::from_raw_fd(fd) }
    };
    let mut owned: Vec<OwnedFd> = raw.iter().copied().map(take).collect();
    let control = cloexec(owned.pop().ok_or_else(|| malformed(&value))?)?;
    let mut owned = owned.into_iter();
    let mut next = || owned.next().ok_or_else(|| malformed(&value));
    let data = match kind {
        Kind::Shm => {
            // Attaching reopens each segment close-on-exec and closes the inherited fd.
            let mut rx = Consumer::from_fd(next()?)?;
            let mut tx = Producer::from_fd(next()?)?;
            // Frames too big for a ring come and go as side segments over the control socket.
            rx.set_side_socket(control.try_clone()?);
            tx.set_side_socket(control.try_clone()?);
            Data::Shm { tx, rx }
        }
        Kind::UnixSocket => Data::Other(Box::new(UnixSocket::from_fd(cloexec(next()?)?)?)),
        Kind::Pipe => {
            let read = cloexec(next()?)?;
            let write = cloexec(next()?)?;
            Data::Other(Box::new(Pipe::from_fds(read, write)?))
        }
        Kind::Tcp => {
            let stream = std::net::TcpStream::from(cloexec(next()?)?);
            Data::Other(Box::new(Tcp::from_stream(stream)?))
        }
    };
    control::send_hello(control.as_fd())?;
    Ok(Parent { data, control })
}

/// Makes an inherited fd close-on-exec again, so that processes this one starts do not get it.
fn cloexec(fd: OwnedFd) -> Result<OwnedFd> {
    fcntl(fd.as_raw_fd(), FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).map_err(std::io::Error::from)?;
    Ok(fd)
}

/// Removes [`FDS_VAR`] from the environment if this process has one thread.
fn forget_variable() {
    if thread_count() == Some(1) {
        // SAFETY: this process has a single thread, this one (and only it could start
        // another), so nothing reads or writes the environment while we do: what
        // `remove_var` asks of its caller.
        unsafe { std::env::remove_var(FDS_VAR) };
    }
}

/// How many threads this process has (`Threads:` in /proc/self/status).
fn thread_count() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))?
        .trim()
        .parse()
        .ok()
}

fn malformed(value: &std::ffi::OsStr) -> Error {
    Error::InvalidArgument(format!(
        "{FDS_VAR}={value:?} is not distinct fd numbers (3 or more) as a zipc parent sets \
         them: `to_worker,from_worker,control` for shm, or `unix:data,control`, \
         `pipe:read,write,control`, `tcp:data,control`"
    ))
}

/// The transport and fd numbers in the variable's value: as many as the transport takes,
/// distinct, and clear of stdin, stdout and stderr. The control socket's comes last.
fn parse(value: &std::ffi::OsStr) -> Result<(Kind, Vec<RawFd>)> {
    let text = value.to_str().ok_or_else(|| malformed(value))?;
    let (kind, list) = match text.split_once(':') {
        None => (Kind::Shm, text),
        Some(("unix", list)) => (Kind::UnixSocket, list),
        Some(("pipe", list)) => (Kind::Pipe, list),
        Some(("tcp", list)) => (Kind::Tcp, list),
        Some(_) => return Err(malformed(value)),
    };
    let count = match kind {
        Kind::UnixSocket | Kind::Tcp => 2,
        _ => 3,
    };
    let fds: Vec<RawFd> = list
        .split(',')
        .map(|p| p.parse().ok().filter(|&n: &RawFd| n >= 3))
        .collect::<Option<_>>()
        .ok_or_else(|| malformed(value))?;
    let distinct = fds
        .iter()
        .all(|a| fds.iter().filter(|&b| b == a).count() == 1);
    if fds.len() != count || !distinct {
        return Err(malformed(value));
    }
    Ok((kind, fds))
}

/// Checks, without taking them, that the fds are open and what a worker of this transport
/// is given: two sealed memfds, a `SOCK_SEQPACKET` socket, two pipes or a TCP socket, and
/// then the control socket (`SOCK_SEQPACKET`).
fn check(kind: Kind, fds: &[RawFd]) -> Result<()> {
    for &fd in fds {
        if fcntl(fd, FcntlArg::F_GETFD).is_err() {
            return Err(Error::InvalidArgument(format!(
                "fd {fd} named in {FDS_VAR} is not open: this process was not started by \
                 zipc::process::Worker::spawn, or closed it"
            )));
        }
    }
    let Some((&control, data)) = fds.split_last() else {
        return Err(Error::InvalidArgument(format!("{FDS_VAR} names no fds")));
    };
    for &fd in data {
        // SAFETY: `fd` is open (checked above) and this borrow ends with the statement.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        let fits = match kind {
            Kind::Shm => fcntl(fd.as_raw_fd(), FcntlArg::F_GET_SEALS).is_ok(),
            Kind::UnixSocket => control::is_control(fd),
            Kind::Pipe => nix::sys::stat::fstat(fd.as_raw_fd())
                .is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFIFO),
            Kind::Tcp => matches!(getsockopt(&fd, sockopt::SockType), Ok(SockType::Stream)),
        };
        if !fits {
            return Err(Error::InvalidArgument(format!(
                "fd {} named in {FDS_VAR} is not what a zipc worker's {kind} link is made of",
                fd.as_raw_fd()
            )));
        }
    }
    // SAFETY: `control` is open (checked above) and this borrow ends with the statement.
    if !control::is_control(unsafe { BorrowedFd::borrow_raw(control) }) {
        return Err(Error::InvalidArgument(format!(
            "fd {control} named in {FDS_VAR} is not a zipc control socket"
        )));
    }
    Ok(())
}

impl Parent {
    /// Copies `data` to the parent as one frame, waiting for space.
    /// A frame beyond half the ring goes as a side segment: a sealed memfd whose fd
    /// passes over the control socket.
    ///
    /// # Errors
    /// `NoSpace` when memory for a side segment is short; `Disconnected` when the parent closed
    /// its end; `PeerGone` when it died; `Corrupted` for a garbled ring.
    pub fn send(&mut self, data: &[u8]) -> Result<()> {
        self.data.send(data, Deadline::Never)
    }

    /// Sends one `Pod` value to the parent as a frame of its bytes; read it there in place
    /// with [`Frame::value`].
    ///
    /// # Errors
    /// As for [`send`](Self::send).
    pub fn send_value<T: bytemuck::Pod>(&mut self, value: &T) -> Result<()> {
        self.send(bytemuck::bytes_of(value))
    }

    /// As [`send`](Self::send), but `WouldBlock` instead of waiting.
    ///
    /// # Errors
    /// As for `send`, and `WouldBlock`.
    pub fn try_send(&mut self, data: &[u8]) -> Result<()> {
        self.data.send(data, Deadline::Now)
    }

    /// As [`send`](Self::send), waiting at most `timeout`.
    ///
    /// # Errors
    /// As for `send`, and `Timeout`.
    pub fn send_timeout(&mut self, data: &[u8], timeout: Duration) -> Result<()> {
        self.data.send(data, Deadline::after(timeout))
    }

    /// Lends `len` bytes of the ring to write in place, waiting for space; [`Loan::commit`]
    /// sends them.
    ///
    /// # Errors
    /// As for [`send`](Self::send); `InvalidArgument` on a transport other than shm.
    pub fn loan(&mut self, len: usize) -> Result<Loan<'_>> {
        self.data.rings()?.0.loan(len)
    }

    /// As [`loan`](Self::loan), but `WouldBlock` instead of waiting.
    ///
    /// # Errors
    /// As for `loan`, and `WouldBlock`.
    pub fn try_loan(&mut self, len: usize) -> Result<Loan<'_>> {
        self.data.rings()?.0.try_loan(len)
    }

    /// As [`loan`](Self::loan), waiting at most `timeout`.
    ///
    /// # Errors
    /// As for `loan`, and `Timeout`.
    pub fn loan_timeout(&mut self, len: usize, timeout: Duration) -> Result<Loan<'_>> {
        self.data.rings()?.0.loan_timeout(len, timeout)
    }

    /// The next frame from the parent, in place, waiting for one. Dropping the [`Frame`]
    /// frees its space.
    ///
    /// # Errors
    /// `Disconnected` once the parent closed its end and everything it sent was received;
    /// `PeerGone` likewise when it died; `Corrupted` for a garbled ring; `InvalidArgument`
    /// on a transport other than shm (use [`recv_into`](Self::recv_into)).
    pub fn recv(&mut self) -> Result<Frame<'_>> {
        self.data.rings()?.1.recv()
    }

    /// The next frame from the parent, copied into `buf` (cleared first), waiting for one:
    /// what every transport does.
    ///
    /// # Errors
    /// As for [`recv`](Self::recv), but on any transport.
    pub fn recv_into(&mut self, buf: &mut Vec<u8>) -> Result<()> {
        self.data.recv_into(buf, Deadline::Never)
    }

    /// As [`recv_into`](Self::recv_into), waiting at most `timeout`.
    ///
    /// # Errors
    /// As for `recv_into`, and `Timeout`.
    pub fn recv_into_timeout(&mut self, buf: &mut Vec<u8>, timeout: Duration) -> Result<()> {
        self.data.recv_into(buf, Deadline::after(timeout))
    }

    /// As [`recv`](Self::recv), but `WouldBlock` instead of waiting.
    ///
    /// # Errors
    /// As for `recv`, and `WouldBlock`.
    pub fn try_recv(&mut self) -> Result<Frame<'_>> {
        self.data.rings()?.1.try_recv()
    }

    /// As [`recv`](Self::recv), waiting at most `timeout`.
    ///
    /// # Errors
    /// As for `recv`, and `Timeout`.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Frame<'_>> {
        self.data.rings()?.1.recv_timeout(timeout)
    }

    /// The two ends, to use at once (say, to send back a frame while holding it).
    ///
    /// # Errors
    /// `InvalidArgument` on a transport other than shm.
    pub fn split(&mut self) -> Result<(&mut Producer, &mut Consumer)> {
        self.data.rings()
    }

    /// How both ends wait (default [`Wait::Adaptive`]).
    pub fn set_wait(&mut self, wait: Wait) {
        self.data.set_wait(wait);
    }

    /// The largest frame that goes to the parent.
    pub fn max_frame_len(&self) -> usize {
        self.data.max_frame_len()
    }

    /// Which transport carries the frames (the parent's choice).
    pub fn transport(&self) -> Kind {
        self.data.kind()
    }

    /// Takes the handle apart: the producer to the parent, the consumer from it, and the
    /// control socket. Keep the socket open as long as the worker serves: the parent takes
    /// its hang-up as the worker's death.
    ///
    /// # Errors
    /// `InvalidArgument` on a transport other than shm (the handle comes back with it).
    #[allow(clippy::result_large_err)]
    pub fn into_parts(self) -> std::result::Result<(Producer, Consumer, OwnedFd), (Self, Error)> {
        match self.data {
            Data::Shm { tx, rx } => Ok((tx, rx, self.control)),
            data => {
                let e = Error::InvalidArgument(format!(
                    "only a shm link comes apart into a producer and a consumer, not a {} one",
                    data.kind()
                ));
                Err((
                    Parent {
                        data,
                        control: self.control,
                    },
                    e,
                ))
            }
        }
    }
}

impl AsFd for Parent {
    /// The control socket's fd.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.control.as_fd()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn parses_three_distinct_fds() {
        assert_eq!(
            parse(OsStr::new("3,4,5")).unwrap(),
            (Kind::Shm, vec![3, 4, 5])
        );
        assert_eq!(
            parse(OsStr::new("unix:7,3")).unwrap(),
            (Kind::UnixSocket, vec![7, 3])
        );
        assert_eq!(
            parse(OsStr::new("pipe:3,4,5")).unwrap(),
            (Kind::Pipe, vec![3, 4, 5])
        );
        assert_eq!(
            parse(OsStr::new("tcp:9,8")).unwrap(),
            (Kind::Tcp, vec![9, 8])
        );
        for bad in [
            "",
            "3",
            "3,4",
            "3,4,5,6",
            "3,3,4",
            "a,4,5",
            "-1,4,5",
            "0,4,5",
            "3, 4,5",
            "3,4,",
            "unix:3,4,5",
            "ftp:3,4",
            "pipe:3,4",
        ] {
            assert!(
                matches!(parse(OsStr::new(bad)), Err(Error::InvalidArgument(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn fds_that_are_not_a_workers_are_refused_untouched() {
        let memfd = crate::bytes::memfd(crate::Config::default()).unwrap();
        let (a, _b) = control::pair().unwrap();
        let m = memfd.as_raw_fd();
        let s = a.as_raw_fd();
        // A socket where a memfd belongs, a memfd where the socket belongs, a closed fd.
        assert!(matches!(
            check(Kind::Shm, &[s, m, s]),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            check(Kind::Shm, &[m, m, m]),
            Err(Error::InvalidArgument(_))
        ));
        // A memfd where a socket or a pipe belongs.
        assert!(matches!(
            check(Kind::UnixSocket, &[m, s]),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            check(Kind::Pipe, &[m, m, s]),
            Err(Error::InvalidArgument(_))
        ));
        assert!(check(Kind::UnixSocket, &[s, s]).is_ok());
        assert!(matches!(
            check(Kind::Shm, &[m, m, 1_000_000]),
            Err(Error::InvalidArgument(_))
        ));
        assert!(check(Kind::Shm, &[m, m, s]).is_ok());
        // Still open and ours.
        assert!(fcntl(m, FcntlArg::F_GETFD).is_ok() && fcntl(s, FcntlArg::F_GETFD).is_ok());
    }
}

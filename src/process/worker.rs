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
use crate::Wait;
use crate::bytes::{Consumer, Frame, Loan, Producer};
use crate::error::{Error, Result};
use nix::fcntl::{FcntlArg, FdFlag, fcntl};
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
    tx: Producer,
    rx: Consumer,
    /// Held for the parent: it hangs up when this process (or this handle) is gone.
    control: OwnedFd,
}

impl std::fmt::Debug for Parent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parent").finish_non_exhaustive()
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
    let raw = parse(&value)?;
    check(raw)?;
    *taken = true;
    // SAFETY: the three fds are open (checked just now) and were handed to this process by
    // its zipc parent for `connect` alone; `TAKEN` makes this the only time they are owned,
    // so nothing else in the process closes them.
    let [to_worker, from_worker, control] = raw.map(|fd| unsafe { OwnedFd::from_raw_fd(fd) });
    fcntl(control.as_raw_fd(), FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))
        .map_err(std::io::Error::from)?;
    // Attaching reopens each segment close-on-exec and closes the inherited fd.
    let mut rx = Consumer::from_fd(to_worker)?;
    let mut tx = Producer::from_fd(from_worker)?;
    // Frames too big for a ring come and go as side segments over the control socket.
    rx.set_side_socket(control.try_clone()?);
    tx.set_side_socket(control.try_clone()?);
    control::send_hello(control.as_fd())?;
    Ok(Parent { tx, rx, control })
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

/// The three fd numbers in the variable's value: distinct, and clear of stdin, stdout and
/// stderr.
fn parse(value: &std::ffi::OsStr) -> Result<[RawFd; 3]> {
    let malformed = || {
        Error::InvalidArgument(format!(
            "{FDS_VAR}={value:?} is not three distinct fd numbers (3 or more), \
             `to_worker,from_worker,control`"
        ))
    };
    let text = value.to_str().ok_or_else(malformed)?;
    let mut fds = [0 as RawFd; 3];
    let mut parts = text.split(',');
    for fd in &mut fds {
        *fd = parts
            .next()
            .and_then(|p| p.parse().ok())
            .filter(|&n: &RawFd| n >= 3)
            .ok_or_else(malformed)?;
    }
    if parts.next().is_some() || fds[0] == fds[1] || fds[0] == fds[2] || fds[1] == fds[2] {
        return Err(malformed());
    }
    Ok(fds)
}

/// Checks, without taking them, that the fds are open and what a worker is given: two sealed
/// memfds and a `SOCK_SEQPACKET` socket.
fn check([to_worker, from_worker, control]: [RawFd; 3]) -> Result<()> {
    for fd in [to_worker, from_worker, control] {
        if fcntl(fd, FcntlArg::F_GETFD).is_err() {
            return Err(Error::InvalidArgument(format!(
                "fd {fd} named in {FDS_VAR} is not open: this process was not started by \
                 zipc::process::Worker::spawn, or closed it"
            )));
        }
    }
    for fd in [to_worker, from_worker] {
        if fcntl(fd, FcntlArg::F_GET_SEALS).is_err() {
            return Err(Error::InvalidArgument(format!(
                "fd {fd} named in {FDS_VAR} is not a zipc channel (not a memfd)"
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
        self.tx.send(data)
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
        self.tx.try_send(data)
    }

    /// As [`send`](Self::send), waiting at most `timeout`.
    ///
    /// # Errors
    /// As for `send`, and `Timeout`.
    pub fn send_timeout(&mut self, data: &[u8], timeout: Duration) -> Result<()> {
        self.tx.send_timeout(data, timeout)
    }

    /// Lends `len` bytes of the ring to write in place, waiting for space; [`Loan::commit`]
    /// sends them.
    ///
    /// # Errors
    /// As for [`send`](Self::send).
    pub fn loan(&mut self, len: usize) -> Result<Loan<'_>> {
        self.tx.loan(len)
    }

    /// As [`loan`](Self::loan), but `WouldBlock` instead of waiting.
    ///
    /// # Errors
    /// As for `loan`, and `WouldBlock`.
    pub fn try_loan(&mut self, len: usize) -> Result<Loan<'_>> {
        self.tx.try_loan(len)
    }

    /// As [`loan`](Self::loan), waiting at most `timeout`.
    ///
    /// # Errors
    /// As for `loan`, and `Timeout`.
    pub fn loan_timeout(&mut self, len: usize, timeout: Duration) -> Result<Loan<'_>> {
        self.tx.loan_timeout(len, timeout)
    }

    /// The next frame from the parent, in place, waiting for one. Dropping the [`Frame`]
    /// frees its space.
    ///
    /// # Errors
    /// `Disconnected` once the parent closed its end and everything it sent was received;
    /// `PeerGone` likewise when it died; `Corrupted` for a garbled ring.
    pub fn recv(&mut self) -> Result<Frame<'_>> {
        self.rx.recv()
    }

    /// As [`recv`](Self::recv), but `WouldBlock` instead of waiting.
    ///
    /// # Errors
    /// As for `recv`, and `WouldBlock`.
    pub fn try_recv(&mut self) -> Result<Frame<'_>> {
        self.rx.try_recv()
    }

    /// As [`recv`](Self::recv), waiting at most `timeout`.
    ///
    /// # Errors
    /// As for `recv`, and `Timeout`.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Frame<'_>> {
        self.rx.recv_timeout(timeout)
    }

    /// The two ends, to use at once (say, to send back a frame while holding it).
    pub fn split(&mut self) -> (&mut Producer, &mut Consumer) {
        (&mut self.tx, &mut self.rx)
    }

    /// How both ends wait (default [`Wait::Adaptive`]).
    pub fn set_wait(&mut self, wait: Wait) {
        self.tx.set_wait(wait);
        self.rx.set_wait(wait);
    }

    /// The largest frame that goes to the parent.
    pub fn max_frame_len(&self) -> usize {
        self.tx.max_frame_len()
    }

    /// Takes the handle apart: the producer to the parent, the consumer from it, and the
    /// control socket. Keep the socket open as long as the worker serves: the parent takes
    /// its hang-up as the worker's death.
    pub fn into_parts(self) -> (Producer, Consumer, OwnedFd) {
        (self.tx, self.rx, self.control)
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
        assert_eq!(parse(OsStr::new("3,4,5")).unwrap(), [3, 4, 5]);
        for bad in [
            "", "3", "3,4", "3,4,5,6", "3,3,4", "a,4,5", "-1,4,5", "0,4,5", "3, 4,5", "3,4,",
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
        assert!(matches!(check([s, m, s]), Err(Error::InvalidArgument(_))));
        assert!(matches!(check([m, m, m]), Err(Error::InvalidArgument(_))));
        assert!(matches!(
            check([m, m, 1_000_000]),
            Err(Error::InvalidArgument(_))
        ));
        assert!(check([m, m, s]).is_ok());
        // Still open and ours.
        assert!(fcntl(m, FcntlArg::F_GETFD).is_ok() && fcntl(s, FcntlArg::F_GETFD).is_ok());
    }
}

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
use super::link::Link;
use crate::error::{Error, Result};
use crate::transport::handoff::{self, Ops};
use crate::transport::inherit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::Mutex;

/// Whether this process took its fds already: they are taken (and owned) once.
static TAKEN: Mutex<bool> = Mutex::new(false);

/// The worker's ends of its channels: frames from the parent, frames to it. The same
/// [`Link`] as the parent's [`Worker`](super::Worker) derefs to.
///
/// The worker dies with its parent (the parent armed `PR_SET_PDEATHSIG`); should it outlive
/// it anyway, its blocking calls return [`Error::PeerGone`].
pub type Parent = Link;

/// Attaches this process to the channels of the parent that spawned it with
/// [`Worker::spawn`](super::Worker::spawn), and tells the parent it is ready.
///
/// It takes ownership of the fds named in `ZIPC_WORKER_FDS` (they are closed when the
/// [`Parent`] drops, and are not inherited by processes this one starts) and removes that
/// variable from the environment when it can do so soundly, that is when this process has a
/// single thread: call it early in `main`.
///
/// Nothing is taken on the variable's word alone. Beside each fd number the parent wrote the
/// identity (device and inode) of the file it handed over; each fd must be open, not
/// close-on-exec (this process did not make it), of that identity, and of the kind a
/// worker's link is made of (sealed memfds, sockets, pipes), and the fds are claimed once per
/// process. Only then are they owned. A variable that fails any check (stale, inherited by a
/// process the worker started, set by hand) gives an error and leaves every fd it names as
/// it was, open and unchanged, to whoever owns it. The checks run here, once: the data path
/// is the same as without them.
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
    let (carrier, entries) = parse(&value)?;
    let source = inherit::Source {
        var: FDS_VAR,
        parent: "zipc::process::Worker::spawn",
    };
    let mut owned = inherit::claim(&source, &mut taken, &entries, |i, fd| {
        fits(carrier, i + 1 == entries.len(), fd)
    })?;
    // The control socket's fd comes last.
    let control = owned.pop().ok_or_else(|| malformed(&value))?;
    let data = (carrier.adopt)(owned)?;
    control::send_hello(control.as_fd())?;
    Link::new(data, control, true)
}

fn malformed(value: &std::ffi::OsStr) -> Error {
    Error::InvalidArgument(format!(
        "{FDS_VAR}={value:?} is not distinct fd numbers (3 or more, each as FD@DEV.INO) as a \
         zipc parent sets them: `to_worker,from_worker,control` for shm, or \
         `unix:data,control`, `pipe:read,write,control`, `tcp:data,control`"
    ))
}

/// The carrier and fd entries in the variable's value: as many as the carrier takes and the
/// control socket, distinct, and clear of stdin, stdout and stderr. The control socket's comes
/// last.
fn parse(value: &std::ffi::OsStr) -> Result<(&'static Ops, Vec<inherit::Entry>)> {
    let text = value.to_str().ok_or_else(|| malformed(value))?;
    let (tag, list) = match text.split_once(':') {
        None => (None, text),
        Some((tag, list)) => (Some(tag), list),
    };
    let carrier = handoff::by_tag(tag).ok_or_else(|| malformed(value))?;
    let entries: Vec<inherit::Entry> = list
        .split(',')
        .map(|p| inherit::parse_entry(p).filter(|e| e.fd >= 3))
        .collect::<Option<_>>()
        .ok_or_else(|| malformed(value))?;
    let distinct = entries
        .iter()
        .all(|a| entries.iter().filter(|b| b.fd == a.fd).count() == 1);
    if entries.len() != carrier.fds + 1 || !distinct {
        return Err(malformed(value));
    }
    Ok((carrier, entries))
}

/// Whether `fd` is what a worker of this carrier is given (its [`Ops::fits`]), or, for the
/// control socket (the last), a `SOCK_SEQPACKET` socket.
fn fits(carrier: &Ops, is_control: bool, fd: BorrowedFd<'_>) -> Result<()> {
    if is_control {
        if control::is_control(fd) {
            return Ok(());
        }
        return Err(Error::InvalidArgument(format!(
            "fd {} named in {FDS_VAR} is not a zipc control socket; it was left alone",
            fd.as_raw_fd()
        )));
    }
    if !(carrier.fits)(fd) {
        return Err(Error::InvalidArgument(format!(
            "fd {} named in {FDS_VAR} is not what a zipc worker's {} link is made of; it \
             was left alone",
            fd.as_raw_fd(),
            carrier.kind
        )));
    }
    Ok(())
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::transport::Kind;
    use nix::fcntl::{FcntlArg, fcntl};
    use std::ffi::OsStr;

    fn fds(value: &str) -> (Kind, Vec<i32>) {
        let (carrier, entries) = parse(OsStr::new(value)).unwrap();
        (carrier.kind, entries.iter().map(|e| e.fd).collect())
    }

    #[test]
    fn parses_three_distinct_fds() {
        assert_eq!(fds("3@1.2,4@1.3,5@9.9"), (Kind::Shm, vec![3, 4, 5]));
        assert_eq!(fds("unix:7@1.2,3@4.5"), (Kind::UnixSocket, vec![7, 3]));
        assert_eq!(fds("pipe:3@1.2,4@1.2,5@1.2"), (Kind::Pipe, vec![3, 4, 5]));
        assert_eq!(fds("tcp:9@1.2,8@1.2"), (Kind::Tcp, vec![9, 8]));
        // Bare numbers parse: connect then says which is not open, or that it has no identity.
        assert_eq!(fds("900,901,902"), (Kind::Shm, vec![900, 901, 902]));
        for bad in [
            "",
            "3",
            "3,4",
            "3,4,5,6",
            "3,3,4",
            "3@1.2,3@1.3,4@1.4",
            "a,4,5",
            "-1,4,5",
            "0,4,5",
            "3, 4,5",
            "3,4,",
            "3@1,4,5",
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
        let (m, s) = (memfd.as_fd(), a.as_fd());
        // A socket where a memfd belongs, a memfd where the socket belongs.
        assert!(matches!(
            fits(handoff::of(Kind::Shm), false, s),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            fits(handoff::of(Kind::Shm), true, m),
            Err(Error::InvalidArgument(_))
        ));
        // A memfd where a socket or a pipe belongs.
        assert!(matches!(
            fits(handoff::of(Kind::UnixSocket), false, m),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            fits(handoff::of(Kind::Pipe), false, m),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            fits(handoff::of(Kind::Tcp), false, s),
            Err(Error::InvalidArgument(_))
        ));
        assert!(fits(handoff::of(Kind::UnixSocket), false, s).is_ok());
        assert!(
            fits(handoff::of(Kind::Shm), false, m).is_ok()
                && fits(handoff::of(Kind::Shm), true, s).is_ok()
        );
        // Still open and ours.
        assert!(
            fcntl(m.as_raw_fd(), FcntlArg::F_GETFD).is_ok()
                && fcntl(s.as_raw_fd(), FcntlArg::F_GETFD).is_ok()
        );
    }
}

//! The control socket between a parent and its worker: one end of an `AF_UNIX`
//! `SOCK_SEQPACKET` pair each. The worker sends [`HELLO`] once both its channel ends are
//! attached; the socket hanging up says that the worker's process (or its handle) is gone —
//! the only word on a worker that dies before it attaches, which the rings cannot see.

use crate::error::{Error, Result};
use crate::sys::poll::poll_until;
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{MsgFlags, recv, send};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Instant;

/// The worker attached both channel ends.
pub(crate) const HELLO: u8 = 1;

/// A connected pair, close-on-exec: (the parent's end, the worker's end); and whether an fd
/// is a `SOCK_SEQPACKET` socket, as a control end is.
pub(crate) use crate::transport::handoff::{is_seqpacket as is_control, seqpacket_pair as pair};

/// Tells the parent that the worker is attached.
pub(crate) fn send_hello(fd: BorrowedFd<'_>) -> Result<()> {
    // MSG_NOSIGNAL: a parent that died is an error here, not a SIGPIPE.
    match send(fd.as_raw_fd(), &[HELLO], MsgFlags::MSG_NOSIGNAL) {
        Ok(_) => Ok(()),
        Err(Errno::EPIPE | Errno::ECONNRESET) => Err(Error::PeerGone),
        Err(e) => Err(Error::Io(e.into())),
    }
}

/// What the parent's end of the socket says.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// The worker attached.
    Hello,
    /// The worker's end closed: its process is gone (or it dropped its handle).
    HangUp,
    /// Nothing before the deadline.
    Nothing,
}

/// Waits until the worker says hello or hangs up, or until `deadline` (`None`: no limit).
pub(crate) fn wait_event(fd: BorrowedFd<'_>, deadline: Option<Instant>) -> Result<Event> {
    loop {
        let Some(revents) = poll_until(fd, libc::POLLIN, deadline)? else {
            return Ok(Event::Nothing);
        };
        if revents & libc::POLLIN != 0 {
            let mut msg = [0u8; 64];
            match recv(fd.as_raw_fd(), &mut msg, MsgFlags::MSG_DONTWAIT) {
                // The worker never sends an empty message: this is the end of the stream.
                Ok(0) => return Ok(Event::HangUp),
                Ok(_) if msg[0] == HELLO => return Ok(Event::Hello),
                Ok(n) => {
                    return Err(Error::Corrupted(format!(
                        "the worker sent a {n}-byte control message of type {} before its hello",
                        msg[0]
                    )));
                }
                Err(Errno::EAGAIN | Errno::EINTR) => continue,
                Err(Errno::ECONNRESET) => return Ok(Event::HangUp),
                Err(e) => return Err(Error::Io(e.into())),
            }
        }
        if revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
            return Ok(Event::HangUp);
        }
    }
}

/// Whether the worker's end has hung up, without waiting. A message waiting to be read does
/// not count.
pub(crate) fn hung_up(fd: BorrowedFd<'_>) -> bool {
    let mut fds = [PollFd::new(fd, PollFlags::empty())];
    matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
        && fds[0]
            .revents()
            .is_some_and(|r| r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR))
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
    use std::os::fd::AsFd;
    use std::time::Duration;

    #[test]
    fn hello_then_hang_up() {
        let (parent, worker) = pair().unwrap();
        assert!(is_control(worker.as_fd()));
        let soon = Some(Instant::now() + Duration::from_millis(5));
        assert_eq!(wait_event(parent.as_fd(), soon).unwrap(), Event::Nothing);
        assert!(!hung_up(parent.as_fd()));
        send_hello(worker.as_fd()).unwrap();
        assert_eq!(wait_event(parent.as_fd(), None).unwrap(), Event::Hello);
        drop(worker);
        assert!(hung_up(parent.as_fd()));
        assert_eq!(wait_event(parent.as_fd(), None).unwrap(), Event::HangUp);
    }

    #[test]
    fn hello_to_a_closed_parent_is_peer_gone() {
        let (parent, worker) = pair().unwrap();
        drop(parent);
        assert!(matches!(send_hello(worker.as_fd()), Err(Error::PeerGone)));
    }

    #[test]
    fn other_fds_are_not_control_sockets() {
        let fd = crate::bytes::memfd(crate::Config::default()).unwrap();
        assert!(!is_control(fd.as_fd()));
        let (a, _b) = socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap();
        assert!(!is_control(a.as_fd()));
    }
}

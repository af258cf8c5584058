//! Waiting for one descriptor to be ready, until a deadline.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Instant;

/// Polls `fd` for `events` (`POLLIN`, `POLLOUT`, ...) until it is ready or `deadline` passes
/// (`None`: no limit; a deadline already past: one check, no wait). Returns the events that
/// came (`POLLHUP` and `POLLERR` among them), or `None` at the deadline. Retries `EINTR`.
pub(crate) fn poll_until(
    fd: BorrowedFd<'_>,
    events: libc::c_short,
    deadline: Option<Instant>,
) -> io::Result<Option<libc::c_short>> {
    loop {
        let ms = match deadline {
            None => -1,
            Some(t) => {
                // Round up, so that 0.3 ms left is a wait of 1 ms, not a busy loop of 0 ms.
                let ms = t
                    .saturating_duration_since(Instant::now())
                    .as_micros()
                    .div_ceil(1000);
                i32::try_from(ms).unwrap_or(i32::MAX)
            }
        };
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events,
            revents: 0,
        };
        // SAFETY: one valid pollfd that lives for the call.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n > 0 {
            return Ok(Some(pfd.revents));
        }
        if n == 0 {
            if deadline.is_some_and(|t| Instant::now() >= t) {
                return Ok(None);
            }
            continue;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::time::Duration;

    #[test]
    fn ready_at_once_or_none_at_the_deadline() {
        let (r, w) = nix::unistd::pipe().unwrap();
        let soon = Some(Instant::now() + Duration::from_millis(5));
        assert_eq!(poll_until(r.as_fd(), libc::POLLIN, soon).unwrap(), None);
        let past = Some(Instant::now());
        assert_eq!(poll_until(r.as_fd(), libc::POLLIN, past).unwrap(), None);
        let got = poll_until(w.as_fd(), libc::POLLOUT, None).unwrap();
        assert_eq!(got, Some(libc::POLLOUT));
        drop(w);
        let got = poll_until(r.as_fd(), libc::POLLIN, None).unwrap().unwrap();
        assert!(got & libc::POLLHUP != 0);
    }
}

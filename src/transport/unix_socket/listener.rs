//! [`UnixListener`]: binding a path (and clearing a socket file its owner left), accepting.

use super::{UnixSocket, io_at, socket, unix_addr};
use crate::error::{Error, Result};
use crate::sys::io::{self as sys, wait_ready};
use crate::transport::deadline_after;
use nix::errno::Errno;
use nix::sys::socket::{self as sock, Backlog, SockFlag, UnixAddr};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

impl UnixSocket {
    /// Binds and listens at `path`. A socket file left there by an owner that is gone (a
    /// `connect` to it is refused) is removed first; the file is removed again when the
    /// listener drops.
    ///
    /// Finding out whether the owner lives takes a `connect`: a live owner sees one
    /// connection that closes at once (its receive gives `Disconnected`).
    ///
    /// # Errors
    /// `Exists` when a live socket is bound at `path`; `InvalidArgument` when `path` is
    /// something other than a socket (it is never removed) or too long; `Io` otherwise.
    pub fn listen(path: impl AsRef<Path>) -> Result<UnixListener> {
        let path = path.as_ref();
        let addr = unix_addr(path)?;
        let fd = socket(true)?;
        let mut attempts = 0;
        loop {
            match sock::bind(fd.as_raw_fd(), &addr) {
                Ok(()) => break,
                Err(Errno::EADDRINUSE) if attempts < 3 => {
                    attempts += 1;
                    if !owner_is_gone(path, &addr)? {
                        return Err(Error::Exists(format!(
                            "a live Unix socket at {}",
                            path.display()
                        )));
                    }
                    match std::fs::remove_file(path) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => {
                            return Err(io_at(e, "remove the stale Unix socket file", path));
                        }
                    }
                }
                Err(Errno::EADDRINUSE) => {
                    return Err(Error::Exists(format!(
                        "a Unix socket at {} (bound again each time the stale one was removed)",
                        path.display()
                    )));
                }
                Err(e) => return Err(io_at(e, "bind a Unix socket at", path)),
            }
        }
        let backlog = Backlog::new(128).map_err(io::Error::from)?;
        sock::listen(&fd, backlog).map_err(|e| io_at(e, "listen on the Unix socket at", path))?;
        let meta = std::fs::symlink_metadata(path)
            .map_err(|e| io_at(e, "examine the Unix socket file", path))?;
        Ok(UnixListener {
            fd,
            path: path.to_path_buf(),
            id: (meta.dev(), meta.ino()),
        })
    }
}

/// Whether the socket file at `path` was left by an owner that is gone: a `connect` to it is
/// refused. `Ok(false)` when a live socket answers (of any type).
fn owner_is_gone(path: &Path, addr: &UnixAddr) -> Result<bool> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        // Gone already: bind again.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(true),
        Err(e) => return Err(io_at(e, "examine the Unix socket file", path)),
    };
    if !meta.file_type().is_socket() {
        return Err(Error::InvalidArgument(format!(
            "{} exists and is not a socket; it is left alone",
            path.display()
        )));
    }
    let probe = socket(true)?;
    loop {
        return match sock::connect(probe.as_raw_fd(), addr) {
            // Connected, or a full backlog, or a live socket of another type.
            Ok(()) | Err(Errno::EAGAIN | Errno::EINPROGRESS | Errno::EPROTOTYPE) => Ok(false),
            Err(Errno::ECONNREFUSED | Errno::ENOENT) => Ok(true),
            Err(Errno::EINTR) => continue,
            Err(e) => Err(io_at(e, "connect to the Unix socket at", path)),
        };
    }
}

/// A listening `SOCK_SEQPACKET` socket: [`UnixSocket::listen`]. Dropping it removes its
/// socket file (unless something else was bound there since).
#[derive(Debug)]
pub struct UnixListener {
    fd: OwnedFd,
    path: PathBuf,
    /// Device and inode of the socket file we bound.
    id: (u64, u64),
}

impl UnixListener {
    /// Waits for the next peer.
    ///
    /// # Errors
    /// `Io` when accepting fails.
    pub fn accept(&self) -> Result<UnixSocket> {
        self.accept_deadline(None)
    }

    /// Waits at most `timeout` for the next peer.
    ///
    /// # Errors
    /// `Timeout`, and as for [`accept`](Self::accept).
    pub fn accept_timeout(&self, timeout: Duration) -> Result<UnixSocket> {
        self.accept_deadline(deadline_after(timeout))
    }

    pub(crate) fn accept_deadline(&self, deadline: Option<Instant>) -> Result<UnixSocket> {
        loop {
            match sock::accept4(self.fd.as_raw_fd(), SockFlag::SOCK_CLOEXEC) {
                Ok(raw) => return Ok(UnixSocket::wrap(sys::owned(raw)?)),
                Err(Errno::EAGAIN) => wait_ready(self.fd.as_fd(), libc::POLLIN, deadline)?,
                Err(Errno::EINTR | Errno::ECONNABORTED) => {}
                Err(e) => return Err(Error::Io(e.into())),
            }
        }
    }

    /// The path bound.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl AsFd for UnixListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for UnixListener {
    fn drop(&mut self) {
        if let Ok(meta) = std::fs::symlink_metadata(&self.path)
            && (meta.dev(), meta.ino()) == self.id
        {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

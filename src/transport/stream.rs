//! Frames over a byte stream, for [`Pipe`](super::Pipe) and [`Tcp`](super::Tcp): each frame
//! is its length (u64, little endian) and then its bytes.
//!
//! Reads go through a 64 KiB buffer, so that a run of small frames costs one `read` for many;
//! the payload of a large frame is read straight into the caller's buffer. A frame that fits
//! in 64 KiB with its header is copied into a reused 64 KiB write buffer and leaves in one
//! `write`; a larger one leaves by `writev` of header and payload, without a copy. The
//! descriptors are non-blocking: waiting is `poll` until the deadline.

use super::MAX_FRAME;
use crate::error::{Error, Result};
use crate::sys::io::{peer_error, read_appending, wait_ready, would_block};
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::os::fd::BorrowedFd;
use std::time::Instant;

/// Bytes of length before each frame.
pub(crate) const HEADER: usize = 8;
/// The read buffer, and the largest frame (with its header) copied into the write buffer.
pub(crate) const BUFFER: usize = 64 * 1024;

/// How the stream moves bytes: `read`/`writev` for a pipe, `recv`/`sendmsg` for a socket.
pub(crate) trait ByteIo {
    /// Reads into a prefix of `dst` without blocking (`EAGAIN`: nothing there; 0: the end).
    fn read(&self, fd: BorrowedFd<'_>, dst: &mut [MaybeUninit<u8>]) -> io::Result<usize>;
    /// Writes a prefix of `bufs` without blocking and without raising `SIGPIPE`.
    fn write(&self, fd: BorrowedFd<'_>, bufs: &[IoSlice<'_>]) -> io::Result<usize>;
}

/// How a stream ended, remembered so that every later receive says the same.
#[derive(Clone, Debug)]
pub(crate) enum End {
    Closed,
    Gone,
    Corrupted(String),
}

impl End {
    pub(crate) fn error(&self) -> Error {
        match self {
            End::Closed => Error::Disconnected,
            End::Gone => Error::PeerGone,
            End::Corrupted(why) => Error::Corrupted(why.clone()),
        }
    }
}

/// The receiving half of a framed stream.
#[derive(Debug)]
pub(crate) struct FrameReader {
    /// Bytes read but not yet handed out: `rbuf[rpos..]`.
    rbuf: Vec<u8>,
    rpos: usize,
    /// The length of the frame whose header was read and whose bytes are coming.
    want: Option<usize>,
    /// That frame's bytes so far, kept here while no receive is running.
    partial: Vec<u8>,
    end: Option<End>,
}

impl FrameReader {
    pub(crate) fn new() -> FrameReader {
        FrameReader {
            rbuf: Vec::with_capacity(BUFFER),
            rpos: 0,
            want: None,
            partial: Vec::new(),
            end: None,
        }
    }

    /// Receives the next frame into `buf`. A receive that stops in the middle of a frame keeps
    /// its bytes for the next one.
    pub(crate) fn recv(
        &mut self,
        io: &impl ByteIo,
        fd: BorrowedFd<'_>,
        buf: &mut Vec<u8>,
        deadline: Option<Instant>,
    ) -> Result<()> {
        if self.want.is_some() {
            std::mem::swap(buf, &mut self.partial);
        } else {
            buf.clear();
        }
        let r = self.recv_inner(io, fd, buf, deadline);
        if r.is_err() && self.want.is_some() {
            std::mem::swap(buf, &mut self.partial);
            buf.clear();
        }
        r
    }

    fn recv_inner(
        &mut self,
        io: &impl ByteIo,
        fd: BorrowedFd<'_>,
        buf: &mut Vec<u8>,
        deadline: Option<Instant>,
    ) -> Result<()> {
        loop {
            let avail = &self.rbuf[self.rpos..];
            let Some(len) = self.want else {
                if avail.len() < HEADER {
                    self.fill(io, fd, deadline)?;
                    continue;
                }
                let len = u64::from_le_bytes(avail[..HEADER].try_into().expect("8 bytes"));
                if len > MAX_FRAME as u64 {
                    let why = format!("a frame of {len} bytes announced, more than {MAX_FRAME}");
                    self.end = Some(End::Corrupted(why.clone()));
                    return Err(Error::Corrupted(why));
                }
                self.rpos += HEADER;
                self.want = Some(len as usize);
                buf.reserve(len as usize);
                continue;
            };
            let take = (len - buf.len()).min(avail.len());
            buf.extend_from_slice(&avail[..take]);
            self.rpos += take;
            let need = len - buf.len();
            if need == 0 {
                self.want = None;
                return Ok(());
            }
            if need < BUFFER {
                self.fill(io, fd, deadline)?;
                continue;
            }
            // A large rest: read it straight into the caller's buffer.
            if let Some(end) = &self.end {
                return Err(end.error());
            }
            match read_appending(buf, need, |dst| io.read(fd, dst)) {
                Ok(0) => return Err(self.ended(End::Gone)),
                Ok(_) => {}
                Err(e) if would_block(&e) => wait_ready(fd, libc::POLLIN, deadline)?,
                Err(e) => return Err(self.failed(e)),
            }
        }
    }

    /// Reads more bytes into the read buffer, waiting for them until `deadline`.
    fn fill(
        &mut self,
        io: &impl ByteIo,
        fd: BorrowedFd<'_>,
        deadline: Option<Instant>,
    ) -> Result<()> {
        if let Some(end) = &self.end {
            return Err(end.error());
        }
        if self.rpos > 0 {
            self.rbuf.drain(..self.rpos);
            self.rpos = 0;
        }
        loop {
            let room = BUFFER - self.rbuf.len();
            match read_appending(&mut self.rbuf, room, |dst| io.read(fd, dst)) {
                Ok(0) => {
                    // The end of the stream in the middle of a frame: the peer died mid-send
                    // (or dropped its end with a frame pending).
                    let torn = self.want.is_some() || !self.rbuf.is_empty();
                    return Err(self.ended(if torn { End::Gone } else { End::Closed }));
                }
                Ok(_) => return Ok(()),
                Err(e) if would_block(&e) => wait_ready(fd, libc::POLLIN, deadline)?,
                Err(e) => return Err(self.failed(e)),
            }
        }
    }

    fn ended(&mut self, end: End) -> Error {
        let e = end.error();
        self.end = Some(end);
        e
    }

    fn failed(&mut self, e: io::Error) -> Error {
        match peer_error(e) {
            Error::Disconnected => self.ended(End::Closed),
            Error::PeerGone => self.ended(End::Gone),
            other => other,
        }
    }
}

/// The sending half of a framed stream.
#[derive(Debug)]
pub(crate) struct FrameWriter {
    /// Bytes to write before anything else: `wbuf[wpos..]`, the rest of the last frame.
    wbuf: Vec<u8>,
    wpos: usize,
}

impl FrameWriter {
    pub(crate) fn new() -> FrameWriter {
        FrameWriter {
            wbuf: Vec::with_capacity(BUFFER),
            wpos: 0,
        }
    }

    /// Whether part of a frame waits to be written.
    pub(crate) fn has_pending(&self) -> bool {
        self.wpos < self.wbuf.len()
    }

    /// Sends `frame` whole; at the deadline, the part not yet written is kept for the next
    /// call (which writes it first) and the error is `Timeout`.
    pub(crate) fn send(
        &mut self,
        io: &impl ByteIo,
        fd: BorrowedFd<'_>,
        frame: &[u8],
        deadline: Option<Instant>,
    ) -> Result<()> {
        if frame.len() > MAX_FRAME {
            return Err(Error::TooLarge {
                len: frame.len(),
                max: MAX_FRAME,
            });
        }
        // A timeout here leaves this frame unsent.
        self.flush(io, fd, deadline)?;
        let header = (frame.len() as u64).to_le_bytes();
        if HEADER + frame.len() <= BUFFER {
            self.wbuf.extend_from_slice(&header);
            self.wbuf.extend_from_slice(frame);
            let r = self.flush(io, fd, deadline);
            if r.is_err() && self.wpos == 0 {
                // Not a byte of it went out: the frame is not sent, not kept.
                self.discard();
            }
            return r;
        }
        let total = HEADER + frame.len();
        let mut done = 0;
        while done < total {
            let r = if done < HEADER {
                io.write(fd, &[IoSlice::new(&header[done..]), IoSlice::new(frame)])
            } else {
                io.write(fd, &[IoSlice::new(&frame[done - HEADER..])])
            };
            match r {
                Ok(n) => done += n,
                Err(e) if would_block(&e) => {
                    if let Err(e) = wait_ready(fd, libc::POLLOUT, deadline) {
                        if done > 0 {
                            self.wbuf.extend_from_slice(&header[done.min(HEADER)..]);
                            self.wbuf
                                .extend_from_slice(&frame[done.saturating_sub(HEADER)..]);
                        }
                        return Err(e);
                    }
                }
                Err(e) => return Err(peer_error(e)),
            }
        }
        Ok(())
    }

    /// Writes what is pending, until `deadline`.
    pub(crate) fn flush(
        &mut self,
        io: &impl ByteIo,
        fd: BorrowedFd<'_>,
        deadline: Option<Instant>,
    ) -> Result<()> {
        while self.wpos < self.wbuf.len() {
            match io.write(fd, &[IoSlice::new(&self.wbuf[self.wpos..])]) {
                Ok(n) => self.wpos += n,
                Err(e) if would_block(&e) => wait_ready(fd, libc::POLLOUT, deadline)?,
                Err(e) => {
                    self.discard();
                    return Err(peer_error(e));
                }
            }
        }
        self.discard();
        Ok(())
    }

    /// Forgets what is pending (after a failure: it can never be delivered).
    fn discard(&mut self) {
        self.wbuf.clear();
        self.wpos = 0;
        // The rest of a huge frame may have grown the buffer: give that memory back.
        if self.wbuf.capacity() > 4 * BUFFER {
            self.wbuf = Vec::with_capacity(BUFFER);
        }
    }
}

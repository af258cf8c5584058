//! `vmsplice(2)` of owned buffers into a pipe: [`VmspliceWriter`], [`StableBuf`], [`PageBuf`].

use crate::sys::fd::is_fifo;
use crate::sys::io::{self as sys, retry_len, unread, wait, would_block};
use crate::sys::poll::poll_until;
use crate::{Error, Result};
use memmap2::MmapMut;
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::ops::{Deref, DerefMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A buffer whose bytes stay where they are, unchanged, for as long as the value lives —
/// moved or not — and whose memory is not reused before it is dropped.
///
/// [`VmspliceWriter`] needs this: the pipe refers to the buffer's memory by address until the
/// reader has consumed it.
///
/// # Safety
///
/// `bytes` must return the same slice (address and length) every time, across moves of the
/// value, and no one may change those bytes while the value lives: not through the value (the
/// writer never hands out `&mut`), and not through other handles to the same memory. A
/// `Vec<u8>` qualifies (its heap block does not move with it); `[u8; N]` does not (its bytes
/// move with it); a shared memory mapping that another process writes does not.
pub unsafe trait StableBuf {
    /// The bytes to send.
    fn bytes(&self) -> &[u8];
}

// SAFETY: a Vec's heap block does not move when the Vec does, and only its owner can change it.
unsafe impl StableBuf for Vec<u8> {
    fn bytes(&self) -> &[u8] {
        self
    }
}

// SAFETY: as for Vec: the boxed slice stays put, and only its owner can change it.
unsafe impl StableBuf for Box<[u8]> {
    fn bytes(&self) -> &[u8] {
        self
    }
}

// SAFETY: the shared slice stays put and is immutable: no `Arc` handle can change it while
// another handle (this one) exists.
unsafe impl StableBuf for Arc<[u8]> {
    fn bytes(&self) -> &[u8] {
        self
    }
}

// SAFETY: as for `Arc<[u8]>`; the Vec inside cannot be reached mutably while shared.
unsafe impl StableBuf for Arc<Vec<u8>> {
    fn bytes(&self) -> &[u8] {
        self
    }
}

// SAFETY: a `'static` shared slice is immutable and never freed.
unsafe impl StableBuf for &'static [u8] {
    fn bytes(&self) -> &[u8] {
        self
    }
}

// SAFETY: the mapping stays at its address until dropped, and only its owner can change it.
unsafe impl StableBuf for PageBuf {
    fn bytes(&self) -> &[u8] {
        self
    }
}

/// Page-aligned memory of its own pages (an anonymous private mapping), as `vmsplice` likes
/// it best, and as [`VmspliceWriter::gift`] requires.
pub struct PageBuf {
    map: MmapMut,
    len: usize,
}

impl PageBuf {
    /// `len` zeroed bytes, at the start of whole pages of their own.
    pub fn new(len: usize) -> Result<PageBuf> {
        let page = page_size();
        let map = MmapMut::map_anon(len.max(1).div_ceil(page) * page)?;
        Ok(PageBuf { map, len })
    }

    /// The bytes the mapping has room for (`len` rounded up to whole pages).
    pub fn capacity(&self) -> usize {
        self.map.len()
    }

    /// Sets the length (the bytes sent, and seen through `Deref`) to `len`, at most
    /// [`capacity`](PageBuf::capacity).
    ///
    /// # Panics
    ///
    /// If `len` exceeds the capacity.
    pub fn set_len(&mut self, len: usize) {
        assert!(len <= self.map.len(), "PageBuf::set_len past its mapping");
        self.len = len;
    }
}

impl Deref for PageBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.map[..self.len]
    }
}

impl DerefMut for PageBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.map[..self.len]
    }
}

impl fmt::Debug for PageBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PageBuf")
            .field("ptr", &self.map.as_ptr())
            .field("len", &self.len)
            .finish()
    }
}

fn page_size() -> usize {
    usize::try_from(crate::sys::proc::page_size()).unwrap_or(4096)
}

/// Writes owned buffers into a pipe with `vmsplice(2)`, keeping each until the reader has
/// consumed it.
///
/// `vmsplice` does not copy: it puts references to the buffer's pages into the pipe, and the
/// reader gets the bytes from those pages when it reads — later. Until then the bytes in
/// flight *are* the buffer's memory: write to the buffer and the reader gets the new bytes;
/// free it and let the allocator hand the memory to something else, and the reader gets that
/// something else — possibly secrets, in a reader that may be another, less trusted process.
/// (The kernel holds its own reference to each page, so this is never a use-after-free in the
/// kernel; it is worse: silently wrong or leaked data.) So a buffer cannot simply be lent for
/// the duration of the call, as with `write`.
///
/// Hence this API takes ownership of each buffer ([`send`](VmspliceWriter::send)) and gives it
/// back ([`reclaim`](VmspliceWriter::reclaim)) only once its last byte has left the pipe:
/// the writer counts the bytes it has put in, asks the kernel how many are still unread
/// (`FIONREAD`), and the difference is how far the reader has come. Bytes written into the
/// same pipe by others only make it wait longer, never shorter. No safe code can touch a buffer
/// while the pipe refers to it; a buffer is [`StableBuf`], so moving it into the writer does
/// not move its bytes.
///
/// "Left the pipe" means "no longer referenced" when the reader copies the bytes out: `read`,
/// `splice` into a regular file or `/dev/null`. A reader that passes the pages on without
/// copying — `splice` into a socket (the socket buffer then holds the pages until its own
/// reader reads), into another pipe, or `tee` — keeps referring to them after the pipe is
/// empty. For such readers make the writer with
/// [`with_confirmation`](VmspliceWriter::with_confirmation): a buffer then comes back only
/// once the pipe is past it *and* the reader has said so through
/// [`confirm`](VmspliceWriter::confirm).
///
/// A writer dropped while buffers are still in the pipe leaks them rather than free memory
/// that a reader may still read (at most what the pipe holds); [`finish`](VmspliceWriter::finish)
/// waits for the reader and returns them instead.
///
/// Where a buffer need not come back, [`gift`](VmspliceWriter::gift) a [`PageBuf`]
/// (`SPLICE_F_GIFT`): the writer unmaps it once it is in the pipe, and its pages then belong
/// to the pipe alone.
///
/// ```
/// # fn main() -> zipc::Result<()> {
/// use std::io::Read;
/// use zipc::zerocopy::{SplicePipe, VmspliceWriter};
///
/// let (read, write) = SplicePipe::new()?.into_parts();
/// let mut writer = VmspliceWriter::new(write)?;
/// writer.send(b"hello".to_vec())?;
/// assert_eq!(writer.reclaim()?.count(), 0); // still in the pipe: not given back
/// let mut got = [0; 5];
/// std::fs::File::from(read).read_exact(&mut got)?;
/// assert_eq!(&got, b"hello");
/// let back: Vec<Vec<u8>> = writer.reclaim()?.collect(); // consumed: yours again
/// assert_eq!(back, [b"hello".to_vec()]);
/// # Ok(())
/// # }
/// ```
pub struct VmspliceWriter<B: StableBuf> {
    pipe: OwnedFd,
    /// The buffers in the pipe, oldest first, each with the stream position of its end.
    in_flight: VecDeque<(u64, B)>,
    /// Bytes put into the pipe by this writer.
    sent: u64,
    /// With confirmation: how far the reader has confirmed.
    confirmed: Option<u64>,
}

impl<B: StableBuf> fmt::Debug for VmspliceWriter<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VmspliceWriter")
            .field("pipe", &self.pipe)
            .field("in_flight", &self.in_flight.len())
            .field("sent", &self.sent)
            .field("confirmed", &self.confirmed)
            .finish()
    }
}

impl<B: StableBuf> VmspliceWriter<B> {
    /// A writer into the write end of a pipe. Buffers come back once the pipe is past them.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if `pipe` is not a pipe opened for writing.
    pub fn new(pipe: OwnedFd) -> Result<Self> {
        if !is_fifo(pipe.as_fd())? {
            return Err(Error::InvalidArgument("vmsplice needs a pipe".into()));
        }
        let fl = sys::status_flags(pipe.as_fd())?;
        if fl & libc::O_ACCMODE == libc::O_RDONLY {
            return Err(Error::InvalidArgument(
                "vmsplice needs the write end of the pipe".into(),
            ));
        }
        Ok(VmspliceWriter {
            pipe,
            in_flight: VecDeque::new(),
            sent: 0,
            confirmed: None,
        })
    }

    /// A writer whose buffers come back only once the pipe is past them and the reader has
    /// confirmed it is done with them ([`confirm`](VmspliceWriter::confirm)): for readers that
    /// pass the pages on without copying them.
    pub fn with_confirmation(pipe: OwnedFd) -> Result<Self> {
        let mut w = VmspliceWriter::new(pipe)?;
        w.confirmed = Some(0);
        Ok(w)
    }

    /// Puts all of `buf` into the pipe, waiting for room as needed, and keeps `buf` until the
    /// reader has consumed it.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] (`EPIPE`: no reader). If part of `buf` went in before the error, the
    /// writer keeps `buf` as if sent; otherwise it drops it.
    pub fn send(&mut self, buf: B) -> Result<()> {
        let bytes = buf.bytes();
        let (ptr, len) = (bytes.as_ptr(), bytes.len());
        let start = self.sent;
        let result = self.splice_in(ptr, len, 0);
        if self.sent > start || result.is_ok() {
            self.in_flight.push_back((self.sent, buf));
        }
        result
    }

    /// Gives `buf` to the kernel (`SPLICE_F_GIFT`): puts all of it into the pipe and unmaps
    /// it, so that its pages belong to the pipe alone and no one can change them. Nothing comes
    /// back.
    pub fn gift(&mut self, buf: PageBuf) -> Result<()> {
        let result = self.splice_in(buf.as_ptr(), buf.len(), libc::SPLICE_F_GIFT);
        drop(buf); // munmap: the pipe keeps its own references to the pages
        result
    }

    /// `vmsplice`s `len` bytes from `ptr`, advancing `self.sent` as they go in.
    fn splice_in(&mut self, mut ptr: *const u8, mut len: usize, flags: libc::c_uint) -> Result<()> {
        let fd = self.pipe.as_fd();
        while len > 0 {
            let iov = libc::iovec {
                iov_base: ptr.cast_mut().cast(),
                iov_len: len,
            };
            // SAFETY: `iov` describes `len` readable bytes at `ptr`, which the caller keeps
            // alive (and unchanged) for as long as the pipe refers to them.
            match retry_len(|| unsafe { libc::vmsplice(fd.as_raw_fd(), &iov, 1, flags) }) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero).into()),
                Ok(n) => {
                    self.sent += n as u64;
                    // SAFETY: `n <= len`: still within the caller's buffer.
                    ptr = unsafe { ptr.add(n) };
                    len -= n;
                }
                Err(e) if would_block(&e) => wait(fd, libc::POLLOUT)?,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// How far the reader has come, as far as this writer can tell: what it put in, less what
    /// is still unread in the pipe, and with confirmation no further than confirmed.
    fn consumed(&self) -> Result<u64> {
        let pending = unread(self.pipe.as_fd())? as u64;
        let drained = self.sent.saturating_sub(pending);
        Ok(self.confirmed.map_or(drained, |c| c.min(drained)))
    }

    /// The buffers, oldest first, whose bytes the reader has all consumed (and, with
    /// confirmation, confirmed): they are the caller's again. Does not wait.
    pub fn reclaim(&mut self) -> Result<impl Iterator<Item = B> + '_> {
        let consumed = self.consumed()?;
        let done = self
            .in_flight
            .iter()
            .take_while(|(end, _)| *end <= consumed)
            .count();
        Ok(self.in_flight.drain(..done).map(|(_, b)| b))
    }

    /// Like [`reclaim`](VmspliceWriter::reclaim), but waits until at least one buffer comes
    /// back, or `timeout` passes (`None`: no limit). Returns nothing at once if nothing is in
    /// flight. The kernel cannot signal that a reader has passed a given byte, so this polls
    /// `FIONREAD`: a few yields, then sleeps growing from 20 µs to 1 ms.
    ///
    /// # Errors
    ///
    /// [`Error::Disconnected`] if the pipe has no reader left (the buffers still in it stay
    /// with the writer); [`Error::Timeout`].
    pub fn wait_reclaim(
        &mut self,
        timeout: Option<Duration>,
    ) -> Result<impl Iterator<Item = B> + '_> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut round = 0u32;
        loop {
            let consumed = self.consumed()?;
            if self
                .in_flight
                .front()
                .is_none_or(|(end, _)| *end <= consumed)
            {
                return self.reclaim();
            }
            if self.reader_gone()? {
                return Err(Error::Disconnected);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(Error::Timeout);
            }
            round += 1;
            if round < 16 {
                std::thread::yield_now();
            } else {
                let us = (20u64 << ((round - 16).min(6))).min(1000);
                std::thread::sleep(Duration::from_micros(us));
            }
        }
    }

    /// Whether every read end of the pipe is closed (`POLLERR` on the write end).
    fn reader_gone(&self) -> Result<bool> {
        // A deadline already past: one look, no wait.
        let revents = poll_until(self.pipe.as_fd(), 0, Some(Instant::now()))?;
        Ok(revents.is_some_and(|r| r & libc::POLLERR != 0))
    }

    /// Records that the reader is done with the stream up to `position` (bytes since this
    /// writer was made: [`sent`](VmspliceWriter::sent) counts them). Only a writer made
    /// [`with_confirmation`](VmspliceWriter::with_confirmation) waits for this; a confirmation
    /// can hold buffers back, never release them before the pipe is past them.
    pub fn confirm(&mut self, position: u64) {
        if let Some(c) = &mut self.confirmed {
            *c = (*c).max(position.min(self.sent));
        }
    }

    /// The bytes this writer has put into the pipe (sent and gifted).
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// How many buffers are still in the pipe, held by the writer.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Waits until the reader has consumed (and, with confirmation, confirmed) everything,
    /// then closes this end of the pipe and returns every buffer still held.
    ///
    /// # Errors
    ///
    /// As [`wait_reclaim`](VmspliceWriter::wait_reclaim) (no timeout); the buffers still in
    /// the pipe are then leaked, as by `drop`.
    pub fn finish(mut self) -> Result<Vec<B>> {
        let mut all = Vec::with_capacity(self.in_flight.len());
        while !self.in_flight.is_empty() {
            all.extend(self.wait_reclaim(None)?);
        }
        Ok(all)
    }
}

impl<B: StableBuf> AsFd for VmspliceWriter<B> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.pipe.as_fd()
    }
}

impl<B: StableBuf> Drop for VmspliceWriter<B> {
    fn drop(&mut self) {
        // Free what the reader is done with; leak what the pipe may still refer to.
        let consumed = self.consumed().unwrap_or(0);
        while let Some((end, buf)) = self.in_flight.pop_front() {
            if end <= consumed {
                drop(buf);
            } else {
                std::mem::forget(buf);
            }
        }
    }
}

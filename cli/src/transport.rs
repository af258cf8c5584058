//! The ends the benchmark drives, one small adapter per transport, so that every transport
//! runs the same measuring loop: zipc channels, pipes, Unix SOCK_SEQPACKET sockets and the
//! raw shared-memory floors (busy-poll and futex).

use crate::Result;
use crate::floor::{CacheLinePing, FutexPing, SlotReceiver, SlotSender};
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, setsockopt, socketpair, sockopt};
use std::fs::File;
use std::io::{BufReader, ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use zipc::bytes::{Consumer, Producer};

/// Ring, pipe and socket buffer size asked for: the same 1 MiB for every transport.
pub(crate) const BUFFER: usize = 1 << 20;

/// One end of an 8-byte ping-pong.
pub(crate) trait PingEnd {
    /// Sends `v`.
    fn send(&mut self, v: u64) -> Result<()>;
    /// Waits for the other side's value.
    fn recv(&mut self) -> Result<u64>;
}

/// The sending end of a one-way stream of frames.
pub(crate) trait FrameSink {
    /// Copies `frame` in as one frame.
    fn send_frame(&mut self, frame: &[u8]) -> Result<()>;
    /// Ends the stream: the other side sees the end after every frame sent.
    fn close(self) -> Result<()>;
}

/// The receiving end of a one-way stream of frames.
pub(crate) trait FrameSource {
    /// Copies the next frame, of exactly `dst.len()` bytes, into `dst`; `false` at the end.
    fn recv_frame(&mut self, dst: &mut [u8]) -> Result<bool>;
}

fn word(bytes: &[u8]) -> Result<u64> {
    let arr: [u8; 8] = bytes
        .try_into()
        .map_err(|_| format!("a frame of {} bytes where 8 were expected", bytes.len()))?;
    Ok(u64::from_le_bytes(arr))
}

/// zipc: one channel each way.
pub(crate) struct ZipcPing {
    pub(crate) tx: Producer,
    pub(crate) rx: Consumer,
}

impl PingEnd for ZipcPing {
    #[inline]
    fn send(&mut self, v: u64) -> Result<()> {
        Ok(self.tx.send(&v.to_le_bytes())?)
    }
    #[inline]
    fn recv(&mut self) -> Result<u64> {
        let frame = self.rx.recv()?;
        word(&frame)
    }
}

/// zipc: each frame is loaned in the ring, filled, committed.
pub(crate) struct ZipcSink(pub(crate) Producer);

impl FrameSink for ZipcSink {
    #[inline]
    fn send_frame(&mut self, frame: &[u8]) -> Result<()> {
        let mut loan = self.0.loan(frame.len())?;
        loan.copy_from_slice(frame);
        loan.commit();
        Ok(())
    }
    fn close(self) -> Result<()> {
        drop(self.0);
        Ok(())
    }
}

/// zipc: each frame is read in place and copied out.
pub(crate) struct ZipcSource(pub(crate) Consumer);

impl FrameSource for ZipcSource {
    #[inline]
    fn recv_frame(&mut self, dst: &mut [u8]) -> Result<bool> {
        match self.0.recv() {
            Ok(frame) => {
                if frame.len() != dst.len() {
                    return Err(
                        format!("a frame of {} bytes, not {}", frame.len(), dst.len()).into(),
                    );
                }
                dst.copy_from_slice(&frame);
                Ok(true)
            }
            Err(zipc::Error::Disconnected) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

/// Pipes (one each way) or a socket (the same one both ways): one write, one read per value.
pub(crate) struct FdPing {
    pub(crate) tx: File,
    pub(crate) rx: File,
}

impl PingEnd for FdPing {
    #[inline]
    fn send(&mut self, v: u64) -> Result<()> {
        Ok(self.tx.write_all(&v.to_le_bytes())?)
    }
    #[inline]
    fn recv(&mut self) -> Result<u64> {
        let mut buf = [0u8; 8];
        self.rx.read_exact(&mut buf)?;
        Ok(u64::from_le_bytes(buf))
    }
}

/// A pipe or a socket: one write (send) per frame.
pub(crate) struct FdSink(pub(crate) File);

impl FrameSink for FdSink {
    #[inline]
    fn send_frame(&mut self, frame: &[u8]) -> Result<()> {
        Ok(self.0.write_all(frame)?)
    }
    fn close(self) -> Result<()> {
        drop(self.0);
        Ok(())
    }
}

/// A pipe, read through a 64 KiB buffer (a stream has no frames: a reader buffers, so small
/// frames cost less than a read each; frames of 64 KiB and more bypass the buffer).
pub(crate) struct PipeSource(BufReader<File>);

impl PipeSource {
    pub(crate) fn new(file: File) -> PipeSource {
        PipeSource(BufReader::with_capacity(64 * 1024, file))
    }
}

impl FrameSource for PipeSource {
    #[inline]
    fn recv_frame(&mut self, dst: &mut [u8]) -> Result<bool> {
        let mut got = 0;
        while got < dst.len() {
            match self.0.read(&mut dst[got..]) {
                Ok(0) if got == 0 => return Ok(false),
                Ok(0) => return Err("the pipe ended inside a frame".into()),
                Ok(n) => got += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(true)
    }
}

/// A SOCK_SEQPACKET socket: one recv per frame (each recv returns one record).
pub(crate) struct PacketSource(pub(crate) File);

impl FrameSource for PacketSource {
    #[inline]
    fn recv_frame(&mut self, dst: &mut [u8]) -> Result<bool> {
        loop {
            match self.0.read(dst) {
                Ok(0) => return Ok(false),
                Ok(n) if n == dst.len() => return Ok(true),
                Ok(n) => return Err(format!("a record of {n} bytes, not {}", dst.len()).into()),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl PingEnd for CacheLinePing {
    #[inline]
    fn send(&mut self, v: u64) -> Result<()> {
        CacheLinePing::send(self, v)
    }
    #[inline]
    fn recv(&mut self) -> Result<u64> {
        CacheLinePing::recv(self)
    }
}

impl PingEnd for FutexPing {
    #[inline]
    fn send(&mut self, v: u64) -> Result<()> {
        FutexPing::send(self, v)
    }
    #[inline]
    fn recv(&mut self) -> Result<u64> {
        FutexPing::recv(self)
    }
}

impl FrameSink for SlotSender {
    #[inline]
    fn send_frame(&mut self, frame: &[u8]) -> Result<()> {
        SlotSender::send_frame(self, frame)
    }
    fn close(self) -> Result<()> {
        SlotSender::close(self)
    }
}

impl FrameSource for SlotReceiver {
    #[inline]
    fn recv_frame(&mut self, dst: &mut [u8]) -> Result<bool> {
        SlotReceiver::recv_frame(self, dst)
    }
}

/// A pipe (read end, write end), close-on-exec, grown to [`BUFFER`] where the system allows
/// (`/proc/sys/fs/pipe-max-size`); otherwise it keeps the default 64 KiB.
pub(crate) fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    let _ = fcntl(w.as_raw_fd(), FcntlArg::F_SETPIPE_SZ(BUFFER as i32));
    Ok((r, w))
}

/// A connected pair of Unix SOCK_SEQPACKET sockets, close-on-exec, with send buffers of
/// [`BUFFER`] where `net.core.wmem_max` allows.
pub(crate) fn seqpacket_pair() -> Result<(OwnedFd, OwnedFd)> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?;
    for s in [&a, &b] {
        let _ = setsockopt(s, sockopt::SndBuf, &BUFFER);
        let _ = setsockopt(s, sockopt::RcvBuf, &BUFFER);
    }
    Ok((a, b))
}

//! Side segments: a frame too big for the ring travels as a sealed memfd of its own, whose fd
//! goes over a control socket (`AF_UNIX`, `SOCK_SEQPACKET`) while the ring carries a
//! 16-byte descriptor (sequence number, length) in a frame of kind `KIND_SIDE`.
//!
//! The producer fills the memfd, seals it against writes and resizing, sends it, and only
//! then commits the descriptor: the consumer that sees the descriptor finds the fd already
//! queued on its socket. It checks the message against the descriptor (sequence and length),
//! the seals (so that the producer can neither change the bytes under it nor truncate the
//! file into a SIGBUS) and the size, and maps the file read-only. A side frame costs a memfd,
//! a copy in and two syscalls per side: worth it only beyond what the ring carries.

use crate::error::{Error, Result};
use crate::sys::fd;
use crate::sys::poll::poll_until;
use crate::wait::Deadline;
use nix::errno::Errno;
use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};
use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileExt;

/// The descriptor in the ring: sequence number and length, little-endian u64s.
pub(crate) const DESCRIPTOR_LEN: usize = 16;

/// The largest frame sent through a side segment (1 TiB): beyond, `TooLarge`.
pub(crate) const MAX_SIDE_LEN: usize = 1 << 40;

/// The control message's tag (`S`), ahead of sequence number and length.
const TAG: u8 = b'S';
const MESSAGE_LEN: usize = 1 + DESCRIPTOR_LEN;

/// The seals a side segment carries before it is sent: no write, no resize, no unsealing.
const SIDE_SEALS: libc::c_int = fd::SEALS | libc::F_SEAL_WRITE;

/// One direction's side of the control socket: a producer's or a consumer's.
pub(crate) struct SideLink {
    socket: OwnedFd,
    /// The sequence number of the next side segment.
    next: u64,
}

impl SideLink {
    pub(crate) fn new(socket: OwnedFd) -> SideLink {
        SideLink { socket, next: 0 }
    }

    /// Writes `data` into a fresh sealed memfd and sends its fd, waiting for room on the
    /// socket until `deadline` ([`Deadline::Now`]: no wait). Returns the descriptor for the
    /// ring.
    ///
    /// # Errors
    /// `NoSpace` when memory for the segment is short; `WouldBlock`/`Timeout` when the
    /// socket stays full; `PeerGone` when the peer's end is closed.
    pub(crate) fn send(&mut self, data: &[u8], deadline: Deadline) -> Result<[u8; DESCRIPTOR_LEN]> {
        let memfd = fd::memfd("zipc-side")?;
        let file = std::fs::File::from(memfd);
        let len = data.len() as u64;
        let no_space = |e: std::io::Error| match e.raw_os_error() {
            Some(libc::ENOSPC | libc::ENOMEM | libc::EFBIG) => Error::NoSpace { needed: len },
            _ => Error::Io(e),
        };
        file.set_len(len).map_err(no_space)?;
        file.write_all_at(data, 0).map_err(no_space)?;
        // SAFETY: fcntl on the open memfd we own; F_ADD_SEALS takes an int argument.
        let sealed = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_ADD_SEALS, SIDE_SEALS) };
        if sealed == -1 {
            return Err(Error::Io(std::io::Error::last_os_error()));
        }
        let descriptor = descriptor(self.next, len);
        let mut message = [0u8; MESSAGE_LEN];
        message[0] = TAG;
        message[1..].copy_from_slice(&descriptor);
        let fds = [file.as_raw_fd()];
        let iov = [IoSlice::new(&message)];
        let cmsg = [ControlMessage::ScmRights(&fds)];
        loop {
            let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL;
            match sendmsg::<()>(self.socket.as_raw_fd(), &iov, &cmsg, flags, None) {
                Ok(_) => break,
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => {
                    let until = match deadline {
                        Deadline::Now => return Err(Error::WouldBlock),
                        Deadline::At(t) => Some(t),
                        Deadline::Never => None,
                    };
                    if poll_until(self.socket.as_fd(), libc::POLLOUT, until)?.is_none() {
                        return Err(Error::Timeout);
                    }
                }
                Err(Errno::EPIPE | Errno::ECONNRESET | Errno::ENOTCONN) => {
                    return Err(Error::PeerGone);
                }
                Err(e) => return Err(Error::Io(e.into())),
            }
        }
        self.next += 1;
        Ok(descriptor)
    }

    /// Receives the side segment a descriptor announces and maps it read-only.
    ///
    /// # Errors
    /// `Corrupted` when the descriptor and the socket disagree (no message, another sequence
    /// number or length, no fd, a file that is not sealed or not of that size); `Io` when
    /// mapping fails.
    pub(crate) fn recv(&mut self, descriptor: &[u8]) -> Result<memmap2::Mmap> {
        let (seq, len) = parse(descriptor)?;
        if seq != self.next {
            return Err(Error::Corrupted(format!(
                "side segment {seq} announced where {} was due",
                self.next
            )));
        }
        let (message, file) = self.receive_message()?;
        if message[1..] != descriptor[..DESCRIPTOR_LEN] {
            return Err(Error::Corrupted(format!(
                "the control socket carries another side segment than the ring announces \
                 (sequence {seq}, {len} bytes)"
            )));
        }
        let seals = fd::seals(file.as_fd()).unwrap_or(0);
        if seals & SIDE_SEALS != SIDE_SEALS {
            return Err(Error::Corrupted(
                "a side segment is not sealed against writes and resizing".into(),
            ));
        }
        let size = fd::size(file.as_fd())?;
        if size != len {
            return Err(Error::Corrupted(format!(
                "a side segment of {size} bytes announced as {len}"
            )));
        }
        let file = std::fs::File::from(file);
        let len = usize::try_from(len).map_err(|_| Error::Corrupted("side length".into()))?;
        // SAFETY: the file is sealed against writes, shrinking and growing (checked above), so
        // nobody can change the mapped bytes or truncate the file under the mapping, which is
        // read-only and exactly as long as the file.
        let map = unsafe { memmap2::MmapOptions::new().len(len).map(&file) }?;
        self.next += 1;
        Ok(map)
    }

    /// The next side-segment message and its fd. A message without the tag (the worker's
    /// hello, if the parent did not read it) is skipped; fds that come with anything but a
    /// well-formed message are closed.
    fn receive_message(&mut self) -> Result<([u8; MESSAGE_LEN], OwnedFd)> {
        loop {
            let mut message = [0u8; MESSAGE_LEN + 1];
            let mut space = nix::cmsg_space!([RawFd; 4]);
            let mut iov = [std::io::IoSliceMut::new(&mut message)];
            let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC;
            let msg =
                match recvmsg::<()>(self.socket.as_raw_fd(), &mut iov, Some(&mut space), flags) {
                    Ok(msg) => msg,
                    Err(Errno::EINTR) => continue,
                    Err(Errno::EAGAIN) => {
                        return Err(Error::Corrupted(
                        "the ring announces a side segment that the control socket does not carry"
                            .into(),
                    ));
                    }
                    Err(Errno::ECONNRESET) => return Err(Error::PeerGone),
                    Err(e) => return Err(Error::Io(e.into())),
                };
            let mut fds: Vec<OwnedFd> = Vec::new();
            if let Ok(cmsgs) = msg.cmsgs() {
                for cmsg in cmsgs {
                    if let ControlMessageOwned::ScmRights(raw) = cmsg {
                        for fd in raw {
                            // SAFETY: the kernel installed this fd in our table for this
                            // message; nothing else knows of it, so we own it.
                            fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
                        }
                    }
                }
            }
            let truncated = msg
                .flags
                .intersects(MsgFlags::MSG_CTRUNC | MsgFlags::MSG_TRUNC);
            let n = msg.bytes;
            if n == 0 && fds.is_empty() {
                return Err(Error::PeerGone);
            }
            if n != MESSAGE_LEN || message[0] != TAG {
                if fds.is_empty() && !truncated {
                    continue; // not ours (a hello)
                }
                return Err(Error::Corrupted(format!(
                    "a {n}-byte control message with {} fds where a side segment was due",
                    fds.len()
                )));
            }
            if truncated || fds.len() != 1 {
                return Err(Error::Corrupted(format!(
                    "a side-segment message with {} fds{}",
                    fds.len(),
                    if truncated { ", truncated" } else { "" }
                )));
            }
            let mut out = [0u8; MESSAGE_LEN];
            out.copy_from_slice(&message[..MESSAGE_LEN]);
            return Ok((out, fds.remove(0)));
        }
    }
}

fn descriptor(seq: u64, len: u64) -> [u8; DESCRIPTOR_LEN] {
    let mut d = [0u8; DESCRIPTOR_LEN];
    d[..8].copy_from_slice(&seq.to_le_bytes());
    d[8..].copy_from_slice(&len.to_le_bytes());
    d
}

fn parse(d: &[u8]) -> Result<(u64, u64)> {
    let (seq, len) = match (d.get(..8), d.get(8..DESCRIPTOR_LEN)) {
        (Some(s), Some(l)) if d.len() == DESCRIPTOR_LEN => (s, l),
        _ => {
            return Err(Error::Corrupted(format!(
                "a side-segment descriptor of {} bytes",
                d.len()
            )));
        }
    };
    let seq = u64::from_le_bytes(seq.try_into().expect("8 bytes"));
    let len = u64::from_le_bytes(len.try_into().expect("8 bytes"));
    if len == 0 || len > MAX_SIDE_LEN as u64 {
        return Err(Error::Corrupted(format!(
            "a side segment of {len} bytes is announced"
        )));
    }
    Ok((seq, len))
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::{Config, bytes};
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
    use std::time::Duration;

    fn pair() -> (OwnedFd, OwnedFd) {
        socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap()
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 + i / 4093) as u8).collect()
    }

    #[test]
    fn a_segment_goes_and_maps_byte_exact_in_order() {
        let (a, b) = pair();
        let (mut tx, mut rx) = (SideLink::new(a), SideLink::new(b));
        let first = pattern(300_000);
        let second = pattern(5);
        let d1 = tx.send(&first, Deadline::Never).unwrap();
        let d2 = tx.send(&second, Deadline::Now).unwrap();
        assert_eq!(&rx.recv(&d1).unwrap()[..], &first[..]);
        assert_eq!(&rx.recv(&d2).unwrap()[..], &second[..]);
    }

    #[test]
    fn a_descriptor_the_socket_does_not_back_is_corrupted() {
        let (a, b) = pair();
        let (mut tx, mut rx) = (SideLink::new(a), SideLink::new(b));
        // Nothing sent at all.
        assert!(matches!(
            rx.recv(&descriptor(0, 10)),
            Err(Error::Corrupted(_))
        ));
        // Out of sequence, another length, a malformed descriptor, a zero length.
        let d = tx.send(&pattern(10), Deadline::Never).unwrap();
        assert!(matches!(
            rx.recv(&descriptor(1, 10)),
            Err(Error::Corrupted(_))
        ));
        assert!(matches!(rx.recv(&d[..8]), Err(Error::Corrupted(_))));
        assert!(matches!(
            rx.recv(&descriptor(0, 0)),
            Err(Error::Corrupted(_))
        ));
        assert!(matches!(
            rx.recv(&descriptor(0, 11)),
            Err(Error::Corrupted(_))
        ));
    }

    #[test]
    fn an_unsealed_segment_is_refused() {
        let (a, b) = pair();
        let mut rx = SideLink::new(b);
        // A peer that sends a writable memfd could change the bytes under the mapping.
        let memfd = fd::memfd("not-sealed").unwrap();
        fd::size_to(memfd.as_fd(), 10, false).unwrap();
        let mut message = [0u8; MESSAGE_LEN];
        message[0] = TAG;
        message[1..].copy_from_slice(&descriptor(0, 10));
        let fds = [memfd.as_raw_fd()];
        sendmsg::<()>(
            a.as_raw_fd(),
            &[IoSlice::new(&message)],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            None,
        )
        .unwrap();
        let err = rx.recv(&descriptor(0, 10)).unwrap_err();
        assert!(
            matches!(&err, Error::Corrupted(m) if m.contains("sealed")),
            "{err}"
        );
    }

    #[test]
    fn a_full_socket_is_would_block_or_timeout_and_sends_nothing() {
        let (a, b) = pair();
        let mut tx = SideLink::new(a);
        let mut sent = 0u64;
        loop {
            match tx.send(b"x", Deadline::Now) {
                Ok(_) => sent += 1,
                Err(Error::WouldBlock) => break,
                Err(e) => panic!("{e}"),
            }
            assert!(sent < 1_000_000, "the socket never filled");
        }
        let soon = Deadline::after(Duration::from_millis(20));
        assert!(matches!(tx.send(b"x", soon), Err(Error::Timeout)));
        // Every message that went out is one the receiver can take, in order.
        let mut rx = SideLink::new(b);
        for seq in 0..sent {
            assert_eq!(&rx.recv(&descriptor(seq, 1)).unwrap()[..], b"x");
        }
    }

    #[test]
    fn a_closed_peer_is_peer_gone() {
        let (a, b) = pair();
        drop(b);
        let mut tx = SideLink::new(a);
        assert!(matches!(
            tx.send(b"x", Deadline::Never),
            Err(Error::PeerGone)
        ));
    }

    #[test]
    fn big_frames_through_a_channel_with_a_control_socket() {
        let (a, b) = pair();
        let (mut tx, mut rx) = bytes::channel(Config::default().capacity(4096)).unwrap();
        tx.set_side_socket(a);
        rx.set_side_socket(b);
        assert_eq!(tx.max_frame_len(), MAX_SIDE_LEN);
        assert_eq!(tx.max_loan_len(), 2040);
        let frames = [pattern(4096), pattern(3), pattern(100_000), pattern(2040)];
        for f in &frames {
            tx.send(f).unwrap();
        }
        for f in &frames {
            assert_eq!(&*rx.recv().unwrap(), &f[..]);
        }
        // Loans stay within the ring.
        assert!(matches!(tx.loan(4096), Err(Error::TooLarge { .. })));
        drop(tx);
        assert!(matches!(rx.recv(), Err(Error::Disconnected)));
    }

    #[test]
    fn a_kept_side_frame_comes_again_and_is_released_in_place() {
        let (a, b) = pair();
        let (mut tx, mut rx) = bytes::channel(Config::default().capacity(4096)).unwrap();
        tx.set_side_socket(a);
        rx.set_side_socket(b);
        let (big, after) = (pattern(50_000), pattern(7));
        tx.send(&big).unwrap();
        tx.send(&after).unwrap();
        tx.send(&big).unwrap();
        rx.recv().unwrap().keep();
        // The same frame again, from the same mapping (its fd was taken off the socket once).
        assert_eq!(&*rx.recv().unwrap(), &big[..]);
        assert_eq!(&*rx.recv().unwrap(), &after[..]);
        rx.recv().unwrap().keep();
        assert!(rx.release_kept());
        assert!(!rx.release_kept());
        assert!(matches!(rx.try_recv(), Err(Error::WouldBlock)));
    }

    #[test]
    fn a_side_frame_on_a_channel_without_a_control_socket_is_corrupted() {
        let (a, _b) = pair();
        let (mut tx, mut rx) = bytes::channel(Config::default().capacity(4096)).unwrap();
        tx.set_side_socket(a);
        tx.send(&pattern(10_000)).unwrap();
        let err = rx.recv().unwrap_err();
        assert!(
            matches!(&err, Error::Corrupted(m) if m.contains("control socket")),
            "{err}"
        );
    }
}

//! The side target: side-segment descriptors in the ring, and the control messages that
//! should back them, received by a consumer with a control socket.

use super::{Input, check_recv};
use crate::Config;
use crate::channel::bytes;
use crate::error::Error;
use crate::ring;
use crate::shm::DATA_OFFSET;
use std::fs::File;
use std::hint::black_box;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::FileExt;

/// Side segments. Input: entries, each a ring frame (kind, payload) written where the
/// consumer will look, and a control message (bytes, and fds: sealed or unsealed memfds of
/// some size, or a file that is not a memfd) sent on the socket; then receives.
pub fn side(data: &[u8]) {
    use nix::sys::socket::{
        AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType, sendmsg, socketpair,
    };
    let mut input = Input(data);
    let cap = 4096u64;
    let fd = bytes::memfd(Config::default().capacity(cap as usize)).expect("a fresh segment");
    let file = File::from(fd.try_clone().expect("dup"));
    let mut consumer = bytes::Consumer::from_fd(fd).expect("a fresh segment opens");
    let (tx, rx) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .expect("socketpair");
    consumer.set_side_socket(rx);
    let entries = input.byte() % 8;
    let mut idx = 0u64;
    for _ in 0..entries {
        // The ring frame: mostly a descriptor, sometimes data or a wrong kind.
        let sel = input.byte();
        let kind = match sel % 8 {
            0 => ring::KIND_DATA,
            1 => u32::from(input.byte()),
            _ => ring::KIND_SIDE,
        };
        let len = if sel & 0x80 != 0 {
            u64::from(input.byte() % 40)
        } else {
            16
        };
        let payload = input.bytes(len as usize);
        let frame = ring::frame_len(len);
        if idx + frame + 8 <= cap {
            let word = len | (u64::from(kind) << 32);
            file.write_all_at(&word.to_le_bytes(), DATA_OFFSET + idx)
                .expect("write");
            file.write_all_at(&payload, DATA_OFFSET + idx + 8)
                .expect("write");
            idx += frame;
        }
        // The control message.
        let how = input.byte();
        if how & 1 == 0 {
            continue;
        }
        let message_len = usize::from(input.byte() % 24);
        let mut message = input.bytes(message_len);
        if how & 2 != 0 && !message.is_empty() {
            message[0] = b'S';
        }
        let mut fds: Vec<OwnedFd> = Vec::new();
        for _ in 0..(how >> 2) % 4 {
            match side_fd(&mut input) {
                Some(fd) => fds.push(fd),
                None => break,
            }
        }
        let raw: Vec<_> = fds.iter().map(|f| f.as_raw_fd()).collect();
        let cmsg = [ControlMessage::ScmRights(&raw)];
        let cmsgs: &[ControlMessage<'_>] = if raw.is_empty() { &[] } else { &cmsg };
        let iov = [std::io::IoSlice::new(&message)];
        // A full socket drops the message: the consumer must cope with that too.
        let _ = sendmsg::<()>(
            tx.as_raw_fd(),
            &iov,
            cmsgs,
            MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
            None,
        );
    }
    let close_early = input.byte() & 1 != 0;
    let mut tx = Some(tx);
    if close_early {
        tx = None;
    }
    for i in 0..u32::from(entries) + 2 {
        match consumer.try_recv() {
            Ok(frame) => {
                black_box(frame.iter().fold(0u8, |a, b| a ^ b));
                if i % 3 == 2 {
                    frame.keep();
                }
            }
            Err(Error::Io(_)) => {}
            Err(e) => check_recv(e),
        }
    }
    drop(tx);
}

/// An fd to send with a side-segment message: a memfd of the size and seals the input says,
/// or a file that is not a memfd.
fn side_fd(input: &mut Input<'_>) -> Option<OwnedFd> {
    let sel = input.byte();
    if sel & 1 != 0 {
        return File::open("/dev/null").ok().map(OwnedFd::from);
    }
    let memfd = crate::sys::fd::memfd("zipc-fuzz-side").ok()?;
    let size = u64::from(input.u16());
    File::from(memfd.try_clone().ok()?).set_len(size).ok()?;
    let mut seals = 0;
    for (bit, seal) in [
        (2, libc::F_SEAL_SHRINK),
        (4, libc::F_SEAL_GROW),
        (8, libc::F_SEAL_WRITE),
        (16, libc::F_SEAL_SEAL),
    ] {
        if sel & bit != 0 {
            seals |= seal;
        }
    }
    // SAFETY: fcntl on the memfd we own; F_ADD_SEALS takes an int argument.
    unsafe { libc::fcntl(memfd.as_fd().as_raw_fd(), libc::F_ADD_SEALS, seals) };
    Some(memfd)
}

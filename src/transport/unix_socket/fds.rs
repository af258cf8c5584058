//! Datagrams with descriptors: a frame sent in chunks, the first with its descriptors
//! (`SCM_RIGHTS`), and one datagram received with the descriptors of its control messages.

use super::{MAX_FDS, MIN_CHUNK};
use crate::error::Error;
use crate::sys::io::{self as sys, peer_error, wait_ready};
use crate::transport::chunk::{self, HEADER};
use nix::errno::Errno;
use nix::sys::socket::{self as sock, ControlMessage, MsgFlags, UnixAddr};
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Instant;

/// Bytes of control buffer for [`MAX_FDS`] descriptors, 8-aligned.
const CMSG_WORDS: usize = {
    // SAFETY: CMSG_SPACE is arithmetic on its argument; it touches no memory.
    let bytes = unsafe { libc::CMSG_SPACE((MAX_FDS * size_of::<RawFd>()) as libc::c_uint) };
    (bytes as usize).div_ceil(8)
};

/// Sends `data`, which starts at `offset` in a frame of `total` bytes, as datagrams of at
/// most `chunk` bytes, the first with `fds`. On failure, says how much of `data` went out.
pub(super) fn send_chunks(
    fd: BorrowedFd<'_>,
    chunk: &mut usize,
    data: &[u8],
    offset: usize,
    total: usize,
    fds: &[RawFd],
    deadline: Option<Instant>,
) -> std::result::Result<(), (usize, Error)> {
    let mut sent = 0;
    loop {
        let n = (data.len() - sent).min(*chunk);
        let header = chunk::header(offset + sent, n, total);
        let iov = [IoSlice::new(&header), IoSlice::new(&data[sent..sent + n])];
        let rights = [ControlMessage::ScmRights(fds)];
        let cmsgs: &[ControlMessage<'_>] = if sent == 0 && !fds.is_empty() {
            &rights
        } else {
            &[]
        };
        let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL;
        match sock::sendmsg::<UnixAddr>(fd.as_raw_fd(), &iov, cmsgs, flags, None) {
            Ok(m) if m == HEADER + n => {
                sent += n;
                if sent == data.len() {
                    return Ok(());
                }
            }
            Ok(m) => {
                let e = io::Error::other(format!("a datagram of {} bytes went out as {m}", n + 8));
                return Err((sent, Error::Io(e)));
            }
            Err(Errno::EAGAIN) => {
                if let Err(e) = wait_ready(fd, libc::POLLOUT, deadline) {
                    return Err((sent, e));
                }
            }
            Err(Errno::EINTR) => {}
            // The send buffer shrank under us (someone set SO_SNDBUF): smaller datagrams.
            Err(Errno::EMSGSIZE) if *chunk > MIN_CHUNK => *chunk /= 2,
            Err(e) => return Err((sent, peer_error(e.into()))),
        }
    }
}

/// Receives one datagram without waiting: its first bytes into `header`, the rest into
/// `dst`, descriptors (close-on-exec) appended to `fds`. Returns the bytes received and the
/// message flags (`MSG_TRUNC`, `MSG_CTRUNC`).
pub(super) fn recv_message(
    fd: BorrowedFd<'_>,
    header: &mut [u8; HEADER],
    dst: &mut [MaybeUninit<u8>],
    fds: &mut Vec<OwnedFd>,
) -> io::Result<(usize, libc::c_int)> {
    let mut iov = [
        libc::iovec {
            iov_base: header.as_mut_ptr().cast(),
            iov_len: HEADER,
        },
        libc::iovec {
            iov_base: dst.as_mut_ptr().cast(),
            iov_len: dst.len(),
        },
    ];
    let mut control = [0u64; CMSG_WORDS];
    // SAFETY: `msghdr` is plain old data; all-zero (no address) is valid, then we fill it.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_mut_ptr();
    msg.msg_iovlen = iov.len() as _;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = size_of_val(&control) as _;
    let n = sys::retry(|| {
        // SAFETY: `msg` points at the two buffers (`header`, `dst`) and the control buffer,
        // all borrowed mutably for the call; the kernel writes within their lengths.
        sys::len(unsafe {
            libc::recvmsg(
                fd.as_raw_fd(),
                &mut msg,
                libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC,
            )
        })
    })?;
    // SAFETY: the kernel filled `msg_controllen` bytes of `control` with well-formed control
    // messages; the CMSG macros walk them within that length.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    while !cmsg.is_null() {
        // SAFETY: `cmsg` is a header inside `control`, as CMSG_FIRSTHDR/NXTHDR returned it.
        let (level, kind, len) =
            unsafe { ((*cmsg).cmsg_level, (*cmsg).cmsg_type, (*cmsg).cmsg_len) };
        if level == libc::SOL_SOCKET && kind == libc::SCM_RIGHTS {
            // SAFETY: arithmetic on a constant.
            let head = unsafe { libc::CMSG_LEN(0) } as usize;
            #[allow(clippy::unnecessary_cast)] // cmsg_len is not usize on every libc
            let count = (len as usize).saturating_sub(head) / size_of::<RawFd>();
            // SAFETY: the data of an SCM_RIGHTS message is `count` ints inside `control`.
            let data = unsafe { libc::CMSG_DATA(cmsg) }.cast::<RawFd>();
            for i in 0..count {
                // SAFETY: `i < count` ints lie inside the message's data (maybe unaligned).
                let raw = unsafe { data.add(i).read_unaligned() };
                // SAFETY: the kernel installed this descriptor in our table for us alone.
                fds.push(unsafe { OwnedFd::from_raw_fd(raw) });
            }
        }
        // SAFETY: as for CMSG_FIRSTHDR: the walk stays within `msg_controllen`.
        cmsg = unsafe { libc::CMSG_NXTHDR(&msg, cmsg) };
    }
    Ok((n, msg.msg_flags))
}

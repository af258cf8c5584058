//! The segment target: a segment image written over a fresh memfd, opened as a channel's
//! ends and driven with sends, receives and garbling.

use super::{Elem, Input, check_recv, image_len, image_offset, pattern};
use crate::channel::{Shared, bytes, typed};
use crate::error::Error;
use crate::shm::{CONTROL_OFFSET, DATA_OFFSET, READY};
use crate::{Config, Result};
use std::fs::File;
use std::hint::black_box;
use std::os::unix::fs::FileExt;

/// Either end of a byte or typed channel.
enum Ends {
    Bytes(Option<bytes::Producer>, Option<bytes::Consumer>),
    Typed(Option<typed::Producer<Elem>>, Option<typed::Consumer<Elem>>),
}

/// An error opening a segment whose header or positions may be garbled.
fn check_open<T>(r: Result<T>) -> Option<T> {
    match r {
        Ok(end) => Some(end),
        Err(Error::Corrupted(_) | Error::Incompatible(_)) => None,
        Err(e) => panic!("opening a garbled segment: {e}"),
    }
}

/// An error of `try_send`.
fn check_send(r: Result<()>) {
    match r {
        Ok(())
        | Err(
            Error::WouldBlock
            | Error::Disconnected
            | Error::PeerGone
            | Error::Corrupted(_)
            | Error::TooLarge { .. },
        ) => {}
        Err(e) => panic!("try_send: {e}"),
    }
}

/// A segment image. Input: flags (bit 0 typed, bit 1 producer first, bits 2-3 capacity
/// 4096 << 0..=2), the number of operation bytes and those bytes, then the image (see
/// [`image_len`]) written over a fresh segment. The header's `ready` word is set whatever
/// the image says: an unready header is only a bounded wait, not worth the fuzzer's time.
pub fn segment(data: &[u8]) {
    let mut input = Input(data);
    let flags = input.byte();
    let ops_len = usize::from(input.byte());
    let ops = input.bytes(ops_len);
    let cap = 4096u64 << ((flags >> 2) % 3);
    let config = Config::default().capacity(cap as usize);
    let typed_ends = flags & 1 != 0;
    let fd = if typed_ends {
        typed::memfd::<Elem>(config)
    } else {
        bytes::memfd(config)
    }
    .expect("a fresh memfd segment");
    let file = File::from(fd.try_clone().expect("dup"));
    let image = input.bytes(image_len(cap));
    let front = (CONTROL_OFFSET + size_of::<Shared>()).min(image.len());
    file.write_all_at(&image[..front], 0).expect("write");
    file.write_all_at(&image[front..], DATA_OFFSET)
        .expect("write");
    file.write_all_at(&READY.to_le_bytes(), 64).expect("write");
    let dup = || fd.try_clone().expect("dup");
    let producer_first = flags & 2 != 0;
    let mut ends = if typed_ends {
        let (p, c) = if producer_first {
            let p = check_open(typed::Producer::from_fd(dup()));
            (p, check_open(typed::Consumer::from_fd(dup())))
        } else {
            let c = check_open(typed::Consumer::from_fd(dup()));
            (check_open(typed::Producer::from_fd(dup())), c)
        };
        Ends::Typed(p, c)
    } else {
        let (p, c) = if producer_first {
            let p = check_open(bytes::Producer::from_fd(dup()));
            (p, check_open(bytes::Consumer::from_fd(dup())))
        } else {
            let c = check_open(bytes::Consumer::from_fd(dup()));
            (check_open(bytes::Producer::from_fd(dup())), c)
        };
        Ends::Bytes(p, c)
    };
    let mut ops = Input(&ops);
    let mut seq = 0u64;
    while !ops.is_empty() {
        let op = ops.byte();
        match op % 4 {
            0 => {
                seq += 1;
                send(&mut ends, seq, usize::from(op / 4) * 41);
            }
            1 => recv(&mut ends, op & 0x40 != 0),
            2 => {
                // The peer garbles a word (anywhere in the image) between two operations.
                let at = usize::from(ops.u16()) % image_len(cap);
                let value = ops.u64().to_le_bytes();
                let n = value.len().min(image_len(cap) - at);
                file.write_all_at(&value[..n], image_offset(at))
                    .expect("write");
            }
            _ => match (op / 4) % 4 {
                0 => {
                    seq += 1;
                    send(&mut ends, seq, usize::from(op / 16));
                }
                1 => {
                    if let Ends::Bytes(_, Some(c)) = &mut ends {
                        black_box(c.release_kept());
                    }
                }
                2 => {
                    if let Ends::Bytes(_, Some(c)) = &mut ends {
                        c.release_space();
                    }
                }
                _ => {
                    if let Ends::Bytes(Some(p), _) = &mut ends {
                        loan_short(p, usize::from(op / 16) * 97);
                    }
                }
            },
        }
    }
    for _ in 0..16 {
        recv(&mut ends, false);
    }
}

/// A `try_send` of `len` bytes (a typed end sends one element). (Not a batch: its sends
/// wait for space, and the consumer that would make it is this thread.)
fn send(ends: &mut Ends, seq: u64, len: usize) {
    match ends {
        Ends::Bytes(Some(p), _) => check_send(p.try_send(&pattern(seq, len))),
        Ends::Typed(Some(p), _) => {
            let value: Elem = [seq as u32, len as u32, 1, 2, 3];
            check_send(p.try_send(&value));
        }
        _ => {}
    }
}

/// A loan of `len` bytes committed shorter.
fn loan_short(p: &mut bytes::Producer, len: usize) {
    match p.try_loan(len) {
        Ok(mut loan) => {
            loan.fill(0xA5);
            if let Err((_, e)) = loan.commit_len(len / 2) {
                panic!("commit_len of fewer bytes than loaned: {e}");
            }
        }
        Err(e) => check_send(Err(e)),
    }
}

/// A receive, reading every byte of what comes; `keep` keeps a byte frame in the ring.
fn recv(ends: &mut Ends, keep: bool) {
    match ends {
        Ends::Bytes(_, Some(c)) => match c.try_recv() {
            Ok(frame) => {
                black_box(frame.iter().fold(0u8, |a, b| a ^ b));
                if keep {
                    frame.keep();
                }
            }
            Err(e) => check_recv(e),
        },
        Ends::Typed(_, Some(c)) => match c.try_recv() {
            Ok(sample) => {
                black_box(sample.iter().fold(0u32, |a, b| a ^ b));
            }
            Err(e) => check_recv(e),
        },
        _ => {}
    }
}

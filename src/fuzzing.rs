//! Entry points of the fuzz targets in `fuzz/`, compiled only under `cfg(fuzzing)` (which
//! `cargo fuzz` sets). Each plays the fuzzer's bytes as what a garbled or hostile peer could
//! leave in shared memory (or send over a control socket), then drives the code that reads
//! it. A panic, an access outside the memory (AddressSanitizer), an endless loop (the
//! fuzzer's timeout) or an error that the API does not document for the call is a finding.
//!
//! - [`ring`]: positions, frame headers and payload words of a heap ring, driving
//!   `RingProducer` and `RingConsumer` directly. Its honest mode (any start position, no
//!   garbling) also checks that every frame comes back as sent and nothing is `Corrupted`.
//! - [`segment`]: an image of a segment's header, control block and data area written into
//!   a fresh memfd, opened as a byte or typed channel's consumer and producer, and driven
//!   with sends, receives and more garbling between them.
//! - [`side`]: side-segment descriptors in the ring and the control messages (bytes and fds)
//!   that should back them, as a consumer with a control socket receives them.
//!
//! The seeds in `fuzz/corpus/` come from [`seeds`], which records real channels.

use crate::channel::{Shared, bytes, typed};
use crate::error::Error;
use crate::ring::{self, Control, Memory, RingConsumer, RingProducer};
use crate::shm::{CONTROL_OFFSET, DATA_OFFSET, READY};
use crate::sync::{AtomicU64, Ordering};
use crate::{Config, Result};
use std::collections::VecDeque;
use std::fs::File;
use std::hint::black_box;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::ptr::NonNull;

/// The fuzzer's bytes, read front to back; past the end every read is zero.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }
    fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        b.iter_mut().for_each(|x| *x = self.byte());
        u64::from_le_bytes(b)
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(self.0.len());
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head.to_vec()
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The bytes of frame number `seq`, `len` long.
fn pattern(seq: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (seq.wrapping_mul(131) as usize + i * 7) as u8)
        .collect()
}

/// What the honest ring model expects: frames committed, and how many of them are visible.
#[derive(Default)]
struct Model {
    frames: VecDeque<(Vec<u8>, bool)>,
    /// Frames at the front of `frames` that the consumer can see now.
    visible: usize,
    /// A batch holds a header back: frames committed since are not visible before `publish`.
    held: bool,
}

/// Ring level: `cap` (16 ..= 4096), then in honest mode one start position for both ends,
/// otherwise both positions and some data words as they come; then operations.
pub fn ring(data: &[u8]) {
    let mut input = Input(data);
    let cap = 16u64 << (input.byte() % 9);
    let honest = input.byte() & 1 == 0;
    let ctl = Box::new(Control::new());
    let area: Box<[AtomicU64]> = (0..cap / 8).map(|_| AtomicU64::new(0)).collect();
    let (tail_word, head_word) = ctl.positions();
    if honest {
        let start = input.u64() & !7;
        tail_word.store(start, Ordering::Relaxed);
        head_word.store(start, Ordering::Relaxed);
    } else {
        tail_word.store(input.u64(), Ordering::Relaxed);
        head_word.store(input.u64(), Ordering::Relaxed);
        for _ in 0..input.byte() % 32 {
            let w = usize::from(input.byte()) % area.len();
            area[w].store(input.u64(), Ordering::Relaxed);
        }
    }
    let base = NonNull::new(area.as_ptr().cast::<u8>().cast_mut()).expect("a Box is not null");
    // SAFETY: the area is `cap` bytes (a power of two, at least 16) of 8-aligned atomics that
    // outlive both ends (declared after it, so dropped before it); writing through a
    // pointer derived from a shared reference to atomics is allowed (they are UnsafeCells).
    let mem = unsafe { Memory::new(base, cap) };
    let ctl_ptr = NonNull::from(&*ctl);
    // SAFETY: the control block outlives both ends; there is one producer and one consumer.
    let (producer, consumer) = unsafe {
        (
            RingProducer::new(ctl_ptr, mem.clone()),
            RingConsumer::new(ctl_ptr, mem),
        )
    };
    if honest {
        assert!(
            producer.is_ok() && consumer.is_ok(),
            "honest positions refused"
        );
    }
    let (mut producer, mut consumer) = (producer.ok(), consumer.ok());
    let mut model = Model::default();
    let mut seq = 0u64;
    let mut kept: Option<ring::Peeked> = None;
    for _ in 0..512 {
        if input.is_empty() {
            break;
        }
        let op = input.byte();
        match op % 8 {
            0 => {
                let Some(p) = producer.as_mut() else { continue };
                let max = p.max_payload();
                let len = usize::from(input.u16()) % (max + 1);
                let short = usize::from(input.byte()) % (len + 1);
                let side = op & 0x10 != 0;
                let hold = op & 0x20 != 0;
                match p.try_reserve(len) {
                    Ok(Some(r)) => {
                        let bytes = pattern(seq, len);
                        seq += 1;
                        // SAFETY: a reservation of `len` bytes is writable until committed.
                        unsafe {
                            std::ptr::copy_nonoverlapping(bytes.as_ptr(), p.payload(&r), len)
                        };
                        let kind = if side {
                            ring::KIND_SIDE
                        } else {
                            ring::KIND_DATA
                        };
                        let committed = len - short;
                        p.commit_kind(r, committed, kind, hold);
                        model.frames.push_back((bytes[..committed].to_vec(), side));
                        if !model.held {
                            if hold {
                                model.held = true;
                            } else {
                                model.visible = model.frames.len();
                            }
                        }
                    }
                    Ok(None) => {}
                    Err(e) => assert!(!honest, "honest producer: {e:?}"),
                }
            }
            1 => {
                if let Some(p) = producer.as_mut() {
                    p.publish();
                    model.visible = model.frames.len();
                    model.held = false;
                }
            }
            2 | 3 => {
                let Some(c) = consumer.as_mut() else { continue };
                let peeked = match c.try_peek() {
                    Ok(None) => c.try_peek_side(),
                    other => other,
                };
                match peeked {
                    Ok(Some(f)) => {
                        if let Some(k) = kept.take() {
                            assert!(c.is_next(&k), "a kept frame is the next one");
                        }
                        let got = read_peeked(c, &f, base, cap);
                        if honest {
                            assert!(model.visible > 0, "a frame that was not published");
                            let (want, side) = model.frames.pop_front().expect("visible");
                            model.visible -= 1;
                            assert_eq!(got, want, "frame bytes");
                            assert_eq!(f.is_side(), side, "frame kind");
                        }
                        if op & 0x40 != 0 {
                            // Kept: the next peek finds it again.
                            if honest {
                                model.frames.push_front((got, f.is_side()));
                                model.visible += 1;
                            }
                            kept = Some(f);
                        } else {
                            c.release(f, op & 0x10 != 0);
                            assert!(!c.is_next(&f), "a released frame is not the next one");
                        }
                    }
                    Ok(None) => assert!(!honest || model.visible == 0, "a published frame lost"),
                    Err(e) => assert!(!honest, "honest consumer: {e:?}"),
                }
            }
            4 => {
                if let Some(c) = consumer.as_mut() {
                    c.publish_head();
                }
            }
            5 if !honest => {
                let word = if op & 0x10 != 0 { tail_word } else { head_word };
                word.store(input.u64(), Ordering::Relaxed);
            }
            6 if !honest => {
                let w = usize::from(input.u16()) % area.len();
                area[w].store(input.u64(), Ordering::Relaxed);
            }
            7 if honest => {
                // An empty ring takes the largest frame, wherever the positions are.
                let (Some(p), Some(c)) = (producer.as_mut(), consumer.as_mut()) else {
                    continue;
                };
                if model.frames.is_empty() && kept.is_none() && !model.held {
                    c.publish_head();
                    let max = p.max_payload();
                    assert!(
                        matches!(p.try_reserve(max), Ok(Some(_))),
                        "the largest frame does not fit an empty ring"
                    );
                }
            }
            _ => {
                if let Some(p) = producer.as_ref() {
                    black_box(p.has_new_space());
                }
                if let Some(c) = consumer.as_ref() {
                    black_box(c.has_new_data());
                }
            }
        }
    }
}

/// The payload of a peeked frame, checked to lie inside the area.
fn read_peeked(c: &RingConsumer, f: &ring::Peeked, base: NonNull<u8>, cap: u64) -> Vec<u8> {
    let at = c.payload(f) as usize - base.as_ptr() as usize;
    assert!(at % 8 == 0, "payload at {at} unaligned");
    assert!(
        at as u64 + f.len() as u64 <= cap,
        "payload {at} + {} past {cap}",
        f.len()
    );
    assert!(
        f.len() <= c.max_payload(),
        "payload longer than the largest frame"
    );
    // SAFETY: checked just above to lie inside the area, which lives; the fuzz target writes
    // the area only between operations, never while this slice lives.
    unsafe { std::slice::from_raw_parts(c.payload(f), f.len()) }.to_vec()
}

/// The element of the typed channels the targets use: 20 bytes, 4-aligned.
type Elem = [u32; 5];

/// The bytes of a segment image the targets take: the header, the control block, then the
/// data area (the page between the control block and the data area is padding nobody reads).
fn image_len(cap: u64) -> usize {
    CONTROL_OFFSET + size_of::<Shared>() + cap as usize
}

/// The offset in the segment of byte `at` of an image.
fn image_offset(at: usize) -> u64 {
    let front = CONTROL_OFFSET + size_of::<Shared>();
    if at < front {
        at as u64
    } else {
        DATA_OFFSET + (at - front) as u64
    }
}

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

/// An error of `try_recv`.
fn check_recv(e: Error) {
    match e {
        Error::WouldBlock | Error::Disconnected | Error::PeerGone | Error::Corrupted(_) => {}
        e => panic!("try_recv: {e}"),
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

/// The seed corpus: `(target, name, bytes)` for each seed, recorded from real channels (a
/// byte and a typed one after some traffic, across the ring's end and with positions just
/// below 2^64) and from the formats the targets read. Deterministic: the same every run.
pub fn seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut out = Vec::new();
    // ring: honest runs from a few start positions, and a garbled one.
    for (i, start) in [0u64, 4096 - 24, 0u64.wrapping_sub(40), 1 << 40]
        .into_iter()
        .enumerate()
    {
        let mut s = vec![3, 0];
        s.extend(start.to_le_bytes());
        for round in 0..24u8 {
            // push (len, short), sometimes a held one, then publish and pop.
            s.extend([
                if round % 5 == 0 { 0x20 } else { 0 },
                round * 3,
                0,
                round % 3,
            ]);
            s.extend([1, 2 + (round % 2) * 0x10, 7]);
        }
        out.push(("ring", format!("honest-{i}"), s));
    }
    let mut s = vec![3, 1];
    s.extend(0u64.wrapping_sub(16).to_le_bytes());
    s.extend(0u64.wrapping_sub(32).to_le_bytes());
    s.push(2);
    s.extend([0]);
    s.extend((8 | (u64::from(ring::KIND_DATA) << 32)).to_le_bytes());
    s.extend([5]);
    s.extend((u64::from(ring::KIND_PAD) << 32).to_le_bytes());
    s.extend([0, 16, 0, 0, 2, 2, 0x15, 0, 0, 0, 0, 0, 0, 0, 0, 2, 4, 0]);
    out.push(("ring", "garbled".into(), s));

    // segment: images of real channels.
    for (typed_ends, start, frames) in [
        (false, 0u64, 0usize),
        (false, 0, 5),
        (false, 0, 60),
        (false, 0u64.wrapping_sub(4096 + 64), 30),
        (true, 0, 7),
        (true, 0u64.wrapping_sub(512), 40),
    ] {
        let (flags, image) = channel_image(typed_ends, start, frames);
        let ops: Vec<u8> = vec![1, 1, 0x21, 1, 4 * 10, 1, 3, 4 * 20, 0x41, 1, 3 | 4, 1];
        let mut s = vec![flags, ops.len() as u8];
        s.extend(ops);
        s.extend(image);
        let kind = if typed_ends { "typed" } else { "bytes" };
        out.push(("segment", format!("{kind}-{start:x}-{frames}"), s));
    }

    // side: descriptors backed by well-formed messages and sealed memfds, and ones that are not.
    let desc = |seq: u64, len: u64| {
        let mut d = seq.to_le_bytes().to_vec();
        d.extend(len.to_le_bytes());
        d
    };
    let all_seals = 2 | 4 | 8 | 16;
    let mut s = vec![3];
    for (seq, len) in [(0u64, 300u64), (1, 5000), (2, 17)] {
        s.push(2);
        s.extend(desc(seq, len));
        // A message: tag + descriptor, one memfd of `len` bytes, sealed.
        s.extend([1 | 2 | 4, 17, b'S']);
        s.extend(desc(seq, len));
        s.push(all_seals);
        s.extend((len as u16).to_le_bytes());
    }
    s.push(0);
    out.push(("side", "sealed".into(), s));
    let mut s = vec![2, 2];
    s.extend(desc(0, 64));
    s.extend([1 | 2 | 4, 17, b'S']);
    s.extend(desc(0, 64));
    s.extend([2 | 4 | 16, 64, 0]); // not sealed against writes
    s.push(0x82);
    s.push(8);
    s.extend(desc(1, 8)[..8].iter());
    s.extend([1 | 8, 3, b'x', b'y', b'z', 1]); // a hello-like message with a non-memfd
    s.push(1);
    out.push(("side", "unsealed-and-short".into(), s));
    out
}

/// The flags byte and the image of a channel whose positions started at `start` and that
/// carried `frames` frames, the last few left unreceived.
fn channel_image(typed_ends: bool, start: u64, frames: usize) -> (u8, Vec<u8>) {
    let cap = 4096u64;
    let config = Config::default().capacity(cap as usize);
    let fd = if typed_ends {
        typed::memfd::<Elem>(config)
    } else {
        bytes::memfd(config)
    }
    .expect("a fresh segment");
    let file = File::from(fd.try_clone().expect("dup"));
    let (tail_at, head_at) = (CONTROL_OFFSET as u64, CONTROL_OFFSET as u64 + 128);
    file.write_all_at(&start.to_le_bytes(), tail_at)
        .expect("write");
    file.write_all_at(&start.to_le_bytes(), head_at)
        .expect("write");
    let unreceived = frames.min(3);
    if typed_ends {
        let mut p = typed::Producer::<Elem>::from_fd(fd.try_clone().expect("dup")).expect("p");
        let mut c = typed::Consumer::<Elem>::from_fd(fd.try_clone().expect("dup")).expect("c");
        for i in 0..frames as u32 {
            p.send(&[i, i * 3, 7, 8, 9]).expect("send");
            if (i as usize) < frames - unreceived {
                black_box(*c.recv().expect("recv"));
            }
        }
    } else {
        let mut p = bytes::Producer::from_fd(fd.try_clone().expect("dup")).expect("p");
        let mut c = bytes::Consumer::from_fd(fd.try_clone().expect("dup")).expect("c");
        for i in 0..frames {
            p.send(&pattern(i as u64, (i * 37) % 300)).expect("send");
            if i < frames - unreceived {
                black_box(c.recv().expect("recv").len());
            }
        }
    }
    let mut image = vec![0u8; image_len(cap)];
    let front = CONTROL_OFFSET + size_of::<Shared>();
    file.read_exact_at(&mut image[..front], 0).expect("read");
    file.read_exact_at(&mut image[front..], DATA_OFFSET)
        .expect("read");
    // The ends dropped above marked themselves closed, and left their pids and wait words:
    // clear all of the control block past the positions, for a channel both of whose ends
    // may attach again; and a fixed creator, so that the seeds are the same every run.
    image[CONTROL_OFFSET + 2 * 128..front].fill(0);
    image[52..56].copy_from_slice(&1u32.to_le_bytes());
    image[56..64].fill(0);
    (u8::from(typed_ends), image)
}

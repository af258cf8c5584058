//! The ring target: a heap ring whose positions and words the fuzzer sets, driven through
//! `RingProducer` and `RingConsumer`, checked against a model of the frames in honest mode.

use super::{Input, pattern};
use crate::ring::{self, Control, Memory, RingConsumer, RingProducer};
use crate::sync::{AtomicU64, Ordering};
use std::collections::VecDeque;
use std::hint::black_box;
use std::ptr::NonNull;

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

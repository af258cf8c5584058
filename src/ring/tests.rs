//! Ring arithmetic on heap memory: wrap, padding, full, empty, the largest frame, and what a
//! garbled peer can (not) do.

use super::*;

struct Fixture {
    ctl: Box<Control>,
    data: Vec<u64>,
}

impl Fixture {
    fn new(cap: u64) -> Fixture {
        Fixture {
            ctl: Box::new(Control::new()),
            data: vec![0; cap as usize / 8],
        }
    }
    fn cap(&self) -> u64 {
        self.data.len() as u64 * 8
    }
    fn mem(&mut self) -> Memory {
        let cap = self.cap();
        let ptr = NonNull::new(self.data.as_mut_ptr().cast::<u8>()).unwrap();
        // SAFETY: the Vec is 8-aligned, `cap` bytes, and outlives the rings of each test.
        unsafe { Memory::new(ptr, cap) }
    }
    fn ends(&mut self) -> (RingProducer, RingConsumer) {
        let ctl = NonNull::from(&*self.ctl);
        let mem = self.mem();
        // SAFETY: the fixture outlives the rings; one producer and one consumer.
        unsafe {
            (
                RingProducer::new(ctl, mem.clone()).unwrap(),
                RingConsumer::new(ctl, mem).unwrap(),
            )
        }
    }
    /// Writes a raw u64 into the data area, as a garbling peer would.
    fn poke(&mut self, idx: u64, word: u64) {
        self.data[idx as usize / 8] = word;
    }
}

fn push(p: &mut RingProducer, bytes: &[u8]) -> bool {
    match p.try_reserve(bytes.len()).unwrap() {
        Some(r) => {
            // SAFETY: the reservation holds bytes.len() writable bytes.
            unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), p.payload(&r), bytes.len()) };
            p.commit(r, bytes.len(), false);
            p.publish();
            true
        }
        None => false,
    }
}

fn pop(c: &mut RingConsumer) -> Option<Vec<u8>> {
    let f = c.try_peek().unwrap()?;
    // SAFETY: a peeked frame is `len` readable bytes until released.
    let v = unsafe { std::slice::from_raw_parts(c.payload(&f), f.len()) }.to_vec();
    c.release(f, true);
    Some(v)
}

#[test]
fn empty_ring_has_nothing() {
    let mut fx = Fixture::new(64);
    let (_p, mut c) = fx.ends();
    assert!(c.try_peek().unwrap().is_none());
}

#[test]
fn frames_round_trip_in_order() {
    let mut fx = Fixture::new(4096);
    let (mut p, mut c) = fx.ends();
    for i in 0..10u8 {
        assert!(push(&mut p, &vec![i; i as usize * 3]));
    }
    for i in 0..10u8 {
        assert_eq!(pop(&mut c).unwrap(), vec![i; i as usize * 3]);
    }
    assert!(pop(&mut c).is_none());
}

#[test]
fn full_ring_refuses_until_released() {
    let mut fx = Fixture::new(64);
    let (mut p, mut c) = fx.ends();
    // 64 bytes hold three 16-byte frames (8 header + 8 payload) and the terminator after
    // the last; a fourth would leave no room for its terminator.
    for i in 0..3u8 {
        assert!(push(&mut p, &[i; 8]), "frame {i}");
    }
    assert!(!push(&mut p, &[9; 8]), "a full ring refuses");
    assert_eq!(pop(&mut c).unwrap(), [0; 8]);
    assert!(push(&mut p, &[3; 8]), "released space is reused");
    for i in 1..4u8 {
        assert_eq!(pop(&mut c).unwrap(), [i; 8]);
    }
}

#[test]
fn a_frame_that_does_not_fit_before_the_end_pads_and_wraps() {
    let mut fx = Fixture::new(64);
    let (mut p, mut c) = fx.ends();
    assert!(push(&mut p, &[1; 24])); // 0..32
    assert!(push(&mut p, &[2; 16])); // 32..56
    assert_eq!(pop(&mut c).unwrap(), [1; 24]);
    // 8 bytes remain before the end: a 24-byte frame pads 56..64 and starts at 0.
    assert!(push(&mut p, &[3; 16]));
    assert_eq!(p.tail, 64 + 24);
    assert_eq!(p.mem.load_header(56), header(0, KIND_PAD));
    assert_eq!(pop(&mut c).unwrap(), [2; 16]);
    assert_eq!(pop(&mut c).unwrap(), [3; 16]);
    assert_eq!(c.head, 88);
    assert!(pop(&mut c).is_none());
}

#[test]
fn padding_waits_for_room_for_the_frame_after_it() {
    let mut fx = Fixture::new(64);
    let (mut p, mut c) = fx.ends();
    assert!(push(&mut p, &[1; 8])); // 0..16
    assert!(push(&mut p, &[2; 24])); // 16..48
    assert_eq!(pop(&mut c).unwrap(), [1; 8]);
    // 32 free bytes, 16 before the end: a 32-byte frame needs 16 padding + 32 = 48.
    assert!(!push(&mut p, &[3; 24]));
    assert_eq!(pop(&mut c).unwrap(), [2; 24]);
    assert!(push(&mut p, &[3; 24]));
    assert_eq!(pop(&mut c).unwrap(), [3; 24]);
}

#[test]
fn largest_frame_is_half_the_ring_and_always_fits_an_empty_ring() {
    let mut fx = Fixture::new(64);
    let (mut p, mut c) = fx.ends();
    assert_eq!(p.max_payload(), 24);
    // Walk the start through every 8-byte offset; the largest frame fits whenever empty.
    for step in 0..20u8 {
        assert!(push(&mut p, &vec![step; (step % 4) as usize * 8]));
        assert_eq!(pop(&mut c).unwrap(), vec![step; (step % 4) as usize * 8]);
        assert!(
            push(&mut p, &[step; 24]),
            "largest frame at tail {}",
            p.tail
        );
        assert_eq!(pop(&mut c).unwrap(), [step; 24]);
    }
}

#[test]
fn odd_lengths_and_empty_frames() {
    let mut fx = Fixture::new(128);
    let (mut p, mut c) = fx.ends();
    for round in 0..50usize {
        let len = round % 57;
        let data: Vec<u8> = (0..len).map(|i| (i + round) as u8).collect();
        assert!(push(&mut p, &data));
        assert_eq!(pop(&mut c).unwrap(), data);
    }
}

#[test]
fn commit_of_fewer_bytes_than_reserved() {
    let mut fx = Fixture::new(128);
    let (mut p, mut c) = fx.ends();
    let r = p.try_reserve(40).unwrap().unwrap();
    // SAFETY: 40 writable bytes.
    unsafe { p.payload(&r).write_bytes(7, 40) };
    p.commit(r, 5, false);
    p.publish();
    assert_eq!(pop(&mut c).unwrap(), [7; 5]);
    assert_eq!(c.head, 16);
}

#[test]
fn unpublished_frames_are_invisible() {
    let mut fx = Fixture::new(128);
    let (mut p, mut c) = fx.ends();
    // Held (a batch): the first header gates the frames after it until publish.
    for i in 0..3u8 {
        let r = p.try_reserve(8).unwrap().unwrap();
        // SAFETY: 8 writable bytes.
        unsafe { p.payload(&r).write_bytes(i, 8) };
        p.commit(r, 8, true);
    }
    assert!(c.try_peek().unwrap().is_none());
    assert!(p.publish());
    assert!(!p.publish(), "nothing new to publish");
    for i in 0..3u8 {
        assert_eq!(pop(&mut c).unwrap(), [i; 8]);
    }
    assert!(pop(&mut c).is_none());
}

#[test]
fn random_sizes_through_many_wraps() {
    let mut fx = Fixture::new(256);
    let (mut p, mut c) = fx.ends();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let (mut sent, mut got) = (0u64, 0u64);
    let mut expect = std::collections::VecDeque::new();
    while got < 20_000 {
        if next() % 2 == 0 {
            let len = (next() % 121) as usize;
            let data: Vec<u8> = (0..len).map(|i| (sent as usize + i) as u8).collect();
            if push(&mut p, &data) {
                expect.push_back(data);
                sent += 1;
            }
        } else if let Some(v) = pop(&mut c) {
            assert_eq!(v, expect.pop_front().unwrap());
            got += 1;
        }
    }
}

#[test]
fn wild_head_is_corruption() {
    for wild in [5, 72, u64::MAX] {
        let mut fx = Fixture::new(64);
        let (mut p, _c) = fx.ends();
        for _ in 0..3 {
            assert!(push(&mut p, &[1; 8]));
        }
        fx.ctl.head.store(wild, Ordering::Release);
        assert!(
            matches!(
                p.try_reserve(8),
                Err(Corrupt::Position { .. } | Corrupt::Frame { .. })
            ),
            "head {wild}"
        );
    }
}

#[test]
fn frame_longer_than_the_ring_is_corruption() {
    let mut fx = Fixture::new(64);
    let (mut p, mut c) = fx.ends();
    assert!(push(&mut p, &[1; 8]));
    fx.poke(0, u64::from(u32::MAX) | (u64::from(KIND_DATA) << 32));
    assert!(matches!(
        c.try_peek(),
        Err(Corrupt::Position { .. } | Corrupt::Frame { .. })
    ));
    // A length within the ring's limit whose frame would run past the end.
    fx.poke(48, 24 | (u64::from(KIND_DATA) << 32));
    c.head = 48;
    assert!(matches!(c.try_peek(), Err(Corrupt::Frame { .. })));
}

#[test]
fn bad_kind_and_bad_padding_are_corruption() {
    let mut fx = Fixture::new(64);
    let (mut p, mut c) = fx.ends();
    assert!(push(&mut p, &[1; 8]));
    fx.poke(0, 8 | (0x77 << 32));
    assert!(matches!(
        c.try_peek(),
        Err(Corrupt::Position { .. } | Corrupt::Frame { .. })
    ));
    // Padding that does not run to the end of the ring.
    fx.poke(0, 8 | (u64::from(KIND_PAD) << 32));
    assert!(matches!(
        c.try_peek(),
        Err(Corrupt::Position { .. } | Corrupt::Frame { .. })
    ));
}

#[test]
fn padding_after_padding_is_corruption_not_a_loop() {
    let mut fx = Fixture::new(64);
    let (_p, mut c) = fx.ends();
    // Padding at index 0 would make the consumer skip a whole ring for nothing.
    fx.poke(0, 56 | (u64::from(KIND_PAD) << 32));
    assert!(matches!(
        c.try_peek(),
        Err(Corrupt::Position { .. } | Corrupt::Frame { .. })
    ));
}

#[test]
fn attach_checks_stored_positions() {
    let mut fx = Fixture::new(64);
    fx.ctl.tail.store(16, Ordering::Relaxed);
    fx.ctl.head.store(200, Ordering::Relaxed);
    let ctl = NonNull::from(&*fx.ctl);
    let mem = fx.mem();
    // SAFETY: the fixture outlives the attempt.
    let consumer = unsafe { RingConsumer::new(ctl, mem.clone()) };
    assert!(matches!(consumer, Err(Corrupt::Position { .. })));
    // SAFETY: as above.
    let producer = unsafe { RingProducer::new(ctl, mem) };
    assert!(matches!(producer, Err(Corrupt::Position { .. })));
}

#[test]
fn payload_that_looks_like_headers_is_never_taken_for_a_frame() {
    // Every payload word is a valid-looking header: were a header position ever left holding
    // stale payload, the consumer would see a phantom frame.
    let fake = header(8, KIND_DATA).to_le_bytes().repeat(15);
    let mut fx = Fixture::new(256);
    let (mut p, mut c) = fx.ends();
    for round in 0..2_000usize {
        let len = 8 * (round % 16);
        assert!(push(&mut p, &fake[..len]));
        if round % 3 == 0 {
            assert!(push(&mut p, &fake[..8]));
            assert_eq!(pop(&mut c).unwrap(), &fake[..len]);
            assert_eq!(pop(&mut c).unwrap(), &fake[..8]);
        } else {
            assert_eq!(pop(&mut c).unwrap(), &fake[..len]);
        }
        assert!(c.try_peek().unwrap().is_none(), "round {round}");
    }
}

#[test]
fn a_batch_with_padding_stays_hidden_until_published() {
    let mut fx = Fixture::new(64);
    let (mut p, mut c) = fx.ends();
    assert!(push(&mut p, &[1; 24])); // 0..32
    assert_eq!(pop(&mut c).unwrap(), [1; 24]);
    // Held: a 16-byte frame at 32..48, then one that pads 48..64 and lands at 0.
    for (i, len) in [(2u8, 8usize), (3, 16)] {
        let r = p.try_reserve(len).unwrap().unwrap();
        // SAFETY: `len` writable bytes.
        unsafe { p.payload(&r).write_bytes(i, len) };
        p.commit(r, len, true);
    }
    assert!(c.try_peek().unwrap().is_none());
    p.publish();
    assert_eq!(pop(&mut c).unwrap(), [2; 8]);
    assert_eq!(pop(&mut c).unwrap(), [3; 16]);
    assert!(pop(&mut c).is_none());
}

/// A fixture whose two positions both start at `pos`, as a segment a previous pair of ends
/// left behind would have them.
fn ends_at(fx: &mut Fixture, pos: u64) -> (RingProducer, RingConsumer) {
    fx.ctl.tail.store(pos, Ordering::Relaxed);
    fx.ctl.head.store(pos, Ordering::Relaxed);
    fx.ends()
}

#[test]
fn positions_wrap_past_the_top_of_u64() {
    // Start on every 8-byte step of the last ring below 2^64: the wrap falls inside frames,
    // on headers and inside padding, and traffic goes on as anywhere else.
    for back in (8..=64).step_by(8) {
        let mut fx = Fixture::new(64);
        let start = 0u64.wrapping_sub(back);
        let (mut p, mut c) = ends_at(&mut fx, start);
        for round in 0..40u8 {
            let len = usize::from(round % 4) * 8;
            assert!(
                push(&mut p, &vec![round; len]),
                "from {start}, round {round}"
            );
            assert_eq!(pop(&mut c).unwrap(), vec![round; len]);
        }
        assert!(
            p.tail < start && c.head == p.tail,
            "from {start}: {}",
            p.tail
        );
        // The released position the producer reads is the wrapped one.
        assert_eq!(fx.ctl.head.load(Ordering::Relaxed), c.head);
    }
}

#[test]
fn a_full_ring_across_the_wrap_still_refuses_and_frees() {
    let mut fx = Fixture::new(64);
    let (mut p, mut c) = ends_at(&mut fx, 0u64.wrapping_sub(16));
    for i in 0..3u8 {
        assert!(push(&mut p, &[i; 8]), "frame {i}");
    }
    assert!(
        !push(&mut p, &[9; 8]),
        "a full ring refuses across the wrap"
    );
    assert_eq!(pop(&mut c).unwrap(), [0; 8]);
    assert!(push(&mut p, &[3; 8]));
    for i in 1..4u8 {
        assert_eq!(pop(&mut c).unwrap(), [i; 8]);
    }
}

#[test]
fn a_kept_frame_across_the_wrap_is_still_the_next_one() {
    let mut fx = Fixture::new(64);
    let (mut p, mut c) = ends_at(&mut fx, 0u64.wrapping_sub(8));
    // 8 bytes before the end: the frame pads them and starts at index 0, past 2^64.
    assert!(push(&mut p, &[5; 8]));
    let f = c.try_peek().unwrap().unwrap();
    assert_eq!(c.head, 0);
    assert!(c.is_next(&f));
    c.release(f, true);
    assert!(!c.is_next(&f));
}

#[test]
fn a_wild_head_across_the_wrap_is_corruption() {
    // The producer sits just past 2^64; the window of valid consumer positions wraps, and a
    // head outside it, above or below, is refused.
    for wild in [24, 0u64.wrapping_sub(56), 0u64.wrapping_sub(8192)] {
        let mut fx = Fixture::new(64);
        let (mut p, _c) = ends_at(&mut fx, 0u64.wrapping_sub(32));
        for _ in 0..3 {
            assert!(push(&mut p, &[1; 8]));
        }
        assert_eq!(p.tail, 16);
        fx.ctl.head.store(wild, Ordering::Release);
        assert!(
            matches!(p.try_reserve(8), Err(Corrupt::Position { .. })),
            "head {wild}"
        );
    }
}

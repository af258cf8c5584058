//! Loom models of the channel protocol, on the production ring and wait code over heap memory.
//!
//! Run with `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --lib loom`.
//! Every byte of frame data is tracked by a loom cell, so a missing happens-before edge between
//! a write and a read of a frame fails the model; a lost wakeup is a deadlock loom reports.

use super::Heap;
use super::bytes::{Consumer, Producer};
use crate::error::Error;
use loom::thread;

/// A 32-byte ring: frames of 0..=8 payload bytes, so a few frames wrap it, with padding.
const CAP: u64 = 32;

fn payload(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|k| (i * 16 + k) as u8).collect()
}

#[test]
fn frames_cross_a_ring_that_wraps_twice() {
    // 0, 8, 4, 0, 8 payload bytes: 8 + 16 + 16 + 8 + 16 = 64 bytes, two trips round the ring,
    // with a padding frame where a 16-byte frame meets the last 8 bytes.
    const LENS: [usize; 5] = [0, 8, 4, 0, 8];
    loom::model(|| {
        let heap = Heap::new(CAP);
        let mut tx = Producer::on_heap(&heap).unwrap();
        let mut rx = Consumer::on_heap(&heap).unwrap();
        let producer = thread::spawn(move || {
            for (i, len) in LENS.into_iter().enumerate() {
                tx.send(&payload(i, len)).unwrap();
            }
        });
        for (i, len) in LENS.into_iter().enumerate() {
            assert_eq!(&*rx.recv().unwrap(), &payload(i, len)[..]);
        }
        producer.join().unwrap();
        assert!(matches!(rx.recv(), Err(Error::Disconnected)));
    });
}

#[test]
fn a_sleeping_consumer_is_woken_by_a_send() {
    loom::model(|| {
        let heap = Heap::new(CAP);
        let mut tx = Producer::on_heap(&heap).unwrap();
        let mut rx = Consumer::on_heap(&heap).unwrap();
        let consumer = thread::spawn(move || {
            let v = rx.recv().unwrap().to_vec();
            assert_eq!(v, [7u8; 3]);
            rx
        });
        tx.send(&[7; 3]).unwrap();
        // Keep the producer open: only the wake can end the consumer's sleep.
        let _rx = consumer.join().unwrap();
        drop(tx);
    });
}

#[test]
fn a_sleeping_producer_is_woken_by_a_release() {
    loom::model(|| {
        let heap = Heap::new(CAP);
        let mut tx = Producer::on_heap(&heap).unwrap();
        let mut rx = Consumer::on_heap(&heap).unwrap();
        // A 16-byte frame and its terminator fill most of the ring; the next must wait for a
        // release.
        tx.send(&[1; 8]).unwrap();
        let producer = thread::spawn(move || {
            tx.send(&[2; 8]).unwrap();
            tx
        });
        assert_eq!(&*rx.recv().unwrap(), &[1; 8]);
        let _tx = producer.join().unwrap();
        assert_eq!(&*rx.recv().unwrap(), &[2; 8]);
    });
}

#[test]
fn close_wakes_a_blocked_consumer_after_delivering_what_was_sent() {
    loom::model(|| {
        let heap = Heap::new(CAP);
        let mut tx = Producer::on_heap(&heap).unwrap();
        let mut rx = Consumer::on_heap(&heap).unwrap();
        let consumer = thread::spawn(move || {
            assert_eq!(&*rx.recv().unwrap(), &[5; 2]);
            assert!(matches!(rx.recv(), Err(Error::Disconnected)));
        });
        tx.send(&[5; 2]).unwrap();
        drop(tx);
        consumer.join().unwrap();
    });
}

#[test]
fn close_wakes_a_blocked_producer() {
    loom::model(|| {
        let heap = Heap::new(CAP);
        let mut tx = Producer::on_heap(&heap).unwrap();
        let rx = Consumer::on_heap(&heap).unwrap();
        tx.send(&[1; 8]).unwrap();
        let producer = thread::spawn(move || {
            assert!(matches!(tx.send(&[2; 8]), Err(Error::Disconnected)));
        });
        drop(rx);
        producer.join().unwrap();
    });
}

#[test]
fn space_released_in_batches_reaches_a_waiting_producer() {
    // A 128-byte ring gives space back every 16 bytes; empty frames take 8, so single releases
    // stay local until a second one or a waiting producer forces them. The producer must
    // never wait for space that only sits unpublished with the consumer.
    const FRAMES: usize = 18;
    loom::model(|| {
        let heap = Heap::new(128);
        let mut tx = Producer::on_heap(&heap).unwrap();
        let mut rx = Consumer::on_heap(&heap).unwrap();
        let producer = thread::spawn(move || {
            for _ in 0..FRAMES {
                tx.send(&[]).unwrap();
            }
        });
        for _ in 0..FRAMES {
            assert_eq!(rx.recv().unwrap().len(), 0);
        }
        producer.join().unwrap();
    });
}

#[test]
fn a_batch_becomes_visible_whole() {
    loom::model(|| {
        let heap = Heap::new(64);
        let mut tx = Producer::on_heap(&heap).unwrap();
        let mut rx = Consumer::on_heap(&heap).unwrap();
        let producer = thread::spawn(move || {
            let mut batch = tx.batch();
            batch.send(&[1; 8]).unwrap();
            batch.send(&[2; 4]).unwrap();
        });
        // Whenever the first frame is seen, the second is there too.
        let first = rx.recv().unwrap().to_vec();
        assert_eq!(first, [1; 8]);
        assert_eq!(&*rx.try_recv().unwrap(), &[2; 4]);
        producer.join().unwrap();
    });
}

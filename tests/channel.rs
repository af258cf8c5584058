//! Channel behaviour within one process: timeouts, try_ calls, batches, loans, close.

#![cfg(not(loom))]

mod common;

use std::sync::mpsc;
use std::time::{Duration, Instant};
use zipc::{Config, Error, bytes, typed};

fn small() -> Config {
    Config::default().capacity(4096)
}

#[test]
fn try_recv_on_empty_would_block_and_recv_timeout_times_out() {
    let (_tx, mut rx) = bytes::channel(small()).unwrap();
    assert!(matches!(rx.try_recv(), Err(Error::WouldBlock)));
    let start = Instant::now();
    assert!(matches!(
        rx.recv_timeout(Duration::from_millis(30)),
        Err(Error::Timeout)
    ));
    assert!(start.elapsed() >= Duration::from_millis(30));
}

#[test]
fn try_send_on_full_would_block_and_send_timeout_times_out() {
    let (mut tx, _rx) = bytes::channel(small()).unwrap();
    let mut n = 0;
    while tx.try_send(&[1; 100]).is_ok() {
        n += 1;
    }
    assert_eq!(n, 4096 / 112, "a 100-byte frame takes 112 bytes of ring");
    assert!(matches!(tx.try_send(&[1; 100]), Err(Error::WouldBlock)));
    assert!(matches!(
        tx.send_timeout(&[1; 100], Duration::from_millis(30)),
        Err(Error::Timeout)
    ));
}

#[test]
fn a_dropped_loan_sends_nothing() {
    let (mut tx, mut rx) = bytes::channel(small()).unwrap();
    {
        let mut loan = tx.loan(10).unwrap();
        loan.fill(1);
    } // dropped here, uncommitted
    tx.send(b"x").unwrap();
    assert_eq!(&*rx.recv().unwrap(), b"x");
    assert!(matches!(rx.try_recv(), Err(Error::WouldBlock)));
}

#[test]
fn commit_len_sends_a_prefix_and_refuses_more_than_loaned() {
    let (mut tx, mut rx) = bytes::channel(small()).unwrap();
    let mut loan = tx.loan(64).unwrap();
    loan[..3].copy_from_slice(b"abc");
    let (loan, e) = loan.commit_len(65).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)));
    loan.commit_len(3).unwrap();
    assert_eq!(&*rx.recv().unwrap(), b"abc");
}

#[test]
fn batched_frames_appear_together() {
    let (mut tx, mut rx) = bytes::channel(small()).unwrap();
    let mut batch = tx.batch();
    batch.send(b"one").unwrap();
    batch.send(b"two").unwrap();
    assert!(matches!(rx.try_recv(), Err(Error::WouldBlock)));
    drop(batch);
    assert_eq!(&*rx.recv().unwrap(), b"one");
    assert_eq!(&*rx.recv().unwrap(), b"two");
}

#[test]
fn a_batch_larger_than_the_ring_flushes_before_waiting() {
    let (mut tx, mut rx) = bytes::channel(small()).unwrap();
    let reader = std::thread::spawn(move || {
        for i in 0..1000u32 {
            assert_eq!(&*rx.recv().unwrap(), &i.to_le_bytes());
        }
    });
    let mut batch = tx.batch();
    for i in 0..1000u32 {
        batch.send(&i.to_le_bytes()).unwrap();
    }
    drop(batch);
    reader.join().unwrap();
}

#[test]
fn frames_sent_before_close_arrive_then_disconnected() {
    let (mut tx, mut rx) = bytes::channel(small()).unwrap();
    tx.send(b"a").unwrap();
    tx.send(b"b").unwrap();
    drop(tx);
    assert_eq!(&*rx.recv().unwrap(), b"a");
    assert_eq!(&*rx.try_recv().unwrap(), b"b");
    assert!(matches!(rx.recv(), Err(Error::Disconnected)));
    assert!(matches!(rx.try_recv(), Err(Error::Disconnected)));
}

#[test]
fn a_blocked_receiver_wakes_on_close() {
    let (tx, mut rx) = bytes::channel(small()).unwrap();
    let (tid_tx, tid) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        tid_tx.send(common::thread_id()).unwrap();
        rx.recv().map(|f| f.to_vec())
    });
    // Its next step is `recv`: once it sleeps, it sleeps there, and the close must wake it.
    common::wait_until_asleep(tid.recv().unwrap());
    drop(tx);
    assert!(matches!(waiter.join().unwrap(), Err(Error::Disconnected)));
}

#[test]
fn sending_to_a_closed_consumer_is_disconnected() {
    let (mut tx, rx) = bytes::channel(small()).unwrap();
    drop(rx);
    assert!(matches!(tx.send(b"x"), Err(Error::Disconnected)));
    assert!(matches!(tx.try_send(b"x"), Err(Error::Disconnected)));
}

#[test]
fn blocking_sends_and_receives_across_threads() {
    let (mut tx, mut rx) = bytes::channel(small()).unwrap();
    let writer = std::thread::spawn(move || {
        for i in 0..100_000u32 {
            let len = (i % 1500) as usize;
            let mut loan = tx.loan(len).unwrap();
            loan.fill(i as u8);
            loan.commit();
        }
    });
    for i in 0..100_000u32 {
        let f = rx.recv().unwrap();
        assert_eq!(f.len(), (i % 1500) as usize);
        assert!(f.iter().all(|&b| b == i as u8));
    }
    writer.join().unwrap();
}

#[test]
fn typed_loan_and_frame_are_in_place() {
    let (mut tx, mut rx) = typed::channel::<[u64; 4]>(small()).unwrap();
    {
        let mut loan = tx.loan().unwrap();
        *loan = [1, 2, 3, 4];
        loan[3] = 40;
        loan.commit();
    }
    tx.try_send(&[5; 4]).unwrap();
    assert_eq!(*rx.recv().unwrap(), [1, 2, 3, 40]);
    assert_eq!(*rx.recv_timeout(Duration::from_secs(1)).unwrap(), [5; 4]);
    assert!(matches!(rx.try_recv(), Err(Error::WouldBlock)));
}

#[test]
fn every_wait_strategy_delivers_and_times_out() {
    for wait in [zipc::Wait::Adaptive, zipc::Wait::Spin, zipc::Wait::Sleep] {
        let (mut tx, mut rx) = bytes::channel(small()).unwrap();
        tx.set_wait(wait);
        rx.set_wait(wait);
        let writer = std::thread::spawn(move || {
            for i in 0..20_000u32 {
                tx.send(&i.to_le_bytes()).unwrap();
            }
            tx
        });
        for i in 0..20_000u32 {
            assert_eq!(&*rx.recv().unwrap(), &i.to_le_bytes(), "{wait:?}");
        }
        let _tx = writer.join().unwrap();
        let start = Instant::now();
        assert!(matches!(
            rx.recv_timeout(Duration::from_millis(30)),
            Err(Error::Timeout)
        ));
        assert!(start.elapsed() >= Duration::from_millis(30), "{wait:?}");
    }
}

#[test]
fn a_spinning_receiver_sees_the_close() {
    let (tx, mut rx) = bytes::channel(small()).unwrap();
    rx.set_wait(zipc::Wait::Spin);
    let (tid_tx, tid) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        tid_tx.send(common::thread_id()).unwrap();
        rx.recv().map(|f| f.to_vec())
    });
    // Its next step is `recv`: once it has burnt CPU time, it spins there.
    common::wait_until_spinning(tid.recv().unwrap());
    drop(tx);
    assert!(matches!(waiter.join().unwrap(), Err(Error::Disconnected)));
}

#[test]
fn a_kept_frame_comes_again_or_is_released_in_place() {
    let (mut tx, mut rx) = bytes::channel(small()).unwrap();
    let writer = std::thread::spawn(move || {
        // Sizes that make frames wrap the 4 KiB ring (padding) now and then.
        for i in 0u32..20_000 {
            let len = 4 + (i as usize * 37) % 600;
            let mut loan = tx.loan(len).unwrap();
            loan.fill(i as u8);
            loan[..4].copy_from_slice(&i.to_le_bytes());
            loan.commit();
        }
    });
    for i in 0u32..20_000 {
        let frame = rx.recv().unwrap();
        let (ptr, len) = (frame.as_ptr(), frame.len());
        assert_eq!(frame[..4], i.to_le_bytes());
        frame.keep();
        match i % 3 {
            // Released in place: the next frame is the next one.
            0 => assert!(rx.release_kept()),
            // Received again, the same bytes in the same place, then freed by the drop: the
            // kept record is stale.
            1 => {
                let again = rx.recv().unwrap();
                assert_eq!((again.as_ptr(), again.len()), (ptr, len));
                drop(again);
                assert!(!rx.release_kept());
            }
            // Kept twice, released once.
            _ => {
                rx.recv().unwrap().keep();
                assert!(rx.release_kept());
                assert!(!rx.release_kept());
            }
        }
    }
    writer.join().unwrap();
    assert!(matches!(rx.recv(), Err(Error::Disconnected)));
    assert!(!rx.release_kept());
}

#[test]
fn a_loan_dropped_uncommitted_is_lent_again_in_the_same_place() {
    let (mut tx, mut rx) = bytes::channel(small()).unwrap();
    for i in 0u8..200 {
        let len = 1 + (i as usize * 13) % 700;
        let first = tx.loan(len).unwrap().as_mut_ptr();
        let mut loan = tx.loan(len).unwrap();
        assert_eq!(loan.as_mut_ptr(), first, "loan {i}");
        loan.fill(i);
        loan.commit();
        assert_eq!(&*rx.recv().unwrap(), &vec![i; len][..]);
    }
}

/// A Pod type derived through zipc's re-export of bytemuck alone.
#[derive(Clone, Copy, Debug, PartialEq, zipc::bytemuck::Pod, zipc::bytemuck::Zeroable)]
#[bytemuck(crate = "zipc::bytemuck")]
#[repr(C)]
struct Tick {
    seq: u64,
    price: f64,
}

#[test]
fn typed_batched_values_appear_together_and_a_big_batch_flushes_before_waiting() {
    let (mut tx, mut rx) = typed::channel::<Tick>(small()).unwrap();
    let mut batch = tx.batch();
    batch.send(&Tick { seq: 1, price: 1.5 }).unwrap();
    let mut loan = batch.loan().unwrap();
    *loan = Tick { seq: 2, price: 2.5 };
    loan.commit();
    assert!(matches!(rx.try_recv(), Err(Error::WouldBlock)));
    batch.flush();
    assert_eq!(*rx.recv().unwrap(), Tick { seq: 1, price: 1.5 });
    assert_eq!(*rx.recv().unwrap(), Tick { seq: 2, price: 2.5 });
    drop(batch);

    // Far more than the 4 KiB ring holds: the batch publishes what it staged before it waits.
    let reader = std::thread::spawn(move || {
        for seq in 0..1000u64 {
            assert_eq!(rx.recv().unwrap().seq, seq);
        }
    });
    let mut batch = tx.batch();
    for seq in 0..1000u64 {
        batch.send(&Tick { seq, price: 0.0 }).unwrap();
    }
    drop(batch);
    reader.join().unwrap();
}

#[test]
fn typed_capacity_is_the_rings() {
    let (tx, _rx) = typed::channel::<u64>(small()).unwrap();
    let (btx, _brx) = bytes::channel(small()).unwrap();
    assert_eq!(tx.capacity(), 4096);
    assert_eq!(tx.capacity(), btx.capacity());
}

#[test]
fn a_kept_typed_frame_comes_again_in_place_or_is_released() {
    let (mut tx, mut rx) = typed::channel::<Tick>(small()).unwrap();
    for seq in 0..3 {
        tx.send(&Tick { seq, price: 0.5 }).unwrap();
    }
    let first = rx.recv().unwrap();
    let ptr: *const Tick = &*first;
    first.keep();
    // Received again: the same value in the same place.
    let again = rx.recv().unwrap();
    assert_eq!((again.seq, &*again as *const Tick), (0, ptr));
    drop(again);
    assert!(!rx.release_kept());
    // Kept, then released without receiving it again: the next receive is the next value.
    rx.recv().unwrap().keep();
    assert!(rx.release_kept());
    assert!(!rx.release_kept());
    assert_eq!(rx.recv().unwrap().seq, 2);
    assert!(matches!(rx.try_recv(), Err(Error::WouldBlock)));
}

#[test]
fn deadline_forms_agree_with_the_try_and_timeout_forms() {
    use zipc::Deadline;
    let (mut tx, mut rx) = typed::channel::<u64>(Config::default().capacity(4096)).unwrap();
    assert!(matches!(
        rx.recv_deadline(Deadline::Now),
        Err(Error::WouldBlock)
    ));
    let past = Deadline::At(Instant::now());
    assert!(matches!(rx.recv_deadline(past), Err(Error::Timeout)));
    // Fill the ring: then `Now` on the producer side fails at once, `At` past the instant.
    let mut sent = 0u64;
    while tx.send_deadline(&sent, Deadline::Now).is_ok() {
        sent += 1;
    }
    assert!(sent > 0);
    assert!(matches!(tx.try_loan(), Err(Error::WouldBlock)));
    assert!(matches!(tx.send_deadline(&0, past), Err(Error::Timeout)));
    // A timeout too long for an Instant waits as long as it takes: a frame is there already.
    assert_eq!(*rx.recv_timeout(Duration::MAX).unwrap(), 0);
    assert_eq!(
        *rx.recv_deadline(Deadline::after(Duration::MAX)).unwrap(),
        1
    );
}

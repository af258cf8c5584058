//! Criterion benches of zipc's byte channel, each next to its floor measured the same way.
//!
//! Both ends run as threads of this one process (a channel from `bytes::channel`, the floor
//! on one memfd mapped twice): simpler to drive from criterion, and the same memory traffic
//! as between processes. `zipc bench` measures between two real processes, with pipes and
//! Unix sockets beside them.
//!
//! The floor is the very code `zipc bench` uses (`cli/src/floor.rs`): a cache-line
//! ping-pong, a raw SPSC ring of u64 slots and a raw SPSC ring of fixed slots copied in and out,
//! all busy-polling; and for blocking mode a raw futex ping-pong.
//!
//! Every zipc end is set to the floor's way of waiting: `Wait::Spin` (busy-poll) beside the
//! busy-poll floors, `Wait::Sleep` (futex at once) beside the futex ping-pong.
//!
//! Run with `cargo bench --bench channel`; CI only builds it (`cargo bench --no-run`).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::thread;
use std::time::{Duration, Instant};
use zipc::bytes::{Consumer, Producer, channel};
use zipc::{Config, Wait};

#[path = "../cli/src/floor.rs"]
#[allow(dead_code)]
mod floor;

use floor::{CacheLinePing, FutexPing, SharedMap, SlotReceiver, SlotSender, Watch};

const SENTINEL: u64 = u64::MAX;

fn config() -> Config {
    Config::default().capacity(1 << 20)
}

/// A channel whose two ends wait as `wait` says.
fn channel_waiting(wait: Wait) -> (Producer, Consumer) {
    let (mut tx, mut rx) = channel(config()).expect("channel");
    tx.set_wait(wait);
    rx.set_wait(wait);
    (tx, rx)
}

fn word(bytes: &[u8]) -> u64 {
    u64::from_le_bytes(bytes.try_into().expect("an 8-byte frame"))
}

/// Two mappings of one fresh memfd of `len` bytes, one per thread.
fn shared_pair(len: usize) -> (SharedMap, SharedMap) {
    let (a, fd) = SharedMap::create(len).expect("memfd");
    let b = SharedMap::open(fd, len).expect("second mapping");
    (a, b)
}

/// zipc's 8-byte ping-pong: `iters` round trips, timed together (one round trip before the
/// clock starts, so that the echo thread is running), every end waiting as `wait` says.
fn zipc_pingpong(iters: u64, wait: Wait) -> Duration {
    let (mut to_echo, mut echo_rx) = channel_waiting(wait);
    let (mut echo_tx, mut from_echo) = channel_waiting(wait);
    let echo = thread::spawn(move || {
        for _ in 0..=iters {
            let v = word(&echo_rx.recv().expect("recv"));
            echo_tx.send(&(v + 1).to_le_bytes()).expect("send");
        }
    });
    to_echo.send(&0u64.to_le_bytes()).expect("send");
    assert_eq!(word(&from_echo.recv().expect("recv")), 1);
    let start = Instant::now();
    for i in 1..=iters {
        to_echo.send(&i.to_le_bytes()).expect("send");
        let answer = word(&from_echo.recv().expect("recv"));
        debug_assert_eq!(answer, i + 1);
    }
    let elapsed = start.elapsed();
    echo.join().expect("echo thread");
    elapsed
}

/// A floor ping-pong end (busy-poll or futex).
trait FloorPing: Send + 'static {
    fn send(&mut self, v: u64);
    fn recv(&mut self) -> u64;
}

impl FloorPing for CacheLinePing {
    fn send(&mut self, v: u64) {
        CacheLinePing::send(self, v).expect("send");
    }
    fn recv(&mut self) -> u64 {
        CacheLinePing::recv(self).expect("recv")
    }
}

impl FloorPing for FutexPing {
    fn send(&mut self, v: u64) {
        FutexPing::send(self, v).expect("send");
    }
    fn recv(&mut self) -> u64 {
        FutexPing::recv(self).expect("recv")
    }
}

/// A floor's 8-byte ping-pong between `end` (odd values) and `peer` (even answers), timed
/// as [`zipc_pingpong`].
fn floor_pingpong(iters: u64, mut end: impl FloorPing, mut peer: impl FloorPing) -> Duration {
    let echo = thread::spawn(move || {
        loop {
            let v = peer.recv();
            if v == SENTINEL {
                break;
            }
            peer.send(v + 1);
        }
    });
    end.send(1);
    assert_eq!(end.recv(), 2);
    let start = Instant::now();
    for i in 1..=iters {
        let v = 2 * i + 1;
        end.send(v);
        let answer = end.recv();
        debug_assert_eq!(answer, v + 1);
    }
    let elapsed = start.elapsed();
    end.send(SENTINEL);
    echo.join().expect("echo thread");
    elapsed
}

/// 8-byte ping-pong, busy-polling: zipc with `Wait::Spin` and the cache-line floor.
fn pingpong(c: &mut Criterion) {
    let mut g = c.benchmark_group("pingpong_8B");
    g.throughput(Throughput::Elements(1));
    g.bench_function("zipc_spin", |b| {
        b.iter_custom(|iters| zipc_pingpong(iters, Wait::Spin));
    });
    g.bench_function("floor_cache_line", |b| {
        b.iter_custom(|iters| {
            let (here, there) = shared_pair(floor::PING_LEN);
            let end = CacheLinePing::parent(here, Watch::none());
            floor_pingpong(iters, end, CacheLinePing::peer(there))
        });
    });
    g.finish();
}

/// 8-byte ping-pong, blocking: zipc with `Wait::Sleep` and the raw futex floor.
fn pingpong_sleep(c: &mut Criterion) {
    let mut g = c.benchmark_group("pingpong_8B_sleep");
    g.throughput(Throughput::Elements(1));
    g.bench_function("zipc_sleep", |b| {
        b.iter_custom(|iters| zipc_pingpong(iters, Wait::Sleep));
    });
    g.bench_function("floor_futex", |b| {
        b.iter_custom(|iters| {
            let (here, there) = shared_pair(floor::PING_LEN);
            let end = FutexPing::parent(here, Watch::none());
            floor_pingpong(iters, end, FutexPing::peer(there))
        });
    });
    g.finish();
}

/// 8-byte messages one way, one send per message; timed until the consumer has all.
fn throughput_8b(c: &mut Criterion) {
    let mut g = c.benchmark_group("throughput_8B");
    g.throughput(Throughput::Elements(1));
    g.bench_function("zipc_send", |b| {
        b.iter_custom(|iters| {
            let (mut tx, mut rx) = channel_waiting(Wait::Spin);
            let consumer = thread::spawn(move || {
                let mut sum = 0u64;
                for _ in 0..iters {
                    sum = sum.wrapping_add(word(&rx.recv().expect("recv")));
                }
                sum
            });
            let start = Instant::now();
            for i in 0..iters {
                tx.send(&i.to_le_bytes()).expect("send");
            }
            black_box(consumer.join().expect("consumer thread"));
            start.elapsed()
        });
    });
    g.bench_function("floor_u64_ring", |b| {
        b.iter_custom(|iters| {
            let (here, there) = shared_pair(floor::slot_ring_len(8));
            let mut tx = SlotSender::new(here, 8, Watch::none());
            let mut rx = SlotReceiver::new(there, 8);
            let consumer = thread::spawn(move || {
                let mut sum = 0u64;
                let mut dst = [0u8; 8];
                for _ in 0..iters {
                    rx.recv_frame(&mut dst).expect("recv");
                    sum = sum.wrapping_add(u64::from_le_bytes(dst));
                }
                sum
            });
            let start = Instant::now();
            for i in 0..iters {
                tx.send_frame(&i.to_le_bytes()).expect("send");
            }
            black_box(consumer.join().expect("consumer thread"));
            start.elapsed()
        });
    });
    g.finish();
}

/// 64 KiB frames one way: copied in from one buffer, copied out into another.
fn throughput_64k(c: &mut Criterion) {
    const FRAME: usize = 64 * 1024;
    let mut g = c.benchmark_group("throughput_64KiB");
    g.throughput(Throughput::Bytes(FRAME as u64));
    let src: Vec<u8> = (0..FRAME).map(|i| (i % 251) as u8).collect();
    g.bench_function("zipc_loan", |b| {
        b.iter_custom(|iters| {
            let (mut tx, mut rx) = channel_waiting(Wait::Spin);
            let consumer = thread::spawn(move || {
                let mut dst = vec![0u8; FRAME];
                for _ in 0..iters {
                    dst.copy_from_slice(&rx.recv().expect("recv"));
                    black_box(&mut dst);
                }
            });
            let start = Instant::now();
            for _ in 0..iters {
                let mut loan = tx.loan(FRAME).expect("loan");
                loan.copy_from_slice(&src);
                loan.commit();
            }
            consumer.join().expect("consumer thread");
            start.elapsed()
        });
    });
    g.bench_function("floor_copy_ring", |b| {
        b.iter_custom(|iters| {
            let (here, there) = shared_pair(floor::slot_ring_len(FRAME));
            let mut tx = SlotSender::new(here, FRAME, Watch::none());
            let mut rx = SlotReceiver::new(there, FRAME);
            let consumer = thread::spawn(move || {
                let mut dst = vec![0u8; FRAME];
                for _ in 0..iters {
                    rx.recv_frame(&mut dst).expect("recv");
                    black_box(&mut dst);
                }
            });
            let start = Instant::now();
            for _ in 0..iters {
                tx.send_frame(&src).expect("send");
            }
            consumer.join().expect("consumer thread");
            start.elapsed()
        });
    });
    g.finish();
}

/// A 1 MiB memfd channel created and both ends attached (its drop is not timed).
fn setup(c: &mut Criterion) {
    c.bench_function("channel_setup_1MiB", |b| {
        b.iter_with_large_drop(|| channel(config()).expect("channel"));
    });
}

/// The criterion group (its generated function has no doc comment to carry).
#[allow(missing_docs)]
mod group {
    use super::*;

    criterion_group! {
        name = benches;
        config = Criterion::default()
            .sample_size(20)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3));
        targets = pingpong, pingpong_sleep, throughput_8b, throughput_64k, setup
    }
}
criterion_main!(group::benches);

//! iceoryx2's side: two publish-subscribe services of `u64` for the ping-pong, polled (its
//! publish-subscribe has no blocking receive), and one of 64 KiB byte slices for the stream,
//! which keeps [`QUEUE`] samples for its subscriber and never drops one.

use crate::{END, FRAME, drain, finish, pump, read_line, spawn_peer, time_trips, unique};
use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::prelude::*;
use iceoryx2::service::port_factory::publish_subscribe::PortFactory;
use std::time::Duration;

/// iceoryx2's service kind for processes.
type Iox = iceoryx2::service::ipc::Service;

/// Samples the subscriber may hold queued: 16 of 64 KiB, zipc's 1 MiB ring.
const QUEUE: usize = 16;

fn node() -> Node<Iox> {
    NodeBuilder::new().create::<Iox>().unwrap()
}

/// The service `name` of `u64`s, created or opened.
fn values(node: &Node<Iox>, name: &str) -> PortFactory<Iox, u64, ()> {
    node.service_builder(&name.try_into().unwrap())
        .publish_subscribe::<u64>()
        .open_or_create()
        .unwrap()
}

/// The service `name` of byte slices, created or opened: no sample dropped, [`QUEUE`] queued
/// at most.
fn frames(node: &Node<Iox>, name: &str) -> PortFactory<Iox, [u8], ()> {
    node.service_builder(&name.try_into().unwrap())
        .publish_subscribe::<[u8]>()
        .enable_safe_overflow(false)
        .subscriber_max_buffer_size(QUEUE)
        .open_or_create()
        .unwrap()
}

fn send(tx: &Publisher<Iox, u64, ()>, v: u64) {
    tx.loan_uninit().unwrap().write_payload(v).send().unwrap();
}

/// Polls `rx` until a value comes.
fn recv(rx: &Subscriber<Iox, u64, ()>) -> u64 {
    loop {
        if let Some(sample) = rx.receive().unwrap() {
            return *sample;
        }
        std::hint::spin_loop();
    }
}

pub(crate) fn ping(warmup: u64, trips: u64) -> Vec<u64> {
    let (ping, pong) = (unique("ping"), unique("pong"));
    let node = node();
    let tx = values(&node, &ping).publisher_builder().create().unwrap();
    let rx = values(&node, &pong).subscriber_builder().create().unwrap();
    let (mut child, mut out) = spawn_peer(&["iox-echo", &ping, &pong]);
    // A sample published before the peer subscribed would be lost: wait for it.
    assert_eq!(read_line(&mut out), "ready");
    let times = time_trips(warmup, trips, |i| {
        send(&tx, i);
        assert_eq!(recv(&rx), i, "round trip {i} came back wrong");
    });
    send(&tx, END);
    assert!(child.wait().unwrap().success());
    times
}

pub(crate) fn stream(budget: Duration) -> f64 {
    let name = unique("stream");
    let node = node();
    let tx = frames(&node, &name)
        .publisher_builder()
        .initial_max_slice_len(FRAME)
        .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
        .create()
        .unwrap();
    let (child, mut out) = spawn_peer(&["iox-sink", &name]);
    let send = |frame: &[u8]| {
        let sample = tx.loan_slice_uninit(frame.len()).unwrap();
        sample.write_from_slice(frame).send().unwrap();
    };
    let (start, n) = pump(budget, &mut out, send);
    // Its streams have no end: a last frame stamped END says it.
    let mut end = vec![0u8; FRAME];
    end[..8].copy_from_slice(&END.to_le_bytes());
    send(&end);
    finish(child, &mut out, start, n)
}

/// The peer's roles: `iox-echo PING PONG`, `iox-sink NAME`.
pub(crate) fn peer(role: &str, args: &[&str], out: &mut impl std::io::Write) {
    let node = node();
    if role == "iox-echo" {
        let rx = values(&node, args[0])
            .subscriber_builder()
            .create()
            .unwrap();
        let tx = values(&node, args[1]).publisher_builder().create().unwrap();
        writeln!(out, "ready").unwrap();
        loop {
            match recv(&rx) {
                END => return,
                v => send(&tx, v),
            }
        }
    }
    let rx = frames(&node, args[0])
        .subscriber_builder()
        .buffer_size(QUEUE)
        .create()
        .unwrap();
    writeln!(out, "ready").unwrap();
    let mut dst = vec![0u8; FRAME];
    drain(out, || {
        let sample = loop {
            match rx.receive().unwrap() {
                Some(sample) => break sample,
                None => std::hint::spin_loop(),
            }
        };
        assert_eq!(sample.len(), FRAME, "a frame of another size");
        dst.copy_from_slice(&sample);
        Some(crate::stamp(&dst))
    });
}

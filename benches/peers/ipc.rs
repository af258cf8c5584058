//! ipc-channel's side: two `bytes_channel`s for the ping-pong, one for the stream, each set up
//! through a one-shot server whose name the peer gets on its command line.

use crate::{FRAME, drain, finish, pump, spawn_peer, time_trips};
use ipc_channel::ipc::{
    IpcBytesReceiver, IpcBytesSender, IpcOneShotServer, IpcSender, bytes_channel,
};
use std::time::Duration;

/// What the peer sends back to set up a ping-pong: where to ping, where to listen.
type Pair = (IpcBytesSender, IpcBytesReceiver);

pub(crate) fn ping(warmup: u64, trips: u64) -> Vec<u64> {
    let (server, name) = IpcOneShotServer::<Pair>::new().unwrap();
    let (mut child, _out) = spawn_peer(&["ipc-echo", &name]);
    let (_, (tx, rx)) = server.accept().unwrap();
    let times = time_trips(warmup, trips, |i| {
        tx.send(&i.to_le_bytes()).unwrap();
        let frame = rx.recv().unwrap();
        assert_eq!(frame, i.to_le_bytes(), "round trip {i} came back wrong");
    });
    drop(tx);
    assert!(child.wait().unwrap().success());
    times
}

pub(crate) fn stream(budget: Duration) -> f64 {
    let (server, name) = IpcOneShotServer::<IpcBytesSender>::new().unwrap();
    let (child, mut out) = spawn_peer(&["ipc-sink", &name]);
    let (_, tx) = server.accept().unwrap();
    let (start, n) = pump(budget, &mut out, |frame| tx.send(frame).unwrap());
    drop(tx);
    finish(child, &mut out, start, n)
}

/// The peer's roles: `ipc-echo SERVER`, `ipc-sink SERVER`.
pub(crate) fn peer(role: &str, args: &[&str], out: &mut impl std::io::Write) {
    if role == "ipc-echo" {
        let (ping_tx, ping_rx) = bytes_channel().unwrap();
        let (pong_tx, pong_rx) = bytes_channel().unwrap();
        let hello = IpcSender::<Pair>::connect(args[0].to_owned()).unwrap();
        hello.send((ping_tx, pong_rx)).unwrap();
        while let Ok(frame) = ping_rx.recv() {
            pong_tx.send(&frame).unwrap();
        }
        return;
    }
    let (tx, rx) = bytes_channel().unwrap();
    let hello = IpcSender::<IpcBytesSender>::connect(args[0].to_owned()).unwrap();
    hello.send(tx).unwrap();
    writeln!(out, "ready").unwrap();
    // `recv` returns each frame in a fresh Vec: that is its copy out.
    drain(out, || {
        let frame = rx.recv().ok()?;
        assert_eq!(frame.len(), FRAME, "a frame of another size");
        Some(crate::stamp(&frame))
    });
}

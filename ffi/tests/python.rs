//! The C API from Python: `python3 ffi/python/test_zipc.py` (a ctypes wrapper, standard
//! library only) with a Rust peer. Python receives from a Rust producer, checks each frame
//! byte for byte, and sends it back; the Rust side checks every echo byte for byte. And the two
//! Python scripts of `ffi/README.md`, taken from it as written, run as two processes in either
//! order.

#[path = "../../tests/common/mod.rs"]
mod common;
mod support;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::Duration;
use zipc::{Config, Error, bytes};

const FRAMES: u64 = 20_000;
const PATIENCE: Duration = Duration::from_secs(60);

/// Frame `seq`: 8 bytes of `seq` (little-endian), then `(seq * 7919) % 2049` bytes counting
/// up from `seq % 256`. The same in test_zipc.py.
fn frame(seq: u64) -> Vec<u8> {
    let mut f = seq.to_le_bytes().to_vec();
    f.extend((0..(seq * 7919) % 2049).map(|j| (seq + j) as u8));
    f
}

fn have_python() -> bool {
    if Command::new("python3").arg("--version").output().is_err() {
        println!("SKIPPED: python3 is not installed; the Python wrapper was not tested");
        return false;
    }
    true
}

#[test]
fn the_readme_scripts_run_as_written_in_either_order() {
    if !have_python() {
        return;
    }
    let dir = support::out_dir();
    let script = |marker: &str, file: &str| {
        let path = dir.join(file);
        std::fs::write(&path, support::readme_block(marker, "python")).unwrap();
        move |name: &str| {
            let mut cmd = Command::new("python3");
            cmd.arg(&path)
                .arg(name)
                .env("PYTHONPATH", support::ffi_dir().join("python"))
                .env("ZIPC_LIB", support::lib_dir().join("libzipc.so"));
            cmd
        }
    };
    let sender = script("python sender", "readme_sender.py");
    let receiver = script("python receiver", "readme_receiver.py");
    for first in [support::First::Sender, support::First::Receiver] {
        let name = common::unique_name("readme-py");
        support::sender_and_receiver(sender(&name), receiver(&name), &name, first);
    }
}

#[test]
fn python_receives_byte_exact_and_sends_back() {
    if !have_python() {
        return;
    }
    let from_rust = common::unique_name("py-from-rust");
    let to_rust = common::unique_name("py-to-rust");
    let tx = bytes::create(&from_rust, Config::default().capacity(64 * 1024)).unwrap();
    let child = Command::new("python3")
        .arg(support::ffi_dir().join("python/test_zipc.py"))
        .env("ZIPC_LIB", support::lib_dir().join("libzipc.so"))
        .env("ZIPC_TEST_FROM_RUST", &from_rust)
        .env("ZIPC_TEST_TO_RUST", &to_rust)
        .env("ZIPC_TEST_FRAMES", FRAMES.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = support::Peer::new(child, Some(&to_rust));
    let mut stdout = BufReader::new(child.child().stdout.take().unwrap());
    let mut stderr = child.child().stderr.take().unwrap();
    let mut report = move || {
        let mut text = String::new();
        stderr.read_to_string(&mut text).unwrap();
        text
    };
    // Python creates its channel back once it opened ours.
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    if line != "created\n" {
        panic!("test_zipc.py did not start its half:\n{}", report());
    }
    let mut rx = bytes::open(&to_rust).unwrap();

    let sender = std::thread::spawn(move || {
        let mut tx = tx;
        for seq in 0..FRAMES {
            tx.send_timeout(&frame(seq), PATIENCE)
                .unwrap_or_else(|e| panic!("send {seq}: {e}"));
        }
    });
    for seq in 0..FRAMES {
        let echo = rx
            .recv_timeout(PATIENCE)
            .unwrap_or_else(|e| panic!("echo {seq}: {e}"));
        assert!(
            *echo == *frame(seq),
            "echo {seq} differs from what was sent"
        );
    }
    sender.join().unwrap();
    assert!(matches!(
        rx.recv_timeout(PATIENCE),
        Err(Error::Disconnected)
    ));

    let status = child.finish().status;
    let report = report();
    assert!(
        status.success(),
        "test_zipc.py failed ({status}):\n{report}"
    );
    assert!(
        report
            .lines()
            .any(|l| l.starts_with("test_receive_byte_exact_and_send_back") && l.ends_with(" ok")),
        "the round trip with Rust did not run:\n{report}"
    );
    print!("{report}");
}

//! The C API from C: the programs in `ffi/tests/*.c`, compiled with gcc against libzipc and
//! run against Rust peers. A C producer to a Rust consumer and a Rust producer to a C consumer,
//! a million frames each with checksums; a C worker in a Rust `Pool`; bad input of every kind;
//! and the example of `ffi/README.md`, compiled as written, its two processes run in either
//! order.
//!
//! `ZIPC_FFI_VALGRIND=1` runs every C program under valgrind memcheck (any error fails it), and
//! `ZIPC_FFI_FRAMES=N` shortens the streams for that: `.ci/run` does both.

#[path = "../../tests/common/mod.rs"]
mod common;
mod support;

use common::{check_frame, fill_frame, frame_len, unique_name};
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;
use support::{First, Peer, assert_ran, c_command, c_program, frames};
use zipc::process::{Command, Pool};
use zipc::{Config, Error, bytes};

const MAX_EXTRA: u64 = 100;
/// Long enough for a C peer under valgrind.
const PATIENCE: Duration = Duration::from_secs(120);

/// At least a few rings' worth, so that the producer cannot finish (and remove the name)
/// before the consumer opened it.
fn stream_frames() -> u64 {
    frames().max(5_000)
}

fn finish(peer: Peer, what: &str) {
    assert_ran(&peer.finish(), what);
}

#[test]
fn c_producer_to_rust_consumer() {
    let name = unique_name("c-producer");
    let n = stream_frames();
    let child = c_command(&c_program("producer"))
        .args([&name, &n.to_string(), &MAX_EXTRA.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = Peer::new(child, Some(&name));
    let mut created = String::new();
    BufReader::new(child.child().stdout.as_mut().unwrap())
        .read_line(&mut created)
        .unwrap();
    assert_eq!(
        created, "created\n",
        "producer.c did not create the channel"
    );
    let mut rx = bytes::open(&name).unwrap();
    for seq in 0..n {
        let frame = rx
            .recv_timeout(PATIENCE)
            .unwrap_or_else(|e| panic!("frame {seq}: {e}"));
        check_frame(seq, MAX_EXTRA, &frame);
    }
    assert!(matches!(
        rx.recv_timeout(PATIENCE),
        Err(Error::Disconnected)
    ));
    finish(child, "producer.c");
    assert!(!common::shm_exists(&name), "the producer removed its name");
}

#[test]
fn rust_producer_to_c_consumer() {
    let name = unique_name("c-consumer");
    let n = stream_frames();
    let mut tx = bytes::create(&name, Config::default().capacity(64 * 1024)).unwrap();
    let child = c_command(&c_program("consumer"))
        .args([&name, &n.to_string(), &MAX_EXTRA.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let child = Peer::new(child, None);
    for seq in 0..n {
        let len = frame_len(seq, MAX_EXTRA);
        let mut loan = tx
            .loan_timeout(len, PATIENCE)
            .unwrap_or_else(|e| panic!("frame {seq}: {e}"));
        fill_frame(seq, &mut loan);
        loan.commit();
    }
    drop(tx);
    finish(child, "consumer.c");
}

/// Request `i` of the pool test: 0..=300 bytes.
fn request(i: u64) -> Vec<u8> {
    let len = (i * 7919 % 301) as usize;
    (0..len).map(|j| (i as usize * 31 + j * 7) as u8).collect()
}

#[test]
fn c_worker_in_a_rust_pool() {
    let exe = c_program("worker");
    let (program, args) = support::runner(&exe);
    let mut cmd = Command::new(program);
    cmd.args(args);
    let pool = Pool::builder(cmd)
        .size(2)
        .ring_capacity(16 * 1024)
        .timeout(PATIENCE)
        .build()
        .unwrap();
    let tasks = if support::valgrind() { 200 } else { 2_000 };
    let replies = pool.map((0..tasks).map(request));
    for (i, reply) in (0..tasks).zip(replies) {
        let req = request(i);
        let reply = reply.unwrap_or_else(|e| panic!("task {i}: {e}"));
        let mut want: Vec<u8> = req.iter().rev().copied().collect();
        want.extend_from_slice(&common::checksum(&req).to_le_bytes());
        assert_eq!(reply, want, "task {i}");
    }
    assert_eq!(pool.submit(b"one more".to_vec()).wait().unwrap().len(), 16);
    let stats = pool.stats();
    assert_eq!(stats.tasks_failed, 0);
    assert_eq!(stats.tasks_retried, 0);
    assert_eq!(stats.spawns, 2, "no worker died");
}

#[test]
fn bad_input() {
    let out = c_command(&c_program("bad_input")).output().unwrap();
    assert_ran(&out, "bad_input.c");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("all cases passed"), "{stdout}");
}

#[test]
fn the_readme_example_compiles_as_written_and_runs_in_either_order() {
    let dir = support::out_dir();
    let src = dir.join("readme_example.c");
    std::fs::write(&src, support::readme_block("c example", "c")).unwrap();
    let lib = support::lib_dir();

    // As the README says: through pkg-config when there is one, else -I, -L and -lzipc.
    let dynamic = dir.join("readme_example");
    let mut cmd = support::cc();
    cmd.args(support::CFLAGS).arg(&src).arg("-o").arg(&dynamic);
    let pc = dir.join("zipc.pc");
    let template = std::fs::read_to_string(support::ffi_dir().join("zipc.pc.in")).unwrap();
    std::fs::write(
        &pc,
        template
            .replace("@LIBDIR@", &lib.display().to_string())
            .replace(
                "@INCLUDEDIR@",
                &support::include_dir().display().to_string(),
            ),
    )
    .unwrap();
    match std::process::Command::new("pkg-config")
        .args(["--cflags", "--libs", "zipc"])
        .env("PKG_CONFIG_PATH", &dir)
        .output()
    {
        Ok(out) if out.status.success() => {
            let flags = String::from_utf8(out.stdout).unwrap();
            cmd.args(flags.split_whitespace());
        }
        _ => {
            eprintln!("pkg-config not found: linking with -I, -L and -lzipc");
            cmd.arg("-I")
                .arg(support::include_dir())
                .arg("-L")
                .arg(lib)
                .arg("-lzipc");
        }
    }
    cmd.arg(format!("-Wl,-rpath,{}", lib.display()));
    support::compile(cmd, "the README example (shared library)");

    // And statically, with the libraries a Rust staticlib needs (rustc's
    // `--print native-static-libs`).
    let fixed = dir.join("readme_example_static");
    let mut cmd = support::cc();
    cmd.args(support::CFLAGS)
        .arg("-I")
        .arg(support::include_dir())
        .arg(&src)
        .arg("-o")
        .arg(&fixed)
        .arg(lib.join("libzipc.a"))
        .args(["-lgcc_s", "-lutil", "-lrt", "-lpthread", "-lm", "-ldl"]);
    support::compile(cmd, "the README example (static library)");

    // Both processes, one started first and the other once the first said so: the sender
    // once it sent every frame (its close waits for the receiver), the receiver just before it
    // waits for the name.
    for exe in [dynamic, fixed] {
        for first in [First::Sender, First::Receiver] {
            let name = unique_name("readme");
            let role = |role: &str| {
                let mut cmd = c_command(&exe);
                cmd.args([role, &name]);
                cmd
            };
            support::sender_and_receiver(role("send"), role("recv"), &name, first);
        }
    }
}

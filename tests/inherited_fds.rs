//! Descriptors named in an environment variable (`ZIPC_PIPE_FDS` for `pipe:`,
//! `ZIPC_WORKER_FDS` for a worker) are taken only once shown to be the ones handed down: a
//! variable naming a descriptor the process owns for something else, numbers that are not
//! open, or a second claim give a clear error and leave every descriptor as it was. The child
//! that inherits them is `zipc-test-roles` (tests/roles/inherit.rs).
#![cfg(not(loom))]

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::time::Duration;
use zipc::Error;
use zipc::process::{FDS_VAR, Worker};
use zipc::transport::{self, Address, Pipe, Transport};

mod common;
#[path = "common/shared.rs"]
mod shared;

use shared::inherit::{CONTENTS, EXPECT_VAR, FDS_ARG};

const PATIENCE: Duration = Duration::from_secs(30);
const ROLES: &str = env!("CARGO_BIN_EXE_zipc-test-roles");

// ---------------------------------------------------------------------------------------
// The parent's side.

/// Starts the child (tests/roles/inherit.rs) playing `role`, with `fds` inherited at their
/// numbers and `env` set.
fn spawn(role: &str, fds: &[RawFd], env: &[(&str, String)]) -> std::process::Child {
    let mut cmd = common::role_command(ROLES, &format!("inherit:{role}"), &[], fds);
    cmd.env(FDS_ARG, fd_list(fds))
        .env_remove(Pipe::FDS_VAR)
        .env_remove(FDS_VAR);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("spawn the child")
}

fn run(role: &str, fds: &[RawFd], env: &[(&str, String)]) {
    let status = spawn(role, fds, env).wait().unwrap();
    assert!(status.success(), "child {role} failed: {status}");
}

fn fd_list(fds: &[RawFd]) -> String {
    let list: Vec<String> = fds.iter().map(RawFd::to_string).collect();
    list.join(",")
}

/// A file with [`CONTENTS`], open for reading and writing, its name removed.
fn scratch_file(tag: &str) -> std::fs::File {
    let path = std::env::temp_dir().join(format!("zipc-inherit-{}-{tag}", std::process::id()));
    let mut file = std::fs::File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    file.write_all(CONTENTS).unwrap();
    file
}

/// `FD@DEV.INO` for `fd` with the identity of `of`'s file.
fn entry(fd: RawFd, of: &std::fs::File) -> String {
    let meta = of.metadata().unwrap();
    format!("{fd}@{}.{}", meta.dev(), meta.ino())
}

/// What the child wrote to the file after the refusal, beyond its contents.
fn written_by_child(file: &mut std::fs::File) -> Vec<u8> {
    let mut all = Vec::new();
    file.seek(SeekFrom::Start(0)).unwrap();
    file.read_to_end(&mut all).unwrap();
    assert!(all.starts_with(CONTENTS), "{all:?}");
    all.split_off(CONTENTS.len())
}

#[test]
fn a_pipe_variable_naming_a_file_the_process_owns_leaves_the_file_alone() {
    let mut file = scratch_file("pipe");
    let f = file.as_raw_fd();
    let null = std::fs::File::open("/dev/null").unwrap();
    // A real pipe end, inherited with its true identity, as the second entry.
    let (_ours, theirs) = Pipe::pair().unwrap();
    let (read, write) = theirs.into_fds().unwrap();
    let w = write.as_raw_fd();
    let write_entry = Pipe::fds_var_value(read.as_fd(), write.as_fd())
        .unwrap()
        .split(',')
        .nth(1)
        .unwrap()
        .to_string();
    for (value, expect) in [
        // Another file's identity beside the file's number.
        (
            format!("{},{write_entry}", entry(f, &null)),
            format!("fd {f} named in {} is another file", Pipe::FDS_VAR),
        ),
        // The file's own identity: inherited and itself, but no pipe.
        (
            format!("{},{write_entry}", entry(f, &file)),
            format!(
                "fd {f} named in {} is not the read end of a pipe",
                Pipe::FDS_VAR
            ),
        ),
        // No identity at all.
        (
            format!("{f},{w}"),
            format!(
                "fd {f} named in {} comes without the identity",
                Pipe::FDS_VAR
            ),
        ),
    ] {
        run(
            "own-file-then-connect-pipe",
            &[f, w],
            &[(Pipe::FDS_VAR, value), (EXPECT_VAR, expect)],
        );
        assert_eq!(written_by_child(&mut file), b"written after the refusal\n");
        file.set_len(CONTENTS.len() as u64).unwrap();
    }
}

#[test]
fn a_worker_variable_naming_a_file_the_process_owns_leaves_the_file_alone() {
    let mut file = scratch_file("worker");
    let f = file.as_raw_fd();
    let null = std::fs::File::open("/dev/null").unwrap();
    let n = null.as_raw_fd();
    let (a, _b) = std::os::unix::net::UnixDatagram::pair().unwrap();
    let s = a.as_raw_fd();
    let socket_entry = {
        let meta = std::fs::metadata(format!("/proc/self/fd/{s}")).unwrap();
        format!("{s}@{}.{}", meta.dev(), meta.ino())
    };
    for (value, expect) in [
        (
            format!("{},{},{socket_entry}", entry(f, &null), entry(n, &null)),
            format!("fd {f} named in {FDS_VAR} is another file"),
        ),
        (
            format!("{},{},{socket_entry}", entry(f, &file), entry(n, &null)),
            format!("fd {f} named in {FDS_VAR} is not what a zipc worker's shm link is made of"),
        ),
    ] {
        run(
            "own-file-then-connect-worker",
            &[f, n, s],
            &[(FDS_VAR, value), (EXPECT_VAR, expect)],
        );
        assert_eq!(written_by_child(&mut file), b"written after the refusal\n");
        file.set_len(CONTENTS.len() as u64).unwrap();
    }
}

#[test]
fn numbers_that_are_not_open_are_refused() {
    run(
        "not-open",
        &[],
        &[
            (Pipe::FDS_VAR, "900@1.2,901@1.3".into()),
            (FDS_VAR, "900@1.2,901@1.3,902@1.4".into()),
            (EXPECT_VAR, "fd 900 named in ZIPC_".into()),
        ],
    );
    // In this process nothing is inherited: the variable is not set.
    match transport::connect(&Address::Pipe) {
        Err(e @ Error::NotFound(_)) => {
            let text = e.to_string();
            assert!(text.contains(Pipe::FDS_VAR), "{text}");
        }
        other => panic!("pipe: without the variable gave {other:?}"),
    }
}

#[test]
fn inherited_pipes_are_claimed_once() {
    let (mut ours, theirs) = Pipe::pair().unwrap();
    let (read, write) = theirs.into_fds().unwrap();
    let value = Pipe::fds_var_value(read.as_fd(), write.as_fd()).unwrap();
    let mut child = spawn(
        "claim-pipe-twice",
        &[read.as_raw_fd(), write.as_raw_fd()],
        &[(Pipe::FDS_VAR, value)],
    );
    drop((read, write));
    let mut buf = Vec::new();
    ours.send(b"first").unwrap();
    ours.recv_timeout(&mut buf, PATIENCE).unwrap();
    assert_eq!(buf, b"first");
    for _ in 0..2 {
        ours.recv_timeout(&mut buf, PATIENCE).unwrap();
        let text = String::from_utf8(buf.clone()).unwrap();
        assert!(
            text.contains(Pipe::FDS_VAR) && text.contains("taken already"),
            "{text}"
        );
    }
    ours.send(b"after").unwrap();
    ours.recv_timeout(&mut buf, PATIENCE).unwrap();
    assert_eq!(buf, b"after");
    let status = child.wait().unwrap();
    assert!(status.success(), "child failed: {status}");
}

#[test]
fn a_worker_connects_once() {
    let mut cmd = zipc::process::Command::new(ROLES);
    cmd.arg("inherit:connect-worker-twice");
    let mut w = Worker::spawn(&cmd).unwrap();
    let mut buf = Vec::new();
    w.recv_into_timeout(&mut buf, PATIENCE).unwrap();
    let text = String::from_utf8(buf).unwrap();
    assert!(text.contains("called before"), "{text}");
    assert!(w.wait().unwrap().success());
}

//! Descriptors named in an environment variable (`ZIPC_PIPE_FDS` for `pipe:`,
//! `ZIPC_WORKER_FDS` for a worker) are taken only once shown to be the ones handed down: a
//! variable naming a descriptor the process owns for something else, numbers that are not
//! open, or a second claim give a clear error and leave every descriptor as it was. The test
//! binary re-runs itself as the child that inherits them.

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;
use zipc::process::{FDS_VAR, Worker};
use zipc::transport::{self, Address, Pipe, Transport};
use zipc::{Error, worker};

const ROLE_VAR: &str = "ZIPC_INHERIT_TEST_ROLE";
/// The descriptor numbers a child role works on, comma-separated.
const FDS_ARG: &str = "ZIPC_INHERIT_TEST_FDS";
/// What the child expects its error to say.
const EXPECT_VAR: &str = "ZIPC_INHERIT_TEST_EXPECT";
const PATIENCE: Duration = Duration::from_secs(30);
const CONTENTS: &[u8] = b"the file's own bytes\n";

// ---------------------------------------------------------------------------------------
// The child's side.

/// When this binary runs as a test's child, play the role and exit.
#[test]
fn child() {
    let Ok(role) = std::env::var(ROLE_VAR) else {
        return;
    };
    let fds: Vec<RawFd> = std::env::var(FDS_ARG)
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    let expect = std::env::var(EXPECT_VAR).unwrap_or_default();
    match role.as_str() {
        "own-file-then-connect-pipe" => own_file_then(&fds, &expect, || {
            transport::connect(&Address::Pipe).map(drop)
        }),
        "own-file-then-connect-worker" => {
            own_file_then(&fds, &expect, || worker::connect().map(drop))
        }
        "not-open" => {
            refused(transport::connect(&Address::Pipe).map(drop), &expect);
            refused(worker::connect().map(drop), &expect);
        }
        "claim-pipe-twice" => claim_pipe_twice(&fds),
        "connect-worker-twice" => {
            let mut parent = worker::connect().unwrap();
            let msg = match worker::connect() {
                Err(Error::InvalidArgument(msg)) => msg,
                other => panic!("a second connect gave {other:?}"),
            };
            parent.send(msg.as_bytes()).unwrap();
            let mut buf = Vec::new();
            assert!(matches!(
                parent.recv_into(&mut buf),
                Err(Error::Disconnected)
            ));
        }
        other => panic!("unknown role {other}"),
    }
    std::process::exit(0);
}

/// Asserts that `r` is an `InvalidArgument` whose text holds `expect`.
fn refused(r: zipc::Result<()>, expect: &str) {
    match r {
        Err(e @ Error::InvalidArgument(_)) => {
            let text = e.to_string();
            assert!(text.contains(expect), "{text:?} does not say {expect:?}");
        }
        other => panic!("the claim gave {other:?}, not a refusal"),
    }
}

/// Owns the first of `fds` as a `File` of its own (as a program does with a descriptor
/// handed to it for its own use), runs `claim`, which must be refused with `expect`, and
/// checks that every one of `fds` is open as before and the file usable.
fn own_file_then(fds: &[RawFd], expect: &str, claim: impl FnOnce() -> zipc::Result<()>) {
    // SAFETY: the parent handed this descriptor to this process for this file, and nothing
    // else in the process owns it (the claim below must not take it either).
    let mut file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fds[0]) });
    let before: Vec<(i32, i32)> = fds.iter().map(|&fd| flags(fd)).collect();
    refused(claim(), expect);
    let after: Vec<(i32, i32)> = fds.iter().map(|&fd| flags(fd)).collect();
    assert_eq!(before, after, "descriptor and file flags changed");
    // Still this process's file: read it, and write to it for the parent to see.
    file.seek(SeekFrom::Start(0)).unwrap();
    let mut back = Vec::new();
    file.read_to_end(&mut back).unwrap();
    assert_eq!(back, CONTENTS);
    file.write_all(b"written after the refusal\n").unwrap();
}

/// The descriptor flags (`F_GETFD`) and file status flags (`F_GETFL`) of `fd`, which must be
/// open.
fn flags(fd: RawFd) -> (i32, i32) {
    // SAFETY: F_GETFD and F_GETFL only read the flags of a descriptor this process holds.
    let both = unsafe {
        (
            libc::fcntl(fd, libc::F_GETFD),
            libc::fcntl(fd, libc::F_GETFL),
        )
    };
    assert!(both.0 >= 0 && both.1 >= 0, "fd {fd} is not open");
    both
}

/// Takes the inherited pipes, echoes one frame, then tries again: refused, with both ways
/// of asking.
fn claim_pipe_twice(fds: &[RawFd]) {
    let mut end = transport::connect(&Address::Pipe).unwrap();
    let mut buf = Vec::new();
    end.recv(&mut buf).unwrap();
    end.send(&buf).unwrap();
    for fd in fds {
        assert_eq!(flags(*fd).0, libc::FD_CLOEXEC, "claimed, so close-on-exec");
    }
    for second in [
        transport::connect(&Address::Pipe).map(drop),
        Pipe::inherited().map(drop),
    ] {
        match second {
            Err(e @ Error::InvalidArgument(_)) => end.send(e.to_string().as_bytes()).unwrap(),
            other => panic!("a second claim gave {other:?}"),
        }
    }
    // The first claim's end still works.
    end.recv(&mut buf).unwrap();
    end.send(&buf).unwrap();
}

// ---------------------------------------------------------------------------------------
// The parent's side.

/// Starts this binary as a child playing `role`, with `fds` inherited at their numbers and
/// `env` set.
fn spawn(role: &str, fds: &[RawFd], env: &[(&str, String)]) -> std::process::Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["child", "--exact", "--nocapture", "--test-threads=1", "-q"])
        .env(ROLE_VAR, role)
        .env(FDS_ARG, fd_list(fds))
        .env_remove(Pipe::FDS_VAR)
        .env_remove(FDS_VAR)
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let fds = fds.to_vec();
    // SAFETY: between fork and exec the closure only calls fcntl, which is async-signal-safe;
    // clearing CLOEXEC in the child alone keeps the fds out of other tests' children.
    unsafe {
        cmd.pre_exec(move || {
            for &fd in &fds {
                if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
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
    let mut cmd = zipc::process::Command::new(std::env::current_exe().unwrap());
    cmd.args(["child", "--exact", "--nocapture", "--test-threads=1", "-q"])
        .env(ROLE_VAR, "connect-worker-twice");
    let mut w = Worker::spawn(&cmd).unwrap();
    let mut buf = Vec::new();
    w.recv_into_timeout(&mut buf, PATIENCE).unwrap();
    let text = String::from_utf8(buf).unwrap();
    assert!(text.contains("called before"), "{text}");
    assert!(w.wait().unwrap().success());
}

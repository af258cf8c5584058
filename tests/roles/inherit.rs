//! Roles of tests/inherited_fds.rs: a child that inherits descriptors named in an
//! environment variable and checks what claiming them does.

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use zipc::transport::{self, Address, Pipe, Transport};
use zipc::{Error, worker};

use crate::shared::inherit::{CONTENTS, EXPECT_VAR, FDS_ARG};

/// Plays `role`: the descriptors it works on are in [`FDS_ARG`], what its refusal must say
/// in [`EXPECT_VAR`].
pub fn run(role: &str, _args: &[&str]) {
    let fds: Vec<RawFd> = std::env::var(FDS_ARG)
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    let expect = std::env::var(EXPECT_VAR).unwrap_or_default();
    match role {
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

//! What a test and its child process (the `zipc-test-roles` binary, tests/roles/) agree on:
//! the frames and values that cross between them, and how many. Both include this file (the
//! tests as `mod shared`, the binary likewise), so the two sides cannot drift apart.
#![allow(dead_code)]

/// tests/process.rs: workers spawned already wired to their channels.
pub mod process {
    /// Frames each way in the byte and typed streams.
    pub const FRAMES: u64 = 100_000;
    /// Payload bytes beyond the 16-byte sequence number and checksum: 0..=MAX_EXTRA.
    pub const MAX_EXTRA: u64 = 240;

    /// A typed message: what `process:typed-double` receives, and (doubled) sends back.
    #[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
    #[repr(C)]
    pub struct Reading {
        pub seq: u64,
        pub value: f64,
        pub tags: [u32; 4],
    }

    /// Reading number `seq` of the stream.
    pub fn reading(seq: u64) -> Reading {
        Reading {
            seq,
            value: seq as f64 * 0.25,
            tags: [seq as u32, !(seq as u32), 7, (seq >> 3) as u32],
        }
    }

    /// The fds beyond stdin, stdout and stderr that this process has open without
    /// close-on-exec (what a child inherits; in a child, what it inherited), in order.
    pub fn inheritable_fds() -> Vec<u32> {
        let mut fds: Vec<u32> = std::fs::read_dir("/proc/self/fdinfo")
            .unwrap()
            .filter_map(|e| {
                let e = e.ok()?;
                let fd: u32 = e.file_name().to_str()?.parse().ok()?;
                let info = std::fs::read_to_string(e.path()).ok()?;
                let flags = info.lines().find_map(|l| l.strip_prefix("flags:"))?.trim();
                let flags = i32::from_str_radix(flags, 8).ok()?;
                (fd > 2 && flags & libc::O_CLOEXEC == 0).then_some(fd)
            })
            .collect();
        fds.sort_unstable();
        fds
    }

    /// `fds` as a comma-separated list.
    pub fn fd_list(fds: &[u32]) -> String {
        let fds: Vec<String> = fds.iter().map(u32::to_string).collect();
        fds.join(",")
    }
}

/// tests/multiprocess.rs: a million frames between two processes.
pub mod multiprocess {
    use crate::common::{Rng, checksum};

    /// Frames in each stream.
    pub const FRAMES: u64 = 1_000_000;
    /// Payload bytes beyond the 16-byte sequence number and checksum: 0..=MAX_EXTRA.
    pub const MAX_EXTRA: u64 = 240;

    /// The typed streams' message.
    #[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
    #[repr(C)]
    pub struct Record {
        pub seq: u64,
        pub values: [u32; 10],
        pub checksum: u64,
    }

    impl Record {
        /// Record number `seq` of the stream.
        pub fn new(seq: u64) -> Record {
            let mut rng = Rng(seq | 1);
            let values = std::array::from_fn(|_| rng.next() as u32);
            Record {
                seq,
                values,
                checksum: checksum(bytemuck::bytes_of(&values)),
            }
        }
    }
}

/// tests/crash.rs: a peer killed mid-stream.
pub mod crash {
    /// Payload bytes beyond the 16-byte sequence number and checksum: 0..=MAX_EXTRA.
    pub const MAX_EXTRA: u64 = 1000;
}

/// tests/transport.rs: the conformance suite's peers in another process.
pub mod transport {
    use crate::common::Rng;
    use std::time::Duration;

    /// How long a test waits for something that should happen at once.
    pub const PATIENCE: Duration = Duration::from_secs(20);

    /// Frame `seq` of `len` bytes: the sequence number, then bytes drawn from it.
    pub fn pattern(seq: u64, len: usize) -> Vec<u8> {
        let mut rng = Rng(seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let mut v = Vec::with_capacity(len + 8);
        while v.len() < len {
            v.extend_from_slice(&rng.next().to_le_bytes());
        }
        v.truncate(len);
        let head = seq.to_le_bytes();
        let n = len.min(8);
        v[..n].copy_from_slice(&head[..n]);
        v
    }

    /// The size of frame `seq` of a peer's stream: mostly small, every 16th over 200 KB
    /// (several chunks on every message transport).
    pub fn stream_len(seq: u64) -> usize {
        if seq % 16 == 15 {
            200_000 + (seq % 1000) as usize
        } else {
            (seq % 1500) as usize
        }
    }
}

/// What tests/inherited_fds.rs and its child agree on.
pub mod inherit {
    /// The descriptor numbers a child role works on, comma-separated.
    pub const FDS_ARG: &str = "ZIPC_INHERIT_TEST_FDS";
    /// What the child expects its error to say.
    pub const EXPECT_VAR: &str = "ZIPC_INHERIT_TEST_EXPECT";
    /// The bytes of the file the child owns for itself.
    pub const CONTENTS: &[u8] = b"the file's own bytes\n";
}

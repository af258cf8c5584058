//! Helpers shared by the multi-process tests: the test binary re-runs itself as the peer.
#![allow(dead_code)]

use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::process::{Child, Command, Stdio};

const ROLE_VAR: &str = "ZIPC_TEST_ROLE";
const FD_VAR: &str = "ZIPC_TEST_FD";
const ARG_VAR: &str = "ZIPC_TEST_ARG";

/// The role this process plays, when a test started it as a peer.
pub fn role() -> Option<(String, Option<RawFd>, String)> {
    let role = std::env::var(ROLE_VAR).ok()?;
    let fd = std::env::var(FD_VAR).ok().and_then(|s| s.parse().ok());
    let arg = std::env::var(ARG_VAR).unwrap_or_default();
    Some((role, fd, arg))
}

/// Starts this test binary again, running only the test named `entry`, as `role`, with `fd`
/// inherited (its CLOEXEC cleared for the spawn).
pub fn spawn(entry: &str, role: &str, fd: Option<BorrowedFd<'_>>, arg: &str) -> Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([entry, "--exact", "--nocapture", "--test-threads=1", "-q"])
        .env(ROLE_VAR, role)
        .env(ARG_VAR, arg)
        .stdin(Stdio::null());
    if let Some(fd) = fd {
        cmd.env(FD_VAR, fd.as_raw_fd().to_string());
        set_cloexec(fd.as_raw_fd(), false);
    }
    let child = cmd.spawn().expect("spawn the peer");
    if let Some(fd) = fd {
        set_cloexec(fd.as_raw_fd(), true);
    }
    child
}

fn set_cloexec(fd: RawFd, on: bool) {
    let flags = if on { libc::FD_CLOEXEC } else { 0 };
    // SAFETY: F_SETFD on a descriptor the caller keeps open.
    assert_eq!(unsafe { libc::fcntl(fd, libc::F_SETFD, flags) }, 0);
}

/// Takes ownership of an inherited descriptor.
pub fn inherited(fd: RawFd) -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd;
    // SAFETY: the parent handed this descriptor to us alone, and nothing else in this
    // process owns it.
    unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }
}

/// Waits for a peer and asserts it succeeded.
pub fn wait_ok(mut child: Child) {
    let status = child.wait().unwrap();
    assert!(status.success(), "peer failed: {status}");
}

/// A name no other test (or test run) uses.
pub fn unique_name(tag: &str) -> String {
    static N: std::sync::Mutex<u32> = std::sync::Mutex::new(0);
    let mut n = N.lock().unwrap();
    *n += 1;
    format!("test-{}-{}-{}", std::process::id(), tag, *n)
}

/// Whether `/dev/shm` still holds the named segment.
pub fn shm_exists(name: &str) -> bool {
    std::path::Path::new(&format!("/dev/shm/zipc.{name}")).exists()
}

/// xorshift64*: a small deterministic generator, so both sides derive the same frames.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// A 64-bit FNV-1a checksum.
pub fn checksum(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// The length of frame `seq`: 16 bytes of sequence number and checksum, then 0..=max_extra
/// bytes of payload.
pub fn frame_len(seq: u64, max_extra: u64) -> usize {
    16 + (Rng(seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1).next() % (max_extra + 1)) as usize
}

/// Fills `buf` as frame `seq`: sequence number, checksum of the payload, payload.
pub fn fill_frame(seq: u64, buf: &mut [u8]) {
    let mut rng = Rng(seq | 1);
    let (head, payload) = buf.split_at_mut(16);
    for chunk in payload.chunks_mut(8) {
        let word = rng.next().to_le_bytes();
        chunk.copy_from_slice(&word[..chunk.len()]);
    }
    head[..8].copy_from_slice(&seq.to_le_bytes());
    head[8..].copy_from_slice(&checksum(payload).to_le_bytes());
}

/// Checks frame `expect`: its length, sequence number and checksum.
pub fn check_frame(expect: u64, max_extra: u64, frame: &[u8]) {
    assert_eq!(
        frame.len(),
        frame_len(expect, max_extra),
        "length of frame {expect}"
    );
    let seq = u64::from_le_bytes(frame[..8].try_into().unwrap());
    assert_eq!(seq, expect, "sequence number");
    let sum = u64::from_le_bytes(frame[8..16].try_into().unwrap());
    assert_eq!(sum, checksum(&frame[16..]), "checksum of frame {seq}");
}

/// Opens a named channel once its creator (a peer) has made it, giving up after 20 s.
pub fn open_when_created<T>(name: &str, open: impl Fn(&str) -> zipc::Result<T>) -> T {
    let start = std::time::Instant::now();
    loop {
        match open(name) {
            Ok(rx) => return rx,
            Err(zipc::Error::NotFound(_)) if start.elapsed().as_secs() < 20 => {
                std::thread::sleep(std::time::Duration::from_millis(2))
            }
            Err(e) => panic!("open {name}: {e}"),
        }
    }
}

/// A sized segment file named `name` with no owner lock: what a killed creator leaves.
pub fn stale_segment(name: &str, bytes: i64) {
    let path = std::ffi::CString::new(format!("/zipc.{name}")).unwrap();
    let flags = libc::O_CREAT | libc::O_EXCL | libc::O_RDWR;
    // SAFETY: a NUL-terminated name and valid flags.
    let raw = unsafe { libc::shm_open(path.as_ptr(), flags, 0o600) };
    assert!(raw >= 0, "shm_open {name}");
    // SAFETY: the descriptor we just opened, closed once sized.
    unsafe {
        assert_eq!(libc::ftruncate(raw, bytes), 0);
        libc::close(raw);
    }
}

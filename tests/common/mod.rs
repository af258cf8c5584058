//! Helpers shared by the multi-process tests. Their child processes are the
//! `zipc-test-roles` binary (tests/roles/), which includes this module too.
#![allow(dead_code)]

use std::os::fd::RawFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `exe` (a test passes `env!("CARGO_BIN_EXE_zipc-test-roles")`) playing `role` with `args`,
/// `fds` inherited: their close-on-exec flag is cleared in the child alone, so that the
/// children other tests start at the same time do not inherit them.
pub fn role_command(exe: &str, role: &str, args: &[&str], fds: &[RawFd]) -> Command {
    let mut cmd = Command::new(exe);
    cmd.arg(role).args(args).stdin(Stdio::null());
    let fds = fds.to_vec();
    // SAFETY: between fork and exec the closure only calls fcntl, which is async-signal-safe,
    // on descriptors the caller keeps open until the spawn returns.
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
    cmd
}

/// Starts `exe` playing `role` with `args`, `fds` inherited (see [`role_command`]).
pub fn spawn(exe: &str, role: &str, args: &[&str], fds: &[RawFd]) -> Child {
    role_command(exe, role, args, fds)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {exe} {role}: {e}"))
}

/// `exe` playing `role`, its one argument the descriptor `fd` (inherited) or, without one,
/// the segment name `name`.
pub fn spawn_on(exe: &str, role: &str, fd: Option<&std::os::fd::OwnedFd>, name: &str) -> Child {
    use std::os::fd::AsRawFd;
    match fd {
        Some(fd) => spawn(exe, role, &[&fd.as_raw_fd().to_string()], &[fd.as_raw_fd()]),
        None => spawn(exe, role, &[name], &[]),
    }
}

/// The calling thread's id, for [`wait_until_asleep`] and [`wait_until_spinning`].
pub fn thread_id() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

/// Fields 3 onwards of thread `tid`'s /proc stat line (state, ppid, ...), or `None` once it
/// is gone.
fn thread_stat(tid: i32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
    // The name, in parentheses, may hold spaces: the fields start after the last ')'.
    let rest = stat.rsplit_once(')')?.1;
    Some(rest.split_whitespace().map(String::from).collect())
}

/// Waits until thread `tid` of this process sleeps in the kernel (state `S`): once it said
/// it is about to block, that is it blocking. Gives up after 60 s.
pub fn wait_until_asleep(tid: i32) {
    let start = Instant::now();
    loop {
        let stat = thread_stat(tid).expect("the thread ended before it blocked");
        if stat[0] == "S" {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "thread {tid} never blocked (state {})",
            stat[0]
        );
        std::thread::yield_now();
    }
}

/// Waits until thread `tid` of this process has run on a CPU for two clock ticks more than
/// when this was called: once it said it is about to spin, that is it spinning. Gives up
/// after 60 s.
pub fn wait_until_spinning(tid: i32) {
    // utime and stime, fields 14 and 15 of the line: 11 and 12 of what `thread_stat` keeps.
    let cpu = || {
        let stat = thread_stat(tid).expect("the thread ended before it spun");
        stat[11].parse::<u64>().unwrap() + stat[12].parse::<u64>().unwrap()
    };
    let (start, before) = (Instant::now(), cpu());
    while cpu() < before + 2 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "thread {tid} never spun"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
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

//! Helpers shared by the adversarial tests and the peer processes they start: deterministic
//! frames with a sequence number and a checksum, guards that remove named segments and reap
//! children whatever happens, and the error classes the tests accept.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Where named segments live.
pub const SHM_DIR: &str = "/dev/shm";
/// The prefix of every name these tests create (after zipc's own `zipc.` prefix).
pub const NAME_TAG: &str = "adv-";

/// xorshift64*: a small deterministic generator, so that both sides derive the same frames.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value; 0 is mapped to a fixed non-zero state).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A value in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// A seed from the environment variable `var`, else from the clock; the tests print it, so
/// that a failing run can be repeated with `var` set.
pub fn seed(var: &str) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        })
}

/// A count from the environment variable `var`, else `default`.
pub fn env_count(var: &str, default: u64) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// A 64-bit FNV-1a checksum.
pub fn checksum(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// Bytes of a frame before its payload: sequence number, then checksum of the payload.
pub const FRAME_HEAD: usize = 16;
/// The most payload bytes a test frame carries after its head.
pub const MAX_EXTRA: u64 = 1000;

/// The length of frame `seq`: its head, then 0..=MAX_EXTRA bytes derived from `seq`.
pub fn frame_len(seq: u64) -> usize {
    FRAME_HEAD + Rng::new(seq ^ 0x5eed).below(MAX_EXTRA + 1) as usize
}

/// Fills `buf` (of `frame_len(seq)` bytes) as frame `seq`.
pub fn fill_frame(seq: u64, buf: &mut [u8]) {
    let mut rng = Rng::new(seq);
    let (head, payload) = buf.split_at_mut(FRAME_HEAD);
    for chunk in payload.chunks_mut(8) {
        let word = rng.next_u64().to_le_bytes();
        chunk.copy_from_slice(&word[..chunk.len()]);
    }
    head[..8].copy_from_slice(&seq.to_le_bytes());
    head[8..].copy_from_slice(&checksum(payload).to_le_bytes());
}

/// Frame `seq` as a vector.
pub fn make_frame(seq: u64) -> Vec<u8> {
    let mut v = vec![0; frame_len(seq)];
    fill_frame(seq, &mut v);
    v
}

/// Checks that `frame` is frame `expect`: its length, sequence number and checksum. The
/// error says what differs.
pub fn check_frame(expect: u64, frame: &[u8]) -> Result<(), String> {
    if frame.len() < FRAME_HEAD {
        return Err(format!(
            "expected frame {expect}, got {} bytes, too short for a head",
            frame.len()
        ));
    }
    let seq = u64::from_le_bytes(frame[..8].try_into().expect("8 bytes"));
    if seq != expect {
        return Err(format!(
            "expected frame {expect}, got frame {seq}: a gap or a duplicate"
        ));
    }
    if frame.len() != frame_len(expect) {
        return Err(format!(
            "frame {expect} has {} bytes, {} were sent",
            frame.len(),
            frame_len(expect)
        ));
    }
    let sum = u64::from_le_bytes(frame[8..16].try_into().expect("8 bytes"));
    if sum != checksum(&frame[FRAME_HEAD..]) {
        return Err(format!("frame {expect} fails its checksum"));
    }
    Ok(())
}

/// Whether `e` is an error a channel under attack, or whose peer died, may return: what the
/// documentation promises for garbled memory and dead peers, and the ordinary ones.
pub fn is_allowed(e: &zipc::Error) -> bool {
    use zipc::Error::*;
    matches!(
        e,
        Corrupted(_) | Incompatible(_) | PeerGone | Timeout | Disconnected | WouldBlock
    )
}

/// A name for a named segment no other test, test run or process uses.
pub fn unique_name(tag: &str) -> String {
    static N: std::sync::Mutex<u32> = std::sync::Mutex::new(0);
    let n = {
        let mut n = N.lock().unwrap_or_else(|e| e.into_inner());
        *n += 1;
        *n
    };
    format!("{NAME_TAG}{}-{tag}-{n}", std::process::id())
}

/// The path of the named segment `name` in `/dev/shm`.
pub fn shm_path(name: &str) -> String {
    format!("{SHM_DIR}/zipc.{name}")
}

/// Whether `/dev/shm` holds the named segment `name`.
pub fn shm_exists(name: &str) -> bool {
    std::path::Path::new(&shm_path(name)).exists()
}

/// Removes the named segment `name` when dropped, whatever the test did: a failed assertion
/// must not leave a segment behind. Checks for leaks belong before the drop.
#[derive(Debug)]
pub struct ShmGuard(pub String);

impl ShmGuard {
    /// A guard for a fresh unique name.
    pub fn new(tag: &str) -> ShmGuard {
        ShmGuard(unique_name(tag))
    }

    /// The guarded name.
    pub fn name(&self) -> &str {
        &self.0
    }
}

impl Drop for ShmGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(shm_path(&self.0));
    }
}

/// A child process that is killed (SIGKILL) and reaped when dropped unless it was reaped
/// already, with its stdout read line by line on a thread (so that a test can wait for a
/// line with a bound, and never blocks on a pipe).
#[derive(Debug)]
pub struct Peer {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    reaped: Option<std::process::ExitStatus>,
    what: String,
}

impl Peer {
    /// Starts `program` with `args`, stdin and stdout piped, stderr inherited.
    pub fn spawn(program: &str, args: &[&str]) -> Peer {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program} {args:?}: {e}"));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Peer {
            child,
            stdin,
            lines,
            reaped: None,
            what: format!(
                "{} {}",
                program.rsplit('/').next().unwrap_or(program),
                args.join(" ")
            ),
        }
    }

    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next line the child wrote, waiting at most `bound`; `None` at end of output (the
    /// child closed stdout or died) or when the bound passed.
    pub fn line(&self, bound: Duration) -> Option<String> {
        self.lines.recv_timeout(bound).ok()
    }

    /// The next line, if one is there now.
    pub fn try_line(&self) -> Option<String> {
        self.lines.try_recv().ok()
    }

    /// The next line, which must come within `bound` and start with `prefix`; returns the rest.
    pub fn expect(&self, prefix: &str, bound: Duration) -> String {
        match self.line(bound) {
            Some(l) if l.starts_with(prefix) => l[prefix.len()..].trim().to_owned(),
            Some(l) => panic!("{}: expected {prefix:?}, got {l:?}", self.what),
            None => panic!(
                "{}: expected {prefix:?} within {bound:?}, got nothing",
                self.what
            ),
        }
    }

    /// Every line left, up to the end of the child's output (it must be dead or closing).
    pub fn rest(&self, bound: Duration) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(l) = self.line(bound) {
            out.push(l);
        }
        out
    }

    /// Writes `bytes` to the child's stdin (a lost write to a dead child is ignored).
    pub fn say(&mut self, bytes: &[u8]) {
        if let Some(s) = self.stdin.as_mut() {
            let _ = s.write_all(bytes).and_then(|()| s.flush());
        }
    }

    /// Closes the child's stdin: the signal to finish.
    pub fn hang_up(&mut self) {
        self.stdin = None;
    }

    /// SIGKILL (the child must not have been reaped: then the pid is still its zombie's).
    pub fn kill(&mut self) {
        assert!(
            self.reaped.is_none(),
            "{}: killed after being reaped",
            self.what
        );
        self.child
            .kill()
            .expect("SIGKILL a child we have not reaped");
    }

    /// Whether the child has exited (it is reaped then).
    pub fn exited(&mut self) -> bool {
        if self.reaped.is_none() {
            self.reaped = self.child.try_wait().expect("waitpid");
        }
        self.reaped.is_some()
    }

    /// Waits for the child and returns its status.
    pub fn wait(&mut self) -> std::process::ExitStatus {
        if let Some(s) = self.reaped {
            return s;
        }
        self.stdin = None;
        let s = self.child.wait().expect("waitpid");
        self.reaped = Some(s);
        s
    }

    /// Waits for the child and asserts it exited with status 0.
    pub fn wait_ok(&mut self) {
        let s = self.wait();
        assert!(s.success(), "{} failed: {s}", self.what);
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if self.reaped.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Reads a line from stdin; `None` at end of input (the parent hung up).
pub fn read_line() -> Option<String> {
    let mut s = String::new();
    match std::io::stdin().read_line(&mut s) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(s.trim().to_owned()),
    }
}

/// Writes one line to stdout at once (the parent waits for it).
pub fn announce(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

/// Whether stdin is at end of input or readable now, without blocking: the parent's "stop".
pub fn stdin_closed() -> bool {
    let mut pfd = libc::pollfd {
        fd: 0,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call, a zero timeout.
    let n = unsafe { libc::poll(&mut pfd, 1, 0) };
    n > 0 && pfd.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0
}

/// Blocks until the parent writes a line or hangs up; returns the line.
pub fn wait_parent() -> Option<String> {
    read_line()
}

/// How much longer than its timeout a call may take (the bound the tests hold every call to),
/// not counting the time the calling thread waited for a CPU (see [`cpu_wait`]).
pub const OVERRUN: Duration = Duration::from_millis(50);

/// The time the calling thread has spent runnable but waiting for a CPU (the scheduler's run
/// delay, from `/proc/thread-self/schedstat`), if the kernel reports it.
///
/// Time bounds on a loaded machine leave it out: a thread that waited 200 ms for a core
/// (measured here on two busy cores) says nothing about the code it was running.
pub fn cpu_wait() -> Option<Duration> {
    run_delay("/proc/thread-self/schedstat")
}

/// As [`cpu_wait`], for the main thread of process `pid` (a zombie's still counts, until it
/// is reaped).
pub fn cpu_wait_of(pid: u32) -> Option<Duration> {
    run_delay(&format!("/proc/{pid}/schedstat"))
}

fn run_delay(path: &str) -> Option<Duration> {
    let text = std::fs::read_to_string(path).ok()?;
    let ns: u64 = text.split_whitespace().nth(1)?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// How much more `now` says than `before` (zero when either is unknown).
pub fn waited(before: Option<Duration>, now: Option<Duration>) -> Duration {
    match (before, now) {
        (Some(a), Some(b)) => b.saturating_sub(a),
        _ => Duration::ZERO,
    }
}

/// What an honest end saw while its segment was under attack.
#[derive(Debug, Default)]
pub struct Honest {
    /// Calls made.
    pub calls: u64,
    /// Frames sent or received.
    pub frames: u64,
    /// The most a call took beyond its timeout, less the time it waited for a CPU.
    pub worst_overrun: Duration,
    /// The most a call took beyond its timeout, on the clock.
    pub worst_raw_overrun: Duration,
    /// Errors by kind.
    pub errors: std::collections::BTreeMap<&'static str, u64>,
}

impl Honest {
    /// Times one call with `timeout`, and classifies its error if any.
    fn record<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        call: impl FnOnce() -> zipc::Result<T>,
    ) -> Result<Option<T>, String> {
        let cpu = cpu_wait();
        let start = std::time::Instant::now();
        let r = call();
        let took = start.elapsed();
        let queued = waited(cpu, cpu_wait());
        self.calls += 1;
        let raw = took.saturating_sub(timeout);
        let over = raw.saturating_sub(queued);
        self.worst_overrun = self.worst_overrun.max(over);
        self.worst_raw_overrun = self.worst_raw_overrun.max(raw);
        if over > OVERRUN {
            return Err(format!(
                "{what} with a timeout of {timeout:?} returned after {took:?} \
                 ({queued:?} of it waiting for a CPU)"
            ));
        }
        match r {
            Ok(v) => Ok(Some(v)),
            Err(e) if is_allowed(&e) => {
                *self.errors.entry(kind(&e)).or_default() += 1;
                Ok(None)
            }
            Err(e) => Err(format!(
                "{what} returned {e:?} ({e}), not an error a garbled segment or a dead peer may cause"
            )),
        }
    }

    /// One line: calls, frames, worst overrun, errors.
    pub fn summary(&self) -> String {
        format!(
            "{} calls, {} frames, worst overrun {:?} ({:?} on the clock), errors {:?}",
            self.calls, self.frames, self.worst_overrun, self.worst_raw_overrun, self.errors
        )
    }
}

/// The name of an error's kind.
pub fn kind(e: &zipc::Error) -> &'static str {
    use zipc::Error::*;
    match e {
        WouldBlock => "WouldBlock",
        Timeout => "Timeout",
        Disconnected => "Disconnected",
        PeerGone => "PeerGone",
        Corrupted(_) => "Corrupted",
        Incompatible(_) => "Incompatible",
        _ => "other",
    }
}

/// A timeout of 0 to 5 ms, now and then up to 20 ms.
fn some_timeout(rng: &mut Rng) -> Duration {
    let most = if rng.below(8) == 0 { 20_000 } else { 5_000 };
    Duration::from_micros(rng.below(most))
}

/// Receives with `try_recv` and `recv_timeout` until `stop()`, reading every byte of every
/// frame: each call returns within its timeout and [`OVERRUN`], each error is allowed.
pub fn honest_consume(
    rx: &mut zipc::bytes::Consumer,
    rng: &mut Rng,
    mut stop: impl FnMut() -> bool,
) -> Result<Honest, String> {
    let mut h = Honest::default();
    while !stop() {
        let got = if rng.below(2) == 0 {
            h.record("try_recv", Duration::ZERO, || {
                rx.try_recv().map(|f| checksum(&f))
            })?
        } else {
            let t = some_timeout(rng);
            h.record("recv_timeout", t, || {
                rx.recv_timeout(t).map(|f| checksum(&f))
            })?
        };
        match got {
            Some(_) => h.frames += 1,
            None => std::thread::yield_now(),
        }
    }
    Ok(h)
}

/// Sends with `try_send`, `send_timeout` and `loan_timeout` (committed or dropped) until
/// `stop()`, frames of 0 bytes up to the largest loan: each call returns within its timeout
/// and [`OVERRUN`], each error is allowed.
pub fn honest_produce(
    tx: &mut zipc::bytes::Producer,
    rng: &mut Rng,
    mut stop: impl FnMut() -> bool,
) -> Result<Honest, String> {
    let mut h = Honest::default();
    let max = tx.max_loan_len();
    let data = vec![0xa5u8; max];
    while !stop() {
        let len = match rng.below(8) {
            0 => 0,
            1 => max,
            _ => rng.below(2048.min(max as u64 + 1)) as usize,
        };
        let sent = match rng.below(3) {
            0 => h.record("try_send", Duration::ZERO, || tx.try_send(&data[..len]))?,
            1 => {
                let t = some_timeout(rng);
                h.record("send_timeout", t, || tx.send_timeout(&data[..len], t))?
            }
            _ => {
                let t = some_timeout(rng);
                let commit = rng.below(4) != 0;
                h.record("loan_timeout", t, || {
                    tx.loan_timeout(len, t).map(|mut loan| {
                        loan.fill(0x5a);
                        if commit {
                            loan.commit();
                        }
                    })
                })?
            }
        };
        match sent {
            Some(()) => h.frames += 1,
            None => std::thread::yield_now(),
        }
    }
    Ok(h)
}

/// Starts `program` with `args`, as [`Peer::spawn`], and the descriptor `fd` inherited under
/// its own number (the child is told it in its arguments by the caller).
pub fn spawn_with_fd(program: &str, args: &[&str], fd: std::os::fd::BorrowedFd<'_>) -> Peer {
    use std::os::fd::AsRawFd;
    // Only this descriptor loses close-on-exec, and only for the spawn. Another thread's
    // spawn in that window inherits it too: harmless, since zipc reopens a segment's fd (its
    // locks live on the new open file, not on this one).
    static SPAWN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = SPAWN.lock().unwrap_or_else(|e| e.into_inner());
    set_cloexec(fd.as_raw_fd(), false);
    let peer = Peer::spawn(program, args);
    set_cloexec(fd.as_raw_fd(), true);
    peer
}

fn set_cloexec(fd: i32, on: bool) {
    let flags = if on { libc::FD_CLOEXEC } else { 0 };
    // SAFETY: F_SETFD on a descriptor the caller keeps open; no memory is passed.
    let r = unsafe { libc::fcntl(fd, libc::F_SETFD, flags) };
    assert_eq!(r, 0, "fcntl(F_SETFD) on fd {fd}");
}

/// Takes ownership of the inherited descriptor numbered `fd` (from the command line).
pub fn inherited(fd: &str) -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd;
    let fd: i32 = fd.parse().expect("an fd number");
    // The descriptor must be open: F_GETFD fails on anything else.
    // SAFETY: F_GETFD on any number takes and touches no memory.
    let open = unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0;
    assert!(open, "fd {fd} is not open");
    // SAFETY: the parent handed this descriptor to this process alone, and nothing else here
    // owns it.
    unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }
}

/// Lists the named segments in `/dev/shm` whose names start with `zipc.` and `prefix`.
pub fn segments_with_prefix(prefix: &str) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(SHM_DIR) else {
        return Vec::new();
    };
    let full = format!("zipc.{prefix}");
    let mut v: Vec<String> = dir
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with(&full))
        .collect();
    v.sort();
    v
}

/// The prefix of every name this process's [`unique_name`] makes.
pub fn my_prefix() -> String {
    format!("{NAME_TAG}{}-", std::process::id())
}

/// The frame a race winner sends: its nonce.
pub fn nonce_frame(nonce: u64) -> [u8; 16] {
    let mut f = [0u8; 16];
    f[..8].copy_from_slice(&nonce.to_le_bytes());
    f[8..].copy_from_slice(&(!nonce).to_le_bytes());
    f
}

/// Opens `name` until it holds a frame from a live creator; returns the frame's nonce.
/// `NotFound` (nothing there yet, or between a stale image's removal and its successor) is
/// retried, and so is a consumer of a stale image (whose producer is dead: `PeerGone`).
pub fn open_racer(name: &str, bound: Duration) -> Result<u64, String> {
    let start = std::time::Instant::now();
    loop {
        if start.elapsed() > bound {
            return Err(format!("no live channel {name:?} within {bound:?}"));
        }
        let mut rx = match zipc::bytes::open(name) {
            Ok(rx) => rx,
            Err(zipc::Error::NotFound(_)) => {
                std::thread::yield_now();
                continue;
            }
            Err(e) => return Err(format!("open {name}: {e:?} ({e})")),
        };
        match rx.recv_timeout(bound) {
            Ok(f) => {
                let nonce = f
                    .get(..8)
                    .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
                return match nonce {
                    Some(n) if *f == nonce_frame(n) => Ok(n),
                    _ => Err(format!("a frame that is not a winner's: {:?}", &*f)),
                };
            }
            // A stale image's consumer: its producer died long ago. Try again.
            Err(zipc::Error::PeerGone) => continue,
            Err(e) => return Err(format!("recv on {name}: {e:?} ({e})")),
        }
    }
}

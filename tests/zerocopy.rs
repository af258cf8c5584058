//! The zero-copy paths: `send_file` of 1 GiB from tmpfs (a memfd) arrives byte-exact through a
//! Unix stream socket, a pipe and a file, by the default strategy and by each strategy forced;
//! the fallback chain where the kernel refuses; non-blocking destinations; signals; ranges;
//! `recv_to_file`, `tee`, and `VmspliceWriter`'s hold on buffers in flight.
//!
//! Every byte that arrives is compared with the generator that wrote the source (no checksum
//! that could hide a swapped block). The source is one memfd shared by the tests (sendfile
//! reads at offsets, never moving its position); 1 GiB unless `MemAvailable` is short, in which
//! case it shrinks and says so.

#![cfg(not(loom))]

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::OnceLock;
use std::thread;
use std::time::Duration;
use zipc::zerocopy::{
    self, PageBuf, RecvToFile, SendFile, SplicePipe, Strategy, Transfer, VmspliceWriter,
};

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

/// The word at word index `i` of the pattern (splitmix64: no two nearby words alike).
fn word(i: u64) -> u64 {
    let mut z = i.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The pattern's byte at position `pos`.
fn byte(pos: u64) -> u8 {
    word(pos / 8).to_le_bytes()[(pos % 8) as usize]
}

/// Checks a stream against the pattern from a starting position, chunk by chunk.
struct Checker {
    pos: u64,
}

impl Checker {
    fn at(pos: u64) -> Checker {
        Checker { pos }
    }

    fn feed(&mut self, mut data: &[u8]) {
        while !self.pos.is_multiple_of(8) && !data.is_empty() {
            assert_eq!(data[0], byte(self.pos), "byte {} differs", self.pos);
            self.pos += 1;
            data = &data[1..];
        }
        let words = data.chunks_exact(8);
        let tail = words.remainder();
        let first = self.pos / 8;
        for (k, w) in words.enumerate() {
            let got = u64::from_le_bytes(w.try_into().unwrap());
            if got != word(first + k as u64) {
                panic!(
                    "bytes {}..{} differ",
                    self.pos + 8 * k as u64,
                    self.pos + 8 * k as u64 + 8
                );
            }
        }
        self.pos += (data.len() - tail.len()) as u64;
        for &b in tail {
            assert_eq!(b, byte(self.pos), "byte {} differs", self.pos);
            self.pos += 1;
        }
    }
}

fn memfd(name: &str) -> File {
    let name = std::ffi::CString::new(name).unwrap();
    // SAFETY: a valid NUL-terminated name; valid flags.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    assert!(fd >= 0, "memfd_create: {}", std::io::Error::last_os_error());
    // SAFETY: a fresh descriptor that nothing else owns.
    File::from(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A memfd holding the pattern's first `len` bytes.
fn pattern_file(len: u64) -> File {
    let mut f = memfd("zipc-test-src");
    let mut buf = vec![0u8; MIB as usize];
    let mut pos = 0;
    while pos < len {
        for (k, w) in buf.chunks_exact_mut(8).enumerate() {
            w.copy_from_slice(&word(pos / 8 + k as u64).to_le_bytes());
        }
        let n = (len - pos).min(MIB) as usize;
        f.write_all(&buf[..n]).unwrap();
        pos += n as u64;
    }
    f
}

/// 1 GiB, or less if memory is short: up to three big memfds live at once (the source and two
/// destination files of tests running in parallel), so ask for six times the size.
fn big() -> u64 {
    static SIZE: OnceLock<u64> = OnceLock::new();
    *SIZE.get_or_init(|| {
        let avail = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find(|l| l.starts_with("MemAvailable:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            })
            .map_or(u64::MAX, |kib| kib * 1024);
        if avail >= 6 * GIB {
            GIB
        } else {
            let size = (avail / 6).max(64 * MIB) / MIB * MIB;
            eprintln!(
                "zerocopy tests: only {} MiB available: the big transfers move {} MiB, not 1 GiB",
                avail / MIB,
                size / MIB
            );
            size
        }
    })
}

/// The shared source: a memfd of `big()` bytes of the pattern.
fn source() -> &'static File {
    static SRC: OnceLock<File> = OnceLock::new();
    SRC.get_or_init(|| pattern_file(big()))
}

/// Where a test sends to.
#[derive(Clone, Copy, Debug)]
enum Dst {
    Socket,
    SplicePipe,
    File,
}

/// Reads `fd` to its end in another thread, checking the pattern from `from`; returns the
/// count. `slow` makes the reader start late and read in small pieces at first, so that a
/// non-blocking sender meets a full buffer.
fn reader(fd: OwnedFd, from: u64, slow: bool) -> thread::JoinHandle<u64> {
    thread::spawn(move || {
        let mut f = File::from(fd);
        let mut check = Checker::at(from);
        let mut buf = vec![0u8; MIB as usize];
        let mut total = 0u64;
        if slow {
            thread::sleep(Duration::from_millis(30));
        }
        loop {
            let want = if slow && total < 4 * MIB {
                4096
            } else {
                buf.len()
            };
            let n = f.read(&mut buf[..want]).unwrap();
            if n == 0 {
                return total;
            }
            check.feed(&buf[..n]);
            total += n as u64;
        }
    })
}

fn set_nonblocking(fd: impl AsFd) {
    let fd = fd.as_fd().as_raw_fd();
    // SAFETY: fcntl on an open descriptor.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        assert_eq!(libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK), 0);
    }
}

/// Sends `len` bytes of the source from `offset` to a fresh destination of kind `dst` by
/// `strategy` (`None`: the default), and checks every byte that arrives.
fn send_and_check(
    dst: Dst,
    offset: u64,
    len: u64,
    strategy: Option<Strategy>,
    nonblocking: bool,
) -> Transfer {
    let src = source();
    let mut job = SendFile::new(src, offset, len);
    if let Some(s) = strategy {
        job = job.strategy(s);
    }
    match dst {
        Dst::Socket | Dst::SplicePipe => {
            let (tx, rx): (OwnedFd, OwnedFd) = match dst {
                Dst::Socket => {
                    let (a, b) = UnixStream::pair().unwrap();
                    (a.into(), b.into())
                }
                _ => {
                    let (r, w) = SplicePipe::with_capacity(MIB as usize)
                        .unwrap()
                        .into_parts();
                    (w, r)
                }
            };
            if nonblocking {
                set_nonblocking(&tx);
            }
            let reading = reader(rx, offset, nonblocking);
            let t = job.send(&tx).unwrap();
            drop(tx);
            assert_eq!(reading.join().unwrap(), len, "bytes that arrived");
            t
        }
        Dst::File => {
            let mut out = memfd("zipc-test-dst");
            out.write_all(b"head").unwrap(); // sent bytes go at the file's position
            let t = job.send(&out).unwrap();
            assert_eq!(out.metadata().unwrap().len(), 4 + len);
            // SAFETY: lseek on an open descriptor.
            let at = unsafe { libc::lseek(out.as_raw_fd(), 0, libc::SEEK_CUR) };
            assert_eq!(at as u64, 4 + len, "the destination's position advanced");
            check_file(&out, 4, offset, len);
            t
        }
    }
}

/// Checks `len` bytes of `file` from `at` against the pattern from `from`.
fn check_file(file: &File, at: u64, from: u64, len: u64) {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; 4 * MIB as usize];
    let mut check = Checker::at(from);
    let mut done = 0;
    while done < len {
        let n = (len - done).min(buf.len() as u64) as usize;
        file.read_exact_at(&mut buf[..n], at + done).unwrap();
        check.feed(&buf[..n]);
        done += n as u64;
    }
}

fn expect(t: Transfer, strategy: Strategy, bytes: u64) {
    assert_eq!((t.strategy, t.bytes), (strategy, bytes));
}

// 1 GiB by the default strategy: sendfile, which this kernel takes for all three.

#[test]
fn one_gib_to_a_socket() {
    expect(
        send_and_check(Dst::Socket, 0, big(), None, false),
        Strategy::SendFile,
        big(),
    );
}

#[test]
fn one_gib_to_a_pipe() {
    expect(
        send_and_check(Dst::SplicePipe, 0, big(), None, false),
        Strategy::SendFile,
        big(),
    );
}

#[test]
fn one_gib_to_a_file() {
    expect(
        send_and_check(Dst::File, 0, big(), None, false),
        Strategy::SendFile,
        big(),
    );
}

// Each fallback forced, 1 GiB each.

#[test]
fn forced_splice_to_a_socket() {
    let t = send_and_check(Dst::Socket, 0, big(), Some(Strategy::Splice), false);
    expect(t, Strategy::Splice, big());
}

#[test]
fn forced_splice_to_a_pipe() {
    let t = send_and_check(Dst::SplicePipe, 0, big(), Some(Strategy::Splice), false);
    expect(t, Strategy::Splice, big());
}

#[test]
fn forced_splice_to_a_file() {
    let t = send_and_check(Dst::File, 0, big(), Some(Strategy::Splice), false);
    expect(t, Strategy::Splice, big());
}

#[test]
fn forced_copy_to_a_socket() {
    let t = send_and_check(Dst::Socket, 0, big(), Some(Strategy::Copy), false);
    expect(t, Strategy::Copy, big());
}

#[test]
fn forced_copy_to_a_pipe() {
    let t = send_and_check(Dst::SplicePipe, 0, big(), Some(Strategy::Copy), false);
    expect(t, Strategy::Copy, big());
}

#[test]
fn forced_copy_to_a_file() {
    let t = send_and_check(Dst::File, 0, big(), Some(Strategy::Copy), false);
    expect(t, Strategy::Copy, big());
}

/// Odd offsets and lengths, every strategy, every destination.
#[test]
fn unaligned_ranges() {
    let ranges = [
        (1, 1),
        (7, 4095),
        (4093, 65_539),
        (1_000_003, 7_777_777),
        (big() - 5, 5),
    ];
    for s in [Strategy::SendFile, Strategy::Splice, Strategy::Copy] {
        for d in [Dst::Socket, Dst::SplicePipe, Dst::File] {
            for (offset, len) in ranges {
                let t = send_and_check(d, offset, len, Some(s), false);
                expect(t, s, len);
            }
        }
    }
}

/// Non-blocking sockets and pipes whose reader lags: `EAGAIN`, waited out with poll.
#[test]
fn nonblocking_destinations() {
    for s in [Strategy::SendFile, Strategy::Splice, Strategy::Copy] {
        for d in [Dst::Socket, Dst::SplicePipe] {
            let t = send_and_check(d, 12_345, 48 * MIB, Some(s), true);
            expect(t, s, 48 * MIB);
        }
    }
}

#[test]
fn empty_and_out_of_range() {
    let src = source();
    let size = big();
    let (a, _b) = UnixStream::pair().unwrap();
    expect(
        zerocopy::send_file(src, 0, 0, &a).unwrap(),
        Strategy::SendFile,
        0,
    );
    expect(
        zerocopy::send_file(src, size, 0, &a).unwrap(),
        Strategy::SendFile,
        0,
    );
    let t = SendFile::new(src, 5, 0)
        .strategy(Strategy::Copy)
        .send(&a)
        .unwrap();
    expect(t, Strategy::Copy, 0);
    for (offset, len) in [
        (size + 1, 0),
        (size, 1),
        (0, size + 1),
        (size - 10, 11),
        (1, u64::MAX),
    ] {
        match zerocopy::send_file(src, offset, len, &a) {
            Err(zipc::Error::InvalidArgument(_)) => {}
            other => panic!("offset {offset} len {len}: {other:?}"),
        }
    }
}

/// An `O_APPEND` destination: sendfile and splice refuse it (`EINVAL`), the copy loop appends.
/// Forced, the refusal is the error.
#[test]
fn fallback_chain_ends_in_copy() {
    let dir = std::env::temp_dir().join(format!("zipc-zerocopy-append-{}", std::process::id()));
    std::fs::write(&dir, b"prefix").unwrap();
    let out = File::options().append(true).read(true).open(&dir).unwrap();
    std::fs::remove_file(&dir).unwrap();
    let src = source();
    let len = 8 * MIB + 3;
    for s in [Strategy::SendFile, Strategy::Splice] {
        match SendFile::new(src, 0, len).strategy(s).send(&out) {
            Err(zipc::Error::Io(e)) => assert_eq!(e.raw_os_error(), Some(libc::EINVAL), "{s:?}"),
            other => panic!("{s:?} into O_APPEND: {other:?}"),
        }
    }
    expect(
        zerocopy::send_file(src, 1, len, &out).unwrap(),
        Strategy::Copy,
        len,
    );
    assert_eq!(out.metadata().unwrap().len(), 6 + len);
    check_file(&out, 6, 1, len);
}

extern "C" fn on_signal(_: libc::c_int) {}

/// Signals keep interrupting the sender (no `SA_RESTART`): every strategy resumes where the
/// kernel stopped (`EINTR` or a short count) and nothing is lost or doubled.
#[test]
fn interrupted_by_signals() {
    // SAFETY: installs a handler that does nothing, for SIGUSR1, which nothing else uses.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_signal as *const () as usize;
        sa.sa_flags = 0;
        libc::sigemptyset(&mut sa.sa_mask);
        assert_eq!(libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut()), 0);
    }
    for s in [Strategy::SendFile, Strategy::Splice, Strategy::Copy] {
        for d in [Dst::Socket, Dst::SplicePipe] {
            let (tx, rx): (OwnedFd, OwnedFd) = match d {
                Dst::Socket => {
                    let (a, b) = UnixStream::pair().unwrap();
                    (a.into(), b.into())
                }
                _ => {
                    let (r, w) = SplicePipe::new().unwrap().into_parts();
                    (w, r)
                }
            };
            let len = 64 * MIB;
            let (tid_tx, tid_rx) = std::sync::mpsc::channel();
            let sender = thread::spawn(move || {
                // SAFETY: pthread_self has no preconditions.
                tid_tx
                    .send(unsafe { libc::pthread_self() } as usize)
                    .unwrap();
                SendFile::new(source(), 3, len).strategy(s).send(&tx)
            });
            let tid = tid_rx.recv().unwrap() as libc::pthread_t;
            // Let it fill the buffer and block, then pepper it while the reader drains slowly.
            thread::sleep(Duration::from_millis(20));
            let reading = reader(rx, 3, true);
            let mut kicks = 0;
            while !sender.is_finished() {
                // SAFETY: the thread has not finished, so its id is valid (it is joined
                // only after this loop).
                unsafe { libc::pthread_kill(tid, libc::SIGUSR1) };
                kicks += 1;
                thread::sleep(Duration::from_micros(200));
            }
            expect(sender.join().unwrap().unwrap(), s, len);
            assert_eq!(reading.join().unwrap(), len);
            assert!(kicks > 0);
        }
    }
}

/// Writes the pattern from `from` into `w` in another thread, `len` bytes, then closes it.
fn writer(w: OwnedFd, from: u64, len: u64) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut f = File::from(w);
        let mut buf = vec![0u8; 256 * 1024];
        let mut pos = from;
        while pos < from + len {
            let n = (from + len - pos).min(buf.len() as u64) as usize;
            for (k, b) in buf[..n].iter_mut().enumerate() {
                *b = byte(pos + k as u64);
            }
            f.write_all(&buf[..n]).unwrap();
            pos += n as u64;
        }
    })
}

#[test]
fn recv_to_file_from_a_socket_and_a_pipe() {
    for from_pipe in [false, true] {
        for strategy in [None, Some(Strategy::Splice), Some(Strategy::Copy)] {
            let (w, r): (OwnedFd, OwnedFd) = if from_pipe {
                let (r, w) = SplicePipe::new().unwrap().into_parts();
                (w, r)
            } else {
                let (a, b) = UnixStream::pair().unwrap();
                (a.into(), b.into())
            };
            let len = 16 * MIB + 5;
            let writing = writer(w, 77, len);
            let file = memfd("zipc-test-recv");
            let mut job = RecvToFile::new(&file, 4096, u64::MAX);
            if let Some(s) = strategy {
                job = job.strategy(s);
            }
            let t = job.receive(&r).unwrap();
            writing.join().unwrap();
            let want = strategy.unwrap_or(Strategy::Splice);
            expect(t, want, len);
            assert_eq!(file.metadata().unwrap().len(), 4096 + len);
            check_file(&file, 4096, 77, len);
            // SAFETY: lseek on an open descriptor.
            let at = unsafe { libc::lseek(file.as_raw_fd(), 0, libc::SEEK_CUR) };
            assert_eq!(at, 0, "the file's position is left alone");
        }
    }
}

/// `len` stops the transfer; the rest stays in the socket.
#[test]
fn recv_to_file_stops_at_len() {
    for s in [Strategy::Splice, Strategy::Copy] {
        let (a, b) = UnixStream::pair().unwrap();
        let writing = writer(a.into(), 0, 3 * MIB);
        let file = memfd("zipc-test-recv");
        let t = RecvToFile::new(&file, 0, MIB + 1)
            .strategy(s)
            .receive(&b)
            .unwrap();
        expect(t, s, MIB + 1);
        check_file(&file, 0, 0, MIB + 1);
        let mut rest = Vec::new();
        (&b).read_to_end(&mut rest).unwrap();
        writing.join().unwrap();
        assert_eq!(rest.len() as u64, 2 * MIB - 1);
        Checker::at(MIB + 1).feed(&rest);
    }
}

#[test]
fn recv_to_file_refuses_append_and_sendfile() {
    let (_a, b) = UnixStream::pair().unwrap();
    let dir = std::env::temp_dir().join(format!("zipc-zerocopy-recv-{}", std::process::id()));
    let out = File::options()
        .append(true)
        .create(true)
        .open(&dir)
        .unwrap();
    std::fs::remove_file(&dir).unwrap();
    assert!(matches!(
        zerocopy::recv_to_file(&b, &out, 0, 10),
        Err(zipc::Error::InvalidArgument(_))
    ));
    let file = memfd("zipc-test-recv");
    assert!(matches!(
        RecvToFile::new(&file, 0, 10)
            .strategy(Strategy::SendFile)
            .receive(&b),
        Err(zipc::Error::InvalidArgument(_))
    ));
}

#[test]
fn tee_duplicates_without_consuming() {
    let a = SplicePipe::new().unwrap();
    let b = SplicePipe::new().unwrap();
    File::from(a.writer().try_clone_to_owned().unwrap())
        .write_all(b"one pipe, two readers")
        .unwrap();
    assert_eq!(zerocopy::tee(a.reader(), b.writer(), 8).unwrap(), 8);
    assert_eq!(a.unread().unwrap(), 21, "tee consumed nothing");
    assert_eq!(b.unread().unwrap(), 8);
    let mut got = [0u8; 8];
    File::from(b.reader().try_clone_to_owned().unwrap())
        .read_exact(&mut got)
        .unwrap();
    assert_eq!(&got, b"one pipe");
    let (ar, aw) = a.into_parts();
    drop(aw);
    let mut all = String::new();
    File::from(ar).read_to_string(&mut all).unwrap();
    assert_eq!(all, "one pipe, two readers");

    // A non-blocking, empty source: tee waits for the writer instead of failing.
    let a = SplicePipe::new().unwrap();
    let b = SplicePipe::new().unwrap();
    set_nonblocking(a.reader());
    let w = a.writer().try_clone_to_owned().unwrap();
    let late = thread::spawn(move || {
        thread::sleep(Duration::from_millis(20));
        File::from(w).write_all(b"late").unwrap();
    });
    assert_eq!(zerocopy::tee(a.reader(), b.writer(), 100).unwrap(), 4);
    late.join().unwrap();

    // Not pipes: the kernel's EINVAL.
    let (s1, s2) = UnixStream::pair().unwrap();
    assert!(matches!(
        zerocopy::tee(&s1, &s2, 1),
        Err(zipc::Error::Io(_))
    ));
}

#[test]
fn pipe_capacity() {
    let max: usize = std::fs::read_to_string("/proc/sys/fs/pipe-max-size")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let p = SplicePipe::with_capacity(MIB as usize).unwrap();
    assert_eq!(p.capacity().unwrap(), (MIB as usize).min(max));
    let p = SplicePipe::with_capacity(100_000).unwrap();
    assert_eq!(
        p.capacity().unwrap(),
        128 * 1024,
        "rounded up to a power of two of pages"
    );
    assert!(SplicePipe::new().unwrap().capacity().unwrap() >= 4096);
}

/// A buffer filled with `tag`.
fn tagged(tag: u8, len: usize) -> Vec<u8> {
    vec![tag; len]
}

#[test]
fn vmsplice_keeps_buffers_until_the_reader_is_past_them() {
    let pipe = SplicePipe::with_capacity(MIB as usize).unwrap();
    let (r, w) = pipe.into_parts();
    let mut r = File::from(r);
    let mut writer = VmspliceWriter::new(w).unwrap();
    for tag in 1..=3 {
        writer.send(tagged(tag, 100_000)).unwrap();
    }
    assert_eq!((writer.sent(), writer.in_flight()), (300_000, 3));
    assert_eq!(writer.reclaim().unwrap().count(), 0);

    let mut got = vec![0u8; 150_000];
    r.read_exact(&mut got).unwrap();
    let back: Vec<Vec<u8>> = writer.reclaim().unwrap().collect();
    assert_eq!(
        back,
        [tagged(1, 100_000)],
        "only the buffer wholly read comes back"
    );
    assert!(got[..100_000].iter().all(|&b| b == 1) && got[100_000..].iter().all(|&b| b == 2));

    r.read_exact(&mut got).unwrap();
    let back: Vec<Vec<u8>> = writer.reclaim().unwrap().collect();
    assert_eq!(back, [tagged(2, 100_000), tagged(3, 100_000)]);
    assert!(got[..50_000].iter().all(|&b| b == 2) && got[50_000..].iter().all(|&b| b == 3));
    assert_eq!(writer.in_flight(), 0);
    assert!(writer.finish().unwrap().is_empty());
}

/// The point of holding on: what is in flight is the buffer's memory. Here the writer is
/// dropped with its buffers in the pipe; it leaks them, so the memory is not reused, and the
/// reader still gets the bytes that were sent.
#[test]
fn vmsplice_dropped_writer_leaves_the_bytes_intact() {
    let (r, w) = SplicePipe::with_capacity(MIB as usize)
        .unwrap()
        .into_parts();
    let mut writer = VmspliceWriter::new(w).unwrap();
    for tag in 0..8u8 {
        writer.send(tagged(0xA0 + tag, 64 * 1024)).unwrap();
    }
    drop(writer);
    // Churn the allocator: were those buffers freed, these would likely land on them.
    let churn: Vec<Vec<u8>> = (0..64).map(|_| vec![0x55; 64 * 1024]).collect();
    let mut got = Vec::new();
    File::from(r).read_to_end(&mut got).unwrap();
    assert_eq!(got.len(), 8 * 64 * 1024);
    for (tag, chunk) in got.chunks(64 * 1024).enumerate() {
        assert!(
            chunk.iter().all(|&b| b == 0xA0 + tag as u8),
            "chunk {tag} changed in flight"
        );
    }
    drop(churn);
}

/// With confirmation, a drained pipe is not enough: the reader has to say so.
#[test]
fn vmsplice_with_confirmation() {
    let (r, w) = SplicePipe::with_capacity(MIB as usize)
        .unwrap()
        .into_parts();
    let mut r = File::from(r);
    let mut writer = VmspliceWriter::with_confirmation(w).unwrap();
    writer.send(tagged(1, 1000)).unwrap();
    writer.send(tagged(2, 1000)).unwrap();
    let mut got = vec![0u8; 2000];
    r.read_exact(&mut got).unwrap();
    assert_eq!(
        writer.reclaim().unwrap().count(),
        0,
        "drained but not confirmed"
    );
    writer.confirm(1500);
    assert_eq!(
        writer.reclaim().unwrap().collect::<Vec<_>>(),
        [tagged(1, 1000)]
    );
    assert!(matches!(
        writer.wait_reclaim(Some(Duration::from_millis(10))),
        Err(zipc::Error::Timeout)
    ));
    writer.confirm(u64::MAX);
    assert_eq!(writer.finish().unwrap(), [tagged(2, 1000)]);

    // Confirmation cannot release what is still in the pipe.
    let (r, w) = SplicePipe::new().unwrap().into_parts();
    let mut writer = VmspliceWriter::with_confirmation(w).unwrap();
    writer.send(tagged(3, 10)).unwrap();
    writer.confirm(10);
    assert_eq!(writer.reclaim().unwrap().count(), 0);
    drop(r);
    assert!(matches!(
        writer.wait_reclaim(None),
        Err(zipc::Error::Disconnected)
    ));
}

#[test]
fn vmsplice_gift() {
    let (r, w) = SplicePipe::with_capacity(MIB as usize)
        .unwrap()
        .into_parts();
    let reading = reader(r, 0, false);
    let mut writer: VmspliceWriter<PageBuf> = VmspliceWriter::new(w).unwrap();
    let mut pos = 0u64;
    let mut sent = 0;
    while sent < 8 * MIB {
        let mut buf = PageBuf::new(300_000).unwrap();
        assert_eq!(buf.as_ptr() as usize % 4096, 0);
        assert_eq!(buf.capacity(), 303_104);
        for b in buf.iter_mut() {
            *b = byte(pos);
            pos += 1;
        }
        writer.gift(buf).unwrap();
        sent += 300_000;
    }
    assert_eq!((writer.sent(), writer.in_flight()), (sent, 0));
    drop(writer);
    assert_eq!(reading.join().unwrap(), sent);
}

/// Buffers larger than the pipe (vmsplice takes them in parts), reused once they come back,
/// through a non-blocking write end (EAGAIN, waited out), with the reader checking every byte.
#[test]
fn vmsplice_big_buffers_reused_nonblocking() {
    let (r, w) = SplicePipe::new().unwrap().into_parts();
    set_nonblocking(&w);
    let reading = reader(r, 0, true);
    let mut writer = VmspliceWriter::new(w).unwrap();
    let chunk = 300_001usize;
    let mut free: Vec<Box<[u8]>> = (0..3).map(|_| vec![0; chunk].into_boxed_slice()).collect();
    let mut pos = 0u64;
    for _ in 0..40 {
        if free.is_empty() {
            free.extend(writer.wait_reclaim(None).unwrap());
        }
        let mut buf = free.pop().unwrap();
        for b in buf.iter_mut() {
            *b = byte(pos);
            pos += 1;
        }
        writer.send(buf).unwrap();
    }
    let back = writer.finish().unwrap();
    assert_eq!(back.len() + free.len(), 3);
    assert_eq!(reading.join().unwrap(), pos);
}

#[test]
fn vmsplice_needs_a_pipe_write_end() {
    let (a, _b) = UnixStream::pair().unwrap();
    assert!(matches!(
        VmspliceWriter::<Vec<u8>>::new(a.into()),
        Err(zipc::Error::InvalidArgument(_))
    ));
    let (r, _w) = SplicePipe::new().unwrap().into_parts();
    assert!(matches!(
        VmspliceWriter::<Vec<u8>>::new(r),
        Err(zipc::Error::InvalidArgument(_))
    ));
}

/// The checker itself catches a single wrong byte, wherever the chunks split.
#[test]
fn the_checker_catches_one_wrong_byte() {
    let mut data: Vec<u8> = (1000..1000 + 4096).map(byte).collect();
    Checker::at(1000).feed(&data);
    data[2049] ^= 1;
    for split in [0, 3, 2049, 2050, 4096] {
        let (a, b) = data.split_at(split);
        let caught = std::panic::catch_unwind(|| {
            let mut c = Checker::at(1000);
            c.feed(a);
            c.feed(b);
        });
        assert!(caught.is_err(), "split at {split}");
    }
}

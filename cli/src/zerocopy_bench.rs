//! `zipc bench zerocopy`: the zero-copy paths against the copying loops they replace, every
//! ratio taken within one run.
//!
//! - a file in the page cache (a memfd: tmpfs) into a Unix stream socket: `send_file`
//!   (sendfile), `send_file` forced to splice, and a `pread`/`write` loop; the reader, another
//!   thread, either discards by splice into `/dev/null` (so the rows measure the sender) or
//!   copies out by `read`;
//! - a 1 MiB pipe between two threads: `vmsplice` of page-aligned buffers (given back by
//!   `VmspliceWriter` once consumed, and reused) with the reader splicing into `/dev/null`,
//!   the same with the reader copying out by `read`, and plain `write` + `read`.

use crate::zerocopy_report::{PathRow, Section, ZerocopyResults};
use crate::{PinnedArgs, Result};
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};
use zipc::zerocopy::{PageBuf, RecvToFile, SendFile, SplicePipe, Strategy, VmspliceWriter};

/// The pipe of the pipe measurements.
const PIPE: usize = 1 << 20;
/// Each write, vmsplice and read of the pipe measurements, and the reader's buffer for the
/// socket.
const CHUNK: usize = 256 * 1024;
/// The buffer of the read/write loop (`send_file`'s copy fallback).
const COPY_BUFFER: usize = 128 * 1024;
/// The vmsplice writer cycles through this many `CHUNK` buffers: twice what the pipe holds.
const VM_BUFFERS: usize = 2 * PIPE / CHUNK;

/// (the sender's CPU, the reader's CPU), when pinned.
static CPUS: std::sync::OnceLock<Option<(usize, usize)>> = std::sync::OnceLock::new();

struct Plan {
    bytes: u64,
    runs: usize,
}

/// A memfd of `len` bytes of a non-repeating pattern, all in the page cache.
fn source(len: u64) -> Result<File> {
    // SAFETY: a valid NUL-terminated name; the flags are valid.
    let fd = unsafe { libc::memfd_create(c"zipc-bench-zerocopy".as_ptr(), libc::MFD_CLOEXEC) };
    if fd == -1 {
        return Err(std::io::Error::last_os_error().into());
    }
    // SAFETY: memfd_create just returned this descriptor; nothing else owns it.
    let mut file = File::from(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) });
    let mut chunk = vec![0u8; 1 << 20];
    let mut word = 0x9e37_79b9_7f4a_7c15u64;
    let mut left = len;
    while left > 0 {
        for w in chunk.chunks_exact_mut(8) {
            word = word
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            w.copy_from_slice(&word.to_le_bytes());
        }
        let n = left.min(chunk.len() as u64) as usize;
        file.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    Ok(file)
}

/// Reads everything from `fd` into one `CHUNK` buffer until end of stream; returns the count.
fn drain_by_read(fd: BorrowedFd<'_>) -> std::io::Result<u64> {
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        // SAFETY: `buf` is valid for writes of its length for the duration of the call.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        match n {
            0 => return Ok(total),
            n if n > 0 => total += n as u64,
            _ => {
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
}

/// `recv_to_file` into `/dev/null` until end of stream: splice (through a pipe of its own
/// when `from` is a socket); the bytes are never touched. Checks that it did splice.
fn discard(from: BorrowedFd<'_>) -> std::io::Result<u64> {
    let null = File::options().write(true).open("/dev/null")?;
    let t = RecvToFile::new(&null, 0, u64::MAX)
        .strategy(Strategy::Splice)
        .pipe_size(PIPE)
        .receive(from)?;
    Ok(t.bytes)
}

/// Runs `send` in this thread and `recv` (given the other end) in another; the time from the
/// start until `recv` has seen end of stream, checking it counted `bytes`.
fn timed<S, R>(bytes: u64, send: S, recv: R) -> Result<Duration>
where
    S: FnOnce() -> Result<()>,
    R: FnOnce() -> std::io::Result<u64> + Send,
{
    let cpus = *CPUS.get().expect("cpus chosen");
    std::thread::scope(|s| {
        let start = Instant::now();
        let reader = s.spawn(move || {
            if let Some((_, cpu)) = cpus {
                crate::cpu::pin(cpu)?;
            }
            recv().map(|n| (n, start.elapsed()))
        });
        let sent = send();
        let (got, took) = reader.join().map_err(|_| "the reader panicked")??;
        sent?;
        if got != bytes {
            return Err(format!("the reader got {got} bytes, not {bytes}").into());
        }
        Ok(took)
    })
}

/// How the reader of the socket measurements consumes the bytes.
#[derive(Clone, Copy, PartialEq)]
enum Reader {
    /// `recv_to_file` into `/dev/null`: splice through a pipe, the bytes never touched.
    Discard,
    /// `read` into one `CHUNK` buffer.
    Copy,
}

/// Into a Unix stream socket: the file by `strategy` (`Copy`: the read/write loop).
fn to_socket(src: &File, bytes: u64, strategy: Strategy, reader: Reader) -> Result<Duration> {
    let (tx, rx) = UnixStream::pair()?;
    timed(
        bytes,
        move || {
            let t = SendFile::new(src, 0, bytes)
                .strategy(strategy)
                .buffer_size(COPY_BUFFER)
                .pipe_size(PIPE)
                .send(&tx)?;
            drop(tx);
            if t.bytes != bytes {
                return Err("short transfer".into());
            }
            Ok(())
        },
        move || match reader {
            Reader::Copy => drain_by_read(rx.as_fd()),
            Reader::Discard => discard(rx.as_fd()),
        },
    )
}

/// How the pipe measurements write and read.
#[derive(Clone, Copy, PartialEq)]
enum PipeWay {
    VmspliceSplice,
    VmspliceRead,
    WriteRead,
}

fn through_pipe(bytes: u64, way: PipeWay) -> Result<Duration> {
    let pipe = SplicePipe::with_capacity(PIPE)?;
    if pipe.capacity()? < PIPE {
        eprintln!("note: the pipe holds {} bytes, not 1 MiB", pipe.capacity()?);
    }
    let (r, w) = pipe.into_parts();
    let chunks = bytes / CHUNK as u64;
    let send = move || -> Result<()> {
        if way == PipeWay::WriteRead {
            let buf = vec![7u8; CHUNK];
            let mut w = File::from(w);
            for _ in 0..chunks {
                w.write_all(&buf)?;
            }
            return Ok(());
        }
        let mut writer = VmspliceWriter::new(w)?;
        let mut free = Vec::with_capacity(VM_BUFFERS);
        for i in 0..VM_BUFFERS {
            let mut b = PageBuf::new(CHUNK)?;
            b.fill(i as u8);
            free.push(b);
        }
        for _ in 0..chunks {
            if free.is_empty() {
                free.extend(writer.wait_reclaim(None)?);
            }
            writer.send(free.pop().expect("a buffer came back"))?;
        }
        writer.finish()?;
        Ok(())
    };
    timed(
        bytes / CHUNK as u64 * CHUNK as u64,
        send,
        move || match way {
            PipeWay::VmspliceSplice => discard(r.as_fd()),
            _ => drain_by_read(r.as_fd()),
        },
    )
}

fn gbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e9
}

/// One measured row: its label and what it runs.
struct Row {
    label: &'static str,
    what: Subject,
    /// GB/s of each run.
    rates: Vec<f64>,
}

#[derive(Clone, Copy)]
enum Subject {
    Socket(Strategy, Reader),
    SplicePipe(PipeWay),
}

impl Row {
    fn new(label: &'static str, what: Subject) -> Row {
        Row {
            label,
            what,
            rates: Vec::new(),
        }
    }
}

/// The table's sections: a heading and its rows.
fn sections() -> Vec<(&'static str, Vec<Row>)> {
    use Subject::{Socket, SplicePipe};
    vec![
        (
            "page cache → Unix stream socket; the reader splices into /dev/null",
            vec![
                Row::new(
                    "send_file: sendfile",
                    Socket(Strategy::SendFile, Reader::Discard),
                ),
                Row::new(
                    "send_file: splice via a 1 MiB pipe",
                    Socket(Strategy::Splice, Reader::Discard),
                ),
                Row::new(
                    "read/write loop, 128 KiB buffer",
                    Socket(Strategy::Copy, Reader::Discard),
                ),
            ],
        ),
        (
            "page cache → Unix stream socket; the reader copies out (read)",
            vec![
                Row::new(
                    "send_file: sendfile",
                    Socket(Strategy::SendFile, Reader::Copy),
                ),
                Row::new(
                    "read/write loop, 128 KiB buffer",
                    Socket(Strategy::Copy, Reader::Copy),
                ),
            ],
        ),
        (
            "1 MiB pipe, 256 KiB per call",
            vec![
                Row::new(
                    "vmsplice + splice into /dev/null",
                    SplicePipe(PipeWay::VmspliceSplice),
                ),
                Row::new("vmsplice + read", SplicePipe(PipeWay::VmspliceRead)),
                Row::new("write + read", SplicePipe(PipeWay::WriteRead)),
            ],
        ),
    ]
}

/// Runs the zero-copy benchmarks and prints their results.
pub(crate) fn run(args: &PinnedArgs) -> Result<()> {
    let quick = args.options.quick;
    let started = Instant::now();
    // Before pinning, which would make this process see one CPU.
    let machine = crate::machine::Machine::detect();
    let cpus = match crate::cpu::allowed()?[..] {
        [a, b, ..] if !args.no_pin => {
            crate::cpu::pin(a)?;
            Some((a, b))
        }
        _ => None,
    };
    CPUS.set(cpus).map_err(|_| "zerocopy_bench::run twice")?;
    let plan = if quick {
        Plan {
            bytes: 64 << 20,
            runs: 3,
        }
    } else {
        Plan {
            bytes: 1 << 30,
            runs: 5,
        }
    };
    let src = source(plan.bytes)?;
    let mut sections = sections();
    // One warm-up of each, then the runs interleaved, so that drift hits every row alike.
    for run in 0..=plan.runs {
        for row in sections.iter_mut().flat_map(|(_, rows)| rows.iter_mut()) {
            let took = match row.what {
                Subject::Socket(s, r) => to_socket(&src, plan.bytes, s, r),
                Subject::SplicePipe(way) => through_pipe(plan.bytes, way),
            }
            .map_err(|e| format!("{}: {e}", row.label))?;
            if run > 0 {
                row.rates.push(gbps(plan.bytes, took));
            }
        }
    }
    let sections = sections
        .into_iter()
        .map(|(heading, rows)| {
            Section::new(
                heading,
                rows.into_iter()
                    .map(|row| PathRow::new(row.label, row.rates))
                    .collect(),
            )
        })
        .collect();
    let results = ZerocopyResults::new(
        machine,
        quick,
        cpus,
        (plan.bytes, plan.runs),
        (CHUNK, VM_BUFFERS),
        sections,
        started.elapsed(),
    );
    crate::print(args.options.format, &results, crate::zerocopy_report::table)
}

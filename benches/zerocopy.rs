//! Criterion benches of the zero-copy paths, each beside the copying loop it replaces, 64 MiB
//! per transfer (`zipc bench zerocopy` moves 1 GiB and prints the ratios of one run).
//!
//! - `send_file_to_unix_socket`: a 64 MiB memfd (page cache) into a Unix stream socket by
//!   sendfile, by splice through a 1 MiB pipe, and by a `pread`/`write` loop with a 128 KiB
//!   buffer; the reader, another thread, splices into `/dev/null` (`recv_to_file`), so the
//!   numbers are the sender's.
//! - `pipe_1MiB`: 64 MiB through a 1 MiB pipe in 256 KiB calls: `vmsplice` of reused
//!   page-aligned buffers (given back by `VmspliceWriter`) with the reader splicing into
//!   `/dev/null`, the same with the reader copying out by `read`, and `write` + `read`.
//!
//! Each iteration is one whole transfer, timed until the reader has seen its end.
//! Run with `cargo bench --bench zerocopy`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::thread;
use std::time::{Duration, Instant};
use zipc::zerocopy::{PageBuf, RecvToFile, SendFile, SplicePipe, Strategy, VmspliceWriter};

const BYTES: u64 = 64 << 20;
const PIPE: usize = 1 << 20;
const CHUNK: usize = 256 * 1024;

fn source() -> File {
    // SAFETY: a valid NUL-terminated name; valid flags.
    let fd = unsafe { libc::memfd_create(c"zipc-bench-zerocopy".as_ptr(), libc::MFD_CLOEXEC) };
    assert!(fd >= 0, "memfd_create");
    // SAFETY: a fresh descriptor that nothing else owns.
    let mut f = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    let chunk: Vec<u8> = (0..1 << 20)
        .map(|i: u32| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    for _ in 0..BYTES >> 20 {
        f.write_all(&chunk).unwrap();
    }
    f
}

/// `send` here, `recv` in another thread; the time until `recv` is done.
fn timed(send: impl FnOnce(), recv: impl FnOnce() -> u64 + Send) -> Duration {
    thread::scope(|s| {
        let start = Instant::now();
        let reader = s.spawn(move || {
            let n = recv();
            (n, start.elapsed())
        });
        send();
        let (n, took) = reader.join().unwrap();
        assert_eq!(n, BYTES);
        took
    })
}

fn discard(from: &UnixStream) -> u64 {
    let null = File::options().write(true).open("/dev/null").unwrap();
    let t = RecvToFile::new(&null, 0, u64::MAX)
        .strategy(Strategy::Splice)
        .receive(from)
        .unwrap();
    t.bytes
}

fn read_all(mut from: impl Read) -> u64 {
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0;
    loop {
        match from.read(&mut buf).unwrap() {
            0 => return total,
            n => total += n as u64,
        }
    }
}

fn send_file_to_socket(c: &mut Criterion) {
    let src = source();
    let mut g = c.benchmark_group("send_file_to_unix_socket");
    g.throughput(Throughput::Bytes(BYTES));
    for (name, strategy) in [
        ("sendfile", Strategy::SendFile),
        ("splice_1MiB_pipe", Strategy::Splice),
        ("read_write_loop_128KiB", Strategy::Copy),
    ] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        let (tx, rx) = UnixStream::pair().unwrap();
                        timed(
                            || {
                                SendFile::new(&src, 0, BYTES)
                                    .strategy(strategy)
                                    .send(&tx)
                                    .unwrap();
                                drop(tx);
                            },
                            || discard(&rx),
                        )
                    })
                    .sum()
            })
        });
    }
    g.finish();
}

#[derive(Clone, Copy, PartialEq)]
enum Way {
    VmspliceSplice,
    VmspliceRead,
    WriteRead,
}

fn through_pipe(way: Way, buffers: &mut Vec<PageBuf>) -> Duration {
    let (r, w) = SplicePipe::with_capacity(PIPE).unwrap().into_parts();
    let send = || {
        if way == Way::WriteRead {
            let mut w = File::from(w);
            let buf = vec![1u8; CHUNK];
            for _ in 0..BYTES / CHUNK as u64 {
                w.write_all(&buf).unwrap();
            }
            return;
        }
        let mut writer = VmspliceWriter::new(w).unwrap();
        for _ in 0..BYTES / CHUNK as u64 {
            if buffers.is_empty() {
                buffers.extend(writer.wait_reclaim(None).unwrap());
            }
            writer.send(buffers.pop().unwrap()).unwrap();
        }
        buffers.extend(writer.finish().unwrap());
    };
    let recv = move || match way {
        Way::VmspliceSplice => {
            let null = File::options().write(true).open("/dev/null").unwrap();
            let t = RecvToFile::new(&null, 0, u64::MAX).receive(&r).unwrap();
            assert_eq!(t.strategy, Strategy::Splice);
            t.bytes
        }
        _ => read_all(File::from(r)),
    };
    timed(send, recv)
}

fn pipe(c: &mut Criterion) {
    let mut g = c.benchmark_group("pipe_1MiB");
    g.throughput(Throughput::Bytes(BYTES));
    let mut buffers: Vec<PageBuf> = (0..2 * PIPE / CHUNK)
        .map(|i| {
            let mut b = PageBuf::new(CHUNK).unwrap();
            b.fill(i as u8);
            b
        })
        .collect();
    for (name, way) in [
        ("vmsplice_splice_devnull", Way::VmspliceSplice),
        ("vmsplice_read", Way::VmspliceRead),
        ("write_read", Way::WriteRead),
    ] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| (0..iters).map(|_| through_pipe(way, &mut buffers)).sum())
        });
    }
    g.finish();
}

mod group {
    use super::*;
    criterion_group! {
        name = benches;
        config = Criterion::default()
            .sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(3));
        targets = send_file_to_socket, pipe
    }
}
criterion_main!(group::benches);

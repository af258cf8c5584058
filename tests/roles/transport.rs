//! The peers of tests/transport.rs. Argument: the address to connect to.

use crate::shared::transport::{PATIENCE, pattern, stream_len};
use zipc::Error;
use zipc::transport::{self, Address, Pipe, Transport, UnixSocket};

pub fn run(role: &str, args: &[&str]) {
    let addr = args.first().expect("an address");
    let addr: Address = addr
        .parse()
        .unwrap_or_else(|e| panic!("address {addr:?}: {e}"));
    match role {
        "send-forever" => {
            let mut end = transport::connect_timeout(&addr, PATIENCE).unwrap();
            for seq in 0.. {
                end.send(&pattern(seq, stream_len(seq))).unwrap();
            }
        }
        "recv-forever" => {
            let mut end = transport::connect_timeout(&addr, PATIENCE).unwrap();
            let mut buf = Vec::new();
            while end.recv(&mut buf).is_ok() {}
        }
        "fd-limit" => fd_limit_peer(&addr),
        "sigpipe" => sigpipe_peer(),
        other => panic!("unknown role transport:{other}"),
    }
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// The receiving peer of the MSG_CTRUNC test: with room for only a few more open files, it
/// receives a frame with ten descriptors.
fn fd_limit_peer(addr: &Address) {
    let Address::Unix(path) = addr else {
        panic!("{addr}")
    };
    let mut end = UnixSocket::connect(path).unwrap();
    let before = open_fds();
    // Room for four more descriptors (one of them for listing /proc/self/fd): not ten.
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write the struct we pass.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit_for_free_slots(4) as libc::rlim_t;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
    end.send(b"ready").unwrap();
    let mut buf = Vec::new();
    match end.recv_with_fds_timeout(&mut buf, PATIENCE) {
        Err(Error::Io(e)) => assert!(e.to_string().contains("MSG_CTRUNC"), "{e}"),
        other => panic!("expected MSG_CTRUNC, got {other:?}"),
    }
    assert_eq!(
        open_fds(),
        before,
        "the descriptors that arrived were closed"
    );
    // The link goes on with the next frame.
    let fds = end.recv_with_fds_timeout(&mut buf, PATIENCE).unwrap();
    assert_eq!((buf.as_slice(), fds.len()), (&b"next"[..], 0));
}

/// The lowest descriptor limit under which `free` descriptor numbers are free now.
fn limit_for_free_slots(free: usize) -> usize {
    let open: std::collections::HashSet<usize> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    let mut seen = 0;
    (0..)
        .find(|n| {
            if !open.contains(n) {
                seen += 1;
            }
            seen == free
        })
        .unwrap()
        + 1
}

/// With SIGPIPE at its default (kill the process), a write to a pipe without a reader is
/// `Disconnected`, and the process lives on.
fn sigpipe_peer() {
    // SAFETY: resets a signal disposition; no handler is installed.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let (mut a, b) = Pipe::pair().unwrap();
    drop(b);
    assert!(matches!(a.send(b"anyone?"), Err(Error::Disconnected)));
    assert!(matches!(a.send(&[0; 200_000]), Err(Error::Disconnected)));
}

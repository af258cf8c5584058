//! Workers spawned already wired to their channels: frames both ways, death seen at once,
//! the command's environment, directory and affinity in effect, exactly the worker's fds
//! inherited, nothing left behind. The workers are the zipc-test-roles binary
//! (tests/roles/process.rs).

#![cfg(not(loom))]

mod common;
#[path = "common/shared.rs"]
mod shared;

use common::{check_frame, fill_frame, frame_len};
use shared::process::{FRAMES, MAX_EXTRA, Reading, fd_list, inheritable_fds, reading};
use std::collections::BTreeSet;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};
use zipc::process::{Command, FDS_VAR, Worker};
use zipc::transport::Kind;
use zipc::{Error, worker};

/// The test suite's child process.
const ROLES: &str = env!("CARGO_BIN_EXE_zipc-test-roles");

/// One test at a time: some count this process's fds and segments.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A worker playing `role` (tests/roles/process.rs).
fn worker_cmd(role: &str) -> Command {
    let mut cmd = Command::new(ROLES);
    cmd.arg(format!("process:{role}"));
    cmd
}

/// Spawns a `sleep` worker and waits until it has connected.
fn sleeper() -> Worker {
    let mut w = Worker::spawn(&worker_cmd("sleep")).unwrap();
    assert_eq!(&*w.recv().unwrap(), b"ready");
    w
}

#[test]
fn frames_cross_both_ways_byte_exact() {
    let _serial = serial();
    let mut w = Worker::spawn(&worker_cmd("check-echo")).unwrap();
    let (tx, rx) = w.split().unwrap();
    std::thread::scope(|s| {
        s.spawn(move || {
            for seq in 0..FRAMES {
                let mut loan = tx.loan(frame_len(seq, MAX_EXTRA)).unwrap();
                fill_frame(seq, &mut loan);
                loan.commit();
            }
        });
        for seq in 0..FRAMES {
            check_frame(seq, MAX_EXTRA, &rx.recv().unwrap());
        }
    });
    // Closing our ends lets the worker finish: it checked every frame too.
    let status = w.wait().unwrap();
    assert!(status.success(), "worker failed: {status}");
}

#[test]
fn a_worker_killed_while_the_parent_waits_is_peer_gone_within_100ms() {
    let _serial = serial();
    let mut w = sleeper();
    let pid = w.pid();
    let waiter = common::thread_id();
    let killer = std::thread::spawn(move || {
        // This thread's next step is `recv`: once it sleeps, it sleeps there.
        common::wait_until_asleep(waiter);
        let at = Instant::now();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        at
    });
    let got = w.recv().map(|f| f.to_vec());
    let seen = Instant::now();
    let killed = killer.join().unwrap();
    assert!(matches!(got, Err(Error::PeerGone)), "{got:?}");
    let delay = seen.duration_since(killed);
    assert!(
        delay < Duration::from_millis(100),
        "PeerGone after {delay:?}"
    );
    assert!(!w.is_alive());
    drop(w);
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "a zombie is left"
    );
}

#[test]
fn a_worker_killed_while_the_parent_sends_is_peer_gone() {
    let _serial = serial();
    let mut w = sleeper();
    w.kill().unwrap();
    // The worker reads nothing: the ring fills, then the wait for space sees the death.
    let start = Instant::now();
    let err = loop {
        if let Err(e) = w.send(&[0u8; 1000]) {
            break e;
        }
    };
    assert!(matches!(err, Error::PeerGone), "{err:?}");
    // Not the 100 ms promise (that test is above): the bound only says no send hung, with a
    // margin for a machine whose cores are all busy.
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
    let status = w.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL));
}

#[test]
fn a_worker_that_exits_before_connecting_is_peer_gone() {
    let _serial = serial();
    let mut w = Worker::spawn(&worker_cmd("exit-early")).unwrap();
    let start = Instant::now();
    assert!(matches!(w.recv(), Err(Error::PeerGone)));
    assert!(matches!(w.send(b"x"), Err(Error::PeerGone)));
    assert!(matches!(
        w.recv_timeout(Duration::from_secs(5)),
        Err(Error::PeerGone)
    ));
    // No call waited for a connect that never comes: a bound on the worker's start and exit,
    // with a margin for a machine whose cores are all busy.
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(w.wait().unwrap().code(), Some(3));
}

#[test]
fn a_worker_that_sent_and_died_is_heard_out_by_try_recv() {
    let _serial = serial();
    let mut w = Worker::spawn(&worker_cmd("send-and-exit")).unwrap();
    // Its hello and its frame are in before it exits; wait for the exit itself.
    let start = Instant::now();
    while w.exit_status().unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the worker did not exit"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    // Its control end is gone, yet what it committed comes first, then its death.
    assert_eq!(&*w.try_recv().unwrap(), b"last words");
    assert!(matches!(w.try_recv(), Err(Error::PeerGone)));
}

#[test]
fn a_worker_that_never_connects_times_out() {
    let _serial = serial();
    let mut w = Worker::spawn(&worker_cmd("sleep-unconnected")).unwrap();
    let start = Instant::now();
    assert!(matches!(
        w.recv_timeout(Duration::from_millis(50)),
        Err(Error::Timeout)
    ));
    assert!(start.elapsed() >= Duration::from_millis(50));
    assert!(matches!(w.try_recv(), Err(Error::WouldBlock)));
    // A frame waits in the ring for a worker that has not connected yet.
    w.try_send(b"early").unwrap();
    assert!(w.is_alive());
    let pid = w.pid();
    drop(w);
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
}

#[test]
fn kill_then_wait_reports_the_signal() {
    let _serial = serial();
    let mut w = sleeper();
    assert!(w.is_alive());
    assert!(w.exit_status().unwrap().is_none());
    w.kill().unwrap();
    let start = Instant::now();
    while w.exit_status().unwrap().is_none() {
        assert!(start.elapsed() < Duration::from_secs(30), "not reaped");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(!w.is_alive());
    w.kill().unwrap(); // already dead: not an error
    assert_eq!(w.wait().unwrap().signal(), Some(libc::SIGKILL));
}

#[test]
fn connect_outside_a_zipc_parent_is_a_clear_error() {
    let _serial = serial();
    assert!(std::env::var_os(FDS_VAR).is_none());
    match worker::connect() {
        Err(Error::InvalidArgument(msg)) => assert!(msg.contains(FDS_VAR), "{msg}"),
        other => panic!("connect gave {other:?}"),
    }
    // A malformed variable, and one naming fds that are not open, in a child of ours.
    for (value, expect) in [
        ("seven", "distinct fd numbers"),
        ("900,901,902", "not open"),
    ] {
        let status = std::process::Command::new(ROLES)
            .args(["process:not-a-worker", expect])
            .env(FDS_VAR, value)
            .status()
            .unwrap();
        assert!(status.success(), "{value}: {status}");
    }
}

#[test]
fn env_clear_current_dir_and_cpu_affinity_take_effect() {
    let _serial = serial();
    let dir = std::env::temp_dir().canonicalize().unwrap();
    let allowed = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)).unwrap();
    let cpu = (0..nix::sched::CpuSet::count())
        .rev()
        .find(|&c| allowed.is_set(c).unwrap())
        .unwrap();
    let mut cmd = worker_cmd("report");
    cmd.env("DROPPED_BY_CLEAR", "1")
        .env_clear()
        .env("ZIPC_PROBE", "forty two")
        .current_dir(&dir)
        .cpu_affinity(&[cpu]);
    let inheritable = inheritable_fds();
    let mut w = Worker::spawn(&cmd).unwrap();
    let mut env = BTreeSet::new();
    let (mut cwd, mut cpus, mut var, mut fds) = (None, None, None, None);
    loop {
        let frame = w.recv_timeout(Duration::from_secs(20)).unwrap();
        let line = String::from_utf8(frame.to_vec()).unwrap();
        if let Some(var) = line.strip_prefix("env ") {
            // The worker connects on its only thread: connect removes FDS_VAR, so it is not
            // among them.
            env.insert(var.to_string());
        } else if let Some(value) = line.strip_prefix("var ") {
            var = Some(value.to_string());
        } else if let Some(list) = line.strip_prefix("fds ") {
            fds = Some(list.to_string());
        } else if let Some(path) = line.strip_prefix("cwd ") {
            cwd = Some(path.to_string());
        } else if let Some(list) = line.strip_prefix("cpus ") {
            cpus = Some(list.to_string());
        } else {
            assert_eq!(line, "end");
            break;
        }
    }
    let expect: BTreeSet<String> = ["ZIPC_PROBE=forty two".to_string()].into();
    assert_eq!(env, expect);
    // The three fds named in the variable were inherited, and nothing else of ours: what
    // the test harness itself leaks to every child is there too.
    let var = var.unwrap();
    let mut expect_fds = inheritable;
    expect_fds.extend(
        var.split(',')
            .map(|e| e.split('@').next().unwrap().parse::<u32>().unwrap()),
    );
    expect_fds.sort_unstable();
    assert_eq!(fds, Some(fd_list(&expect_fds)), "{FDS_VAR}={var}");
    assert_eq!(cwd.as_deref(), Some(dir.to_str().unwrap()));
    assert_eq!(cpus, Some(cpu.to_string()));
    assert!(w.wait().unwrap().success());
}

#[test]
fn a_bad_command_is_an_error_and_leaves_nothing() {
    let _serial = serial();
    let before = memfds();
    let missing = Worker::spawn(&Command::new("/nonexistent/zipc-worker"));
    assert!(matches!(missing, Err(Error::Io(ref e)) if e.kind() == std::io::ErrorKind::NotFound));
    let mut cmd = worker_cmd("sleep");
    cmd.cpu_affinity(&[]);
    assert!(matches!(
        Worker::spawn(&cmd),
        Err(Error::InvalidArgument(_))
    ));
    let mut cmd = worker_cmd("sleep");
    cmd.ring_capacity(0);
    assert!(matches!(
        Worker::spawn(&cmd),
        Err(Error::InvalidArgument(_))
    ));
    assert_eq!(memfds(), before);
}

/// The zipc segments this process holds open (memfds).
fn memfds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().starts_with("/memfd:zipc"))
        .count()
}

/// The named zipc segments in /dev/shm.
fn shm_segments() -> BTreeSet<String> {
    std::fs::read_dir("/dev/shm")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("zipc."))
        .collect()
}

#[test]
fn dropping_a_worker_leaves_no_process_and_no_segment() {
    let _serial = serial();
    let (fds, shm) = (memfds(), shm_segments());
    let w = sleeper();
    let pid = w.pid();
    assert_eq!(memfds(), fds + 2);
    drop(w);
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "the worker lives on"
    );
    assert_eq!(memfds(), fds, "a segment is still open");
    assert_eq!(shm_segments(), shm);
}

#[test]
fn a_dead_parent_takes_its_workers_with_it() {
    let _serial = serial();
    let mut middle = Worker::spawn(&worker_cmd("middle")).unwrap();
    let frame = middle.recv_timeout(Duration::from_secs(20)).unwrap();
    let grandchild = u32::from_le_bytes(frame[..4].try_into().unwrap());
    drop(frame);
    assert!(Path::new(&format!("/proc/{grandchild}")).exists());
    middle.kill().unwrap();
    middle.wait().unwrap();
    // Orphaned, it gets SIGKILL; its new parent may be slow to reap it (a zombie is dead).
    let start = Instant::now();
    loop {
        match std::fs::read_to_string(format!("/proc/{grandchild}/stat")) {
            Err(_) => break,
            Ok(stat)
                if stat
                    .rsplit(')')
                    .next()
                    .unwrap()
                    .trim_start()
                    .starts_with('Z') =>
            {
                break;
            }
            Ok(_) => {}
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the worker outlived its parent"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn frames_of_any_size_go_both_ways_byte_exact() {
    let _serial = serial();
    let mut cmd = worker_cmd("echo");
    cmd.ring_capacity(64 * 1024);
    let mut w = Worker::spawn(&cmd).unwrap();
    assert!(w.max_frame_len() >= 1 << 40);
    // Around half the ring (32 KiB - 8), far beyond it, and 64 MiB, mixed with small ones.
    let sizes = [
        0,
        32 * 1024 - 8,
        32 * 1024 - 7,
        5,
        1 << 20,
        64 << 20,
        17,
        3 << 20,
    ];
    for (seq, &len) in sizes.iter().enumerate() {
        let mut frame = vec![0u8; len.max(16)];
        fill_frame(seq as u64, &mut frame);
        frame.truncate(len);
        w.send(&frame).unwrap();
        let echo = w.recv().unwrap();
        assert_eq!(echo.len(), len);
        assert!(
            *echo == frame[..],
            "frame {seq} of {len} bytes came back changed"
        );
    }
    let status = w.wait().unwrap();
    assert!(status.success(), "{status}");
}

#[test]
fn typed_values_cross_both_ways() {
    let _serial = serial();
    let mut w = Worker::spawn(&worker_cmd("typed-double")).unwrap();
    let (tx, rx) = w.split().unwrap();
    std::thread::scope(|s| {
        s.spawn(move || {
            for seq in 0..FRAMES {
                tx.send_value(&reading(seq)).unwrap();
            }
        });
        for seq in 0..FRAMES {
            let frame = rx.recv().unwrap();
            let got = frame.value::<Reading>().unwrap();
            let mut want = reading(seq);
            want.value *= 2.0;
            assert_eq!(*got, want);
            // A frame of another size is refused, not misread.
            assert!(matches!(
                frame.value::<[u8; 3]>(),
                Err(Error::InvalidArgument(_))
            ));
        }
    });
    let status = w.wait().unwrap();
    assert!(status.success(), "worker failed: {status}");
}

#[test]
fn workers_over_every_transport() {
    let _serial = serial();
    for kind in [Kind::Shm, Kind::UnixSocket, Kind::Pipe, Kind::Tcp] {
        let mut cmd = worker_cmd("echo-any");
        cmd.transport(kind).ring_capacity(64 * 1024);
        let mut w = Worker::spawn(&cmd).unwrap();
        assert_eq!(w.transport(), kind);
        let mut buf = Vec::new();
        w.recv_into(&mut buf).unwrap();
        assert_eq!(buf, kind.to_string().as_bytes(), "the worker's view");
        if kind != Kind::Shm {
            // In-place frames and loans are the rings' alone.
            assert!(matches!(w.recv(), Err(Error::InvalidArgument(_))));
            assert!(matches!(w.loan(8), Err(Error::InvalidArgument(_))));
        }
        for (seq, len) in [0usize, 5, 100 * 1024, 4 << 20, 17].into_iter().enumerate() {
            let mut frame = vec![0u8; len.max(16)];
            fill_frame(seq as u64, &mut frame);
            frame.truncate(len);
            w.send(&frame).unwrap();
            w.recv_into_timeout(&mut buf, Duration::from_secs(30))
                .unwrap();
            assert!(
                buf == frame,
                "{kind}: frame {seq} of {len} bytes came back changed"
            );
        }
        let status = w.wait().unwrap();
        assert!(status.success(), "{kind}: {status}");
    }
}

#[test]
fn a_worker_killed_over_any_transport_is_seen() {
    let _serial = serial();
    for kind in [Kind::UnixSocket, Kind::Pipe, Kind::Tcp] {
        let mut cmd = worker_cmd("echo-any");
        cmd.transport(kind);
        let mut w = Worker::spawn(&cmd).unwrap();
        let mut buf = Vec::new();
        w.recv_into(&mut buf).unwrap();
        w.kill().unwrap();
        // The kernel closes a killed worker's ends: a close or a death, never a hang.
        let got = w.recv_into_timeout(&mut buf, Duration::from_secs(10));
        assert!(
            matches!(got, Err(Error::PeerGone | Error::Disconnected)),
            "{kind}: {got:?}"
        );
    }
}

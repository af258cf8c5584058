//! The worker pool: answers in order, crashed workers replaced and their tasks retried, stuck
//! tasks timed out, scaling under load, the dispatch limit, and nothing left after a drop. The
//! worker is the zipc-test-roles binary (tests/roles/pool.rs); the request payload says what
//! it does.

#![cfg(not(loom))]

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};
use zipc::Error;
use zipc::process::{Command, Pool};
use zipc::transport::Kind;

/// One test at a time: they count processes and time tasks on two cores.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The pool worker (tests/roles/pool.rs says what each request makes it do).
fn worker_cmd() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_zipc-test-roles"));
    cmd.arg("pool:worker");
    cmd
}

/// A fresh directory of this test process, named by `tag`, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("zipc-pool-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The process ids of `n` workers of `pool` that each held a task at the same time: `n` tasks
/// that each wait until `n` are held. (A worker holding one takes no other: only an idle
/// worker is given tasks, and each takes its share of the queue, one of `n` for `n` workers.)
fn held_at_once(pool: &Pool, n: usize) -> BTreeSet<Vec<u8>> {
    let dir = TempDir::new("hold");
    let hold = format!("hold:{n}:{}", dir.0.display());
    pool.map((0..n).map(|_| hold.as_str()))
        .into_iter()
        .map(|r| {
            let pid = r.unwrap();
            let text = String::from_utf8_lossy(&pid);
            assert!(text.parse::<u32>().is_ok(), "{text}");
            pid
        })
        .collect()
}

fn pids(pool: &Pool) -> BTreeSet<u32> {
    pool.stats().workers.iter().map(|w| w.pid).collect()
}

fn process_exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Waits up to 60 s for `cond` (what happens at once, with a margin for busy cores).
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < Duration::from_secs(60), "never: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn map_answers_a_thousand_tasks_in_order() {
    let _serial = serial();
    let pool = Pool::builder(worker_cmd()).size(4).build().unwrap();
    let stats = pool.stats();
    assert_eq!(stats.spawns, 4);
    assert_eq!(stats.workers.len(), 4);
    assert!(stats.spawn_time_mean > Duration::ZERO);
    assert!(stats.spawn_time_p99 >= stats.spawn_time_mean / 2);

    let inputs: Vec<String> = (0..1000)
        .map(|i| format!("echo {i} {}", "x".repeat(i % 97)))
        .collect();
    let replies = pool.map(inputs.iter().map(String::as_str));
    assert_eq!(replies.len(), inputs.len());
    for (input, reply) in inputs.iter().zip(replies) {
        assert_eq!(reply.unwrap(), input.as_bytes());
    }
    let stats = pool.stats();
    assert_eq!(stats.tasks_done, 1000);
    assert_eq!(stats.tasks_failed, 0);
    assert_eq!(stats.tasks_retried, 0);
    assert_eq!(stats.spawns, 4, "no worker was replaced");
    assert_eq!(stats.queue_depth, 0);
    assert_eq!(stats.in_flight, 0);
    assert!(stats.task_latency_p50 > Duration::ZERO);
    assert!(stats.task_latency_p99 >= stats.task_latency_p50);
    for w in &stats.workers {
        assert!(w.rss_bytes > 0, "{w:?}");
    }
    // All four workers are there to take tasks (which ones took the thousand above is up to
    // the scheduler): four tasks that each wait until four are held.
    let held = held_at_once(&pool, 4);
    assert_eq!(held.len(), 4, "{held:?}");
}

#[test]
fn a_task_that_always_kills_its_worker_fails_alone_after_its_retries() {
    let _serial = serial();
    let pool = Pool::builder(worker_cmd())
        .size(3)
        .retries(2)
        .build()
        .unwrap();
    let mut tickets = Vec::new();
    for i in 0..60 {
        if i == 20 {
            tickets.push(("die".to_string(), pool.submit("die")));
        }
        let input = format!("task {i}");
        tickets.push((input.clone(), pool.submit(input)));
    }
    for (input, ticket) in tickets {
        let result = ticket.wait();
        if input == "die" {
            assert!(matches!(result, Err(Error::PeerGone)), "{result:?}");
        } else {
            assert_eq!(result.unwrap(), input.as_bytes());
        }
    }
    let stats = pool.stats();
    assert_eq!(stats.tasks_retried, 2);
    assert_eq!(stats.tasks_failed, 1);
    assert_eq!(stats.tasks_done, 60);
    // A retried task goes back to the queue before its dead worker's replacement is
    // spawned, so another worker may answer everything before that spawn is done.
    eventually("each death replaced its worker", || {
        let stats = pool.stats();
        stats.spawns == 3 + 3 && stats.workers.len() == 3
    });
    // Still serving.
    assert_eq!(pool.submit("after").wait().unwrap(), b"after");
}

#[test]
fn a_task_whose_worker_dies_once_succeeds_on_retry() {
    let _serial = serial();
    let marker = std::env::temp_dir().join(format!("zipc-pool-die-once-{}", std::process::id()));
    let _ = std::fs::remove_file(&marker);
    let pool = Pool::builder(worker_cmd())
        .size(2)
        .retries(1)
        .build()
        .unwrap();
    let before = pids(&pool);
    let request = format!("die-once:{}", marker.display());
    assert_eq!(pool.submit(request).wait().unwrap(), b"survived");
    let stats = pool.stats();
    assert_eq!(stats.tasks_retried, 1);
    assert_eq!(stats.tasks_done, 1);
    assert_eq!(stats.tasks_failed, 0);
    let after = pids(&pool);
    let gone: Vec<u32> = before.difference(&after).copied().collect();
    assert_eq!(
        gone.len(),
        1,
        "one worker replaced: {before:?} -> {after:?}"
    );
    assert!(!process_exists(gone[0]), "the dead worker was reaped");
    std::fs::remove_file(&marker).unwrap();

    // With no retries, the same death fails the task.
    let pool = Pool::builder(worker_cmd())
        .size(1)
        .retries(0)
        .build()
        .unwrap();
    let request = format!("die-once:{}", marker.display());
    assert!(matches!(
        pool.submit(request.clone()).wait(),
        Err(Error::PeerGone)
    ));
    assert_eq!(pool.submit(request).wait().unwrap(), b"survived");
    assert_eq!(pool.stats().tasks_retried, 0);
    std::fs::remove_file(&marker).unwrap();
}

#[test]
fn a_stuck_task_times_out_and_its_worker_is_replaced() {
    let _serial = serial();
    let timeout = Duration::from_secs(1);
    let pool = Pool::builder(worker_cmd())
        .size(2)
        .timeout(timeout)
        .retries(3)
        .build()
        .unwrap();
    let before = pids(&pool);
    // Before the submit: the task's clock starts at its dispatch, after this.
    let start = Instant::now();
    let stuck = pool.submit("sleep:120000");
    let echoes: Vec<_> = (0..20).map(|i| (i, pool.submit(format!("e{i}")))).collect();
    assert!(matches!(stuck.wait(), Err(Error::Timeout)));
    let took = start.elapsed();
    assert!(took >= timeout, "{took:?}");
    // The failure is reported once the worker is killed, reaped and replaced by a fresh
    // spawn: a margin for that on busy cores, far below the task's two minutes.
    assert!(took < timeout + Duration::from_secs(30), "{took:?}");
    for (i, ticket) in echoes {
        assert_eq!(ticket.wait().unwrap(), format!("e{i}").as_bytes());
    }
    let after = pids(&pool);
    let gone: Vec<u32> = before.difference(&after).copied().collect();
    assert_eq!(gone.len(), 1, "{before:?} -> {after:?}");
    assert!(
        !process_exists(gone[0]),
        "the stuck worker was killed and reaped"
    );
    let stats = pool.stats();
    assert_eq!(stats.spawns, 3);
    assert_eq!(stats.tasks_failed, 1);
    assert_eq!(stats.tasks_retried, 0, "timeouts are not retried");
    // The pool keeps serving, on both workers.
    let replies = pool.map((0..50).map(|i| format!("again {i}")));
    for (i, reply) in replies.into_iter().enumerate() {
        assert_eq!(reply.unwrap(), format!("again {i}").as_bytes());
    }
    assert_eq!(pool.stats().tasks_done, 70);
}

#[test]
fn scaling_up_and_down_under_load_loses_no_task() {
    let _serial = serial();
    let pool = Pool::builder(worker_cmd()).size(2).build().unwrap();
    let inputs: Vec<String> = (0..300)
        .map(|i| {
            if i % 3 == 0 {
                "sleep:2".to_string()
            } else {
                format!("t{i}")
            }
        })
        .collect();
    let tickets: Vec<_> = inputs.iter().map(|s| pool.submit(s.as_str())).collect();
    pool.scale_up(3).unwrap();
    assert_eq!(pool.size(), 5);
    std::thread::sleep(Duration::from_millis(50));
    pool.scale_down(4);
    let more: Vec<_> = (0..100).map(|i| pool.submit(format!("m{i}"))).collect();
    pool.scale_up(1).unwrap();
    pool.scale_down(1);
    for (input, ticket) in inputs.iter().zip(tickets) {
        let expect: &[u8] = if input.starts_with("sleep") {
            b"slept"
        } else {
            input.as_bytes()
        };
        assert_eq!(ticket.wait().unwrap(), expect);
    }
    for (i, ticket) in more.into_iter().enumerate() {
        assert_eq!(ticket.wait().unwrap(), format!("m{i}").as_bytes());
    }
    eventually("the pool shrinks to one worker", || {
        pool.size() == 1 && pool.stats().workers.len() == 1
    });
    let stats = pool.stats();
    assert_eq!(stats.tasks_done, 400);
    assert_eq!(stats.tasks_failed, 0);
    assert!(stats.spawns >= 5, "{}", stats.spawns);
    // Scaling below one worker keeps one.
    pool.scale_down(10);
    assert_eq!(pool.submit("last").wait().unwrap(), b"last");
    assert_eq!(pool.size(), 1);
}

#[test]
fn scale_down_lets_a_busy_worker_finish_its_task() {
    let _serial = serial();
    let pool = Pool::builder(worker_cmd()).size(2).build().unwrap();
    // Tasks that run until the gate file exists: both workers stay busy until we open it.
    let dir = TempDir::new("scale-down");
    let gate = dir.0.join("gate");
    let slow: Vec<_> = (0..2)
        .map(|_| pool.submit(format!("gate:{}", gate.display())))
        .collect();
    eventually("both workers busy", || pool.stats().busy_workers == 2);
    pool.scale_down(1);
    std::fs::write(&gate, b"").unwrap();
    for ticket in slow {
        assert_eq!(ticket.wait().unwrap(), b"opened");
    }
    eventually("one worker left", || pool.stats().workers.len() == 1);
    assert_eq!(pool.stats().tasks_failed, 0);
}

#[test]
fn max_in_flight_bounds_dispatched_tasks() {
    let _serial = serial();
    let pool = Pool::builder(worker_cmd())
        .size(4)
        .max_in_flight(2)
        .build()
        .unwrap();
    let tickets: Vec<_> = (0..8).map(|_| pool.submit("sleep:100")).collect();
    let (mut most, mut deepest) = (0, 0);
    while !tickets.iter().all(|t| t.is_done()) {
        let stats = pool.stats();
        most = most.max(stats.in_flight);
        deepest = deepest.max(stats.queue_depth);
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(most, 2);
    assert!(deepest >= 4, "{deepest}");
    for t in tickets {
        assert_eq!(t.wait().unwrap(), b"slept");
    }
}

#[test]
fn a_lazy_pool_spawns_on_first_need() {
    let _serial = serial();
    let pool = Pool::builder(worker_cmd())
        .size(3)
        .lazy(true)
        .build()
        .unwrap();
    assert_eq!(pool.stats().spawns, 0);
    assert!(pool.stats().workers.is_empty());
    assert_eq!(pool.submit("hello").wait().unwrap(), b"hello");
    assert_eq!(pool.stats().spawns, 1);
    let replies = pool.map((0..3).map(|_| "sleep:100"));
    assert!(
        replies
            .iter()
            .all(|r| r.as_deref().ok() == Some(&b"slept"[..]))
    );
    assert_eq!(pool.stats().spawns, 3);
}

#[test]
fn dropping_the_pool_leaves_no_child() {
    let _serial = serial();
    let pool = Pool::builder(worker_cmd()).size(3).build().unwrap();
    assert_eq!(pool.map(["a", "b", "c"]).len(), 3);
    // One at a time, so that each goes to an idle worker.
    let busy: Vec<_> = (1..=3)
        .map(|k| {
            let t = pool.submit("sleep:120000");
            eventually("the task is dispatched", || pool.stats().busy_workers == k);
            t
        })
        .collect();
    let queued: Vec<_> = (0..5).map(|_| pool.submit("sleep:120000")).collect();
    let seen = pids(&pool);
    assert_eq!(seen.len(), 3);
    assert!(seen.iter().all(|&p| process_exists(p)));
    let start = Instant::now();
    drop(pool);
    // Killing and reaping three workers, not waiting out their two-minute tasks: a margin for
    // busy cores.
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "{:?}",
        start.elapsed()
    );
    for pid in &seen {
        assert!(!process_exists(*pid), "worker {pid} left behind");
    }
    for t in busy.into_iter().chain(queued) {
        assert!(matches!(t.wait(), Err(Error::Disconnected)));
    }
}

#[test]
fn a_program_that_cannot_start_fails_the_build() {
    let _serial = serial();
    let result = Pool::builder(Command::new("/nonexistent/zipc-pool-worker"))
        .size(3)
        .build();
    assert!(matches!(result, Err(Error::Io(_))), "{result:?}");
    // A lazy pool starts, and its tasks fail with the spawn error.
    let pool = Pool::builder(Command::new("/nonexistent/zipc-pool-worker"))
        .size(1)
        .lazy(true)
        .build()
        .unwrap();
    assert!(matches!(pool.submit("x").wait(), Err(Error::Io(_))));
    assert_eq!(pool.stats().tasks_failed, 1);
}

#[test]
fn a_request_larger_than_the_ring_travels_as_a_side_segment() {
    let _serial = serial();
    let pool = Pool::builder(worker_cmd())
        .size(1)
        .ring_capacity(4096)
        .build()
        .unwrap();
    let big: Vec<u8> = (0..256 * 1024u32)
        .map(|i| (i * 7 + i / 251) as u8)
        .collect();
    // Echoed back: a side segment each way.
    assert_eq!(pool.submit(big.clone()).wait().unwrap(), big);
    assert_eq!(pool.submit("small").wait().unwrap(), b"small");
    let replies = pool.map([big.clone(), b"between".to_vec(), big.clone()]);
    assert_eq!(replies[0].as_ref().unwrap(), &big);
    assert_eq!(replies[1].as_ref().unwrap(), b"between");
    assert_eq!(replies[2].as_ref().unwrap(), &big);
    assert_eq!(pool.stats().spawns, 1, "the worker stayed");
}

#[test]
fn wait_timeout_leaves_the_ticket_valid() {
    let _serial = serial();
    let pool = Pool::builder(worker_cmd()).size(1).build().unwrap();
    // A task that runs until the gate file exists: not done until we open it.
    let dir = TempDir::new("wait-timeout");
    let gate = dir.0.join("gate");
    let ticket = pool.submit(format!("gate:{}", gate.display()));
    assert!(matches!(
        ticket.wait_timeout(Duration::from_millis(20)),
        Err(Error::Timeout)
    ));
    assert!(!ticket.is_done());
    std::fs::write(&gate, b"").unwrap();
    assert_eq!(
        ticket.wait_timeout(Duration::from_secs(30)).unwrap(),
        b"opened"
    );
    // Taken: asking again is an error, not a hang.
    assert!(ticket.is_done());
    assert!(matches!(
        ticket.wait_timeout(Duration::from_secs(30)),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(ticket.wait(), Err(Error::InvalidArgument(_))));
}

#[test]
fn stream_answers_in_order_with_bounded_tasks_outstanding() {
    let _serial = serial();
    let pool = Pool::builder(worker_cmd())
        .size(3)
        .max_in_flight(4)
        .build()
        .unwrap();
    let read = std::cell::Cell::new(0usize);
    let inputs = (0..2000).map(|i| {
        read.set(read.get() + 1);
        format!("item {i}")
    });
    let mut answered = 0;
    for (i, answer) in pool.stream(inputs).enumerate() {
        assert_eq!(answer.unwrap(), format!("item {i}").as_bytes());
        answered += 1;
        // Never more than the window (max_in_flight) read ahead of the answers.
        assert!(
            read.get() - answered <= 4,
            "{} read, {answered} answered",
            read.get()
        );
    }
    assert_eq!(answered, 2000);
    let stats = pool.stats();
    assert_eq!(stats.tasks_done, 2000);
    assert_eq!((stats.queue_depth, stats.in_flight), (0, 0));
}

#[test]
fn a_burst_is_shared_among_the_workers_and_answered_in_order() {
    let _serial = serial();
    let pool = Pool::builder(worker_cmd()).size(4).build().unwrap();
    for round in 0..20 {
        let replies = pool.map((0..100).map(|i| format!("r{round} t{i}")));
        for (i, reply) in replies.into_iter().enumerate() {
            assert_eq!(reply.unwrap(), format!("r{round} t{i}").as_bytes());
        }
    }
    // A burst as large as the pool goes one task to each worker: four tasks that each wait
    // until four are held. (How a larger burst spreads depends on how fast the slots wake.)
    let held = held_at_once(&pool, 4);
    assert_eq!(held.len(), 4, "{held:?}");
    let stats = pool.stats();
    assert_eq!((stats.tasks_done, stats.spawns), (2004, 4));
}

#[test]
fn tasks_queued_behind_a_dying_task_are_not_charged() {
    let _serial = serial();
    // One worker, so every task of the burst sits in its ring behind the one that kills it.
    let pool = Pool::builder(worker_cmd())
        .size(1)
        .retries(0)
        .build()
        .unwrap();
    let mut inputs: Vec<String> = (0..10).map(|i| format!("before {i}")).collect();
    inputs.push("die".into());
    inputs.extend((0..20).map(|i| format!("after {i}")));
    let replies = pool.map(inputs.clone());
    for (input, reply) in inputs.iter().zip(replies) {
        if input == "die" {
            assert!(matches!(reply, Err(Error::PeerGone)), "{reply:?}");
        } else {
            assert_eq!(reply.unwrap(), input.as_bytes());
        }
    }
    let stats = pool.stats();
    assert_eq!((stats.tasks_done, stats.tasks_failed), (30, 1));
    assert_eq!(stats.tasks_retried, 0);
    assert_eq!(stats.spawns, 2);
}

#[test]
fn pools_over_every_transport_retry_and_answer_in_order() {
    let _serial = serial();
    for kind in [Kind::UnixSocket, Kind::Pipe, Kind::Tcp] {
        let pool = Pool::builder(worker_cmd())
            .size(2)
            .retries(1)
            .transport(kind)
            .build()
            .unwrap();
        let marker =
            std::env::temp_dir().join(format!("zipc-pool-{kind}-die-once-{}", std::process::id()));
        let _ = std::fs::remove_file(&marker);
        let mut inputs: Vec<String> = (0..200).map(|i| format!("{kind} task {i}")).collect();
        inputs[50] = format!("die-once:{}", marker.display());
        let replies = pool.map(inputs.clone());
        for (i, (input, reply)) in inputs.iter().zip(replies).enumerate() {
            let want: &[u8] = if i == 50 {
                b"survived"
            } else {
                input.as_bytes()
            };
            assert_eq!(reply.unwrap(), want, "{kind}: task {i}");
        }
        let stats = pool.stats();
        assert_eq!((stats.tasks_done, stats.tasks_retried), (200, 1), "{kind}");
        // The replacement is spawned after the task went back to the queue.
        eventually("the dead worker is replaced", || pool.stats().spawns == 3);
        std::fs::remove_file(&marker).unwrap();
    }
}

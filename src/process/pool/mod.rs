//! A pool of pre-warmed workers: tasks are request frames, each answered by one reply frame.
//!
//! Each worker is owned by a thread of its own (its *slot*), which spawns it, feeds it one task
//! at a time from the pool's FIFO queue, and replaces it when it dies or times out. Workers are
//! spawned by their slot threads, which live exactly as long as the workers they own, so the
//! `PR_SET_PDEATHSIG` armed by [`Worker::spawn`](super::Worker::spawn) never fires early; the slots of a pool spawn
//! their workers concurrently.
//!
//! Dispatch: only an idle slot takes tasks, so a task always goes to a worker with nothing in
//! flight (the least loaded). It takes the oldest queued tasks, its share of the queue (the
//! queue divided by the number of workers, at most 32), writes them all into its worker's ring at
//! once and then collects the replies in order. A burst of tasks thus costs each worker one
//! wake-up, not one per task; at most `max_in_flight` tasks are dispatched at once.
//!
//! A task's clock starts when its worker can start it: at its dispatch, or when the reply to
//! the task before it in the same worker's ring arrives, whichever is later. When a worker
//! dies or times out, the task at the head of its ring is the one it was running: only that
//! task is charged (a retry, or the timeout); the tasks behind it go back to the front of the
//! queue, in order, uncharged.

mod builder;
mod slot;
mod stats;
mod ticket;

pub use builder::PoolBuilder;
pub use stats::{PoolStats, WorkerStats};
pub use ticket::Ticket;

use super::command::Command;
use crate::error::{Error, Result};
use slot::{MAX_PIPELINE, run_slot};
use stats::{Counters, worker_stats};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use ticket::TicketInner;

/// A pool of worker processes, kept warm, that answer one reply frame per request frame.
///
/// The worker program calls [`worker::connect`](super::worker::connect) and loops: receive a
/// frame, compute, send one frame back (until `recv` says `Disconnected`).
///
/// - A task that runs longer than the [timeout](PoolBuilder::timeout) fails with
///   [`Error::Timeout`]; its worker is killed and replaced. Timed-out tasks are not retried
///   (a task that hangs once would likely hang again, and each try costs a whole timeout).
/// - A task whose worker dies under it ([`Error::PeerGone`], or `Disconnected` when the worker
///   closed its end) is queued again, at the front, and re-run on a fresh worker, up to
///   [`retries`](PoolBuilder::retries) times; after that it fails alone with `PeerGone`.
/// - A worker found dead while idle is replaced before it is given a task, without charging
///   the task a retry.
/// - A request or reply larger than half the ring travels as a side segment (a sealed memfd
///   passed over the worker's control socket): no size is refused below 1 TiB.
///
/// Dropping the pool fails every queued task with `Disconnected`, kills every worker (tasks in
/// flight fail with `Disconnected` too), reaps them and joins its threads.
///
/// # Examples
///
/// ```no_run
/// use zipc::process::{Command, Pool};
///
/// fn main() -> zipc::Result<()> {
///     if std::env::args().any(|a| a == "--worker") {
///         // The worker: answer each frame with its bytes reversed.
///         let mut parent = zipc::worker::connect()?;
///         loop {
///             let mut request = match parent.recv() {
///                 Ok(frame) => frame.to_vec(),
///                 Err(zipc::Error::Disconnected) => return Ok(()),
///                 Err(e) => return Err(e),
///             };
///             request.reverse();
///             parent.send(&request)?;
///         }
///     }
///     let mut cmd = Command::new(std::env::current_exe()?);
///     cmd.arg("--worker");
///     let pool = Pool::builder(cmd).size(4).build()?;
///     let replies = pool.map(["abc", "de"]);
///     assert_eq!(replies[0].as_deref().ok(), Some(&b"cba"[..]));
///     assert_eq!(pool.submit("xy").wait()?, b"yx");
///     Ok(())
/// }
/// ```
pub struct Pool {
    shared: Arc<Shared>,
    /// The slot threads started so far (finished ones are let go when more are started).
    slots: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = lock(&self.shared.state);
        f.debug_struct("Pool")
            .field("workers", &st.live)
            .field("queued", &st.queue.len())
            .field("in_flight", &st.in_flight)
            .finish_non_exhaustive()
    }
}

/// The answers of [`Pool::stream`], in input order.
pub struct Stream<'p, I> {
    pool: &'p Pool,
    inputs: I,
    /// Submitted tasks, oldest first.
    pending: VecDeque<Ticket>,
    /// How many tasks may be pending at once.
    window: usize,
}

impl<I> std::fmt::Debug for Stream<'_, I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("pending", &self.pending.len())
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

impl<I> Iterator for Stream<'_, I>
where
    I: Iterator,
    I::Item: Into<Vec<u8>>,
{
    type Item = Result<Vec<u8>>;

    fn next(&mut self) -> Option<Self::Item> {
        // Top the window up once half of it is answered: one lock and one round of wake-ups
        // for the lot, rather than one per task.
        if self.pending.len() <= self.window / 2 {
            let room = self.window - self.pending.len();
            let more = self.inputs.by_ref().take(room).map(Into::into);
            self.pending.extend(self.pool.submit_all(more));
        }
        self.pending.pop_front().map(Ticket::wait)
    }
}

/// The state every slot thread and the pool share.
struct Shared {
    state: Mutex<State>,
    /// Signalled when a task is queued, a dispatch slot frees up, the size changes or the pool
    /// shuts down.
    work: Condvar,
    cmd: Command,
    timeout: Option<Duration>,
    retries: u32,
    /// Spawn each worker when a task first needs it.
    lazy: bool,
}

struct State {
    queue: VecDeque<Task>,
    /// Slots running a batch of tasks (the others wait for work).
    busy: usize,
    /// Tasks dispatched and not yet answered, failed or re-queued: at most `max_in_flight`.
    in_flight: usize,
    max_in_flight: usize,
    /// How many workers the pool should have (at least 1).
    target: usize,
    /// Slot threads that have not retired: above `target` while busy slots finish their task.
    live: usize,
    shutdown: bool,
    next_slot: u64,
    /// The pid of each slot's worker. A pid is removed before its worker is dropped (killed
    /// and reaped), so every pid here is a process not yet reaped: safe to signal.
    pids: HashMap<u64, u32>,
    counters: Counters,
}

struct Task {
    payload: Vec<u8>,
    /// Retries used so far.
    retries: u32,
    submitted: Instant,
    ticket: Arc<TicketInner>,
}

/// Locks `m`, taking over a lock poisoned by a panic (the state stays consistent: every
/// update is made whole under the lock).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Pool {
    /// A builder for a pool of workers started by `cmd`: 4 workers, no timeout, 1 retry, no
    /// limit on dispatched tasks beyond one per worker, spawned at build.
    pub fn builder(cmd: Command) -> PoolBuilder {
        PoolBuilder {
            cmd,
            size: 4,
            timeout: None,
            retries: 1,
            max_in_flight: usize::MAX,
            lazy: false,
        }
    }

    /// A builder with the recommended configuration: two workers per CPU this process may
    /// use, rings of 128 KiB each way, a 30 s timeout and 3 retries. Adjust it like any
    /// builder.
    ///
    /// ```no_run
    /// # fn main() -> zipc::Result<()> {
    /// use zipc::process::{Command, Pool};
    /// let pool = Pool::recommended(Command::new("my-worker")).lazy(true).build()?;
    /// # Ok(()) }
    /// ```
    pub fn recommended(cmd: Command) -> PoolBuilder {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        Pool::builder(cmd)
            .size(2 * cpus)
            .ring_capacity(128 * 1024)
            .timeout(Duration::from_secs(30))
            .retries(3)
    }

    /// Queues a task: `payload` goes to a worker as one frame, and its reply frame is the
    /// ticket's answer.
    pub fn submit(&self, payload: impl Into<Vec<u8>>) -> Ticket {
        self.submit_all(std::iter::once(payload.into()))
            .pop()
            .expect("one payload gives one ticket")
    }

    /// Queues every payload under one lock and wakes the workers once.
    fn submit_all(&self, payloads: impl IntoIterator<Item = Vec<u8>>) -> Vec<Ticket> {
        let submitted = Instant::now();
        let mut tickets = Vec::new();
        let wake = {
            let mut st = lock(&self.shared.state);
            for payload in payloads {
                let inner = Arc::new(TicketInner::default());
                st.queue.push_back(Task {
                    payload,
                    retries: 0,
                    submitted,
                    ticket: Arc::clone(&inner),
                });
                tickets.push(Ticket { inner });
            }
            tickets.len().min(st.live.saturating_sub(st.busy))
        };
        // Wake no more idle slots than there are tasks: a woken slot takes its share.
        for _ in 0..wake {
            self.shared.work.notify_one();
        }
        tickets
    }

    /// Runs a task per input and waits for them all: the answers in input order.
    pub fn map<I>(&self, inputs: I) -> Vec<Result<Vec<u8>>>
    where
        I: IntoIterator,
        I::Item: Into<Vec<u8>>,
    {
        let tickets = self.submit_all(inputs.into_iter().map(Into::into));
        tickets.into_iter().map(Ticket::wait).collect()
    }

    /// Runs a task per input, lazily: the answers come in input order while later inputs
    /// are still being read. At most `max_in_flight` tasks (and no more than the workers'
    /// rings take at once) are queued or running at a time, so an endless input needs
    /// bounded memory.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn demo(pool: &zipc::process::Pool) -> zipc::Result<()> {
    /// let lines = std::io::stdin().lines().map_while(Result::ok);
    /// for answer in pool.stream(lines) {
    ///     println!("{}", String::from_utf8_lossy(&answer?));
    /// }
    /// # Ok(()) }
    /// ```
    pub fn stream<I>(&self, inputs: I) -> Stream<'_, I::IntoIter>
    where
        I: IntoIterator,
        I::Item: Into<Vec<u8>>,
    {
        let window = {
            let st = lock(&self.shared.state);
            st.max_in_flight.min(st.target.max(1) * MAX_PIPELINE)
        };
        Stream {
            pool: self,
            inputs: inputs.into_iter(),
            pending: VecDeque::new(),
            window,
        }
    }

    /// How many workers the pool has now (workers retiring after a
    /// [`scale_down`](Self::scale_down) included until their task is done).
    pub fn size(&self) -> usize {
        lock(&self.shared.state).live
    }

    /// Adds `n` workers, and waits until they are spawned (unless the pool is lazy).
    ///
    /// # Errors
    /// The first spawn error; the workers that did spawn stay.
    pub fn scale_up(&self, n: usize) -> Result<()> {
        let ids: Vec<u64> = {
            let mut st = lock(&self.shared.state);
            st.target += n;
            // Workers still finishing their task after a scale-down stay instead.
            let new = st.target.saturating_sub(st.live);
            st.live += new;
            (0..new)
                .map(|_| {
                    st.next_slot += 1;
                    st.next_slot
                })
                .collect()
        };
        self.shared.work.notify_all();
        self.start_slots(&ids, !self.shared.lazy)
    }

    /// Retires `n` workers (keeping at least one): idle ones at once, busy ones once their
    /// task is done. Queued tasks stay queued for the remaining workers.
    pub fn scale_down(&self, n: usize) {
        {
            let mut st = lock(&self.shared.state);
            st.target = st.target.saturating_sub(n).max(1);
        }
        self.shared.work.notify_all();
    }

    /// Counters, timings and the live workers' CPU time and memory.
    pub fn stats(&self) -> PoolStats {
        let (mut stats, pids) = {
            let st = lock(&self.shared.state);
            let c = &st.counters;
            let stats = PoolStats {
                spawns: c.spawns,
                spawn_time_mean: c.spawn_time.mean(),
                spawn_time_p99: c.spawn_time.quantile(0.99),
                tasks_done: c.done,
                tasks_failed: c.failed,
                tasks_retried: c.retried,
                queue_depth: st.queue.len(),
                in_flight: st.in_flight,
                busy_workers: st.busy,
                task_latency_p50: c.latency.quantile(0.5),
                task_latency_p99: c.latency.quantile(0.99),
                workers: Vec::new(),
            };
            let mut pids: Vec<u32> = st.pids.values().copied().collect();
            pids.sort_unstable();
            (stats, pids)
        };
        stats.workers = pids.into_iter().filter_map(worker_stats).collect();
        stats
    }

    /// Starts a slot thread per id; with `prewarm`, each spawns its worker at once and this
    /// waits for all of them.
    fn start_slots(&self, ids: &[u64], prewarm: bool) -> Result<()> {
        let (ready_tx, ready_rx) = mpsc::channel();
        let mut handles = lock(&self.slots);
        handles.retain(|h| !h.is_finished());
        let mut first_err = None;
        for &id in ids {
            let shared = Arc::clone(&self.shared);
            let ready = prewarm.then(|| ready_tx.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("zipc-pool-{id}"))
                .spawn(move || run_slot(&shared, id, ready));
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => {
                    {
                        let mut st = lock(&self.shared.state);
                        st.live -= 1;
                        st.target = st.target.saturating_sub(1).max(1);
                    }
                    first_err.get_or_insert(Error::Io(std::io::Error::new(
                        e.kind(),
                        format!("cannot start the pool's thread zipc-pool-{id}: {e}"),
                    )));
                }
            }
        }
        drop(handles);
        drop(ready_tx);
        if prewarm {
            // Each started slot sends once (or drops its sender when it panics).
            for result in ready_rx {
                if let Err(e) = result {
                    first_err.get_or_insert(e);
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let queued: Vec<Task> = {
            let mut st = lock(&self.shared.state);
            st.shutdown = true;
            for &pid in st.pids.values() {
                // Unblocks a slot waiting on its worker. The pid is not reaped yet (see
                // `State::pids`), so it cannot name another process; failure means it exited.
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            st.queue.drain(..).collect()
        };
        self.shared.work.notify_all();
        for task in queued {
            task.ticket.complete(Err(Error::Disconnected));
        }
        for handle in lock(&self.slots).drain(..) {
            let _ = handle.join();
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn builder_refuses_zero_sizes() {
        let cmd = Command::new("/bin/true");
        for builder in [
            Pool::builder(cmd.clone()).size(0),
            Pool::builder(cmd.clone()).max_in_flight(0),
            Pool::builder(cmd).timeout(Duration::ZERO),
        ] {
            assert!(matches!(builder.build(), Err(Error::InvalidArgument(_))));
        }
    }

    #[test]
    fn the_recommended_configuration() {
        let b = Pool::recommended(Command::new("/bin/true"));
        let cpus = std::thread::available_parallelism().unwrap().get();
        assert_eq!(b.size, 2 * cpus);
        assert_eq!(b.cmd.get_ring_capacity(), 128 * 1024);
        assert_eq!(b.timeout, Some(Duration::from_secs(30)));
        assert_eq!(b.retries, 3);
        assert!(!b.lazy);
    }

    #[test]
    fn handles_are_send_and_sync() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Pool>();
        send_sync::<Ticket>();
    }
}

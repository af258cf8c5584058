//! A pool of pre-warmed workers: tasks are request frames, each answered by one reply frame.
//!
//! Each worker is owned by a thread of its own (its *slot*), which spawns it, feeds it one task
//! at a time from the pool's FIFO queue, and replaces it when it dies or times out. Workers are
//! spawned by their slot threads, which live exactly as long as the workers they own, so the
//! `PR_SET_PDEATHSIG` armed by [`Worker::spawn`] never fires early; the slots of a pool spawn
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

use super::child::Worker;
use super::command::Command;
use crate::error::{Error, Result};
use hdrhistogram::Histogram;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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

/// How to build a [`Pool`]: [`Pool::builder`], then [`build`](PoolBuilder::build).
#[derive(Debug, Clone)]
pub struct PoolBuilder {
    cmd: Command,
    size: usize,
    timeout: Option<Duration>,
    retries: u32,
    max_in_flight: usize,
    lazy: bool,
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

/// A task's answer to come: [`wait`](Ticket::wait) for it.
#[derive(Debug)]
pub struct Ticket {
    inner: Arc<TicketInner>,
}

#[derive(Debug, Default)]
struct TicketInner {
    answer: Mutex<Answer>,
    done: Condvar,
}

/// Where a task's answer is.
#[derive(Debug, Default)]
enum Answer {
    #[default]
    Pending,
    Ready(Result<Vec<u8>>),
    /// Handed out by [`Ticket::wait_timeout`].
    Taken,
}

/// What a pool has done so far, and what its workers use now.
#[derive(Debug, Clone, Default)]
pub struct PoolStats {
    /// Workers spawned, replacements included.
    pub spawns: u64,
    /// The mean time [`Worker::spawn`] took (its clone and exec, not the worker's own start-up).
    pub spawn_time_mean: Duration,
    /// The 99th percentile of that time.
    pub spawn_time_p99: Duration,
    /// Tasks answered.
    pub tasks_done: u64,
    /// Tasks that failed (timed out, out of retries, too large, no worker could be spawned).
    pub tasks_failed: u64,
    /// Retries: times a task was queued again because its worker died under it.
    pub tasks_retried: u64,
    /// Tasks waiting for a worker.
    pub queue_depth: usize,
    /// Tasks dispatched to a worker and not yet answered.
    pub in_flight: usize,
    /// Workers with tasks in flight (the others are idle).
    pub busy_workers: usize,
    /// The median time from `submit` to the answer, over answered tasks.
    pub task_latency_p50: Duration,
    /// The 99th percentile of that time.
    pub task_latency_p99: Duration,
    /// The live workers.
    pub workers: Vec<WorkerStats>,
}

/// One worker's use of the machine, from `/proc/<pid>/stat` and `/proc/<pid>/statm`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerStats {
    /// Its process id.
    pub pid: u32,
    /// User plus system CPU time it has used.
    pub cpu_time: Duration,
    /// Its resident set size.
    pub rss_bytes: u64,
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

struct Counters {
    spawns: u64,
    /// Nanoseconds.
    spawn_time: Histogram<u64>,
    done: u64,
    failed: u64,
    retried: u64,
    /// Nanoseconds.
    latency: Histogram<u64>,
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

/// A histogram of durations in nanoseconds, 1 ns to an hour, three significant figures.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("valid histogram bounds")
}

fn record(h: &mut Histogram<u64>, d: Duration) {
    h.saturating_record(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1));
}

fn quantile(h: &Histogram<u64>, q: f64) -> Duration {
    if h.is_empty() {
        Duration::ZERO
    } else {
        Duration::from_nanos(h.value_at_quantile(q))
    }
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
                spawn_time_mean: if c.spawn_time.is_empty() {
                    Duration::ZERO
                } else {
                    Duration::from_nanos(c.spawn_time.mean() as u64)
                },
                spawn_time_p99: quantile(&c.spawn_time, 0.99),
                tasks_done: c.done,
                tasks_failed: c.failed,
                tasks_retried: c.retried,
                queue_depth: st.queue.len(),
                in_flight: st.in_flight,
                busy_workers: st.busy,
                task_latency_p50: quantile(&c.latency, 0.5),
                task_latency_p99: quantile(&c.latency, 0.99),
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

impl PoolBuilder {
    /// How many workers (at least 1; default 4).
    pub fn size(mut self, n: usize) -> Self {
        self.size = n;
        self
    }

    /// The ring size of each direction of each worker's channel (default
    /// [`DEFAULT_RING_CAPACITY`](super::DEFAULT_RING_CAPACITY), or what the command says).
    /// A request or reply must fit in half of it.
    pub fn ring_capacity(mut self, bytes: usize) -> Self {
        self.cmd.ring_capacity(bytes);
        self
    }

    /// How long a task may take from its dispatch to its reply (default: no limit). A task
    /// that takes longer fails with [`Error::Timeout`], and its worker is killed and
    /// replaced. The time counts a fresh worker's start-up.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// How many times a task whose worker died under it is run again on a new worker
    /// (default 1).
    pub fn retries(mut self, k: u32) -> Self {
        self.retries = k;
        self
    }

    /// How many tasks may be dispatched to workers at once (at least 1; default no limit
    /// beyond one per worker).
    pub fn max_in_flight(mut self, m: usize) -> Self {
        self.max_in_flight = m;
        self
    }

    /// What carries tasks and replies between the pool and each worker (default
    /// [`Kind::Shm`](crate::transport::Kind::Shm)); see
    /// [`Command::transport`](super::Command::transport).
    pub fn transport(mut self, kind: crate::transport::Kind) -> Self {
        self.cmd.transport(kind);
        self
    }

    /// Whether to spawn each worker only when a task first needs it, instead of at build
    /// (default false).
    pub fn lazy(mut self, lazy: bool) -> Self {
        self.lazy = lazy;
        self
    }

    /// Starts the pool; unless lazy, spawns its workers (concurrently) and waits for them.
    ///
    /// # Errors
    /// `InvalidArgument` for a size or `max_in_flight` of 0 or a zero timeout; the first
    /// spawn error ([`Worker::spawn`]'s), after which no worker is left running.
    pub fn build(self) -> Result<Pool> {
        let wrong = if self.size == 0 {
            Some("size(0): a pool needs at least 1 worker")
        } else if self.max_in_flight == 0 {
            Some("max_in_flight(0): a pool needs room for at least 1 task in flight")
        } else if self.timeout == Some(Duration::ZERO) {
            Some("timeout(0 s): a task's timeout must be longer than zero")
        } else {
            None
        };
        if let Some(why) = wrong {
            return Err(Error::InvalidArgument(format!("the pool's {why}")));
        }
        let ids: Vec<u64> = (1..=self.size as u64).collect();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                busy: 0,
                in_flight: 0,
                max_in_flight: self.max_in_flight,
                target: self.size,
                live: self.size,
                shutdown: false,
                next_slot: self.size as u64,
                pids: HashMap::new(),
                counters: Counters {
                    spawns: 0,
                    spawn_time: histogram(),
                    done: 0,
                    failed: 0,
                    retried: 0,
                    latency: histogram(),
                },
            }),
            work: Condvar::new(),
            cmd: self.cmd,
            timeout: self.timeout,
            retries: self.retries,
            lazy: self.lazy,
        });
        let pool = Pool {
            shared,
            slots: Mutex::new(Vec::new()),
        };
        // On error, dropping the pool kills and reaps the workers that did spawn.
        pool.start_slots(&ids, !self.lazy)?;
        Ok(pool)
    }
}

impl Ticket {
    /// Waits for the task's answer: the worker's reply frame.
    ///
    /// # Errors
    /// `Timeout` when the task ran past the pool's timeout; `PeerGone` when its worker died
    /// under it more often than the pool retries; `NoSpace` for a request too big for the
    /// memory left; `Disconnected` when the pool was dropped first; a spawn error when no worker
    /// could be started for it.
    pub fn wait(self) -> Result<Vec<u8>> {
        self.take(None)
    }

    /// Waits at most `timeout` for the task's answer. The ticket stays valid when time runs
    /// out: wait on it again later.
    ///
    /// # Errors
    /// `Timeout` when the answer is not in yet (this is not the pool's task timeout, which
    /// [`wait`](Self::wait) reports as `Timeout` too: tell them apart with
    /// [`is_done`](Self::is_done) before waiting); otherwise as for `wait`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn demo(pool: &zipc::process::Pool) -> zipc::Result<()> {
    /// use std::time::Duration;
    /// let ticket = pool.submit("work");
    /// let answer = loop {
    ///     match ticket.wait_timeout(Duration::from_millis(100)) {
    ///         Err(zipc::Error::Timeout) if !ticket.is_done() => println!("still running"),
    ///         other => break other?,
    ///     }
    /// };
    /// # Ok(()) }
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> Result<Vec<u8>> {
        // A deadline too far for an Instant is as good as none.
        self.take(Instant::now().checked_add(timeout))
    }

    /// Whether the answer is in (then [`wait`](Self::wait) returns at once).
    pub fn is_done(&self) -> bool {
        !matches!(*lock(&self.inner.answer), Answer::Pending)
    }

    /// Takes the answer, waiting for it until `deadline` (`None`: for ever).
    fn take(&self, deadline: Option<Instant>) -> Result<Vec<u8>> {
        let mut answer = lock(&self.inner.answer);
        loop {
            match std::mem::replace(&mut *answer, Answer::Taken) {
                Answer::Ready(result) => return result,
                Answer::Taken => {
                    return Err(Error::InvalidArgument(
                        "this ticket's answer was taken already".into(),
                    ));
                }
                Answer::Pending => *answer = Answer::Pending,
            }
            answer = match deadline {
                None => self
                    .inner
                    .done
                    .wait(answer)
                    .unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(Error::Timeout);
                    }
                    self.inner
                        .done
                        .wait_timeout(answer, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
        }
    }
}

impl TicketInner {
    fn complete(&self, result: Result<Vec<u8>>) {
        *lock(&self.answer) = Answer::Ready(result);
        self.done.notify_all();
    }
}

/// The most tasks a slot writes into its worker's ring before it collects their replies.
const MAX_PIPELINE: usize = 32;

/// Why a worker stopped answering the task at the head of its ring.
enum Fault {
    /// The task ran out of time: the worker goes, the task fails with `Timeout`.
    TimedOut,
    /// The worker died or hung up under the task: it goes, and the task may run again.
    Lost,
    /// The worker's channel broke (say, `Corrupted`): it goes, and the task fails.
    Broken(Error),
}

impl Fault {
    fn of(e: Error) -> Fault {
        match e {
            Error::Timeout => Fault::TimedOut,
            Error::PeerGone | Error::Disconnected => Fault::Lost,
            e => Fault::Broken(e),
        }
    }
}

/// A slot thread: owns one worker at a time, and runs tasks on it until retired or shut down.
struct Slot<'a> {
    shared: &'a Shared,
    id: u64,
    worker: Option<Worker>,
}

fn run_slot(shared: &Shared, id: u64, ready: Option<mpsc::Sender<Result<()>>>) {
    let mut slot = Slot {
        shared,
        id,
        worker: None,
    };
    if let Some(ready) = ready {
        if let Err(e) = slot.spawn() {
            {
                let mut st = lock(&shared.state);
                st.live -= 1;
                st.target = st.target.saturating_sub(1).max(1);
            }
            let _ = ready.send(Err(e));
            return;
        }
        let _ = ready.send(Ok(()));
    }
    while let Some(batch) = slot.next_batch() {
        slot.run(batch);
        lock(&shared.state).busy -= 1;
    }
    slot.discard();
}

impl Slot<'_> {
    /// Spawns this slot's worker.
    fn spawn(&mut self) -> Result<()> {
        let start = Instant::now();
        let worker = Worker::spawn(&self.shared.cmd)?;
        let took = start.elapsed();
        let mut st = lock(&self.shared.state);
        st.counters.spawns += 1;
        record(&mut st.counters.spawn_time, took);
        if st.shutdown {
            // The pool's drop did not see this pid to kill it: dropping the worker does.
            drop(st);
            drop(worker);
            return Err(Error::Disconnected);
        }
        st.pids.insert(self.id, worker.pid());
        drop(st);
        self.worker = Some(worker);
        Ok(())
    }

    /// Kills and reaps this slot's worker, if any.
    fn discard(&mut self) {
        if let Some(worker) = self.worker.take() {
            lock(&self.shared.state).pids.remove(&self.id);
            drop(worker);
        }
    }

    /// Spawns a worker for a slot left without one (unless the pool is shutting down). A
    /// failed spawn leaves the slot without a worker: the next task tries again.
    fn respawn(&mut self) {
        if self.worker.is_none() && !lock(&self.shared.state).shutdown {
            let _ = self.spawn();
        }
    }

    /// The next tasks to run (this slot's share of the queue), or `None` when this slot
    /// retires or the pool shuts down. The slot counts as busy until it has run them.
    fn next_batch(&mut self) -> Option<VecDeque<Task>> {
        let mut st = lock(&self.shared.state);
        loop {
            if st.shutdown {
                return None;
            }
            if st.live > st.target {
                st.live -= 1;
                return None;
            }
            let room = st.max_in_flight.saturating_sub(st.in_flight);
            if room > 0 && !st.queue.is_empty() {
                // A share per worker, busy ones included: a busy worker may be done soon,
                // and smaller shares keep a long task from holding many others up.
                let n = st
                    .queue
                    .len()
                    .div_ceil(st.live.max(1))
                    .min(room)
                    .min(MAX_PIPELINE);
                let batch: VecDeque<Task> = st.queue.drain(..n).collect();
                st.in_flight += batch.len();
                st.busy += 1;
                return Some(batch);
            }
            st = self.shared.work.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Runs `tasks` on this slot's worker (spawning one first if needed): writes as many into
    /// its ring as fit, then takes the replies in order, refilling the ring as it drains.
    /// Every task ends answered, failed, or back in the queue.
    fn run(&mut self, mut tasks: VecDeque<Task>) {
        if self.worker.as_mut().is_some_and(|w| !w.is_alive()) {
            // Died while idle: not the tasks' fault.
            self.discard();
        }
        if self.worker.is_none()
            && let Err(e) = self.spawn()
        {
            let first = tasks.pop_front();
            self.give_back(tasks);
            if let Some(task) = first {
                finish(self.shared, task, Err(e));
            }
            return;
        }
        let Some(worker) = self.worker.as_mut() else {
            return;
        };
        let timeout = self.shared.timeout;
        // Tasks in the worker's ring, oldest (the one it runs) first.
        let mut sent: VecDeque<Task> = VecDeque::new();
        // When the worker could start the oldest task in its ring.
        let mut clock = Instant::now();
        let fault = 'serve: loop {
            while let Some(task) = tasks.pop_front() {
                let result = if !sent.is_empty() {
                    // Never block with tasks in the ring: the worker may be blocked on a
                    // full reply ring that only this thread drains.
                    worker.try_send(&task.payload)
                } else {
                    clock = Instant::now();
                    match timeout {
                        Some(t) => worker.send_timeout(&task.payload, t),
                        None => worker.send(&task.payload),
                    }
                };
                match result {
                    Ok(()) => sent.push_back(task),
                    Err(Error::WouldBlock) => {
                        tasks.push_front(task);
                        break;
                    }
                    Err(e @ (Error::TooLarge { .. } | Error::NoSpace { .. })) => {
                        finish(self.shared, task, Err(e))
                    }
                    Err(e) => {
                        tasks.push_front(task);
                        break 'serve Some(Fault::of(e));
                    }
                }
            }
            if sent.is_empty() {
                break None;
            }
            let mut reply = Vec::new();
            let got = match timeout {
                // A deadline too far for an Instant is as good as none.
                Some(t) => match clock.checked_add(t) {
                    Some(deadline) => worker.recv_into_timeout(
                        &mut reply,
                        deadline.saturating_duration_since(Instant::now()),
                    ),
                    None => worker.recv_into(&mut reply),
                },
                None => worker.recv_into(&mut reply),
            };
            match got {
                Ok(()) => {
                    clock = Instant::now();
                    if let Some(task) = sent.pop_front() {
                        finish(self.shared, task, Ok(reply));
                    }
                }
                Err(e) => break Some(Fault::of(e)),
            }
        };
        let Some(fault) = fault else {
            return;
        };
        // The task the worker was running when it failed: the oldest in its ring, or the one
        // it was being handed.
        let head = sent.pop_front().or_else(|| tasks.pop_front());
        // Kill and reap the worker now (fast), spawn its replacement below (slow).
        self.discard();
        sent.extend(tasks);
        self.give_back(sent);
        let Some(mut task) = head else {
            self.respawn();
            return;
        };
        if matches!(fault, Fault::Lost) {
            // Queued again before the replacement is spawned, so a free worker can take it.
            task = match self.retry(task) {
                Ok(()) => {
                    self.respawn();
                    return;
                }
                Err(task) => task,
            };
        }
        // The replacement is in place before the failure is reported.
        self.respawn();
        let error = match fault {
            Fault::TimedOut => Error::Timeout,
            Fault::Broken(e) => e,
            Fault::Lost => Error::PeerGone,
        };
        finish(self.shared, task, Err(error));
    }

    /// Queues `task`, whose worker died under it, again at the front; gives it back when it
    /// is out of retries (or the pool is shutting down): it fails.
    fn retry(&self, mut task: Task) -> std::result::Result<(), Task> {
        let mut st = lock(&self.shared.state);
        if st.shutdown || task.retries >= self.shared.retries {
            return Err(task);
        }
        task.retries += 1;
        st.in_flight -= 1;
        st.counters.retried += 1;
        st.queue.push_front(task);
        drop(st);
        self.shared.work.notify_all();
        Ok(())
    }

    /// Puts tasks that never ran back at the front of the queue, in order, uncharged; when the
    /// pool is shutting down, fails them instead (its drop emptied the queue already).
    fn give_back(&self, tasks: VecDeque<Task>) {
        if tasks.is_empty() {
            return;
        }
        let mut st = lock(&self.shared.state);
        if st.shutdown {
            drop(st);
            for task in tasks {
                finish(self.shared, task, Err(Error::Disconnected));
            }
            return;
        }
        st.in_flight -= tasks.len();
        for task in tasks.into_iter().rev() {
            st.queue.push_front(task);
        }
        drop(st);
        self.shared.work.notify_all();
    }
}

/// Ends a dispatched task: counts it and hands its ticket the result (`Disconnected` for a
/// failure while the pool shuts down).
fn finish(shared: &Shared, task: Task, result: Result<Vec<u8>>) {
    let mut st = lock(&shared.state);
    // A slot held back by `max_in_flight` may go on now.
    let wake = st.in_flight == st.max_in_flight && !st.queue.is_empty();
    st.in_flight -= 1;
    let result = match result {
        Err(_) if st.shutdown => Err(Error::Disconnected),
        other => other,
    };
    if result.is_ok() {
        st.counters.done += 1;
        record(&mut st.counters.latency, task.submitted.elapsed());
    } else {
        st.counters.failed += 1;
    }
    drop(st);
    if wake {
        shared.work.notify_one();
    }
    task.ticket.complete(result);
}

/// `pid`'s CPU time and resident memory, or `None` when it is gone.
fn worker_stats(pid: u32) -> Option<WorkerStats> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let (cpu_time, rss_bytes) = parse_proc(&stat, &statm, clock_ticks(), page_size())?;
    Some(WorkerStats {
        pid,
        cpu_time,
        rss_bytes,
    })
}

/// CPU time (utime + stime, fields 14 and 15 of `stat`) and RSS (field 2 of `statm`, in
/// pages).
fn parse_proc(stat: &str, statm: &str, ticks: u64, page: u64) -> Option<(Duration, u64)> {
    // The command name (field 2) may hold spaces and parentheses: count from its end.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): utime is field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let resident: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    let total = utime + stime;
    let ticks = ticks.max(1);
    let cpu = Duration::from_secs(total / ticks)
        + Duration::from_nanos((total % ticks) * 1_000_000_000 / ticks);
    Some((cpu, resident * page))
}

fn clock_ticks() -> u64 {
    sysconf(libc::_SC_CLK_TCK).unwrap_or(100)
}

fn page_size() -> u64 {
    sysconf(libc::_SC_PAGESIZE).unwrap_or(4096)
}

fn sysconf(name: libc::c_int) -> Option<u64> {
    // SAFETY: sysconf reads a configuration value; it takes no pointers and has no
    // preconditions (an unknown name is -1, handled below).
    let value = unsafe { libc::sysconf(name) };
    u64::try_from(value).ok().filter(|&v| v > 0)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_stat_and_statm() {
        let stat = "1234 (a (weird) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 130 0 0 \
                    20 0 1 0 100 1000000 300 18446744073709551615";
        let statm = "2500 300 200 10 0 150 0\n";
        let (cpu, rss) = parse_proc(stat, statm, 100, 4096).unwrap();
        assert_eq!(cpu, Duration::from_millis(3800));
        assert_eq!(rss, 300 * 4096);
        assert!(parse_proc("garbage", statm, 100, 4096).is_none());
    }

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

    #[test]
    fn stats_of_this_process() {
        let me = worker_stats(std::process::id()).unwrap();
        assert!(me.rss_bytes > 0);
    }
}

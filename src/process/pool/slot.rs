//! A slot: the thread that owns one worker at a time, feeds it tasks from the queue, collects
//! their replies and replaces the worker when it dies or times out.

use super::{Shared, Task, lock};
use crate::error::{Error, Result};
use crate::process::Worker;
use std::collections::VecDeque;
use std::sync::mpsc;
use std::time::Instant;

/// The most tasks a slot writes into its worker's ring before it collects their replies.
pub(super) const MAX_PIPELINE: usize = 32;

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

pub(super) fn run_slot(shared: &Shared, id: u64, ready: Option<mpsc::Sender<Result<()>>>) {
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
        st.counters.spawn_time.record(took);
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
pub(super) fn finish(shared: &Shared, task: Task, result: Result<Vec<u8>>) {
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
        st.counters.latency.record(task.submitted.elapsed());
    } else {
        st.counters.failed += 1;
    }
    drop(st);
    if wake {
        shared.work.notify_one();
    }
    task.ticket.complete(result);
}

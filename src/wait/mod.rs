//! How a side waits: a bounded spin, then FUTEX_WAIT on a sequence word in shared memory.
//!
//! The protocol is an event count. A waiter announces itself (`waiting = 1`), issues the heavy
//! barrier, reads `seq`, checks its condition once more and only then sleeps on `seq`. The
//! other side publishes (a Release store of its position), issues the light barrier and reads
//! `waiting`: only when it is set does it bump `seq` and FUTEX_WAKE. The barriers order the
//! two store-then-load pairs, so either the waiter sees the new position or the notifier sees
//! the waiter; a wakeup is never lost, and the fast path makes no syscall and no fence (see
//! `sys::barrier` for why the light barrier is free).

mod deadline;

pub use deadline::Deadline;
pub(crate) use deadline::deadline_forms;

use crate::error::{Error, Result};
use crate::sync::{AtomicU32, Ordering, SPIN_BEFORE_SLEEP};
use crate::sys::{barrier, futex};
use crossbeam_utils::Backoff;
use std::time::{Duration, Instant};

/// How often a sleeping side wakes to ask whether its peer still lives.
pub(crate) const LIVENESS_TICK: Duration = Duration::from_millis(20);

/// The longest sleep when the kernel refuses membarrier.
const DEGRADED_SLICE: Duration = Duration::from_millis(1);

/// A word to sleep on, and the flag that tells the other side someone sleeps.
#[repr(C)]
pub(crate) struct WaitWord {
    seq: AtomicU32,
    waiting: AtomicU32,
}

impl WaitWord {
    /// A fresh word on the heap (shared memory starts zeroed, which is the same state).
    #[cfg(loom)]
    pub(crate) fn new() -> Self {
        WaitWord {
            seq: AtomicU32::new(0),
            waiting: AtomicU32::new(0),
        }
    }

    /// Called after publishing: wakes the other side if it sleeps, otherwise costs a compiler
    /// fence and a load of a line that stays in cache.
    #[inline]
    pub(crate) fn notify(&self) {
        barrier::light();
        if self.waiting.load(Ordering::Relaxed) != 0 {
            self.wake();
        }
    }

    /// Whether the other side announced that it sleeps, or is about to (a hint: it may be
    /// stale, so it only hurries things a correct protocol does anyway).
    #[inline]
    pub(crate) fn has_waiter(&self) -> bool {
        self.waiting.load(Ordering::Relaxed) != 0
    }

    /// Wakes the other side whether or not it announced itself (used on close).
    pub(crate) fn wake(&self) {
        self.seq.fetch_add(1, Ordering::SeqCst);
        futex::wake(&self.seq);
    }

    /// Sleeps until notified or `timeout`, unless `ready()` holds once announced.
    fn sleep(&self, ready: impl FnOnce() -> bool, timeout: Duration) {
        self.waiting.store(1, Ordering::SeqCst);
        // Without membarrier a peer that skips its fence could miss us: sleep in short slices.
        let timeout = if barrier::heavy() {
            timeout
        } else {
            timeout.min(DEGRADED_SLICE)
        };
        let seq = self.seq.load(Ordering::SeqCst);
        if !ready() {
            futex::wait(&self.seq, seq, Some(timeout));
        }
        self.waiting.store(0, Ordering::Relaxed);
    }
}

/// One side's view of what it waits for.
pub(crate) trait Waiter {
    /// What a successful wait yields.
    type Output;
    /// Tries once; `Ok(None)` means "not yet".
    fn poll(&mut self) -> Result<Option<Self::Output>>;
    /// Cheap check, made after announcing the wait: has the other side done anything (moved
    /// its position or closed) since the last poll?
    fn changed(&self) -> bool;
    /// Called after a poll found nothing: an error if the peer closed or died.
    fn check_peer(&mut self) -> Result<()>;
    /// Called before each sleep: anything the other side might wait for goes out now.
    fn before_sleep(&mut self) {}
}

/// How an end waits when it must (the ring is empty for a consumer, full for a producer).
/// Each end chooses for itself; the protocol is the same whatever the peer chose.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Wait {
    /// Spin a few microseconds (no syscall), then sleep on the futex. The default.
    #[default]
    Adaptive,
    /// Never sleep: poll until the frame (or space) comes. Lowest latency, one core busy.
    Spin,
    /// Sleep on the futex at once, without spinning first. Least CPU.
    Sleep,
}

/// Polls `w` until it yields, `deadline` passes (`Error::Timeout`) or its peer is gone.
/// Waits as `how` says, checking the peer at least every [`LIVENESS_TICK`].
pub(crate) fn wait_for<W: Waiter>(
    w: &mut W,
    word: &WaitWord,
    deadline: Option<Instant>,
    how: Wait,
) -> Result<W::Output> {
    // Callers come here after a poll found nothing: back off before looking again, so as not
    // to pull the cache line away from a peer that is writing it.
    match how {
        Wait::Spin => return spin_for(w, deadline),
        Wait::Adaptive if SPIN_BEFORE_SLEEP => {
            let backoff = Backoff::new();
            while !backoff.is_completed() {
                backoff.snooze();
                if let Some(v) = w.poll()? {
                    return Ok(v);
                }
            }
        }
        Wait::Adaptive | Wait::Sleep => {}
    }
    loop {
        w.check_peer()?;
        let slice = match time_left(deadline)? {
            None => LIVENESS_TICK,
            Some(left) => left.min(LIVENESS_TICK),
        };
        w.before_sleep();
        word.sleep(|| w.changed(), slice);
        if let Some(v) = w.poll()? {
            return Ok(v);
        }
    }
}

/// Time until `deadline` (`None`: no deadline), or `Error::Timeout` once it passed.
fn time_left(deadline: Option<Instant>) -> Result<Option<Duration>> {
    match deadline {
        None => Ok(None),
        Some(d) => match d.saturating_duration_since(Instant::now()) {
            left if left.is_zero() => Err(Error::Timeout),
            left => Ok(Some(left)),
        },
    }
}

/// [`Wait::Spin`]: polls without sleeping; looks at the clock, the deadline and the peer
/// every few thousand polls.
fn spin_for<W: Waiter>(w: &mut W, deadline: Option<Instant>) -> Result<W::Output> {
    let mut next_check = Instant::now() + LIVENESS_TICK;
    loop {
        for _ in 0..1024 {
            std::hint::spin_loop();
            if let Some(v) = w.poll()? {
                return Ok(v);
            }
        }
        time_left(deadline)?;
        if Instant::now() >= next_check {
            w.check_peer()?;
            w.before_sleep();
            next_check = Instant::now() + LIVENESS_TICK;
        }
    }
}

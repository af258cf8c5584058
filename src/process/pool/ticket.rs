//! A task's answer to come, and how a caller waits for it.

use super::lock;
use crate::error::{Error, Result};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// A task's answer to come: [`wait`](Ticket::wait) for it.
#[derive(Debug)]
pub struct Ticket {
    pub(super) inner: Arc<TicketInner>,
}

#[derive(Debug, Default)]
pub(super) struct TicketInner {
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
    pub(super) fn complete(&self, result: Result<Vec<u8>>) {
        *lock(&self.answer) = Answer::Ready(result);
        self.done.notify_all();
    }
}

//! The parent's handle on a worker: its process, the channel ends each way, and the control
//! socket.

use super::command::Command;
use super::control;
use super::link::Link;
use crate::error::{Error, Result};
use crate::sys::spawn;
use crate::transport::handoff;
use std::os::fd::AsFd;
use std::process::ExitStatus;

/// A worker process and the parent's ends of its channels: frames to it, frames from it.
///
/// Blocking calls made before the worker has called [`connect`](super::worker::connect) wait
/// for it (within their timeout); a worker that exits first makes them
/// [`Error::PeerGone`]. Once it connected, its death is `PeerGone` on every call that waits,
/// within tens of milliseconds, after every frame it committed was delivered.
///
/// Dropping a `Worker` kills its process (SIGKILL) and reaps it; [`wait`](Worker::wait) lets
/// it finish instead.
///
/// A `Worker` derefs to its [`Link`]: `send`, `recv`, loans and the rest are the link's, the
/// same calls the worker makes on its side.
pub struct Worker {
    link: Link,
    process: Process,
}

impl std::ops::Deref for Worker {
    type Target = Link;
    fn deref(&self) -> &Link {
        &self.link
    }
}

impl std::ops::DerefMut for Worker {
    fn deref_mut(&mut self) -> &mut Link {
        &mut self.link
    }
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("pid", &self.pid())
            .field("link", &self.link)
            .field("status", &self.process.status)
            .finish_non_exhaustive()
    }
}

/// The child process; dropping it kills and reaps the child unless it was reaped already.
struct Process {
    pid: libc::pid_t,
    status: Option<ExitStatus>,
}

impl Process {
    fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        if self.status.is_none() {
            self.status = spawn::wait(self.pid, false)?;
        }
        Ok(self.status)
    }

    fn wait(&mut self) -> Result<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        let status = spawn::wait(self.pid, true)?
            .ok_or_else(|| Error::Io(std::io::Error::other("waitpid returned without a status")))?;
        self.status = Some(status);
        Ok(status)
    }

    /// SIGKILL, unless the child was reaped (then its pid may be another process's).
    fn kill(&mut self) -> Result<()> {
        if self.try_wait()?.is_none() {
            spawn::kill(self.pid)?;
        }
        Ok(())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.status.is_none() {
            // Both fail only for a child that was reaped already (not by us: then it is gone).
            let _ = spawn::kill(self.pid);
            let _ = spawn::wait(self.pid, true);
        }
    }
}

impl Worker {
    /// Starts the worker: a sealed memfd ring each way and a control socket pair, exactly the
    /// worker's three fds inherited (their numbers in `ZIPC_WORKER_FDS`), and
    /// `PR_SET_PDEATHSIG(SIGKILL)` armed in the child, so that the worker dies with its
    /// parent. The worker attaches with [`connect`](super::worker::connect).
    ///
    /// The kernel sends the death signal when the *thread* that spawned the worker ends, not
    /// only its process: spawn long-lived workers from a thread that lives as long as they
    /// should.
    ///
    /// # Errors
    /// `InvalidArgument` for a ring capacity or CPU list out of range; `NoSpace` when shared
    /// memory is full; `Io` when the program cannot be started (not found, not executable,
    /// a working directory that does not exist, CPUs this process may not use).
    pub fn spawn(cmd: &Command) -> Result<Worker> {
        let (control, worker_control) = control::pair()?;
        // The worker's copies are duplicates numbered 3 and up (clear of stdin, stdout and
        // stderr), still close-on-exec here; the child clears the flag on these alone.
        let (data, mut worker_fds) =
            (handoff::of(cmd.get_transport()).for_child)(cmd.get_ring_capacity())?;
        worker_fds.push(worker_control);
        let handed: Vec<_> = worker_fds.iter().map(AsFd::as_fd).collect();
        let pid = spawn::spawn(&cmd.spec(&handed)?)?;
        // The parent keeps no copy of the worker's ends: its control end hangs up when the
        // worker's process is gone.
        drop(worker_fds);
        // Dropped on error, the process is killed and reaped.
        let process = Process { pid, status: None };
        Ok(Worker {
            link: Link::new(data, control, false)?,
            process,
        })
    }

    /// The worker's process id.
    pub fn pid(&self) -> u32 {
        self.process.pid.unsigned_abs()
    }

    /// Whether the worker's process still runs and holds its control end (false once it
    /// exited, was killed, or dropped its [`Parent`](super::worker::Parent)).
    pub fn is_alive(&mut self) -> bool {
        !self.link.hung_up() && matches!(self.process.try_wait(), Ok(None))
    }

    /// The worker's exit status if it has exited (it is reaped then), without waiting.
    ///
    /// # Errors
    /// `Io` when the process cannot be waited for.
    pub fn exit_status(&mut self) -> Result<Option<ExitStatus>> {
        self.process.try_wait()
    }

    /// Kills the worker (SIGKILL). Its status is then to be had from [`wait`](Self::wait) or
    /// [`exit_status`](Self::exit_status); dropping the `Worker` reaps it too.
    ///
    /// # Errors
    /// `Io` when the signal cannot be sent. A worker that already exited is not an error.
    pub fn kill(&mut self) -> Result<()> {
        self.process.kill()
    }

    /// Closes both ends (the worker's `recv` gets `Disconnected` once it has read everything,
    /// its `send` gets `Disconnected`) and waits for the worker to exit.
    ///
    /// # Errors
    /// `Io` when the process cannot be waited for.
    pub fn wait(self) -> Result<ExitStatus> {
        let Worker { link, mut process } = self;
        let (mut data, control) = link.into_inner();
        // Flushes what a timed-out send left, so the worker sees a clean end.
        let _ = data.close();
        drop(data);
        drop(control);
        process.wait()
    }
}

//! The parent's handle on a worker: its process, the channel ends each way, and the control
//! socket.

use super::command::Command;
use super::control::{self, Event};
use super::data::Data;
use crate::bytes::{self, Consumer, Deadline, Frame, Loan, Producer};
use crate::error::{Error, Result};
use crate::sys::spawn;
use crate::transport::{Kind, Pipe, Tcp, UnixSocket};
use crate::{Config, Wait};
use std::os::fd::{AsFd, OwnedFd};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

/// A worker process and the parent's ends of its channels: frames to it, frames from it.
///
/// Blocking calls made before the worker has called [`connect`](super::worker::connect) wait
/// for it (within their timeout); a worker that exits first makes them
/// [`Error::PeerGone`]. Once it connected, its death is `PeerGone` on every call that waits,
/// within tens of milliseconds, after every frame it committed was delivered.
///
/// Dropping a `Worker` kills its process (SIGKILL) and reaps it; [`wait`](Worker::wait) lets
/// it finish instead.
pub struct Worker {
    data: Data,
    control: OwnedFd,
    /// Whether the worker said hello: both its ends are attached, so the rings see its death.
    connected: bool,
    process: Process,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("pid", &self.pid())
            .field("transport", &self.data)
            .field("connected", &self.connected)
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

/// A deadline `timeout` from now (`None` when that is beyond what an Instant holds).
fn deadline_after(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// What is left of `timeout` at `deadline` (a timeout too long for a deadline stays as is).
fn left(deadline: Option<Instant>, timeout: Duration) -> Duration {
    deadline.map_or(timeout, |t| t.saturating_duration_since(Instant::now()))
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
        let (data, mut worker_fds) = data_path(cmd)?;
        worker_fds.push(worker_control);
        let handed: Vec<_> = worker_fds.iter().map(AsFd::as_fd).collect();
        let pid = spawn::spawn(&cmd.spec(&handed)?)?;
        // The parent keeps no copy of the worker's ends: its control end hangs up when the
        // worker's process is gone.
        drop(worker_fds);
        let mut worker = Worker {
            data,
            control,
            connected: false,
            process: Process { pid, status: None },
        };
        if let Data::Shm { tx, rx } = &mut worker.data {
            // Frames too big for a ring go as side segments over the control socket.
            tx.set_side_socket(worker.control.try_clone()?);
            rx.set_side_socket(worker.control.try_clone()?);
        }
        Ok(worker)
    }

    /// The worker's process id.
    pub fn pid(&self) -> u32 {
        self.process.pid.unsigned_abs()
    }

    /// Waits until the worker has connected, or `deadline`.
    fn await_connected(&mut self, deadline: Option<Instant>) -> Result<()> {
        if self.connected {
            return Ok(());
        }
        match control::wait_event(self.control.as_fd(), deadline)? {
            Event::Hello => {
                self.connected = true;
                Ok(())
            }
            Event::HangUp => Err(Error::PeerGone),
            Event::Nothing => Err(Error::Timeout),
        }
    }

    /// Whether the worker has connected, without waiting.
    fn poll_connected(&mut self) -> Result<bool> {
        match self.await_connected(Some(Instant::now())) {
            Ok(()) => Ok(true),
            Err(Error::Timeout) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Copies `data` to the worker as one frame, waiting for space (and for the worker to
    /// connect).
    /// A frame beyond half the ring goes as a side segment: a sealed memfd whose fd
    /// passes over the control socket.
    ///
    /// # Errors
    /// `NoSpace` when memory for a side segment is short; `PeerGone` when the worker died
    /// (before connecting, too); `Disconnected` when it closed its end; `Corrupted` for a
    /// garbled ring.
    pub fn send(&mut self, data: &[u8]) -> Result<()> {
        self.await_connected(None)?;
        self.data.send(data, Deadline::Never)
    }

    /// Sends one `Pod` value to the worker as a frame of its bytes; read it there in place
    /// with [`Frame::value`].
    ///
    /// # Errors
    /// As for [`send`](Self::send).
    pub fn send_value<T: bytemuck::Pod>(&mut self, value: &T) -> Result<()> {
        self.send(bytemuck::bytes_of(value))
    }

    /// As [`send`](Self::send), but `WouldBlock` instead of waiting. Frames sent before the
    /// worker connected wait in the ring for it.
    ///
    /// # Errors
    /// As for `send`, and `WouldBlock`.
    pub fn try_send(&mut self, data: &[u8]) -> Result<()> {
        if !self.connected && control::hung_up(self.control.as_fd()) {
            return Err(Error::PeerGone);
        }
        self.data.send(data, Deadline::Now)
    }

    /// As [`send`](Self::send), waiting at most `timeout` in all.
    ///
    /// # Errors
    /// As for `send`, and `Timeout`.
    pub fn send_timeout(&mut self, data: &[u8], timeout: Duration) -> Result<()> {
        let deadline = deadline_after(timeout);
        self.await_connected(deadline)?;
        self.data
            .send(data, Deadline::after(left(deadline, timeout)))
    }

    /// Lends `len` bytes of the ring to the worker to write in place, waiting for space (and
    /// for the worker to connect); [`Loan::commit`] sends them.
    ///
    /// # Errors
    /// As for [`send`](Self::send); `InvalidArgument` on a transport other than shm.
    pub fn loan(&mut self, len: usize) -> Result<Loan<'_>> {
        self.await_connected(None)?;
        self.data.rings()?.0.loan(len)
    }

    /// As [`loan`](Self::loan), but `WouldBlock` instead of waiting.
    ///
    /// # Errors
    /// As for `loan`, and `WouldBlock`.
    pub fn try_loan(&mut self, len: usize) -> Result<Loan<'_>> {
        if !self.connected && control::hung_up(self.control.as_fd()) {
            return Err(Error::PeerGone);
        }
        self.data.rings()?.0.try_loan(len)
    }

    /// As [`loan`](Self::loan), waiting at most `timeout` in all.
    ///
    /// # Errors
    /// As for `loan`, and `Timeout`.
    pub fn loan_timeout(&mut self, len: usize, timeout: Duration) -> Result<Loan<'_>> {
        let deadline = deadline_after(timeout);
        self.await_connected(deadline)?;
        self.data
            .rings()?
            .0
            .loan_timeout(len, left(deadline, timeout))
    }

    /// The next frame from the worker, in place, waiting for one (and for the worker to
    /// connect). Dropping the [`Frame`] frees its space.
    ///
    /// # Errors
    /// `PeerGone` when the worker died, after every frame it committed; `Disconnected` when
    /// it closed its end, likewise; `Corrupted` for a garbled ring; `InvalidArgument` on a
    /// transport other than shm (use [`recv_into`](Self::recv_into)).
    pub fn recv(&mut self) -> Result<Frame<'_>> {
        self.await_connected(None)?;
        self.data.rings()?.1.recv()
    }

    /// The next frame from the worker, copied into `buf` (cleared first), waiting for one:
    /// what every transport does.
    ///
    /// # Errors
    /// As for [`recv`](Self::recv), but on any transport.
    pub fn recv_into(&mut self, buf: &mut Vec<u8>) -> Result<()> {
        self.await_connected(None)?;
        self.data.recv_into(buf, Deadline::Never)
    }

    /// As [`recv_into`](Self::recv_into), waiting at most `timeout` in all.
    ///
    /// # Errors
    /// As for `recv_into`, and `Timeout`.
    pub fn recv_into_timeout(&mut self, buf: &mut Vec<u8>, timeout: Duration) -> Result<()> {
        let deadline = deadline_after(timeout);
        self.await_connected(deadline)?;
        let got = self
            .data
            .recv_into(buf, Deadline::after(left(deadline, timeout)));
        match got {
            // Nothing came, but the worker's control end is gone: so is the worker.
            Err(Error::Timeout) if control::hung_up(self.control.as_fd()) => Err(Error::PeerGone),
            other => other,
        }
    }

    /// As [`recv`](Self::recv), but `WouldBlock` instead of waiting.
    ///
    /// # Errors
    /// As for `recv`, and `WouldBlock`.
    pub fn try_recv(&mut self) -> Result<Frame<'_>> {
        if !self.poll_connected()? {
            return Err(Error::WouldBlock);
        }
        self.data.rings()?.1.try_recv()
    }

    /// As [`recv`](Self::recv), waiting at most `timeout` in all.
    ///
    /// # Errors
    /// As for `recv`, and `Timeout`.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Frame<'_>> {
        let deadline = deadline_after(timeout);
        self.await_connected(deadline)?;
        match self.data.rings()?.1.recv_timeout(left(deadline, timeout)) {
            // The ring saw nothing, but the worker's control end is gone: so is the worker.
            Err(Error::Timeout) if control::hung_up(self.control.as_fd()) => Err(Error::PeerGone),
            other => other,
        }
    }

    /// The two ends, to use at once (say, to send back a frame while holding it, or from two
    /// threads). Waits first for the worker to connect, so that the ends see its death.
    ///
    /// # Errors
    /// `PeerGone` when the worker exited before connecting; `InvalidArgument` on a
    /// transport other than shm.
    pub fn split(&mut self) -> Result<(&mut Producer, &mut Consumer)> {
        self.await_connected(None)?;
        self.data.rings()
    }

    /// How both ends wait (default [`Wait::Adaptive`]).
    pub fn set_wait(&mut self, wait: Wait) {
        self.data.set_wait(wait);
    }

    /// The largest frame that goes to the worker.
    pub fn max_frame_len(&self) -> usize {
        self.data.max_frame_len()
    }

    /// Whether the worker's process still runs and holds its control end (false once it
    /// exited, was killed, or dropped its [`Parent`](super::worker::Parent)).
    pub fn is_alive(&mut self) -> bool {
        !control::hung_up(self.control.as_fd()) && matches!(self.process.try_wait(), Ok(None))
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
        let Worker {
            mut data,
            control,
            mut process,
            ..
        } = self;
        if let Data::Other(link) = &mut data {
            // Flushes what a timed-out send left, so the worker sees a clean end.
            let _ = link.close();
        }
        drop(data);
        drop(control);
        process.wait()
    }

    /// Which transport carries the frames ([`Command::transport`]).
    pub fn transport(&self) -> Kind {
        self.data.kind()
    }
}

/// The parent's data path to a new worker, and the worker's fds for it (close-on-exec).
fn data_path(cmd: &Command) -> Result<(Data, Vec<OwnedFd>)> {
    Ok(match cmd.get_transport() {
        Kind::Shm => {
            let config = Config::default().capacity(cmd.get_ring_capacity());
            let to_worker = bytes::memfd(config.clone())?;
            let from_worker = bytes::memfd(config)?;
            let fds = vec![to_worker.try_clone()?, from_worker.try_clone()?];
            let tx = Producer::from_fd(to_worker)?;
            let rx = Consumer::from_fd(from_worker)?;
            (Data::Shm { tx, rx }, fds)
        }
        Kind::UnixSocket => {
            let (mine, theirs) = control::pair()?;
            (
                Data::Other(Box::new(UnixSocket::from_fd(mine)?)),
                vec![theirs],
            )
        }
        Kind::Pipe => {
            let (to_read, to_write) =
                nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(std::io::Error::from)?;
            let (from_read, from_write) =
                nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(std::io::Error::from)?;
            let link = Pipe::from_fds(from_read, to_write)?;
            (Data::Other(Box::new(link)), vec![to_read, from_write])
        }
        Kind::Tcp => {
            let (mine, theirs) = loopback_pair()?;
            (
                Data::Other(Box::new(Tcp::from_stream(mine)?)),
                vec![theirs.into()],
            )
        }
    })
}

/// Two ends of a TCP connection over the loopback interface, both in this process.
fn loopback_pair() -> Result<(std::net::TcpStream, std::net::TcpStream)> {
    let listener = std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))?;
    let theirs = std::net::TcpStream::connect(listener.local_addr()?)?;
    let want = theirs.local_addr()?;
    // Another local process may connect to the port first: take only our own connection.
    for _ in 0..16 {
        let (mine, from) = listener.accept()?;
        if from == want {
            return Ok((mine, theirs));
        }
    }
    Err(Error::Io(std::io::Error::new(
        std::io::ErrorKind::ConnectionRefused,
        "other connections kept arriving on the loopback port of a worker's TCP link",
    )))
}

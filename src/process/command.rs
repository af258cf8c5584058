//! The worker's command: what `std::process::Command` takes, plus CPU affinity and ring sizes,
//! and the code that runs in the child between fork and exec.

use super::{DEFAULT_RING_CAPACITY, FDS_VAR};
use crate::error::{Error, Result};
use crate::transport::Kind;
use nix::fcntl::{FcntlArg, FdFlag, fcntl};
use nix::sched::{CpuSet, sched_setaffinity};
use nix::sys::prctl;
use nix::sys::signal::Signal;
use nix::unistd::{Pid, getpid, getppid};
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::RawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

/// How to start a worker: its program, arguments, environment, working directory, CPU
/// affinity and ring sizes. Give it to [`Worker::spawn`](super::Worker::spawn); one command
/// can spawn any number of workers.
///
/// ```
/// let mut cmd = zipc::process::Command::new("/usr/bin/my-worker");
/// cmd.arg("--fast")
///     .env_clear()
///     .env("RUST_LOG", "info")
///     .current_dir("/tmp")
///     .cpu_affinity(&[1])
///     .ring_capacity(1 << 20);
/// ```
#[derive(Clone, Debug)]
pub struct Command {
    program: OsString,
    args: Vec<OsString>,
    clear_env: bool,
    /// Set (`Some`) or removed (`None`), in order, after a clear.
    envs: Vec<(OsString, Option<OsString>)>,
    cwd: Option<PathBuf>,
    cpus: Option<Vec<usize>>,
    ring_capacity: usize,
    transport: Kind,
}

impl Command {
    /// A command to run `program` (a path, or a name looked up in `PATH`), with no arguments,
    /// this process's environment and working directory, any CPU, and rings of
    /// [`DEFAULT_RING_CAPACITY`] bytes each way.
    pub fn new(program: impl AsRef<OsStr>) -> Command {
        Command {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            clear_env: false,
            envs: Vec::new(),
            cwd: None,
            cpus: None,
            ring_capacity: DEFAULT_RING_CAPACITY,
            transport: Kind::Shm,
        }
    }

    /// Adds an argument.
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Command {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(&mut self, args: I) -> &mut Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets an environment variable for the worker.
    pub fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut Command {
        self.envs
            .push((key.as_ref().to_owned(), Some(value.as_ref().to_owned())));
        self
    }

    /// Removes an environment variable from what the worker inherits.
    pub fn env_remove(&mut self, key: impl AsRef<OsStr>) -> &mut Command {
        self.envs.push((key.as_ref().to_owned(), None));
        self
    }

    /// Starts the worker with an empty environment, but for variables set after this call
    /// (and zipc's own `ZIPC_WORKER_FDS`). Variables set before it are dropped, as with
    /// `std::process::Command::env_clear`.
    pub fn env_clear(&mut self) -> &mut Command {
        self.clear_env = true;
        self.envs.clear();
        self
    }

    /// Runs the worker in `dir` (a relative program path is then looked up from there, as
    /// `std::process::Command` does).
    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut Command {
        self.cwd = Some(dir.as_ref().to_owned());
        self
    }

    /// Pins the worker to these CPUs (`sched_setaffinity` in the child, before it runs its
    /// program). [`Worker::spawn`](super::Worker::spawn) fails for an empty list, a CPU number
    /// beyond the kernel's CPU set, or CPUs none of which this process may use.
    pub fn cpu_affinity(&mut self, cpus: &[usize]) -> &mut Command {
        self.cpus = Some(cpus.to_vec());
        self
    }

    /// Sets the ring size of each direction, in bytes (rounded up to a power of two, at least
    /// 4096; a frame may be up to half of it). Default [`DEFAULT_RING_CAPACITY`].
    pub fn ring_capacity(&mut self, bytes: usize) -> &mut Command {
        self.ring_capacity = bytes;
        self
    }

    /// The program to run.
    pub fn get_program(&self) -> &OsStr {
        &self.program
    }

    /// The ring size of each direction, as set (before rounding).
    pub fn get_ring_capacity(&self) -> usize {
        self.ring_capacity
    }

    /// What carries the frames between parent and worker (default [`Kind::Shm`]: a ring
    /// each way, zero-copy). [`Kind::UnixSocket`], [`Kind::Pipe`] and [`Kind::Tcp`] (over
    /// loopback) carry the same frames through the kernel; with them the worker's ends offer
    /// `send` and `recv_into`, not loans or frames in place. The control socket, and so death
    /// detection, is the same for all.
    pub fn transport(&mut self, kind: Kind) -> &mut Command {
        self.transport = kind;
        self
    }

    /// The transport the worker gets.
    pub fn get_transport(&self) -> Kind {
        self.transport
    }

    /// The `std::process::Command` that starts this worker with `fds` (the data path's, then
    /// the control socket) inherited and named in [`FDS_VAR`].
    pub(crate) fn build(&self, fds: &[RawFd]) -> Result<std::process::Command> {
        let Ok(inherited) = <[RawFd; 3]>::try_from(fds)
            .or_else(|_| <[RawFd; 2]>::try_from(fds).map(|[a, b]| [a, b, b]))
        else {
            return Err(Error::InvalidArgument(format!(
                "a worker inherits 2 or 3 fds, not {}",
                fds.len()
            )));
        };
        let cpus = match &self.cpus {
            None => None,
            Some(list) => Some(cpu_set(list)?),
        };
        let mut cmd = std::process::Command::new(&self.program);
        cmd.args(&self.args);
        if self.clear_env {
            cmd.env_clear();
        }
        for (key, value) in &self.envs {
            match value {
                Some(v) => cmd.env(key, v),
                None => cmd.env_remove(key),
            };
        }
        cmd.env(FDS_VAR, fds_value(self.transport, fds));
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        let setup = ChildSetup {
            parent: getpid(),
            fds: inherited,
            cpus,
        };
        // The hook runs in the forked child, where only async-signal-safe calls are allowed:
        // `ChildSetup::run` makes four kinds of syscall (prctl, getppid, sched_setaffinity,
        // fcntl) through nix's thin wrappers, allocates nothing (its state was built here,
        // before the fork, and io::Error from an errno does not allocate) and takes no lock.
        // SAFETY: by the above, the hook is async-signal-safe.
        unsafe {
            cmd.pre_exec(move || setup.run());
        }
        Ok(cmd)
    }
}

/// The value of [`FDS_VAR`]: the fd numbers, after the transport's name unless it is shm
/// (`3,4,5`; `unix:3,4`; `pipe:3,4,5`; `tcp:3,4`).
fn fds_value(kind: Kind, fds: &[RawFd]) -> String {
    let list: Vec<String> = fds.iter().map(RawFd::to_string).collect();
    match kind {
        Kind::Shm => list.join(","),
        other => format!("{other}:{}", list.join(",")),
    }
}

fn cpu_set(cpus: &[usize]) -> Result<CpuSet> {
    if cpus.is_empty() {
        return Err(Error::InvalidArgument(
            "cpu_affinity needs at least one CPU".into(),
        ));
    }
    let mut set = CpuSet::new();
    for &cpu in cpus {
        set.set(cpu).map_err(|_| {
            Error::InvalidArgument(format!(
                "CPU {cpu} is beyond the {} CPUs a CPU set holds",
                CpuSet::count()
            ))
        })?;
    }
    Ok(set)
}

/// What the child does between fork and exec.
struct ChildSetup {
    /// The parent's pid, to tell whether it died before the death signal was armed.
    parent: Pid,
    /// The worker's fds, close-on-exec in the parent: exactly these are inherited (a list of
    /// two repeats the second, so the child needs no allocation).
    fds: [RawFd; 3],
    cpus: Option<CpuSet>,
}

impl ChildSetup {
    /// Runs in the child after fork: async-signal-safe syscalls only, no allocation.
    fn run(&self) -> io::Result<()> {
        prctl::set_pdeathsig(Signal::SIGKILL)?;
        // A parent that died before the line above sent no signal: its orphan stops here.
        if getppid() != self.parent {
            return Err(io::Error::from_raw_os_error(libc::ESRCH));
        }
        if let Some(cpus) = &self.cpus {
            sched_setaffinity(Pid::from_raw(0), cpus)?;
        }
        for fd in self.fds {
            fcntl(fd, FcntlArg::F_SETFD(FdFlag::empty()))?;
        }
        Ok(())
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn env_clear_drops_what_came_before() {
        let mut cmd = Command::new("x");
        cmd.env("A", "1").env_clear().env("B", "2").env_remove("C");
        assert!(cmd.clear_env);
        assert_eq!(
            cmd.envs,
            vec![("B".into(), Some("2".into())), ("C".into(), None)]
        );
    }

    #[test]
    fn bad_cpu_lists_are_invalid_arguments() {
        assert!(matches!(cpu_set(&[]), Err(Error::InvalidArgument(_))));
        assert!(matches!(
            cpu_set(&[CpuSet::count()]),
            Err(Error::InvalidArgument(_))
        ));
        let set = cpu_set(&[0, 3]).unwrap();
        assert!(set.is_set(0).unwrap() && set.is_set(3).unwrap() && !set.is_set(1).unwrap());
    }

    #[test]
    fn the_fd_numbers_go_in_the_environment() {
        let cmd = Command::new("x").env_clear().build(&[7, 8, 9]).unwrap();
        let envs: Vec<_> = cmd.get_envs().collect();
        assert_eq!(envs, vec![(OsStr::new(FDS_VAR), Some(OsStr::new("7,8,9")))]);
        let mut unix = Command::new("x");
        unix.env_clear().transport(Kind::UnixSocket);
        let cmd = unix.build(&[7, 9]).unwrap();
        let envs: Vec<_> = cmd.get_envs().collect();
        assert_eq!(
            envs,
            vec![(OsStr::new(FDS_VAR), Some(OsStr::new("unix:7,9")))]
        );
        assert!(matches!(unix.build(&[7]), Err(Error::InvalidArgument(_))));
    }
}

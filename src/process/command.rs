//! The worker's command: what `std::process::Command` takes, plus CPU affinity and ring sizes,
//! turned into what [`sys::spawn`](crate::sys::spawn) starts.

use super::{DEFAULT_RING_CAPACITY, FDS_VAR};
use crate::error::{Error, Result};
use crate::sys::spawn::{self, Spec};
use crate::transport::{Kind, handoff, inherit};
use nix::sched::CpuSet;
use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
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

    /// What starts this worker with `fds` (the data path's, then the control socket)
    /// inherited and named in [`FDS_VAR`]: the program found in `PATH` (the worker's own
    /// `PATH` when this command sets one), its arguments and environment, all as C strings.
    pub(crate) fn spec(&self, fds: &[BorrowedFd<'_>]) -> Result<Spec> {
        if !(2..=3).contains(&fds.len()) {
            return Err(Error::InvalidArgument(format!(
                "a worker inherits 2 or 3 fds, not {}",
                fds.len()
            )));
        }
        let cpus = match &self.cpus {
            None => None,
            Some(list) => Some(cpu_set(list)?),
        };
        let env = self.environment(&fds_value(self.transport, fds)?);
        let path_var = env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.as_os_str());
        let path = spawn::find_program(&self.program, path_var)?;
        let argv = std::iter::once(&self.program)
            .chain(&self.args)
            .map(|a| c_string(a, "an argument"))
            .collect::<Result<_>>()?;
        let envp = env
            .into_iter()
            .map(|(mut k, v)| {
                k.push("=");
                k.push(v);
                c_string(&k, "an environment variable")
            })
            .collect::<Result<_>>()?;
        Ok(Spec {
            path: c_string(path.as_os_str(), "the program's path")?,
            argv,
            envp,
            cwd: self
                .cwd
                .as_ref()
                .map(|d| c_string(d.as_os_str(), "the working directory"))
                .transpose()?,
            inherit: fds.iter().map(AsRawFd::as_raw_fd).collect(),
            cpus,
        })
    }

    /// The worker's environment: this process's unless cleared, with the command's changes
    /// in order, and [`FDS_VAR`] last.
    fn environment(&self, fds_value: &OsStr) -> Vec<(OsString, OsString)> {
        let mut env: Vec<(OsString, OsString)> = if self.clear_env {
            Vec::new()
        } else {
            std::env::vars_os().collect()
        };
        let changes = self.envs.iter().map(|(k, v)| (k, v.as_ref()));
        let fds_var = (OsString::from(FDS_VAR), fds_value.to_owned());
        for (key, value) in changes.chain(std::iter::once((&fds_var.0, Some(&fds_var.1)))) {
            env.retain(|(k, _)| k != key);
            if let Some(v) = value {
                env.push((key.clone(), v.clone()));
            }
        }
        env
    }
}

fn c_string(s: &OsStr, what: &str) -> Result<CString> {
    CString::new(s.as_bytes())
        .map_err(|_| Error::InvalidArgument(format!("{what} holds a NUL byte: {s:?}")))
}

/// The value of [`FDS_VAR`]: an entry per fd, its number and the identity of its file
/// (`FD@DEV.INO`, by which the worker knows it for the one handed down), after the
/// transport's name unless it is shm (`3@..,4@..,5@..`; `unix:3@..,4@..`; `pipe:..`; `tcp:..`).
fn fds_value(kind: Kind, fds: &[BorrowedFd<'_>]) -> Result<OsString> {
    let list = fds
        .iter()
        .map(|&fd| inherit::entry(fd))
        .collect::<std::io::Result<Vec<String>>>()?
        .join(",");
    Ok(match handoff::of(kind).tag {
        None => list,
        Some(tag) => format!("{tag}:{list}"),
    }
    .into())
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

    /// `n` open files to stand for a worker's fds.
    fn files(n: usize) -> Vec<std::fs::File> {
        (0..n)
            .map(|_| std::fs::File::open("/dev/null").unwrap())
            .collect()
    }

    fn borrowed(files: &[std::fs::File]) -> Vec<BorrowedFd<'_>> {
        files.iter().map(std::os::fd::AsFd::as_fd).collect()
    }

    /// What the worker is told of `files`: each number and the identity of its file.
    fn entries(files: &[std::fs::File]) -> String {
        let list: Vec<String> = borrowed(files)
            .into_iter()
            .map(|fd| inherit::entry(fd).unwrap())
            .collect();
        list.join(",")
    }

    #[test]
    fn the_fd_numbers_and_identities_go_in_the_environment() {
        let env = |cmd: &Command, fds: &[std::fs::File]| -> Vec<String> {
            let spec = cmd.spec(&borrowed(fds)).unwrap();
            assert_eq!(
                spec.inherit,
                fds.iter().map(AsRawFd::as_raw_fd).collect::<Vec<_>>()
            );
            spec.envp
                .iter()
                .map(|e| e.to_str().unwrap().to_owned())
                .collect()
        };
        let three = files(3);
        let list = entries(&three);
        let fd = three[0].as_raw_fd();
        assert!(list.starts_with(&format!("{fd}@")), "{list}");
        assert_eq!(list.split(',').count(), 3);
        let mut shm = Command::new("sh");
        shm.env_clear();
        assert_eq!(env(&shm, &three), [format!("ZIPC_WORKER_FDS={list}")]);
        let two = files(2);
        let mut unix = Command::new("sh");
        unix.env_clear().transport(Kind::UnixSocket);
        assert_eq!(
            env(&unix, &two),
            [format!("ZIPC_WORKER_FDS=unix:{}", entries(&two))]
        );
        assert!(matches!(
            unix.spec(&borrowed(&two[..1])),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn the_environment_is_inherited_and_changed_in_order() {
        let mut cmd = Command::new("sh");
        cmd.env("ZIPC_TEST_A", "1")
            .env("ZIPC_TEST_A", "2")
            .env("ZIPC_TEST_B", "x")
            .env_remove("ZIPC_TEST_B")
            .env(FDS_VAR, "not this");
        let fds = files(3);
        let spec = cmd.spec(&borrowed(&fds)).unwrap();
        let envp: Vec<&str> = spec.envp.iter().map(|e| e.to_str().unwrap()).collect();
        let has_path = std::env::var_os("PATH").is_some();
        assert_eq!(envp.iter().any(|e| e.starts_with("PATH=")), has_path);
        assert_eq!(
            envp.iter()
                .filter(|e| e.starts_with("ZIPC_TEST_A="))
                .count(),
            1
        );
        assert!(envp.contains(&"ZIPC_TEST_A=2"));
        assert!(!envp.iter().any(|e| e.starts_with("ZIPC_TEST_B=")));
        let last = format!("ZIPC_WORKER_FDS={}", entries(&fds));
        assert_eq!(envp.last(), Some(&last.as_str()));
        assert_eq!(spec.argv, [CString::new("sh").unwrap()]);
    }

    #[test]
    fn the_program_is_looked_up_in_the_workers_path() {
        let mut cmd = Command::new("sh");
        cmd.env("PATH", "/nonexistent");
        let fds = files(2);
        let fds = borrowed(&fds);
        assert!(
            matches!(cmd.spec(&fds), Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::NotFound)
        );
        cmd.env("PATH", "/nonexistent:/bin");
        assert_eq!(cmd.spec(&fds).unwrap().path.to_str(), Ok("/bin/sh"));
        let mut nul = Command::new("sh");
        nul.arg("a\0b");
        assert!(matches!(nul.spec(&fds), Err(Error::InvalidArgument(_))));
    }
}

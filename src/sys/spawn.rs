//! Starting a worker's process without copying this one: `clone(CLONE_VM | CLONE_VFORK)`,
//! the way `posix_spawn` does it, but with the steps `posix_spawn` cannot express run in the
//! child before `execve`: the death signal armed (and the parent checked to be alive), CPU
//! affinity, and close-on-exec cleared on exactly the worker's fds.
//!
//! `fork` would do the same steps, but it copies the page tables of this process (and makes
//! every page it writes afterwards fault once): a quarter of a worker's start-up in
//! `zipc bench pool`. With `CLONE_VM` the child borrows this process's memory and the
//! calling thread is suspended until the child has called `execve` or exited.
//!
//! What the child may do while it borrows the memory is narrow; [`child_main`] keeps to it:
//! - everything it reads was built before the clone ([`Spec`], the pointer arrays), and it
//!   writes only to its own stack and the suspended thread's `errno`;
//! - it makes raw syscalls through libc (sigaction, prctl, getppid, chdir, fcntl,
//!   pthread_sigmask, execve, write) and nix's one-call `sched_setaffinity`: no
//!   allocation, no lock, no unwinding;
//! - every signal is blocked from before the clone until the child has put each handler back
//!   to the default, so a handler of this process never runs on the shared memory.
//!
//! An `execve` failure reaches the parent as an errno over a close-on-exec pipe, which works
//! as well when a tool emulates the clone with a plain fork.

use super::io::cvt;
use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::ptr;

/// The child's stack: the few syscalls it makes need little, execve's arguments live in the
/// parent's memory. Mapped lazily, so its size costs nothing until touched.
const STACK_SIZE: usize = 256 * 1024;

/// What the child runs: everything prepared in the parent, before the clone.
pub(crate) struct Spec {
    /// The program's path (found in `PATH` already, see [`find_program`]).
    pub(crate) path: CString,
    pub(crate) argv: Vec<CString>,
    /// `KEY=VALUE` entries.
    pub(crate) envp: Vec<CString>,
    pub(crate) cwd: Option<CString>,
    /// The fds to inherit: close-on-exec here, cleared in the child alone.
    pub(crate) inherit: Vec<RawFd>,
    pub(crate) cpus: Option<nix::sched::CpuSet>,
}

/// What [`child_main`] reads: the spec as raw pointers, and where to report a failure.
struct Child<'a> {
    spec: &'a Spec,
    argv: &'a [*const libc::c_char],
    envp: &'a [*const libc::c_char],
    parent: libc::pid_t,
    report: RawFd,
}

/// The pointer array execve takes: each string's pointer, then NULL.
fn pointers(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(ptr::null()))
        .collect()
}

/// An anonymous mapping for the child's stack, its lowest page a guard, unmapped on drop.
struct Stack {
    base: *mut libc::c_void,
    len: usize,
}

impl Stack {
    fn new(len: usize) -> io::Result<Stack> {
        // SAFETY: a fresh private anonymous mapping; no existing memory is touched.
        let base = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let stack = Stack { base, len };
        // SAFETY: the lowest page of the mapping just made; an overflow faults there rather
        // than writing below the mapping.
        cvt(unsafe { libc::mprotect(stack.base, 4096, libc::PROT_NONE) })?;
        Ok(stack)
    }

    /// The highest address: the stack grows down from it (16-byte aligned, as mmap's pages
    /// are).
    fn top(&self) -> *mut libc::c_void {
        self.base.wrapping_byte_add(self.len)
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // SAFETY: `base`/`len` is the mapping made in `new`; the child that used it has
        // exec'd or exited (CLONE_VFORK returns only then), so nothing runs on it.
        unsafe { libc::munmap(self.base, self.len) };
    }
}

/// Blocks every signal in the calling thread until dropped, then restores its mask.
struct AllBlocked {
    old: libc::sigset_t,
}

impl AllBlocked {
    fn new() -> io::Result<AllBlocked> {
        let mut all = MaybeUninit::<libc::sigset_t>::uninit();
        let mut old = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: sigfillset initialises `all`; pthread_sigmask reads it and writes `old`.
        let err = unsafe {
            libc::sigfillset(all.as_mut_ptr());
            libc::pthread_sigmask(libc::SIG_SETMASK, all.as_ptr(), old.as_mut_ptr())
        };
        if err != 0 {
            return Err(io::Error::from_raw_os_error(err));
        }
        // SAFETY: pthread_sigmask succeeded, so it wrote `old`.
        let old = unsafe { old.assume_init() };
        Ok(AllBlocked { old })
    }
}

impl Drop for AllBlocked {
    fn drop(&mut self) {
        // SAFETY: restores the mask saved in `new`; `old` is a valid set.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.old, ptr::null_mut()) };
    }
}

/// Starts `spec`'s program as a child of this process; returns its pid once it has called
/// `execve` (an error when that failed, the child reaped).
pub(crate) fn spawn(spec: &Spec) -> io::Result<libc::pid_t> {
    let argv = pointers(&spec.argv);
    let envp = pointers(&spec.envp);
    let (report_read, report_write) = super::io::pipe(false)?;
    let stack = Stack::new(STACK_SIZE)?;
    let child = Child {
        spec,
        argv: &argv,
        envp: &envp,
        // SAFETY: getpid has no preconditions.
        parent: unsafe { libc::getpid() },
        report: report_write.as_raw_fd(),
    };
    let pid = {
        let _blocked = AllBlocked::new()?;
        // `child` and all it points to outlive the child's use, for CLONE_VFORK suspends this
        // thread until the child has exec'd or exited; clone takes the stack's top.
        // SAFETY: `child_main` keeps to what a CLONE_VM child may do (the module's comment).
        unsafe {
            libc::clone(
                child_main,
                stack.top(),
                libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
                ptr::from_ref(&child).cast_mut().cast(),
            )
        }
    };
    let pid = cvt(pid)?;
    drop(report_write);
    // Nothing to read: the child's execve closed the pipe. Eight bytes: the step that failed
    // and its errno.
    let mut report = [0u8; 8];
    match read_full(&report_read, &mut report)? {
        0 => Ok(pid),
        _ => {
            let _ = wait(pid, true);
            let (step, errno) = report.split_at(4);
            let step = i32::from_ne_bytes(step.try_into().expect("four bytes"));
            let errno = i32::from_ne_bytes(errno.try_into().expect("four bytes"));
            Err(failure(spec, step, io::Error::from_raw_os_error(errno)))
        }
    }
}

/// The steps of [`Child::run`], as it reports the one that failed.
mod step {
    pub(super) const DEATH_SIGNAL: i32 = 1;
    pub(super) const PARENT_GONE: i32 = 2;
    pub(super) const AFFINITY: i32 = 3;
    pub(super) const CHDIR: i32 = 4;
    pub(super) const FDS: i32 = 5;
    pub(super) const EXEC: i32 = 6;
}

/// The error for `step` of starting `spec` failing with `e`: of the same kind, and naming
/// the program (and the directory, for a failed `chdir`).
fn failure(spec: &Spec, step: i32, e: io::Error) -> io::Error {
    let program = spec.path.to_string_lossy();
    let text = match step {
        step::DEATH_SIGNAL => format!("cannot arm the parent-death signal for {program}: {e}"),
        step::PARENT_GONE => {
            format!("{program} was not started: its parent process went away first")
        }
        step::AFFINITY => format!("cannot pin {program} to its CPUs: {e}"),
        step::CHDIR => {
            let dir = spec.cwd.as_deref().map(CStr::to_string_lossy);
            format!(
                "cannot start {program} in the directory {}: {e}",
                dir.unwrap_or_default()
            )
        }
        step::FDS => format!("cannot hand {program} its descriptors: {e}"),
        _ => format!("cannot run {program}: {e}"),
    };
    io::Error::new(e.kind(), text)
}

/// Reads until `buf` is full or the end of the pipe; the number of bytes read.
fn read_full(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match nix::unistd::read(fd.as_raw_fd(), &mut buf[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(done)
}

/// The child, on its own stack in the parent's memory: see the module's comment for what it
/// may do. `execve` replaces it; else it reports its errno and returns 127, which libc's
/// `clone` passes to the exit syscall (no atexit handler runs, as with `_exit`).
extern "C" fn child_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `Child` that `spawn` passed, alive until this process execs or
    // exits.
    let child = unsafe { &*arg.cast::<Child<'_>>() };
    let (step, errno) = child.run();
    let (step, errno) = (step.to_ne_bytes(), errno.to_ne_bytes());
    let report = [
        step[0], step[1], step[2], step[3], errno[0], errno[1], errno[2], errno[3],
    ];
    // SAFETY: write is an async-signal-safe syscall; `report` is on this stack.
    unsafe { libc::write(child.report, report.as_ptr().cast(), report.len()) };
    127
}

impl Child<'_> {
    /// Prepares the process and execs; returns the step that failed and its errno.
    fn run(&self) -> (i32, libc::c_int) {
        let spec = self.spec;
        // SAFETY: every call below is a raw syscall through libc on values built before the
        // clone, or on this stack; none allocates, locks or unwinds. We are the vfork child with
        // every signal blocked, as `reset_signal_handlers` needs.
        unsafe {
            reset_signal_handlers();
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return (step::DEATH_SIGNAL, errno());
            }
            // A parent that died before the death signal was armed sent none: stop here.
            if libc::getppid() != self.parent {
                return (step::PARENT_GONE, libc::ESRCH);
            }
            if let Some(cpus) = &spec.cpus
                && let Err(e) = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), cpus)
            {
                return (step::AFFINITY, e as libc::c_int);
            }
            if let Some(dir) = &spec.cwd
                && libc::chdir(dir.as_ptr()) != 0
            {
                return (step::CHDIR, errno());
            }
            for &fd in &spec.inherit {
                if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                    return (step::FDS, errno());
                }
            }
            let mut none = MaybeUninit::<libc::sigset_t>::uninit();
            libc::sigemptyset(none.as_mut_ptr());
            libc::pthread_sigmask(libc::SIG_SETMASK, none.as_ptr(), ptr::null_mut());
            libc::execve(spec.path.as_ptr(), self.argv.as_ptr(), self.envp.as_ptr());
            (step::EXEC, errno())
        }
    }
}

/// The calling thread's errno (in the child: the suspended parent thread's, which it shares).
fn errno() -> libc::c_int {
    // SAFETY: __errno_location returns a pointer to the calling thread's errno, always valid.
    unsafe { *libc::__errno_location() }
}

/// Puts every caught signal back to its default action, and SIGPIPE too (Rust programs
/// ignore it; their children get the default, as `std::process::Command` gives them).
/// Ignored signals stay ignored, as across any exec.
///
/// # Safety
/// For the vfork child, with every signal blocked.
unsafe fn reset_signal_handlers() {
    for sig in 1..libc::SIGRTMAX() + 1 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        let mut old = MaybeUninit::<libc::sigaction>::uninit();
        // SAFETY: reads the disposition into `old`; signals glibc keeps for itself fail with
        // EINVAL and are left alone.
        if unsafe { libc::sigaction(sig, ptr::null(), old.as_mut_ptr()) } != 0 {
            continue;
        }
        // SAFETY: sigaction succeeded, so it wrote `old`.
        let handler = unsafe { old.assume_init() }.sa_sigaction;
        if handler == libc::SIG_DFL || (handler == libc::SIG_IGN && sig != libc::SIGPIPE) {
            continue;
        }
        let mut default = MaybeUninit::<libc::sigaction>::zeroed();
        // SAFETY: a zeroed sigaction is SIG_DFL with an empty mask and no flags.
        unsafe { libc::sigaction(sig, default.as_mut_ptr(), ptr::null_mut()) };
    }
}

/// The status of child `pid` once it has exited; with `block` false, `None` while it runs.
pub(crate) fn wait(pid: libc::pid_t, block: bool) -> io::Result<Option<ExitStatus>> {
    let flags = if block { 0 } else { libc::WNOHANG };
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes the status to a local.
        match unsafe { libc::waitpid(pid, &mut status, flags) } {
            0 => return Ok(None),
            -1 if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => {}
            -1 => return Err(io::Error::last_os_error()),
            _ => return Ok(Some(ExitStatus::from_raw(status))),
        }
    }
}

/// Sends SIGKILL to child `pid`.
pub(crate) fn kill(pid: libc::pid_t) -> io::Result<()> {
    // SAFETY: kill takes two integers; `pid` is a child not reaped yet, so it is ours.
    cvt(unsafe { libc::kill(pid, libc::SIGKILL) }).map(drop)
}

/// Where `program` is: itself when it names a path (it holds a `/`), else the first
/// executable file of that name in the directories of `path_var` (the child's `PATH`), or of
/// the default `PATH` when there is none.
///
/// # Errors
/// `NotFound` when no directory holds it.
pub(crate) fn find_program(program: &OsStr, path_var: Option<&OsStr>) -> io::Result<PathBuf> {
    if program.as_bytes().contains(&b'/') {
        return Ok(PathBuf::from(program));
    }
    if program.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            "the program's name is empty",
        ));
    }
    let dirs = path_var.unwrap_or(OsStr::new("/usr/local/bin:/usr/bin:/bin"));
    for dir in dirs.as_bytes().split(|&b| b == b':') {
        let dir = if dir.is_empty() { b".".as_slice() } else { dir };
        let candidate = Path::new(OsStr::from_bytes(dir)).join(program);
        if is_executable(&candidate) {
            // Absolute: the child may change directory before it execs.
            return std::path::absolute(&candidate);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        format!(
            "the program {} was not found in any directory of PATH={}",
            program.to_string_lossy(),
            dirs.to_string_lossy()
        ),
    ))
}

/// A regular file this process may execute (as execve will judge it: `access(X_OK)`).
fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file())
        && nix::unistd::access(path, nix::unistd::AccessFlags::X_OK).is_ok()
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStringExt;

    fn c(s: impl Into<Vec<u8>>) -> CString {
        CString::new(s).unwrap()
    }

    fn spec(program: &str, args: &[&str]) -> Spec {
        let path = find_program(OsStr::new(program), std::env::var_os("PATH").as_deref()).unwrap();
        Spec {
            path: c(path.into_os_string().into_vec()),
            argv: std::iter::once(program)
                .chain(args.iter().copied())
                .map(c)
                .collect(),
            envp: vec![c("ZIPC_SPAWN_TEST=yes")],
            cwd: None,
            inherit: Vec::new(),
            cpus: None,
        }
    }

    #[test]
    fn a_child_runs_and_its_status_comes_back() {
        let pid = spawn(&spec(
            "sh",
            &["-c", "test \"$ZIPC_SPAWN_TEST\" = yes && exit 7"],
        ))
        .unwrap();
        let status = wait(pid, true).unwrap().unwrap();
        assert_eq!(status.code(), Some(7));
    }

    #[test]
    fn an_exec_failure_is_the_errno_and_leaves_no_child() {
        let mut bad = spec("sh", &[]);
        bad.path = c("/nonexistent/zipc-no-such-program");
        let err = spawn(&bad).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        let text = err.to_string();
        assert!(
            text.starts_with("cannot run /nonexistent/zipc-no-such-program: "),
            "{text}"
        );
        let mut dir = spec("sh", &[]);
        dir.cwd = Some(c("/nonexistent/zipc-no-such-dir"));
        let err = spawn(&dir).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        let text = err.to_string();
        assert!(
            text.contains("in the directory /nonexistent/zipc-no-such-dir: "),
            "{text}"
        );
        // Both children were reaped: this thread has none (zombies would be listed).
        let children = std::fs::read_to_string("/proc/thread-self/children").unwrap();
        assert_eq!(children.trim(), "", "children left behind");
    }

    #[test]
    fn the_child_gets_the_default_sigpipe() {
        // This process ignores SIGPIPE, as Rust programs do; its children must not.
        let pid = spawn(&spec("sh", &["-c", "kill -s PIPE $$; exit 3"])).unwrap();
        let status = wait(pid, true).unwrap().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGPIPE), "{status:?}");
    }

    #[test]
    fn kill_and_wait_report_the_signal() {
        let pid = spawn(&spec("sleep", &["30"])).unwrap();
        assert!(wait(pid, false).unwrap().is_none());
        kill(pid).unwrap();
        assert_eq!(
            wait(pid, true).unwrap().unwrap().signal(),
            Some(libc::SIGKILL)
        );
    }

    #[test]
    fn programs_are_found_in_the_given_path() {
        let sh = find_program(OsStr::new("sh"), Some(OsStr::new("/nonexistent:/bin"))).unwrap();
        assert_eq!(sh, Path::new("/bin/sh"));
        // A relative directory of PATH gives an absolute path: the child may chdir first.
        let depth = std::env::current_dir().unwrap().components().count() - 1;
        let relative = format!("{}bin", "../".repeat(depth));
        let sh = find_program(OsStr::new("sh"), Some(OsStr::new(&relative))).unwrap();
        assert!(sh.is_absolute(), "{sh:?}");
        assert!(is_executable(&sh));
        let err = find_program(OsStr::new("sh"), Some(OsStr::new("/nonexistent"))).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert_eq!(
            find_program(OsStr::new("./x"), None).unwrap(),
            Path::new("./x")
        );
    }
}

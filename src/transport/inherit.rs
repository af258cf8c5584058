//! Taking ownership of descriptors that a parent handed down, numbered in an environment
//! variable (`Pipe::FDS_VAR`, `process::FDS_VAR`).
//!
//! A number in the environment is a claim, not a proof: the variable may be stale (left
//! over from a grandparent), malformed, or set by hand, and the number may name a
//! descriptor that something else in this process owns (an open `File`, a socket). Owning
//! such a number would close the other owner's descriptor when we drop it, and using it
//! would read or write someone else's file. So a safe function here never takes a
//! descriptor before it has shown, with queries that change nothing, that the number names
//! the very descriptor the parent handed down:
//!
//! 1. **The parent's word on which file it is.** Beside each number the parent writes the
//!    identity of the open file it handed over (`FD@DEV.INO`: `st_dev` and `st_ino`, read
//!    with `fstat` from the descriptor itself, see [`entry`]). The child reads the same with
//!    `fstat` on the number and refuses any difference. Device and inode name one file among
//!    all those that exist at a time; the pipe, socket or memfd stays alive while the child
//!    holds it, so no other file can have that identity meanwhile.
//! 2. **Inherited, not made here.** The descriptor must not be close-on-exec. Everything
//!    this process opens through Rust's standard library or zipc is close-on-exec, while a
//!    descriptor that crossed `execve` cannot be (the parent cleared the flag to hand it
//!    over). A descriptor this process made for itself is thus refused even if a forged
//!    variable names it with its right identity.
//! 3. **Once.** Each kind of inheritance is claimed at most once per process (the caller's
//!    flag, held for the whole check), so a second claim cannot make a second owner; a
//!    claimed descriptor is made close-on-exec at once, so children do not inherit it, and
//!    the variable is removed where that is sound (a process with one thread).
//!
//! The queries (`fcntl(F_GETFD)`, `fstat`) read the kernel's descriptor table and the file's
//! attributes and change nothing, whoever owns the number; only once all of 1–3 hold is a
//! descriptor borrowed (for the caller's checks of its type) and then owned. A check that
//! fails leaves every named descriptor as it was: open, with its flags and its file
//! untouched. What this cannot catch is a parent that lies about which descriptor it
//! handed over for what: the parent is the one party that knows, and it is trusted on that.
//!
//! Nothing of this is on the data path: it runs once, when a child takes its descriptors.

use crate::error::{Error, Result};
use crate::sys::{fd, proc};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// The refusal of a second claim of the descriptors named in `var`.
pub(crate) fn taken_already(var: &str) -> Error {
    Error::InvalidArgument(format!(
        "the descriptors named in {var} were taken already in this process"
    ))
}

/// The identity of an open file: its device and inode, as `fstat` gives them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Identity {
    dev: u64,
    ino: u64,
}

impl Identity {
    /// The identity of the file `fd` refers to.
    pub(crate) fn of(fd: BorrowedFd<'_>) -> io::Result<Identity> {
        Identity::of_raw(fd.as_raw_fd())
    }

    /// The identity of the file the number `fd` refers to, whoever owns it (`fstat` changes
    /// nothing: see [`fd::stat_raw`]).
    fn of_raw(fd: RawFd) -> io::Result<Identity> {
        let (dev, ino) = fd::stat_raw(fd)?.id;
        Ok(Identity { dev, ino })
    }
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "device {}, inode {}", self.dev, self.ino)
    }
}

/// The entry for `fd` in an inheritance variable, `FD@DEV.INO`, for a child that inherits
/// it at the same number.
///
/// # Errors
/// `Io` when `fstat` fails.
pub(crate) fn entry(fd: BorrowedFd<'_>) -> io::Result<String> {
    let id = Identity::of(fd)?;
    Ok(format!("{}@{}.{}", fd.as_raw_fd(), id.dev, id.ino))
}

/// One entry of an inheritance variable: a descriptor number, and the identity the parent
/// recorded for it (`None`: a bare number, as no zipc parent writes it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) fd: RawFd,
    pub(crate) id: Option<Identity>,
}

/// Parses `FD@DEV.INO` or a bare `FD` (a non-negative decimal number); `None` for anything
/// else.
pub(crate) fn parse_entry(text: &str) -> Option<Entry> {
    fn number<T: std::str::FromStr>(s: &str) -> Option<T> {
        // Digits only: no sign, no space.
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    }
    let (fd, id) = match text.split_once('@') {
        None => (text, None),
        Some((fd, id)) => {
            let (dev, ino) = id.split_once('.')?;
            let id = Identity {
                dev: number(dev)?,
                ino: number(ino)?,
            };
            (fd, Some(id))
        }
    };
    Some(Entry {
        fd: number(fd)?,
        id,
    })
}

/// Who hands descriptors down through one variable: for the errors.
pub(crate) struct Source<'a> {
    /// The variable's name.
    pub(crate) var: &'a str,
    /// The parent that sets it, as a user would recognise it ("zipc::process::Worker::spawn").
    pub(crate) parent: &'a str,
}

impl Source<'_> {
    fn refuse(&self, fd: RawFd, why: impl std::fmt::Display) -> Error {
        Error::InvalidArgument(format!("fd {fd} named in {} {why}", self.var))
    }
}

/// Checks that each entry names the inherited descriptor its parent recorded (open, not
/// close-on-exec, with the recorded identity: see the [module docs](self)), then `fits` on
/// each (borrowed, with its index), and only then takes them all, close-on-exec. On any
/// error no descriptor has been taken or changed.
///
/// `taken` is the caller's once-per-process flag, which it holds locked for the call: a
/// claim when it is set fails, and a claim that succeeds sets it.
///
/// # Errors
/// `InvalidArgument` naming the variable and the descriptor when a check fails, or when the
/// descriptors were claimed already; the error of `fits` when it fails.
pub(crate) fn claim(
    source: &Source<'_>,
    taken: &mut bool,
    entries: &[Entry],
    fits: impl Fn(usize, BorrowedFd<'_>) -> Result<()>,
) -> Result<Vec<OwnedFd>> {
    if *taken {
        return Err(taken_already(source.var));
    }
    for (i, e) in entries.iter().enumerate() {
        if entries[..i].iter().any(|o| o.fd == e.fd) {
            return Err(source.refuse(e.fd, "is named twice; it was left alone"));
        }
    }
    for e in entries {
        verify(source, *e)?;
    }
    for (i, e) in entries.iter().enumerate() {
        // SAFETY: `verify` showed `e.fd` open and the one handed down for this claim, owned by
        // nothing here before the claim (made once, under `taken`): open for this borrow.
        fits(i, unsafe { BorrowedFd::borrow_raw(e.fd) })?;
    }
    *taken = true;
    let owned = entries
        .iter()
        .map(|e| {
            // SAFETY: as above: each number is the inherited descriptor the parent handed
            // down for this claim, distinct (checked above), owned by nothing else in this
            // process; `taken` makes this the only time it is owned.
            let fd = unsafe { OwnedFd::from_raw_fd(e.fd) };
            // SAFETY: F_SETFD on a descriptor we own: keep it out of our own children.
            unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
            fd
        })
        .collect();
    forget_variable(source.var);
    Ok(owned)
}

/// Checks, with queries that change nothing, that `e` names an open descriptor that is not
/// close-on-exec and whose file has the identity the parent recorded.
fn verify(source: &Source<'_>, e: Entry) -> Result<()> {
    // SAFETY: F_GETFD on any number only reads the descriptor's flags (or says it is not
    // open); it changes nothing, whoever owns it.
    let flags = unsafe { libc::fcntl(e.fd, libc::F_GETFD) };
    if flags < 0 {
        return Err(source.refuse(
            e.fd,
            format_args!(
                "is not open: this process was not started by {}, or closed it",
                source.parent
            ),
        ));
    }
    let Some(recorded) = e.id else {
        return Err(source.refuse(
            e.fd,
            format_args!(
                "comes without the identity of its file (FD@DEV.INO) that {} records \
                 beside each number; it was left alone",
                source.parent
            ),
        ));
    };
    let actual = Identity::of_raw(e.fd)?;
    if actual != recorded {
        return Err(source.refuse(
            e.fd,
            format_args!(
                "is another file ({actual}) than the one its parent handed down \
                 ({recorded}); it was left alone"
            ),
        ));
    }
    if flags & libc::FD_CLOEXEC != 0 {
        return Err(source.refuse(
            e.fd,
            "is close-on-exec, so this process made or took it itself rather than inherit \
             it; it was left alone",
        ));
    }
    Ok(())
}

/// Removes `var` from the environment if this process has one thread.
fn forget_variable(var: &str) {
    if proc::thread_count() == Some(1) {
        // SAFETY: this process has a single thread, this one (and only it could start
        // another), so nothing reads or writes the environment while we do: what
        // `remove_var` asks of its caller.
        unsafe { std::env::remove_var(var) };
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::io::{Read, Seek, Write};
    use std::os::fd::AsFd;

    const SOURCE: Source<'static> = Source {
        var: "ZIPC_TEST_FDS",
        parent: "the test",
    };

    #[test]
    fn entries_parse_and_print() {
        let file = std::fs::File::open("/dev/null").unwrap();
        let text = entry(file.as_fd()).unwrap();
        let e = parse_entry(&text).unwrap();
        assert_eq!(e.fd, file.as_raw_fd());
        assert_eq!(e.id, Some(Identity::of(file.as_fd()).unwrap()));
        assert_eq!(parse_entry("7"), Some(Entry { fd: 7, id: None }));
        for bad in [
            "", "-1", "+3", " 3", "3@", "3@1", "3@1.", "3@.2", "3@1.2.3", "a@1.2",
        ] {
            assert_eq!(parse_entry(bad), None, "{bad:?}");
        }
    }

    /// The descriptor flags of `fd`, a descriptor the test owns.
    fn fd_flags(fd: RawFd) -> libc::c_int {
        // SAFETY: F_GETFD only reads the flags of a descriptor the test owns.
        unsafe { libc::fcntl(fd, libc::F_GETFD) }
    }

    /// Sets the descriptor flags of `fd`, a descriptor the test owns.
    fn set_fd_flags(fd: RawFd, flags: libc::c_int) {
        // SAFETY: F_SETFD on a descriptor the test owns changes only its close-on-exec flag.
        assert_eq!(unsafe { libc::fcntl(fd, libc::F_SETFD, flags) }, 0);
    }

    /// A file of ours whose descriptor is not close-on-exec, as an inherited one is.
    fn inheritable_file(contents: &[u8]) -> std::fs::File {
        let path = std::env::temp_dir().join(format!(
            "zipc-inherit-test-{}-{}",
            std::process::id(),
            contents.len()
        ));
        let mut file = std::fs::File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        file.write_all(contents).unwrap();
        set_fd_flags(file.as_raw_fd(), 0);
        file
    }

    fn still_usable(file: &mut std::fs::File, contents: &[u8]) {
        file.rewind().unwrap();
        let mut back = Vec::new();
        file.read_to_end(&mut back).unwrap();
        assert_eq!(back, contents);
    }

    #[test]
    fn a_wrong_identity_or_close_on_exec_is_refused_and_the_fd_left_alone() {
        let mut file = inheritable_file(b"twelve bytes");
        let fd = file.as_raw_fd();
        let other = std::fs::File::open("/dev/null").unwrap();
        let wrong = Identity::of(other.as_fd()).unwrap();
        let right = Identity::of(file.as_fd()).unwrap();
        let fits = |_: usize, _: BorrowedFd<'_>| Ok(());
        let mut taken = false;
        for (id, expect) in [
            (Some(wrong), "is another file"),
            (None, "without the identity"),
        ] {
            match claim(&SOURCE, &mut taken, &[Entry { fd, id }], fits) {
                Err(Error::InvalidArgument(msg)) => {
                    assert!(msg.contains(expect), "{msg}");
                    assert!(
                        msg.contains(&format!("fd {fd} named in ZIPC_TEST_FDS")),
                        "{msg}"
                    );
                }
                other => panic!("claim gave {other:?}"),
            }
        }
        // The right identity, but close-on-exec: made here, not inherited.
        set_fd_flags(fd, libc::FD_CLOEXEC);
        let right_entry = [Entry {
            fd,
            id: Some(right),
        }];
        match claim(&SOURCE, &mut taken, &right_entry, fits) {
            Err(Error::InvalidArgument(msg)) => assert!(msg.contains("close-on-exec"), "{msg}"),
            other => panic!("claim gave {other:?}"),
        }
        // Not inheritable again, a refusal by the caller's check leaves it alone too.
        set_fd_flags(fd, 0);
        let refuse = |_: usize, _: BorrowedFd<'_>| Err(Error::InvalidArgument("no".into()));
        assert!(claim(&SOURCE, &mut taken, &right_entry, refuse).is_err());
        assert!(!taken);
        still_usable(&mut file, b"twelve bytes");
        assert_eq!(fd_flags(fd), 0, "flags unchanged");
    }

    #[test]
    fn a_claim_takes_once_and_sets_close_on_exec() {
        let file = inheritable_file(b"claimed");
        let id = Identity::of(file.as_fd()).unwrap();
        // The claim takes over the descriptor: hand it over rather than own it twice.
        let fd = std::os::fd::IntoRawFd::into_raw_fd(file);
        let entries = [Entry { fd, id: Some(id) }];
        let mut taken = false;
        let fits = |_: usize, _: BorrowedFd<'_>| Ok(());
        let owned = claim(&SOURCE, &mut taken, &entries, fits).unwrap();
        assert!(taken);
        assert_eq!(owned.len(), 1);
        assert_eq!(owned[0].as_raw_fd(), fd);
        assert_eq!(fd_flags(fd), libc::FD_CLOEXEC, "close-on-exec once claimed");
        match claim(&SOURCE, &mut taken, &entries, fits) {
            Err(Error::InvalidArgument(msg)) => assert!(msg.contains("taken already"), "{msg}"),
            other => panic!("second claim gave {other:?}"),
        }
        let mut file = std::fs::File::from(owned.into_iter().next().unwrap());
        still_usable(&mut file, b"claimed");
    }

    #[test]
    fn a_number_named_twice_or_closed_is_refused() {
        let file = inheritable_file(b"twice named");
        let id = Some(Identity::of(file.as_fd()).unwrap());
        let fd = file.as_raw_fd();
        let mut taken = false;
        let fits = |_: usize, _: BorrowedFd<'_>| Ok(());
        let twice = [Entry { fd, id }, Entry { fd, id }];
        assert!(matches!(
            claim(&SOURCE, &mut taken, &twice, fits),
            Err(Error::InvalidArgument(m)) if m.contains("named twice")
        ));
        let closed = [Entry { fd: 1_000_000, id }];
        assert!(matches!(
            claim(&SOURCE, &mut taken, &closed, fits),
            Err(Error::InvalidArgument(m)) if m.contains("is not open")
        ));
        assert!(!taken);
    }
}

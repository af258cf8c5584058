//! File-descriptor syscalls for segments: memfd and POSIX shm, seals, space reservation,
//! reopening, and open-file-description (OFD) locks.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// `ret`, or the errno of a syscall that returned -1.
pub(crate) fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Owns a raw fd that a syscall just returned.
fn owned(raw: libc::c_int) -> io::Result<OwnedFd> {
    let raw = cvt(raw)?;
    // SAFETY: `raw` is a fresh descriptor that the kernel just handed to us and nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// A new close-on-exec memfd that accepts seals.
pub(crate) fn memfd(name: &str) -> io::Result<OwnedFd> {
    let name = CString::new(name).map_err(|_| io::ErrorKind::InvalidInput)?;
    // SAFETY: `name` is a valid NUL-terminated string for the duration of the call.
    owned(unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) })
}

/// The seals a peer must see on a memfd before it maps it: the size is fixed for good.
pub(crate) const SEALS: libc::c_int = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;

/// Adds [`SEALS`] to a memfd.
pub(crate) fn seal(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: fcntl on a borrowed, open descriptor; F_ADD_SEALS takes an int argument.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, SEALS) }).map(drop)
}

/// The seals on `fd` (EINVAL for a file that is not a memfd).
pub(crate) fn seals(fd: BorrowedFd<'_>) -> io::Result<libc::c_int> {
    // SAFETY: fcntl on a borrowed, open descriptor; F_GET_SEALS takes no argument.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) })
}

/// Sizes the file to `len`; with `allocate`, also allocates every page now, so that a full
/// tmpfs is an error here rather than a SIGBUS at the first write.
pub(crate) fn size_to(fd: BorrowedFd<'_>, len: u64, allocate: bool) -> io::Result<()> {
    let len = libc::off_t::try_from(len).map_err(|_| io::ErrorKind::InvalidInput)?;
    // SAFETY: ftruncate on a borrowed, open descriptor.
    cvt(unsafe { libc::ftruncate(fd.as_raw_fd(), len) })?;
    if !allocate {
        return Ok(());
    }
    // SAFETY: posix_fallocate on a borrowed, open descriptor; it returns the error number.
    match unsafe { libc::posix_fallocate(fd.as_raw_fd(), 0, len) } {
        0 => Ok(()),
        err => Err(io::Error::from_raw_os_error(err)),
    }
}

/// The size of the file behind `fd`.
pub(crate) fn size(fd: BorrowedFd<'_>) -> io::Result<u64> {
    let file = File::from(fd.try_clone_to_owned()?);
    Ok(file.metadata()?.len())
}

/// Opens the file behind `fd` anew: a new open file description, so that OFD locks taken
/// through it are this holder's own and not shared with whoever passed the fd.
pub(crate) fn reopen(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    let path = CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .expect("a path built from digits has no NUL");
    // SAFETY: `path` is a valid NUL-terminated string for the duration of the call.
    owned(unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) })
}

/// Opens the POSIX shm object `name` (which starts with '/'); `create` makes it
/// O_CREAT | O_EXCL with mode 0600.
pub(crate) fn shm_open(name: &str, create: bool) -> io::Result<OwnedFd> {
    let cname = CString::new(name).map_err(|_| io::ErrorKind::InvalidInput)?;
    let flags = libc::O_RDWR
        | libc::O_CLOEXEC
        | if create {
            libc::O_CREAT | libc::O_EXCL
        } else {
            0
        };
    // SAFETY: `cname` is a valid NUL-terminated string for the duration of the call.
    owned(unsafe { libc::shm_open(cname.as_ptr(), flags, 0o600) })
}

/// Removes the POSIX shm object `name`.
pub(crate) fn shm_unlink(name: &str) -> io::Result<()> {
    let cname = CString::new(name).map_err(|_| io::ErrorKind::InvalidInput)?;
    // SAFETY: `cname` is a valid NUL-terminated string for the duration of the call.
    cvt(unsafe { libc::shm_unlink(cname.as_ptr()) }).map(drop)
}

fn byte_lock(byte: u64) -> libc::flock {
    // SAFETY: `flock` is plain old data; all-zero is a valid value that we then fill in.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = byte as libc::off_t;
    fl.l_len = 1;
    fl
}

/// Takes an OFD write lock on one byte of the file. `Ok(false)` when another open file
/// description holds it. The kernel drops the lock when the description's last fd closes,
/// which is when its process dies.
pub(crate) fn try_lock_byte(fd: BorrowedFd<'_>, byte: u64) -> io::Result<bool> {
    let fl = byte_lock(byte);
    // SAFETY: F_OFD_SETLK reads the `flock` we pass, which lives for the call.
    match cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_SETLK, &fl) }) {
        Ok(_) => Ok(true),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EACCES)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Takes an OFD write lock on one byte of the file, waiting while another open file
/// description holds it. Holders of the locks this waits for keep them for a few syscalls
/// (and the kernel drops them with their process), so the wait is short.
pub(crate) fn lock_byte_wait(fd: BorrowedFd<'_>, byte: u64) -> io::Result<()> {
    let fl = byte_lock(byte);
    loop {
        // SAFETY: F_OFD_SETLKW reads the `flock` we pass, which lives for the call.
        match cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_SETLKW, &fl) }) {
            Ok(_) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Releases this open file description's lock on `byte`.
pub(crate) fn unlock_byte(fd: BorrowedFd<'_>, byte: u64) -> io::Result<()> {
    let mut fl = byte_lock(byte);
    fl.l_type = libc::F_UNLCK as libc::c_short;
    // SAFETY: F_OFD_SETLK reads the `flock` we pass, which lives for the call.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_SETLK, &fl) }).map(drop)
}

/// What the kernel says of the file behind an fd: enough to tell one file from another and to
/// judge whether it can be mapped safely.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FileInfo {
    /// Device and inode: equal for two fds exactly when they open the same file.
    pub(crate) id: (u64, u64),
    /// Whether it is a regular file (not a directory, socket, pipe or device).
    pub(crate) regular: bool,
    /// The owner's uid.
    pub(crate) uid: u32,
    /// Links to it: 0 for a memfd or an unlinked file.
    pub(crate) links: u64,
    /// Whether it lives on a tmpfs (memory: truncating it cannot reach a disk).
    pub(crate) tmpfs: bool,
}

/// fstat and fstatfs of `fd`.
pub(crate) fn file_info(fd: BorrowedFd<'_>) -> io::Result<FileInfo> {
    // SAFETY: `stat` and `statfs` are plain old data; all-zero values are valid, and the
    // kernel fills them in.
    let (mut st, mut sfs): (libc::stat, libc::statfs) = unsafe { std::mem::zeroed() };
    // SAFETY: fstat on a borrowed, open descriptor, writing into `st`, which lives for the call.
    cvt(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    // SAFETY: as above, for fstatfs and `sfs`.
    cvt(unsafe { libc::fstatfs(fd.as_raw_fd(), &mut sfs) })?;
    Ok(FileInfo {
        id: (st.st_dev, st.st_ino),
        regular: st.st_mode & libc::S_IFMT == libc::S_IFREG,
        uid: st.st_uid,
        links: st.st_nlink,
        // The field's and the constant's C types differ between libcs; both hold the magic.
        #[allow(clippy::unnecessary_cast)]
        tmpfs: sfs.f_type as i64 == libc::TMPFS_MAGIC as i64,
    })
}

/// The effective uid of this process.
pub(crate) fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Whether another open file description holds a lock on `byte`.
pub(crate) fn byte_locked(fd: BorrowedFd<'_>, byte: u64) -> io::Result<bool> {
    let mut fl = byte_lock(byte);
    // SAFETY: F_OFD_GETLK reads and writes the `flock` we pass, which lives for the call.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_GETLK, &mut fl) })?;
    Ok(fl.l_type != libc::F_UNLCK as libc::c_short)
}

/// The start time of process `pid` in clock ticks since boot (field 22 of /proc/PID/stat).
/// With the pid it names a process uniquely: a recycled pid has a later start time.
pub(crate) fn process_start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_ascii_whitespace().nth(19)?.parse().ok()
}

/// This process's pid and start time, read once (a fork gets its own pid, so it rereads).
pub(crate) fn this_process() -> (u32, u64) {
    static CACHE: std::sync::Mutex<(u32, u64)> = std::sync::Mutex::new((0, 0));
    let pid = std::process::id();
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if cache.0 != pid {
        *cache = (pid, process_start_time(pid).unwrap_or(0));
    }
    *cache
}

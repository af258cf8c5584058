//! File-descriptor syscalls for segments: memfd and POSIX shm, seals, space reservation,
//! reopening, and open-file-description (OFD) locks.

use crate::sys::io::{cvt, owned};
use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

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
    let path = CString::new(crate::sys::proc::fd_link(fd.as_raw_fd()))
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

/// The type of a file, from the `S_IFMT` bits of its mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FileKind {
    Regular,
    Directory,
    /// A pipe or a named FIFO.
    Fifo,
    Socket,
    CharDevice,
    BlockDevice,
    Symlink,
}

impl FileKind {
    fn of_mode(mode: libc::mode_t) -> Option<FileKind> {
        Some(match mode & libc::S_IFMT {
            libc::S_IFREG => FileKind::Regular,
            libc::S_IFDIR => FileKind::Directory,
            libc::S_IFIFO => FileKind::Fifo,
            libc::S_IFSOCK => FileKind::Socket,
            libc::S_IFCHR => FileKind::CharDevice,
            libc::S_IFBLK => FileKind::BlockDevice,
            libc::S_IFLNK => FileKind::Symlink,
            _ => return None,
        })
    }
}

/// What `fstat` says of the file behind an fd.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stat {
    /// Device and inode: equal for two fds exactly when they open the same file.
    pub(crate) id: (u64, u64),
    /// Its type (`None`: a type this does not know).
    pub(crate) kind: Option<FileKind>,
    /// Its size in bytes (meaningful for a regular file).
    pub(crate) size: u64,
    /// The owner's uid.
    pub(crate) uid: u32,
    /// Links to it: 0 for a memfd or an unlinked file.
    pub(crate) links: u64,
}

/// `fstat` of a descriptor number. It only reads the attributes of the file the number refers
/// to and changes nothing, whoever owns the number, so it is safe on a number this process
/// does not (yet) own, as `transport::inherit` needs; this is the one `fstat` of the crate.
#[allow(clippy::unnecessary_cast)] // the field types differ between libcs
pub(crate) fn stat_raw(fd: RawFd) -> io::Result<Stat> {
    let st = nix::sys::stat::fstat(fd)?;
    Ok(Stat {
        id: (st.st_dev as u64, st.st_ino as u64),
        kind: FileKind::of_mode(st.st_mode),
        size: u64::try_from(st.st_size).unwrap_or(0),
        uid: st.st_uid,
        links: st.st_nlink as u64,
    })
}

/// `fstat` of `fd`.
pub(crate) fn stat(fd: BorrowedFd<'_>) -> io::Result<Stat> {
    stat_raw(fd.as_raw_fd())
}

/// The type of the file behind `fd`.
pub(crate) fn file_kind(fd: BorrowedFd<'_>) -> io::Result<Option<FileKind>> {
    Ok(stat(fd)?.kind)
}

/// Whether `fd` is a pipe or FIFO.
pub(crate) fn is_fifo(fd: BorrowedFd<'_>) -> io::Result<bool> {
    Ok(file_kind(fd)? == Some(FileKind::Fifo))
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
    let st = stat(fd)?;
    let sfs = nix::sys::statfs::fstatfs(fd)?;
    Ok(FileInfo {
        id: st.id,
        regular: st.kind == Some(FileKind::Regular),
        uid: st.uid,
        links: st.links,
        tmpfs: sfs.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC,
    })
}

/// The effective uid of this process.
pub(crate) fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail. (nix wraps it only under its
    // `user` feature, which this crate does not enable.)
    unsafe { libc::geteuid() }
}

/// Whether another open file description holds a lock on `byte`.
pub(crate) fn byte_locked(fd: BorrowedFd<'_>, byte: u64) -> io::Result<bool> {
    let mut fl = byte_lock(byte);
    // SAFETY: F_OFD_GETLK reads and writes the `flock` we pass, which lives for the call.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_GETLK, &mut fl) })?;
    Ok(fl.l_type != libc::F_UNLCK as libc::c_short)
}

/// This process's pid and start time, read once (a fork gets its own pid, so it rereads).
pub(crate) fn this_process() -> (u32, u64) {
    static CACHE: std::sync::Mutex<(u32, u64)> = std::sync::Mutex::new((0, 0));
    let pid = std::process::id();
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if cache.0 != pid {
        *cache = (pid, crate::sys::proc::start_time(pid).unwrap_or(0));
    }
    *cache
}

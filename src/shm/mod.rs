//! Shared segments: a memfd (anonymous, sealed) or a named POSIX shm object, mapped
//! MAP_SHARED, with a validated header in front of a data area.
//!
//! ```text
//! offset 0      Header (128 B): magic, version, layout, creator pid + start time, ready
//! offset 128    control block of the segment's user (the ring's positions and wait words)
//! offset 4096   data area: `capacity` bytes, a power of two
//! ```
//!
//! This module knows nothing of rings: it creates, opens, validates and locks segments.

mod header;

pub(crate) use header::{CONTROL_OFFSET, DATA_OFFSET, Layout, MAX_CAPACITY, MIN_CAPACITY, READY};

/// The segment layout's protocol constants, for zipc's own adversarial tests and fuzz
/// targets, which forge and corrupt segments.
///
/// **Not part of the API**: hidden from the documentation, and free to change in any release
/// (the segment version, [`protocol::VERSION`], says when the layout does).
#[doc(hidden)]
pub mod protocol {
    pub use super::header::{CONTROL_OFFSET, DATA_OFFSET, MAGIC, READY, VERSION};
}

use crate::error::{Error, Result};
use crate::sync::Ordering;
use crate::sys::fd;
use header::Header;
use memmap2::{MmapOptions, MmapRaw};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

/// The prefix of every named segment in `/dev/shm`, so that `zipc clean` finds them.
pub(crate) const NAME_PREFIX: &str = "zipc.";
/// The longest name accepted (the kernel's NAME_MAX less the prefix, with room to spare).
pub const MAX_NAME_LEN: usize = 200;
/// How long an opener waits for a creator to finish the header.
const READY_BOUND: Duration = Duration::from_secs(2);
/// The byte the creator of a named segment locks for its whole life.
pub(crate) const OWNER_BYTE: u64 = 0;
/// The byte of a named segment's file that whoever unlinks its name locks first (waiting for
/// it), then checks, under the lock, that the name still names this very file (same device
/// and inode). Every unlink of a name goes this way — the owner's at drop, a creator's or
/// `zipc clean`'s removal of a stale segment, a survivor's cleanup — so between the check and
/// the unlink nobody else can unlink the name, and so nobody can create a new file under it:
/// the unlink removes the file that was checked. (Bytes 0 and 1 are the channel ends' liveness
/// locks.)
pub(crate) const NAME_BYTE: u64 = 2;
/// The longest pause between two looks for a name that `open_named_within` waits for.
const OPEN_POLL_MAX: Duration = Duration::from_millis(5);
/// How many times `create_named` tries to take a name that others keep taking or freeing.
const CREATE_TRIES: usize = 8;

/// What [`Segment::remove_if_stale`] found at a name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stale {
    /// Nothing (any more), or another file than the one checked: try again.
    Gone,
    /// A dead owner's segment, now unlinked.
    Removed,
    /// A live owner's segment (or one being created): left alone.
    Live,
}

/// Unlinks `path` if it still names the file `fd` opens and `remove()` says so, both judged
/// under that file's name lock (see [`NAME_BYTE`]).
fn unlink_under_name_lock(
    path: &str,
    fd: BorrowedFd<'_>,
    remove: impl FnOnce() -> Result<bool>,
) -> Result<Stale> {
    fd::lock_byte_wait(fd, NAME_BYTE)?;
    let outcome = (|| {
        if !names(path, fd)? {
            return Ok(Stale::Gone);
        }
        if !remove()? {
            return Ok(Stale::Live);
        }
        match fd::shm_unlink(path) {
            Ok(()) => Ok(Stale::Removed),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(Stale::Gone),
            Err(e) => Err(Error::Io(e)),
        }
    })();
    // The lock goes with the description too; release it now for a holder that keeps the fd.
    let _ = fd::unlock_byte(fd, NAME_BYTE);
    outcome
}

/// The user's name of the named segment `fd` opens, if it is one (`/dev/shm/zipc.NAME`).
fn named_path(fd: BorrowedFd<'_>) -> Option<String> {
    use std::os::fd::AsRawFd;
    let target = crate::sys::proc::fd_path(fd.as_raw_fd())?;
    let name = target
        .to_str()?
        .strip_prefix("/dev/shm/")?
        .strip_prefix(NAME_PREFIX)?;
    shm_name(name).ok()?;
    Some(name.to_owned())
}

/// Whether the shm object `path` is the file `fd` opens.
fn names(path: &str, fd: BorrowedFd<'_>) -> Result<bool> {
    let current = match fd::shm_open(path, false) {
        Ok(current) => current,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(false),
        Err(e) => return Err(Error::Io(e)),
    };
    Ok(fd::file_info(current.as_fd())?.id == fd::file_info(fd)?.id)
}

/// A mapped segment. Dropping it unmaps it, closes the fd (which releases its locks) and, for
/// the creator of a named segment, unlinks the name.
pub(crate) struct Segment {
    map: MmapRaw,
    fd: OwnedFd,
    layout: Layout,
    /// The user's name of a named segment (without the prefix), for messages.
    name: Option<String>,
    unlink: Option<String>,
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("layout", &self.layout)
            .field("name", &self.name)
            .finish()
    }
}

/// Checks a user's segment name and returns the shm object name for it.
pub(crate) fn shm_name(name: &str) -> Result<String> {
    if name.is_empty() {
        return Err(Error::InvalidName("the name is empty".into()));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(Error::InvalidName(format!(
            "{} bytes is longer than {MAX_NAME_LEN}",
            name.len()
        )));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
    {
        return Err(Error::InvalidName(format!("{name:?} contains {c:?}")));
    }
    Ok(format!("/{NAME_PREFIX}{name}"))
}

/// A named segment found in `/dev/shm`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct NamedSegment {
    /// The name given to `create` (without the `zipc.` prefix).
    pub name: String,
    /// Size of the segment file in bytes.
    pub bytes: u64,
    /// Whether a live process holds its owner lock; a dead owner's segment is stale.
    pub owner_alive: bool,
}

/// The named zipc segments in `/dev/shm`, sorted by name.
///
/// # Errors
/// `Io` when `/dev/shm` cannot be read.
pub fn list() -> Result<Vec<NamedSegment>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/dev/shm")? {
        let entry = entry?;
        let file = entry.file_name();
        let Some(name) = file.to_str().and_then(|f| f.strip_prefix(NAME_PREFIX)) else {
            continue;
        };
        let Ok(path) = shm_name(name) else { continue };
        // It may vanish between the listing and the open: skip it then.
        let Ok(fd) = fd::shm_open(&path, false) else {
            continue;
        };
        found.push(NamedSegment {
            name: name.to_string(),
            bytes: fd::size(fd.as_fd())?,
            owner_alive: fd::byte_locked(fd.as_fd(), OWNER_BYTE)?,
        });
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(found)
}

/// Removes the named segment `name` if its owner died (what `create` does before taking the
/// name). Returns whether the name is free of it now (removed, or already gone); a live
/// owner's segment, or one not yet sized by its creator, is left alone.
///
/// # Errors
/// `InvalidName`, or `Io` when the segment cannot be opened or unlinked.
pub fn remove_if_stale(name: &str) -> Result<bool> {
    let path = shm_name(name)?;
    Ok(Segment::remove_if_stale(&path)? != Stale::Live)
}

/// `Exists` for the segment name `name`.
fn exists(name: &str) -> Error {
    Error::Exists(format!("a live segment named {name:?}"))
}

/// `NotFound` for the segment name `name`.
fn not_found(name: &str) -> Error {
    Error::NotFound(format!("a segment named {name:?}"))
}

/// Refuses an fd whose size a peer could change under the mapping (see [`Segment::from_fd`]).
fn check_mappable(fd: BorrowedFd<'_>) -> Result<()> {
    let info = fd::file_info(fd)?;
    if !info.regular {
        return Err(Error::Incompatible(
            "the fd is not a regular file (a socket, pipe or device?), so not a zipc segment"
                .into(),
        ));
    }
    let sealed_shut = libc::F_SEAL_SEAL;
    match fd::seals(fd) {
        Ok(seals) if seals & fd::SEALS == fd::SEALS => Ok(()),
        // A tmpfs file that is not a memfd answers with F_SEAL_SEAL alone: it cannot be sealed.
        // Linked (a name) and ours: a named segment.
        Ok(seals) if seals & sealed_shut != 0 && info.links > 0 => {
            if info.uid != fd::euid() {
                return Err(Error::Incompatible(format!(
                    "the fd is a named segment owned by uid {}, not by this process's uid {}: \
                     its owner could shrink it under the mapping",
                    info.uid,
                    fd::euid()
                )));
            }
            Ok(())
        }
        Ok(_) => Err(Error::Incompatible(
            "the fd is a memfd not sealed against resizing (F_SEAL_SHRINK | F_SEAL_GROW | \
             F_SEAL_SEAL): its creator could shrink it under the mapping"
                .into(),
        )),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            Err(Error::Incompatible(if info.tmpfs {
                "the fd is a file on a tmpfs that cannot be sealed nor is a named segment".into()
            } else {
                "the fd is a file on a disk filesystem, not shared memory: it cannot be sealed, \
                 and its writer could truncate it under the mapping"
                    .into()
            }))
        }
        Err(e) => Err(Error::Io(e)),
    }
}

fn check_layout(layout: &Layout) -> Result<()> {
    let cap = layout.capacity;
    if !cap.is_power_of_two() || !(MIN_CAPACITY..=MAX_CAPACITY).contains(&cap) {
        return Err(Error::InvalidArgument(format!(
            "capacity {cap} must be a power of two in {MIN_CAPACITY}..={MAX_CAPACITY}"
        )));
    }
    Ok(())
}

fn map(fd: &OwnedFd, len: u64) -> Result<MmapRaw> {
    let len = usize::try_from(len).map_err(|_| Error::Corrupted(format!("size {len}")))?;
    Ok(MmapOptions::new().len(len).map_raw(fd)?)
}

fn no_space(e: io::Error, needed: u64) -> Error {
    match e.raw_os_error() {
        Some(libc::ENOSPC | libc::ENOMEM | libc::EFBIG) => Error::NoSpace { needed },
        _ => Error::Io(e),
    }
}

impl Segment {
    /// Creates an anonymous segment: a memfd, sized, its pages reserved, the header written,
    /// then sealed against any change of size. Its fd can be handed to another process.
    pub(crate) fn create_anonymous(layout: Layout) -> Result<Segment> {
        check_layout(&layout)?;
        let fd = fd::memfd("zipc")?;
        let seg = Self::init(fd, layout, None, None)?;
        fd::seal(seg.fd.as_fd())?;
        Ok(seg)
    }

    /// Creates the named segment `name` (O_CREAT | O_EXCL, mode 0600) and holds its owner
    /// lock until dropped, when it unlinks the name. A segment of that name whose owner died
    /// is removed first; one whose owner lives is `Error::Exists`. Of two processes that race
    /// to create the same name, stale or free, exactly one wins (see [`NAME_BYTE`]).
    pub(crate) fn create_named(name: &str, layout: Layout) -> Result<Segment> {
        check_layout(&layout)?;
        let path = shm_name(name)?;
        // Each failed try means another creator removed or took the name meanwhile; a few
        // tries settle it, since a name taken by a live creator ends the loop.
        for _ in 0..CREATE_TRIES {
            let fd = match fd::shm_open(&path, true) {
                Ok(fd) => fd,
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                    match Self::remove_if_stale(&path)? {
                        Stale::Removed | Stale::Gone => continue,
                        Stale::Live => return Err(exists(name)),
                    }
                }
                Err(e) => return Err(Error::Io(e)),
            };
            // Lock before sizing: a sized segment whose owner lock is free is provably stale.
            // The file is new (O_EXCL), so no other owner can hold the lock.
            if !fd::try_lock_byte(fd.as_fd(), OWNER_BYTE)? {
                return Err(exists(name));
            }
            return Self::init(fd, layout, Some(name), Some(path.clone())).inspect_err(|_| {
                let _ = fd::shm_unlink(&path);
            });
        }
        Err(exists(name))
    }

    /// Removes the named segment at `path` if its owner is dead: the owner lock is free and
    /// either the segment was sized (so its owner had locked it) or it stayed empty for longer
    /// than a creation takes (its creator died between `shm_open` and locking).
    ///
    /// The check and the unlink happen under the name lock of the file the name names, after
    /// checking that the name still names it: so the unlink removes exactly the file that was
    /// found stale, never a segment another creator put there meanwhile.
    fn remove_if_stale(path: &str) -> Result<Stale> {
        let fd = match fd::shm_open(path, false) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(Stale::Gone),
            Err(e) => return Err(Error::Io(e)),
        };
        unlink_under_name_lock(path, fd.as_fd(), || {
            // The size first, then the lock: a creator locks before it sizes, so a size seen
            // before a free lock was set by a creator that has let go of the lock since, that
            // is, a dead one. (Read the other way round, a creator could lock and size
            // between the two reads, and its fresh segment would look stale.)
            let sized = fd::size(fd.as_fd())? > 0;
            if fd::byte_locked(fd.as_fd(), OWNER_BYTE)? {
                return Ok(false);
            }
            if !sized {
                let file = std::fs::File::from(fd.try_clone()?);
                let age = file.metadata()?.modified()?.elapsed().unwrap_or_default();
                if age < READY_BOUND {
                    return Ok(false);
                }
            }
            Ok(true)
        })
    }

    /// For a named segment whose creator is gone (its owner lock is free: it died, or closed
    /// and left the name behind), removes the name if it still names this segment. Returns
    /// whether it removed it. What a survivor calls so that a crash leaves nothing in
    /// `/dev/shm`.
    pub(crate) fn remove_name_if_orphaned(&self) -> Result<bool> {
        let Some(name) = &self.name else {
            return Ok(false);
        };
        let path = shm_name(name)?;
        let removed = unlink_under_name_lock(&path, self.fd.as_fd(), || {
            Ok(!fd::byte_locked(self.fd.as_fd(), OWNER_BYTE)?)
        })?;
        Ok(removed == Stale::Removed)
    }

    fn init(
        fd: OwnedFd,
        layout: Layout,
        name: Option<&str>,
        unlink: Option<String>,
    ) -> Result<Segment> {
        let total = layout.total_len();
        // A named segment lives in /dev/shm, a tmpfs with a size limit: allocate every page
        // now, so that a full /dev/shm is an error here and not a SIGBUS at a later write. A
        // memfd lives on the kernel's internal tmpfs, which has no block limit: a page it
        // cannot get is the memory cgroup's OOM, never SIGBUS, so reserving would only cost
        // time (a quarter of a millisecond per MiB here).
        fd::size_to(fd.as_fd(), total, unlink.is_some()).map_err(|e| no_space(e, total))?;
        let map = map(&fd, total)?;
        let seg = Segment {
            map,
            fd,
            layout,
            name: name.map(str::to_owned),
            unlink,
        };
        let (pid, start) = fd::this_process();
        let hdr = seg.header();
        // SAFETY: the mapping is at least DATA_OFFSET long, page-aligned, and nobody else has
        // the segment yet (the memfd is not shared, the named one has no ready word set).
        unsafe { Header::write(hdr, layout, pid, start) };
        // SAFETY: the header lives as long as `seg`.
        unsafe { Header::ready(hdr) }.store(READY, Ordering::Release);
        Ok(seg)
    }

    /// Opens a segment from an fd another process handed over. The fd is reopened (a new open
    /// file description, so locks taken through it are ours alone) and the original closed.
    ///
    /// Only memory whose size the peer cannot change under the mapping is accepted, since a
    /// shrunk file turns the next access into SIGBUS: a memfd sealed against resizing (what
    /// [`Segment::create_anonymous`] makes), or a named segment — a file on a tmpfs, such as
    /// `/dev/shm`, owned by this process's uid. The second cannot be sealed; any process of
    /// that uid could open it by name anyway, so it is trusted as the name is (see the
    /// README's trust model). Anything else — an unsealed memfd, a file on a disk, a socket —
    /// is `Incompatible`, naming what it is. The size and every header field are checked.
    pub(crate) fn from_fd(fd: OwnedFd) -> Result<Segment> {
        // Checked before the reopen, which fails for a socket with an error naming nothing.
        check_mappable(fd.as_fd())?;
        let own = fd::reopen(fd.as_fd())?;
        drop(fd);
        let mut seg = Self::open_fd(own)?;
        seg.name = named_path(seg.fd.as_fd());
        Ok(seg)
    }

    /// Opens the named segment `name` that another process created. A segment its creator
    /// has not sized yet (it is between `shm_open` and `ftruncate`) is waited for, as a
    /// header not ready yet is, for at most 2 s; one that stays empty is `NotFound`.
    pub(crate) fn open_named(name: &str) -> Result<Segment> {
        let path = shm_name(name)?;
        let fd = fd::shm_open(&path, false).map_err(|e| match e.raw_os_error() {
            Some(libc::ENOENT) => not_found(name),
            _ => Error::Io(e),
        })?;
        let start = Instant::now();
        while fd::size(fd.as_fd())? == 0 {
            if start.elapsed() >= READY_BOUND {
                return Err(not_found(name));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let mut seg = Self::open_fd(fd)?;
        seg.name = Some(name.to_owned());
        Ok(seg)
    }

    /// As [`open_named`](Self::open_named), waiting up to `timeout` for the name to appear
    /// (its creator may not have run yet): `NotFound` when it has not by then. It looks again
    /// every millisecond at first, backing off to every 5 ms.
    pub(crate) fn open_named_within(name: &str, timeout: Duration) -> Result<Segment> {
        let start = Instant::now();
        let mut pause = Duration::from_millis(1);
        loop {
            match Self::open_named(name) {
                Err(Error::NotFound(_)) if start.elapsed() < timeout => {
                    std::thread::sleep(pause.min(timeout.saturating_sub(start.elapsed())));
                    pause = (pause * 2).min(OPEN_POLL_MAX);
                }
                Err(Error::NotFound(_)) => {
                    return Err(Error::NotFound(format!(
                        "a segment named {name:?} (waited {timeout:?} for it)"
                    )));
                }
                other => return other,
            }
        }
    }

    fn open_fd(fd: OwnedFd) -> Result<Segment> {
        let len = fd::size(fd.as_fd())?;
        if !(DATA_OFFSET + MIN_CAPACITY..=DATA_OFFSET + MAX_CAPACITY).contains(&len) {
            return Err(Error::Corrupted(format!(
                "the segment is {len} bytes, not a header and a data area"
            )));
        }
        let map = map(&fd, len)?;
        let hdr = map.as_mut_ptr().cast::<Header>();
        // SAFETY: the mapping is `len` >= DATA_OFFSET bytes and page-aligned; it lives for
        // this function and the ready word is an atomic.
        wait_ready(unsafe { Header::ready(hdr) })?;
        // SAFETY: as above; the snapshot reads the plain fields once, volatile.
        let layout = unsafe { Header::snapshot(hdr) }.validate(len)?;
        Ok(Segment {
            map,
            fd,
            layout,
            name: None,
            unlink: None,
        })
    }

    fn header(&self) -> *mut Header {
        self.map.as_mut_ptr().cast()
    }

    /// The name the segment was created or opened by, if it is a named one.
    pub(crate) fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The layout the creator wrote, as validated.
    pub(crate) fn layout(&self) -> Layout {
        self.layout
    }

    /// The control block: `DATA_OFFSET - CONTROL_OFFSET` bytes, 128-aligned, zeroed at creation.
    pub(crate) fn control(&self) -> *mut u8 {
        // SAFETY: CONTROL_OFFSET < DATA_OFFSET <= the mapping's length.
        unsafe { self.map.as_mut_ptr().add(CONTROL_OFFSET) }
    }

    /// The data area: `layout().capacity` bytes, page-aligned.
    pub(crate) fn data(&self) -> *mut u8 {
        // SAFETY: the mapping is DATA_OFFSET + capacity bytes long (checked at open).
        unsafe { self.map.as_mut_ptr().add(DATA_OFFSET as usize) }
    }

    /// Takes the OFD lock on `byte` of the segment file: `Ok(false)` if a live holder has it.
    pub(crate) fn lock(&self, byte: u64) -> Result<bool> {
        Ok(fd::try_lock_byte(self.fd.as_fd(), byte)?)
    }

    /// Whether another holder (a live process) has the lock on `byte`.
    pub(crate) fn is_locked(&self, byte: u64) -> Result<bool> {
        Ok(fd::byte_locked(self.fd.as_fd(), byte)?)
    }
}

fn wait_ready(ready: &crate::sync::AtomicU32) -> Result<()> {
    header::wait_ready(ready, READY_BOUND)
}

impl AsFd for Segment {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        if let Some(path) = self.unlink.take() {
            // Only if the name is still ours: it is, unless someone removed it by hand.
            let _ = unlink_under_name_lock(&path, self.fd.as_fd(), || Ok(true));
        }
    }
}

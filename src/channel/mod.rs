//! User-facing channels: byte frames ([`bytes`]) and typed `Pod` values ([`typed`]), both
//! over the same ring. This module joins a segment (or, for tests, heap memory) to a ring,
//! its wait words and the liveness of the two ends.

pub mod bytes;
pub mod typed;

#[cfg(all(test, loom))]
mod loom_tests;
mod side;

use crate::error::{Error, Result};
use crate::ring::{self, Memory, Side};
use crate::shm::{CONTROL_OFFSET, DATA_OFFSET, Layout, MAX_CAPACITY, MIN_CAPACITY, Segment};
use crate::sync::{AtomicU32, Ordering};
use crate::wait::WaitWord;
use crossbeam_utils::CachePadded;
use std::cell::Cell;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

/// Segment kind of a byte-frame channel.
pub(crate) const KIND_BYTES: u32 = 1;
/// Segment kind of a typed channel (`slot_size` is the element size).
pub(crate) const KIND_TYPED: u32 = 2;

/// A channel's settings.
///
/// ```
/// let config = zipc::Config::default().capacity(64 * 1024);
/// assert_eq!(config.capacity, 64 * 1024);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Bytes of ring. Rounded up to a power of two, at least a page (4096); a frame's payload
    /// may be up to half of it less 8 bytes. Default 256 KiB.
    pub capacity: usize,
    /// How long dropping or [closing](crate::bytes::Producer::close) the producer of a
    /// *named* channel waits, while it has frames no consumer holds, for a consumer to attach.
    /// Until then the name and the frames stay. Default 5 s; zero drops them at once. (A
    /// memfd channel's frames stay with the memory, held by whoever has its fd: it never
    /// waits.)
    pub linger: Duration,
}

/// The default [`Config::linger`].
pub const DEFAULT_LINGER: Duration = Duration::from_secs(5);

impl Default for Config {
    fn default() -> Self {
        Config {
            capacity: 256 * 1024,
            linger: DEFAULT_LINGER,
        }
    }
}

impl Config {
    /// The default settings.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the ring size in bytes (rounded up to a power of two, at least 4096).
    pub fn capacity(mut self, bytes: usize) -> Self {
        self.capacity = bytes;
        self
    }

    /// Sets how long closing a named producer waits for a consumer (see [`Config::linger`]).
    pub fn linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// The ring size this config gives, after rounding.
    ///
    /// # Errors
    /// `Error::InvalidArgument` for 0 or more than 1 TiB.
    pub fn ring_capacity(&self) -> Result<u64> {
        let cap = self.capacity as u64;
        if cap == 0 || cap > MAX_CAPACITY {
            return Err(Error::InvalidArgument(format!(
                "capacity {cap} must be in 1..={MAX_CAPACITY}"
            )));
        }
        Ok(cap.next_power_of_two().max(MIN_CAPACITY))
    }

    pub(crate) fn layout(&self, kind: u32, slot_size: u64) -> Result<Layout> {
        Ok(Layout {
            kind,
            capacity: self.ring_capacity()?,
            slot_size,
            flags: 0,
        })
    }
}

/// The channel's control block: the ring's words and the two wait words.
#[repr(C)]
pub(crate) struct Shared {
    ring: ring::Control,
    /// The consumer sleeps here for data; the producer notifies.
    data_ready: CachePadded<WaitWord>,
    /// The producer sleeps here for space; the consumer notifies.
    space_ready: CachePadded<WaitWord>,
    /// The pid of the process that attached each end last (producer, consumer): for
    /// messages only, never trusted (the peer writes it).
    pids: [AtomicU32; 2],
}

#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<Shared>() <= DATA_OFFSET as usize - CONTROL_OFFSET);

impl Shared {
    /// The pid slot of `side`.
    fn pid(&self, side: Side) -> &AtomicU32 {
        &self.pids[side as usize]
    }

    /// The word `side` sleeps on.
    pub(crate) fn wait_word(&self, side: Side) -> &WaitWord {
        match side {
            Side::Producer => &self.space_ready,
            Side::Consumer => &self.data_ready,
        }
    }
}

/// The byte of the segment file whose OFD lock says that `side` lives.
fn lock_byte(side: Side) -> u64 {
    match side {
        Side::Producer => crate::shm::OWNER_BYTE,
        Side::Consumer => crate::shm::OWNER_BYTE + 1,
    }
}

/// A channel kind in words, for messages.
fn describe(kind: u32, slot_size: u64) -> String {
    match kind {
        KIND_BYTES => "a byte-frame channel".to_owned(),
        KIND_TYPED => format!("a typed channel of {slot_size}-byte elements"),
        other => format!("a segment of a kind this zipc does not know ({other})"),
    }
}

/// `Busy` for `side` of the channel `name` (None: an anonymous one), held by `pid` (0: unknown).
fn busy(side: Side, name: Option<&str>, pid: u32) -> Error {
    let end = match side {
        Side::Producer => "producer",
        Side::Consumer => "consumer",
    };
    let channel = name.map_or_else(|| "the channel".to_owned(), |n| format!("channel {n:?}"));
    let holder = if pid == 0 {
        String::new()
    } else {
        format!(" (pid {pid})")
    };
    Error::Busy(format!(
        "the {end} end of {channel} is already held by a live process{holder}"
    ))
}

/// Heap memory standing in for a segment (loom's atomics cannot live in an mmap).
#[cfg(loom)]
pub(crate) struct Heap {
    shared: Box<Shared>,
    data: NonNull<u8>,
    mem: Memory,
    layout: std::alloc::Layout,
}

#[cfg(loom)]
impl Heap {
    pub(crate) fn new(cap: u64) -> std::sync::Arc<Heap> {
        let layout = std::alloc::Layout::from_size_align(cap as usize, 8).expect("small layout");
        // SAFETY: the layout has a non-zero size.
        let data = NonNull::new(unsafe { std::alloc::alloc_zeroed(layout) }).expect("allocation");
        std::sync::Arc::new(Heap {
            shared: Box::new(Shared {
                ring: ring::Control::new(),
                data_ready: CachePadded::new(WaitWord::new()),
                space_ready: CachePadded::new(WaitWord::new()),
                pids: [AtomicU32::new(0), AtomicU32::new(0)],
            }),
            data,
            // SAFETY: `data` is 8-aligned, `cap` bytes, and freed only when the Heap drops,
            // after both ends (which hold the Arc) are gone.
            mem: unsafe { Memory::new(data, cap) },
            layout,
        })
    }
}

#[cfg(loom)]
impl Drop for Heap {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout; no end is left to use it.
        unsafe { std::alloc::dealloc(self.data.as_ptr(), self.layout) }
    }
}

// SAFETY: the data area is only touched through the ring protocol by the two ends.
#[cfg(loom)]
unsafe impl Send for Heap {}
// SAFETY: as above.
#[cfg(loom)]
unsafe impl Sync for Heap {}

enum Backing {
    Segment(Segment),
    #[cfg(loom)]
    Heap(#[allow(dead_code)] std::sync::Arc<Heap>),
}

/// One end's hold on a channel: the memory, its control block, and which side it is.
pub(crate) struct Link {
    shared: NonNull<Shared>,
    side: Side,
    backing: Backing,
    /// A peer found alive is not asked about again before this instant: asking is a syscall,
    /// and a caller polling with `try_recv` must not make one per empty poll. (A dead one is
    /// asked every time, so that a replacement that attaches is seen at once.)
    next_lock_check: Cell<Option<Instant>>,
}

/// The least time between two questions to the kernel about the peer's lock.
const LOCK_CHECK_EVERY: Duration = Duration::from_millis(5);

// SAFETY: `shared` points into `backing`, which the Link owns and which is Send.
unsafe impl Send for Link {}

impl Link {
    /// Takes `side` of a segment: checks its kind, locks the side's liveness byte (a live
    /// holder makes it `Error::Busy`) and marks the side attached.
    pub(crate) fn attach(
        seg: Segment,
        side: Side,
        kind: u32,
        slot_size: u64,
    ) -> Result<(Link, Memory)> {
        let layout = seg.layout();
        if layout.kind != kind || layout.slot_size != slot_size {
            let channel = seg
                .name()
                .map_or_else(|| "the segment".to_owned(), |n| format!("channel {n:?}"));
            return Err(Error::Incompatible(format!(
                "{channel} is {}, not {}",
                describe(layout.kind, layout.slot_size),
                describe(kind, slot_size)
            )));
        }
        let shared = NonNull::new(seg.control().cast::<Shared>()).expect("mapping is not null");
        if !seg.lock(lock_byte(side))? {
            // SAFETY: the control block lies in the mapping `seg` holds for this call.
            let holder = unsafe { shared.as_ref() }.pid(side).load(Ordering::Relaxed);
            return Err(busy(side, seg.name(), holder));
        }
        // Before this end's first publish, so that a sleeping peer's membarrier covers it.
        crate::sys::barrier::register();
        // SAFETY: the data area is page-aligned and `capacity` bytes long for the life of the
        // mapping, which the Link (holding the Segment) keeps as long as any ring on it.
        let mem =
            unsafe { Memory::new(NonNull::new(seg.data()).expect("not null"), layout.capacity) };
        let link = Link {
            shared,
            side,
            backing: Backing::Segment(seg),
            next_lock_check: Cell::new(None),
        };
        link.shared()
            .pid(side)
            .store(std::process::id(), Ordering::Relaxed);
        link.shared().ring.attach(side);
        Ok((link, mem))
    }

    /// Takes `side` of a heap ring.
    #[cfg(loom)]
    pub(crate) fn attach_heap(heap: &std::sync::Arc<Heap>, side: Side) -> (Link, Memory) {
        crate::sys::barrier::register();
        let link = Link {
            shared: NonNull::from(&*heap.shared),
            side,
            backing: Backing::Heap(heap.clone()),
            next_lock_check: Cell::new(None),
        };
        link.shared().ring.attach(side);
        (link, heap.mem.clone())
    }

    pub(crate) fn shared(&self) -> &Shared {
        // SAFETY: `shared` points into the backing memory, which lives as long as `self`.
        unsafe { self.shared.as_ref() }
    }

    pub(crate) fn control(&self) -> NonNull<ring::Control> {
        // SAFETY: `ring` is the first field of the live Shared block.
        unsafe {
            NonNull::new_unchecked(&raw const (*self.shared.as_ptr()).ring as *mut ring::Control)
        }
    }

    /// The word this side sleeps on.
    pub(crate) fn my_word(&self) -> &WaitWord {
        self.shared().wait_word(self.side)
    }

    /// The word the peer sleeps on.
    pub(crate) fn peer_word(&self) -> &WaitWord {
        self.shared().wait_word(self.side.peer())
    }

    /// Whether the peer closed its end.
    #[inline]
    pub(crate) fn peer_closed(&self) -> bool {
        self.shared().ring.is_closed(self.side.peer())
    }

    /// Whether the peer is attached, has not closed, and its process lives.
    pub(crate) fn peer_connected(&self) -> bool {
        let peer = self.side.peer();
        let ring = &self.shared().ring;
        if !ring.is_attached(peer) || ring.is_closed(peer) {
            return false;
        }
        match &self.backing {
            Backing::Segment(seg) => seg.is_locked(lock_byte(peer)).unwrap_or(false),
            #[cfg(loom)]
            Backing::Heap(_) => true,
        }
    }

    /// Whether the segment has a name that would vanish with its creator.
    pub(crate) fn is_named(&self) -> bool {
        match &self.backing {
            Backing::Segment(seg) => seg.name().is_some(),
            #[cfg(loom)]
            Backing::Heap(_) => false,
        }
    }

    /// `Err(Disconnected)` if the peer closed, `Err(PeerGone)` if it attached and its process
    /// died (its liveness lock is free without a close), else `Ok`.
    pub(crate) fn check_peer(&self) -> Result<()> {
        let peer = self.side.peer();
        let ring = &self.shared().ring;
        if ring.is_closed(peer) {
            return Err(Error::Disconnected);
        }
        match &self.backing {
            Backing::Segment(seg) => {
                if !ring.is_attached(peer) {
                    return Ok(());
                }
                let now = Instant::now();
                if self.next_lock_check.get().is_some_and(|next| now < next) {
                    return Ok(());
                }
                if !seg.is_locked(lock_byte(peer))? && !ring.is_closed(peer) {
                    self.next_lock_check.set(None);
                    return Err(Error::PeerGone);
                }
                self.next_lock_check.set(Some(now + LOCK_CHECK_EVERY));
            }
            #[cfg(loom)]
            Backing::Heap(_) => {}
        }
        Ok(())
    }

    /// After the peer died: the consumer of a named segment whose creator is gone removes the
    /// name, if it still names this segment, so that a crash with one survivor leaves nothing
    /// in `/dev/shm`. The consumer calls it once it has drained what the dead producer sent.
    pub(crate) fn clean_up_after_dead_peer(&self) {
        if self.side != Side::Consumer {
            return;
        }
        match &self.backing {
            // Best effort: a failure leaves the name to `zipc clean` or the next creator.
            Backing::Segment(seg) => {
                let _ = seg.remove_name_if_orphaned();
            }
            #[cfg(loom)]
            Backing::Heap(_) => {}
        }
    }

    /// The segment's fd (an end on the heap exists only in loom models, which never ask).
    pub(crate) fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        match &self.backing {
            Backing::Segment(seg) => seg.as_fd(),
            #[cfg(loom)]
            Backing::Heap(_) => unreachable!("loom models do not hand out fds"),
        }
    }

    /// Closes this end and wakes the peer, wherever it sleeps.
    pub(crate) fn close(&self) {
        self.shared().ring.close(self.side);
        self.peer_word().wake();
    }
}

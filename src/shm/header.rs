//! The `#[repr(C)]` header at offset 0 of every segment, and its validation.

use crate::error::{Error, Result};
use crate::sync::{AtomicU32, Ordering};
use std::mem::{offset_of, size_of};

/// `b"ZIPCSEG1"` read as a little-endian u64.
pub const MAGIC: u64 = u64::from_le_bytes(*b"ZIPCSEG1");
/// The ABI version; any change of the header, the control block or the frame format bumps it.
///
/// 2: frames of kind `KIND_SIDE` (side-segment descriptors).
/// 3: the channel's control block records the pid of each end.
pub const VERSION: u32 = 3;
/// The value of `ready` once the creator has written every other field.
pub const READY: u32 = 0x5245_4459;
/// Bytes before the data area: the header, then the control block of whoever uses the segment.
pub const DATA_OFFSET: u64 = 4096;
/// Where the control block (the ring's positions and wait words) starts.
pub const CONTROL_OFFSET: usize = 128;
/// The smallest data area.
pub const MIN_CAPACITY: u64 = 4096;
/// The largest data area (1 TiB): beyond that a garbled capacity could not be told from a real one.
pub const MAX_CAPACITY: u64 = 1 << 40;

/// What a segment is laid out for; written by the creator, checked by every opener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// What the data area holds (the channel layer's business; shm only carries it).
    pub kind: u32,
    /// Bytes in the data area: a power of two in `MIN_CAPACITY ..= MAX_CAPACITY`.
    pub capacity: u64,
    /// For typed channels, the size of one element; 0 for byte frames.
    pub slot_size: u64,
    /// Behaviour flags shared by both ends (the channel layer's business).
    pub flags: u32,
}

impl Layout {
    /// Total bytes of a segment with this layout.
    pub fn total_len(&self) -> u64 {
        DATA_OFFSET + self.capacity
    }
}

/// The segment header, as it lies in shared memory. Fields other than `ready` are written
/// once by the creator before `ready` is stored (Release), and read by openers only after
/// `ready` was seen (Acquire).
#[repr(C)]
pub(crate) struct Header {
    pub(crate) magic: u64,
    pub(crate) version: u32,
    pub(crate) kind: u32,
    pub(crate) capacity: u64,
    pub(crate) slot_size: u64,
    pub(crate) total_len: u64,
    pub(crate) data_offset: u64,
    pub(crate) flags: u32,
    pub(crate) creator_pid: u32,
    pub(crate) creator_start_time: u64,
    pub(crate) ready: AtomicU32,
    pub(crate) _reserved: [u8; 60],
}

#[cfg(not(loom))]
const _: () = {
    assert!(size_of::<Header>() == CONTROL_OFFSET);
    assert!(offset_of!(Header, magic) == 0);
    assert!(offset_of!(Header, version) == 8);
    assert!(offset_of!(Header, kind) == 12);
    assert!(offset_of!(Header, capacity) == 16);
    assert!(offset_of!(Header, slot_size) == 24);
    assert!(offset_of!(Header, total_len) == 32);
    assert!(offset_of!(Header, data_offset) == 40);
    assert!(offset_of!(Header, flags) == 48);
    assert!(offset_of!(Header, creator_pid) == 52);
    assert!(offset_of!(Header, creator_start_time) == 56);
    assert!(offset_of!(Header, ready) == 64);
};

/// A copy of the header's plain fields, read once out of shared memory.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Snapshot {
    pub(crate) magic: u64,
    pub(crate) version: u32,
    pub(crate) kind: u32,
    pub(crate) capacity: u64,
    pub(crate) slot_size: u64,
    pub(crate) total_len: u64,
    pub(crate) data_offset: u64,
    pub(crate) flags: u32,
    pub(crate) creator_pid: u32,
}

impl Header {
    /// Writes every field but `ready` through `ptr`.
    ///
    /// # Safety
    /// `ptr` points at a writable, 8-aligned header-sized region that no one else accesses yet.
    pub(crate) unsafe fn write(ptr: *mut Header, layout: Layout, pid: u32, start_time: u64) {
        // SAFETY: the caller guarantees `ptr` is valid, aligned and exclusively ours; every
        // field is written through a raw place, never through a reference.
        unsafe {
            (&raw mut (*ptr).magic).write(MAGIC);
            (&raw mut (*ptr).version).write(VERSION);
            (&raw mut (*ptr).kind).write(layout.kind);
            (&raw mut (*ptr).capacity).write(layout.capacity);
            (&raw mut (*ptr).slot_size).write(layout.slot_size);
            (&raw mut (*ptr).total_len).write(layout.total_len());
            (&raw mut (*ptr).data_offset).write(DATA_OFFSET);
            (&raw mut (*ptr).flags).write(layout.flags);
            (&raw mut (*ptr).creator_pid).write(pid);
            (&raw mut (*ptr).creator_start_time).write(start_time);
        }
    }

    /// Reads every plain field once, volatile: the memory is another process's to write.
    ///
    /// # Safety
    /// `ptr` points at a readable, 8-aligned header-sized region.
    pub(crate) unsafe fn snapshot(ptr: *const Header) -> Snapshot {
        // SAFETY: the caller guarantees `ptr` is valid and aligned; volatile reads of plain
        // integers through raw places make no claim about what another process writes.
        unsafe {
            Snapshot {
                magic: (&raw const (*ptr).magic).read_volatile(),
                version: (&raw const (*ptr).version).read_volatile(),
                kind: (&raw const (*ptr).kind).read_volatile(),
                capacity: (&raw const (*ptr).capacity).read_volatile(),
                slot_size: (&raw const (*ptr).slot_size).read_volatile(),
                total_len: (&raw const (*ptr).total_len).read_volatile(),
                data_offset: (&raw const (*ptr).data_offset).read_volatile(),
                flags: (&raw const (*ptr).flags).read_volatile(),
                creator_pid: (&raw const (*ptr).creator_pid).read_volatile(),
            }
        }
    }

    /// The `ready` word.
    ///
    /// # Safety
    /// `ptr` points at a live, 8-aligned header for `'a`.
    pub(crate) unsafe fn ready<'a>(ptr: *const Header) -> &'a AtomicU32 {
        // SAFETY: the caller guarantees the header lives for 'a; an atomic may be shared.
        unsafe { &(*ptr).ready }
    }
}

impl Snapshot {
    /// Checks every field against what a segment of `file_len` bytes can be, and returns its
    /// layout. Any mismatch is an error naming the field; nothing is guessed.
    pub(crate) fn validate(&self, file_len: u64) -> Result<Layout> {
        if self.magic != MAGIC {
            return Err(Error::Corrupted(format!(
                "bad magic {:#018x}: not a zipc segment",
                self.magic
            )));
        }
        if self.version != VERSION {
            return Err(Error::Incompatible(format!(
                "ABI version {} (this zipc speaks version {VERSION})",
                self.version
            )));
        }
        let cap = self.capacity;
        if !cap.is_power_of_two() || !(MIN_CAPACITY..=MAX_CAPACITY).contains(&cap) {
            return Err(Error::Corrupted(format!(
                "capacity {cap} is not a power of two in range"
            )));
        }
        if self.data_offset != DATA_OFFSET {
            return Err(Error::Corrupted(format!(
                "data offset {}",
                self.data_offset
            )));
        }
        if self.total_len != DATA_OFFSET + cap || self.total_len != file_len {
            return Err(Error::Corrupted(format!(
                "header says {} bytes (capacity {cap}), the file has {file_len}",
                self.total_len
            )));
        }
        if self.slot_size > cap / 2 {
            return Err(Error::Corrupted(format!("slot size {}", self.slot_size)));
        }
        if self.creator_pid == 0 {
            return Err(Error::Corrupted("creator pid 0".into()));
        }
        Ok(Layout {
            kind: self.kind,
            capacity: cap,
            slot_size: self.slot_size,
            flags: self.flags,
        })
    }
}

/// Waits (bounded) for a creator to finish the header.
pub(crate) fn wait_ready(ready: &AtomicU32, bound: std::time::Duration) -> Result<()> {
    let start = std::time::Instant::now();
    loop {
        if ready.load(Ordering::Acquire) == READY {
            return Ok(());
        }
        if start.elapsed() >= bound {
            return Err(Error::Corrupted(format!(
                "the creator did not finish the header within {bound:?}"
            )));
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

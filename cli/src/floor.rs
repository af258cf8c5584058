//! The floor: what two processes get from shared memory with nothing but a few atomics and
//! memcpy. A cache-line ping-pong for latency, a ring of u64 slots for 8-byte messages and a
//! ring of fixed slots copied in and out for large frames; for blocking mode, a ping-pong that
//! sleeps on a raw futex. zipc is reported as a ratio of these.
//!
//! This file is self-contained (no `crate::` paths): `benches/channel.rs` includes it too, so
//! that the criterion benches and `zipc bench` measure the same floor.

// The floor is raw std atomics in a shared mapping on purpose: it is the baseline zipc is
// compared with, not library code that loom must see. clippy.toml forbids std atomics so that
// the library's all come from src/sync.rs; that rule does not concern this measuring stick.
#![allow(clippy::disallowed_types)]

use memmap2::{MmapOptions, MmapRaw};
use nix::sys::memfd::{MemFdCreateFlag, memfd_create};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
use nix::unistd::Pid;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

type Result<T, E = Box<dyn std::error::Error + Send + Sync>> = std::result::Result<T, E>;

/// A memfd mapped MAP_SHARED, populated up front so that no page fault lands in a measurement.
pub(crate) struct SharedMap {
    map: MmapRaw,
}

impl SharedMap {
    /// A new zeroed memfd of `len` bytes mapped here, and its fd for the other side.
    pub(crate) fn create(len: usize) -> Result<(SharedMap, OwnedFd)> {
        let fd = memfd_create(c"zipc-bench-floor", MemFdCreateFlag::MFD_CLOEXEC)?;
        let file = File::from(fd);
        file.set_len(len as u64)?;
        let map = MmapOptions::new().len(len).populate().map_raw(&file)?;
        Ok((SharedMap { map }, file.into()))
    }

    /// Maps the first `len` bytes of a memfd made by [`create`](Self::create).
    pub(crate) fn open(fd: OwnedFd, len: usize) -> Result<SharedMap> {
        let file = File::from(fd);
        let size = file.metadata()?.len();
        if size < len as u64 {
            return Err(format!("shared file of {size} bytes, expected at least {len}").into());
        }
        let map = MmapOptions::new().len(len).populate().map_raw(&file)?;
        Ok(SharedMap { map })
    }

    /// The atomic word at `offset`.
    #[inline(always)]
    fn word(&self, offset: usize) -> &AtomicU64 {
        debug_assert!(offset.is_multiple_of(8) && offset + 8 <= self.map.len());
        // SAFETY: `offset` is in bounds and 8-aligned (the mapping is page-aligned); the
        // mapping lives as long as `&self`, and both processes touch this word only atomically.
        unsafe { AtomicU64::from_ptr(self.map.as_mut_ptr().add(offset).cast()) }
    }

    /// The 32-bit atomic word at `offset`.
    #[inline(always)]
    fn word32(&self, offset: usize) -> &AtomicU32 {
        debug_assert!(offset.is_multiple_of(4) && offset + 4 <= self.map.len());
        // SAFETY: `offset` is in bounds and 4-aligned (the mapping is page-aligned); the
        // mapping lives as long as `&self`, and both processes touch this word only atomically
        // (the kernel reads it in FUTEX_WAIT).
        unsafe { AtomicU32::from_ptr(self.map.as_mut_ptr().add(offset).cast()) }
    }
}

/// What a spinning side watches so that it cannot spin forever: the parent watches its peer
/// process; the peer needs nothing (it dies with the parent, by PR_SET_PDEATHSIG).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Watch(Option<Pid>);

impl Watch {
    /// Watches nothing (threads, or a peer that dies with its parent).
    pub(crate) fn none() -> Watch {
        Watch(None)
    }

    /// Watches the child process `pid`.
    pub(crate) fn child(pid: u32) -> Watch {
        Watch(i32::try_from(pid).ok().map(Pid::from_raw))
    }

    /// An error once the watched process has exited (without reaping it).
    #[cold]
    fn check(self) -> Result<()> {
        let Some(pid) = self.0 else { return Ok(()) };
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
        match waitid(Id::Pid(pid), flags)? {
            WaitStatus::StillAlive => Ok(()),
            _ => Err("the peer process died".into()),
        }
    }
}

/// Spins on `ready` with a pause between tries, checking `watch` every 64 Ki tries. After
/// 16 Ki tries (far longer than the other side takes when it runs) it also yields, so that a
/// pair sharing one CPU still makes progress.
#[inline(always)]
fn spin_until(watch: Watch, mut ready: impl FnMut() -> bool) -> Result<()> {
    let mut tries: u32 = 0;
    while !ready() {
        std::hint::spin_loop();
        tries = tries.wrapping_add(1);
        if tries >= 1 << 14 {
            std::thread::yield_now();
            if tries & 0xffff == 0 {
                watch.check()?;
            }
        }
    }
    Ok(())
}

/// Bytes of the cache-line ping-pong's shared file.
pub(crate) const PING_LEN: usize = 4096;

/// One end of a cache-line ping-pong: one word, the parent writes odd values, the peer answers
/// with even ones.
pub(crate) struct CacheLinePing {
    map: SharedMap,
    /// The parity this end waits for: 0 (even) in the parent, 1 (odd) in the peer.
    want: u64,
    watch: Watch,
}

impl CacheLinePing {
    /// The parent's end (it sends odd values and waits for even ones).
    pub(crate) fn parent(map: SharedMap, watch: Watch) -> CacheLinePing {
        CacheLinePing {
            map,
            want: 0,
            watch,
        }
    }

    /// The peer's end (it waits for odd values and answers with even ones).
    pub(crate) fn peer(map: SharedMap) -> CacheLinePing {
        CacheLinePing {
            map,
            want: 1,
            watch: Watch::none(),
        }
    }

    /// Publishes `v` (odd from the parent, even from the peer).
    #[inline(always)]
    pub(crate) fn send(&mut self, v: u64) -> Result<()> {
        self.map.word(0).store(v, Ordering::Release);
        Ok(())
    }

    /// Waits for the other side's next value.
    #[inline(always)]
    pub(crate) fn recv(&mut self) -> Result<u64> {
        let word = self.map.word(0);
        let mut v = 0;
        spin_until(self.watch, || {
            v = word.load(Ordering::Acquire);
            v & 1 == self.want
        })?;
        Ok(v)
    }
}

/// How long a futex sleeper sleeps before it checks that the other process still lives.
const FUTEX_TICK: Duration = Duration::from_millis(20);

/// FUTEX_WAIT (not PRIVATE: the word is shared between processes) while `*word == expected`,
/// for at most `timeout`. `false` if the wait timed out; any other return (a wake, the word
/// already changed, a signal) is `true`: the caller rechecks its condition either way.
fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) -> bool {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
    };
    // SAFETY: `word` is a live, aligned 32-bit atomic for the duration of the call; the kernel
    // only reads it. `ts` outlives the call; the last two arguments are unused by FUTEX_WAIT.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
            std::ptr::null::<u32>(),
            0u32,
        )
    };
    r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ETIMEDOUT)
}

/// FUTEX_WAKE (not PRIVATE) of one sleeper on `word`.
fn futex_wake(word: &AtomicU32) {
    // SAFETY: `word` is a live, aligned 32-bit atomic; FUTEX_WAKE does not touch user memory
    // and ignores the last three arguments.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            1i32,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

// The futex ping-pong's shared file: the futex word (the low 32 bits of the last value), then
// the whole value, on one cache line.
const FUTEX_SEQ: usize = 0;
const FUTEX_VALUE: usize = 8;

/// One end of a blocking ping-pong on a raw futex: the parent writes odd values, the peer
/// answers with even ones. A side publishes its value, then FUTEX_WAKEs (always: the floor
/// keeps no waiter flag); a side waiting for the other's value FUTEX_WAITs at once, no spin.
pub(crate) struct FutexPing {
    map: SharedMap,
    /// The parity this end waits for: 0 (even) in the parent, 1 (odd) in the peer.
    want: u32,
    watch: Watch,
}

impl FutexPing {
    /// The parent's end, over a fresh (zeroed) file of [`PING_LEN`] bytes.
    pub(crate) fn parent(map: SharedMap, watch: Watch) -> FutexPing {
        FutexPing {
            map,
            want: 0,
            watch,
        }
    }

    /// The peer's end.
    pub(crate) fn peer(map: SharedMap) -> FutexPing {
        FutexPing {
            map,
            want: 1,
            watch: Watch::none(),
        }
    }

    /// Publishes `v` (odd from the parent, even from the peer) and wakes the other side.
    #[inline(always)]
    pub(crate) fn send(&mut self, v: u64) -> Result<()> {
        self.map.word(FUTEX_VALUE).store(v, Ordering::Relaxed);
        let seq = self.map.word32(FUTEX_SEQ);
        seq.store(v as u32, Ordering::Release);
        futex_wake(seq);
        Ok(())
    }

    /// Sleeps until the other side's next value.
    #[inline(always)]
    pub(crate) fn recv(&mut self) -> Result<u64> {
        let seq = self.map.word32(FUTEX_SEQ);
        loop {
            let s = seq.load(Ordering::Acquire);
            if s & 1 == self.want {
                return Ok(self.map.word(FUTEX_VALUE).load(Ordering::Relaxed));
            }
            if !futex_wait(seq, s, FUTEX_TICK) {
                self.watch.check()?;
            }
        }
    }
}

// The slot rings' shared file: counters on their own 128-byte lines, then the slots.
const TAIL: usize = 0;
const HEAD: usize = 128;
const CLOSED: usize = 256;
const DATA: usize = 4096;

/// Slots of a raw ring of `slot`-byte slots: 1 MiB of them (as zipc's ring), at least 32.
pub(crate) fn slot_count(slot: usize) -> usize {
    ((1usize << 20) / slot.max(1)).max(32).next_power_of_two()
}

/// Bytes of the shared file of a raw ring of `slot`-byte slots.
pub(crate) fn slot_ring_len(slot: usize) -> usize {
    DATA + slot_count(slot) * slot
}

/// Producer of a raw SPSC ring of fixed slots. 8-byte slots are u64 words stored whole;
/// larger ones are memcpy'd in. Each side caches the other's counter and reloads it only when
/// the cached one says full (empty).
pub(crate) struct SlotSender {
    map: SharedMap,
    slot: usize,
    mask: u64,
    tail: u64,
    cached_head: u64,
    watch: Watch,
}

impl SlotSender {
    /// Over a fresh (zeroed) ring file of [`slot_ring_len`]`(slot)` bytes.
    pub(crate) fn new(map: SharedMap, slot: usize, watch: Watch) -> SlotSender {
        SlotSender {
            map,
            slot,
            mask: slot_count(slot) as u64 - 1,
            tail: 0,
            cached_head: 0,
            watch,
        }
    }

    /// Copies `frame` (exactly one slot) into the next slot and publishes it.
    #[inline]
    pub(crate) fn send_frame(&mut self, frame: &[u8]) -> Result<()> {
        if frame.len() != self.slot {
            return Err(
                format!("frame of {} bytes in {}-byte slots", frame.len(), self.slot).into(),
            );
        }
        let slots = self.mask + 1;
        if self.tail.wrapping_sub(self.cached_head) >= slots {
            let head = self.map.word(HEAD);
            let tail = self.tail;
            let mut cached = self.cached_head;
            spin_until(self.watch, || {
                cached = head.load(Ordering::Acquire);
                tail.wrapping_sub(cached) < slots
            })?;
            self.cached_head = cached;
        }
        let i = (self.tail & self.mask) as usize;
        if self.slot == 8 {
            let mut word = [0u8; 8];
            word.copy_from_slice(frame);
            self.map
                .word(DATA + i * 8)
                .store(u64::from_le_bytes(word), Ordering::Relaxed);
        } else {
            // SAFETY: slot `i` lies inside the mapping (DATA + slots * slot bytes long); the
            // consumer released it (head moved past it) and reads it only after our Release
            // store of the tail below.
            unsafe {
                let dst = self.map.map.as_mut_ptr().add(DATA + i * self.slot);
                std::ptr::copy_nonoverlapping(frame.as_ptr(), dst, self.slot);
            }
        }
        self.tail += 1;
        self.map.word(TAIL).store(self.tail, Ordering::Release);
        Ok(())
    }

    /// Tells the consumer that nothing more comes.
    pub(crate) fn close(self) -> Result<()> {
        self.map.word(CLOSED).store(1, Ordering::Release);
        Ok(())
    }
}

/// Consumer of a raw SPSC ring of fixed slots; see [`SlotSender`].
pub(crate) struct SlotReceiver {
    map: SharedMap,
    slot: usize,
    mask: u64,
    head: u64,
    cached_tail: u64,
}

impl SlotReceiver {
    /// Over a ring file of [`slot_ring_len`]`(slot)` bytes.
    pub(crate) fn new(map: SharedMap, slot: usize) -> SlotReceiver {
        SlotReceiver {
            map,
            slot,
            mask: slot_count(slot) as u64 - 1,
            head: 0,
            cached_tail: 0,
        }
    }

    /// Copies the next frame into `dst` (exactly one slot); `false` once the sender closed
    /// and every frame was read.
    #[inline]
    pub(crate) fn recv_frame(&mut self, dst: &mut [u8]) -> Result<bool> {
        if dst.len() != self.slot {
            return Err(
                format!("buffer of {} bytes for {}-byte slots", dst.len(), self.slot).into(),
            );
        }
        if self.head == self.cached_tail {
            let tail = self.map.word(TAIL);
            let closed = self.map.word(CLOSED);
            let head = self.head;
            let mut cached = head;
            let mut done = false;
            spin_until(Watch::none(), || {
                cached = tail.load(Ordering::Acquire);
                if cached != head {
                    return true;
                }
                if closed.load(Ordering::Acquire) != 0 {
                    // Frames published before the close come first.
                    cached = tail.load(Ordering::Acquire);
                    done = cached == head;
                    return true;
                }
                false
            })?;
            if done {
                return Ok(false);
            }
            self.cached_tail = cached;
        }
        let i = (self.head & self.mask) as usize;
        if self.slot == 8 {
            let v = self.map.word(DATA + i * 8).load(Ordering::Relaxed);
            dst.copy_from_slice(&v.to_le_bytes());
        } else {
            // SAFETY: slot `i` lies inside the mapping; the producer published it with the
            // Release store of the tail we acquired and leaves it alone until we move the head.
            unsafe {
                let src = self.map.map.as_ptr().add(DATA + i * self.slot);
                std::ptr::copy_nonoverlapping(src, dst.as_mut_ptr(), self.slot);
            }
        }
        self.head += 1;
        self.map.word(HEAD).store(self.head, Ordering::Release);
        Ok(true)
    }
}

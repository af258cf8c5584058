//! FUTEX_WAIT / FUTEX_WAKE on a 32-bit word, not PRIVATE: the word lives in memory shared
//! between processes, so the kernel keys it by the mapping's inode and offset.
//!
//! Under loom there is no futex; a model of it (a condition variable over a wake generation)
//! keeps its one property that matters to the protocol: a waiter sleeps until a wake that comes
//! after it went to sleep, whatever the word does meanwhile. A lost wakeup then shows up as a
//! deadlock that loom reports.

use crate::sync::AtomicU32;
use std::time::Duration;

/// Sleeps while `*word == expected`, until woken or `timeout` passes. It may return early
/// (a signal, a spurious wake, the word already changed): callers recheck their condition.
#[cfg(not(loom))]
pub(crate) fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
    let ts = timeout.map(|d| libc::timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: libc::c_long::from(d.subsec_nanos() as i32),
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `word` is a live, aligned 32-bit atomic for the duration of the call; the kernel
    // only reads it. `ts_ptr` is null or points at `ts`, which outlives the call. The result is
    // ignored on purpose: EAGAIN, ETIMEDOUT and EINTR all mean "recheck", which callers do.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            ts_ptr,
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

/// Wakes every waiter sleeping on `word`.
#[cfg(not(loom))]
pub(crate) fn wake(word: &AtomicU32) {
    // SAFETY: `word` is a live, aligned 32-bit atomic; FUTEX_WAKE does not touch user memory.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            i32::MAX,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

#[cfg(loom)]
mod model {
    use loom::sync::{Condvar, Mutex};

    pub(super) struct Futex {
        pub(super) generation: Mutex<u64>,
        pub(super) cond: Condvar,
    }

    loom::lazy_static! {
        pub(super) static ref FUTEX: Futex = Futex { generation: Mutex::new(0), cond: Condvar::new() };
    }
}

/// Loom model of FUTEX_WAIT: the timeout is ignored, so that a lost wakeup is a deadlock.
#[cfg(loom)]
pub(crate) fn wait(word: &AtomicU32, expected: u32, _timeout: Option<Duration>) {
    use crate::sync::Ordering;
    let mut generation = model::FUTEX.generation.lock().unwrap();
    if word.load(Ordering::SeqCst) != expected {
        return;
    }
    let start = *generation;
    while *generation == start {
        generation = model::FUTEX.cond.wait(generation).unwrap();
    }
}

/// Loom model of FUTEX_WAKE.
#[cfg(loom)]
pub(crate) fn wake(_word: &AtomicU32) {
    *model::FUTEX.generation.lock().unwrap() += 1;
    model::FUTEX.cond.notify_all();
}

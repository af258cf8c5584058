//! An asymmetric memory barrier: a free one for the side that publishes on every message, a
//! costly one (membarrier) for the side about to sleep, which is rare.
//!
//! The wait protocol is Dekker's: the publisher stores its position then loads the waiter
//! flag; the sleeper stores the flag then loads the position. Each side needs a StoreLoad
//! barrier between the two, and on x86 a fence on every publish stalls until the publisher's
//! stores (cache lines the other core holds) complete — it costs more than the rest of a send.
//! `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)` lets the sleeper run that barrier on the
//! publisher's behalf: when it returns, every running thread of every registered process has
//! passed a full barrier, so the publisher needs only a compiler fence. A process that cannot
//! register keeps a real fence; a sleeper whose membarrier fails sleeps in short slices.
//!
//! Loom checks the protocol with a SeqCst fence on both sides, which is what membarrier stands
//! in for.

#[cfg(not(loom))]
mod imp {
    use crate::sync::{Ordering, compiler_fence, fence};
    use std::sync::OnceLock;

    static REGISTERED: OnceLock<bool> = OnceLock::new();

    fn membarrier(cmd: libc::c_int) -> bool {
        // SAFETY: membarrier takes two integers and touches no user memory.
        unsafe { libc::syscall(libc::SYS_membarrier, cmd, 0, 0) == 0 }
    }

    /// Registers this process for global expedited membarriers (once). Call before the first
    /// [`light`] barrier that a peer must be able to rely on.
    pub(crate) fn register() -> bool {
        *REGISTERED.get_or_init(|| membarrier(libc::MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED))
    }

    /// The publisher's barrier between its store and its load of the waiter flag.
    #[inline(always)]
    pub(crate) fn light() {
        if REGISTERED.get() == Some(&true) {
            compiler_fence(Ordering::SeqCst);
        } else {
            fence(Ordering::SeqCst);
        }
    }

    /// The sleeper's barrier between its store of the waiter flag and its load of the peer's
    /// position. `false` if the kernel refused: then only peers that fence are covered.
    pub(crate) fn heavy() -> bool {
        if membarrier(libc::MEMBARRIER_CMD_GLOBAL_EXPEDITED) {
            true
        } else {
            fence(Ordering::SeqCst);
            false
        }
    }
}

#[cfg(loom)]
mod imp {
    use crate::sync::{Ordering, fence};

    pub(crate) fn register() -> bool {
        true
    }

    pub(crate) fn light() {
        fence(Ordering::SeqCst);
    }

    pub(crate) fn heavy() -> bool {
        fence(Ordering::SeqCst);
        true
    }
}

pub(crate) use imp::{heavy, light, register};

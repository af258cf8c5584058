//! The one place atomics and `UnsafeCell` come from.
//!
//! Under `--cfg loom` these are loom's model-checked types; otherwise std's. `clippy.toml`
//! forbids the std types everywhere else, so no atomic escapes the model checker.

#[cfg(loom)]
pub(crate) use loom::cell::UnsafeCell;
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

#[cfg(not(loom))]
#[allow(clippy::disallowed_types)]
pub(crate) use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// A memory fence; the std one, re-exported here so that loom can replace it.
#[cfg(not(loom))]
#[inline(always)]
pub(crate) fn fence(order: Ordering) {
    #[allow(clippy::disallowed_methods)]
    std::sync::atomic::fence(order);
}

/// Whether a waiter spins before it sleeps. Loom cannot model a spin loop that never yields,
/// so under loom a waiter goes straight to the futex.
pub(crate) const SPIN_BEFORE_SLEEP: bool = !cfg!(loom);

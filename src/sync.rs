//! The one place atomics and `UnsafeCell` come from.
//!
//! Under `--cfg loom` these wrap loom's model-checked types; otherwise std's. `clippy.toml`
//! forbids the std types everywhere else, so no atomic escapes the model checker. The std
//! wrappers are `repr(transparent)`: in shared memory they have exactly the layout of the
//! integer they hold.

#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

#[cfg(loom)]
pub(crate) use loom::cell::UnsafeCell;
#[cfg(loom)]
use loom::sync::atomic as imp;
#[cfg(not(loom))]
use std::sync::atomic as imp;

pub(crate) use imp::Ordering;

/// A full or one-sided memory fence.
#[inline(always)]
pub(crate) fn fence(order: Ordering) {
    imp::fence(order);
}

/// A fence for the compiler only: no instruction, just no reordering across it.
#[cfg(not(loom))]
#[inline(always)]
pub(crate) fn compiler_fence(order: Ordering) {
    std::sync::atomic::compiler_fence(order);
}

/// Whether a waiter spins before it sleeps. Loom cannot model a spin loop that never yields,
/// so under loom a waiter goes straight to the futex.
pub(crate) const SPIN_BEFORE_SLEEP: bool = !cfg!(loom);

macro_rules! atomic {
    ($name:ident, $int:ty) => {
        #[doc = concat!("An `", stringify!($int), "` shared between threads or processes.")]
        #[repr(transparent)]
        pub(crate) struct $name(imp::$name);

        #[allow(dead_code)]
        impl $name {
            pub(crate) fn new(v: $int) -> Self {
                $name(imp::$name::new(v))
            }
            #[inline(always)]
            pub(crate) fn load(&self, order: Ordering) -> $int {
                self.0.load(order)
            }
            #[inline(always)]
            pub(crate) fn store(&self, v: $int, order: Ordering) {
                self.0.store(v, order)
            }
            #[inline(always)]
            pub(crate) fn fetch_add(&self, v: $int, order: Ordering) -> $int {
                self.0.fetch_add(v, order)
            }
            #[inline(always)]
            pub(crate) fn fetch_or(&self, v: $int, order: Ordering) -> $int {
                self.0.fetch_or(v, order)
            }
            #[inline(always)]
            pub(crate) fn fetch_and(&self, v: $int, order: Ordering) -> $int {
                self.0.fetch_and(v, order)
            }
            /// The address of the value, for syscalls that take it (futex).
            #[cfg(not(loom))]
            pub(crate) fn as_ptr(&self) -> *mut $int {
                self.0.as_ptr()
            }
        }
    };
}

atomic!(AtomicU32, u32);
atomic!(AtomicU64, u64);

#[cfg(not(loom))]
const _: () = {
    assert!(size_of::<AtomicU32>() == 4 && align_of::<AtomicU32>() == 4);
    assert!(size_of::<AtomicU64>() == 8 && align_of::<AtomicU64>() == 8);
};

//! The C API of zipc: `include/zipc.h` (generated from this crate by cbindgen) over
//! `libzipc.so` and `libzipc.a`. See `ffi/README.md`.
//!
//! In the manner of rustls-ffi: every export returns one [`zipc_result`] (or nothing) and
//! runs inside a panic boundary, so a panic is `ZIPC_PANIC` and never unwinds into C; every
//! pointer argument is checked for NULL; out-params are written only on success; the failure's
//! message is kept per thread for [`zipc_last_error_message`]. Handles are opaque boxes,
//! made by `_create`/`_open` and freed by `_close` (or the producer's `_close_checked`).
//!
//! Two calls that C makes apart, `zipc_recv` then `zipc_release` and `zipc_loan` then
//! `zipc_commit`, cannot share a Rust borrow of the handle. The received frame is kept queued
//! ([`zipc::bytes::Frame::keep`]) and freed by
//! [`zipc::bytes::Consumer::release_kept`]; the loan is dropped uncommitted, which leaves the
//! ring as it was, and taken again to commit it (checked to be the very bytes lent).

#![allow(non_camel_case_types)]

// The header lists the exports in the order of these modules.

/// The sending end.
mod producer;

/// The receiving end.
mod consumer;

/// How an end waits.
mod wait;

/// A worker's channels to its parent.
mod worker;

/// Results and their messages.
mod result;

pub use consumer::{
    zipc_consumer, zipc_consumer_close, zipc_consumer_max_frame_len, zipc_consumer_open,
    zipc_consumer_open_timeout, zipc_consumer_set_wait, zipc_recv, zipc_recv_copy, zipc_release,
};
pub use producer::{
    zipc_commit, zipc_loan, zipc_loan_timeout, zipc_producer, zipc_producer_close,
    zipc_producer_close_checked, zipc_producer_create, zipc_producer_is_connected,
    zipc_producer_max_frame_len, zipc_producer_set_linger, zipc_producer_set_wait,
    zipc_producer_wait_for_consumer, zipc_send,
};
pub use result::{ResultCode, zipc_last_error_message, zipc_result, zipc_result_name};
pub use wait::{WaitCode, zipc_wait};
pub use worker::zipc_worker_connect;

use result::Failure;
use std::ffi::{CStr, c_char};

/// The handle behind `p`.
///
/// # Safety
/// `p` is NULL or points at a live handle that no other thread uses meanwhile.
#[inline(always)]
unsafe fn handle<'a, T>(p: *mut T, null: &'static str) -> Result<&'a mut T, Failure> {
    // SAFETY: the caller's contract.
    unsafe { p.as_mut() }.ok_or_else(|| Failure::null(null))
}

/// An out-param, checked for NULL.
#[inline(always)]
fn out_arg<T>(p: *mut T, null: &'static str) -> Result<*mut T, Failure> {
    if p.is_null() {
        Err(Failure::null(null))
    } else {
        Ok(p)
    }
}

/// A channel name from C.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string that outlives the returned borrow.
unsafe fn name_arg<'a>(name: *const c_char) -> Result<&'a str, Failure> {
    if name.is_null() {
        return Err(Failure::null("name is NULL"));
    }
    // SAFETY: not NULL, and NUL-terminated (the caller's contract).
    let name = unsafe { CStr::from_ptr(name) };
    name.to_str().map_err(|_| {
        Failure::new(
            zipc_result::ZIPC_INVALID_ARGUMENT,
            format!("invalid segment name: {name:?} is not UTF-8"),
        )
    })
}

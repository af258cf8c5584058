//! The receiving end: open a named channel, then read frames in place (`zipc_recv`,
//! `zipc_release`) or copy them out (`zipc_recv_copy`).

use crate::result::{Failure, Timeout, boundary, boundary_void, zipc_result};
use crate::wait::{WaitCode, wait_arg};
use crate::{handle, name_arg, out_arg};
use std::ffi::{c_char, c_void};
use std::time::Duration;
use zipc::bytes::{Consumer, Frame};

/// The receiving end of a channel. Opaque; from `zipc_consumer_open`,
/// `zipc_consumer_open_timeout` (or `zipc_worker_connect`), freed by `zipc_consumer_close`.
///
/// A handle is used by one thread at a time (it may move between threads).
pub struct zipc_consumer {
    rx: Consumer,
    /// Whether `zipc_recv` handed out a frame (kept in the ring) not yet released.
    holding: bool,
}

impl zipc_consumer {
    pub(crate) fn new(rx: Consumer) -> zipc_consumer {
        zipc_consumer { rx, holding: false }
    }

    /// Frees the frame `zipc_recv` handed out, if it did: whether there was one.
    #[inline(always)]
    fn release(&mut self) -> bool {
        std::mem::take(&mut self.holding) && self.rx.release_kept()
    }

    #[inline(always)]
    fn next(&mut self, timeout: Timeout) -> zipc::Result<Frame<'_>> {
        // A frame handed out and not released by the caller is released now.
        self.release();
        match timeout {
            Timeout::Forever => self.rx.recv(),
            Timeout::Now => self.rx.try_recv(),
            Timeout::After(d) => self.rx.recv_timeout(d),
        }
    }
}

impl std::fmt::Debug for zipc_consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("zipc_consumer")
            .field("rx", &self.rx)
            .field("holding", &self.holding)
            .finish()
    }
}

/// Opens the named channel `name`, which a producer created with `zipc_producer_create`, and
/// returns its consumer in `*out`. Frames sent before the open are waiting. To wait for the
/// producer to create it, `zipc_consumer_open_timeout`.
///
/// Returns `ZIPC_INVALID_ARGUMENT` for a NULL pointer or a name zipc does not accept;
/// `ZIPC_NOT_FOUND` when no channel has that name; `ZIPC_EXISTS` when a live consumer has it
/// open already (once that one is closed or dead, a new one may open it); `ZIPC_CORRUPTED`
/// for a segment that is not a channel of this zipc version, or is garbled.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string; `out` is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn zipc_consumer_open(
    name: *const c_char,
    out: *mut *mut zipc_consumer,
) -> zipc_result {
    boundary("zipc_consumer_open", || {
        // SAFETY: the caller's contract.
        let name = unsafe { name_arg(name) }?;
        let out = out_arg(out, "out is NULL")?;
        let handle = Box::new(zipc_consumer::new(zipc::bytes::open(name)?));
        // SAFETY: `out` is not NULL, and the caller made it valid for a write.
        unsafe { out.write(Box::into_raw(handle)) };
        Ok(())
    })
}

/// As `zipc_consumer_open`, waiting for a producer to create the channel `name` when there is
/// none yet, so that the consumer may start before the producer. Every frame the producer sent
/// before is waiting (a producer that closed meanwhile waits for the consumer to attach: see
/// `zipc_producer_set_linger`).
///
/// `timeout_ns < 0`: wait as long as it takes; `0`: do not wait (as `zipc_consumer_open`);
/// `> 0`: wait at most that long.
///
/// Returns `ZIPC_NOT_FOUND` when no channel of that name appeared within the timeout;
/// otherwise as `zipc_consumer_open` does.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string; `out` is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn zipc_consumer_open_timeout(
    name: *const c_char,
    timeout_ns: i64,
    out: *mut *mut zipc_consumer,
) -> zipc_result {
    boundary("zipc_consumer_open_timeout", || {
        // SAFETY: the caller's contract.
        let name = unsafe { name_arg(name) }?;
        let out = out_arg(out, "out is NULL")?;
        let rx = match Timeout::from_ns(timeout_ns) {
            Timeout::Forever => zipc::bytes::open_timeout(name, Duration::MAX),
            Timeout::Now => zipc::bytes::open(name),
            Timeout::After(d) => zipc::bytes::open_timeout(name, d),
        }?;
        let handle = Box::new(zipc_consumer::new(rx));
        // SAFETY: `out` is not NULL, and the caller made it valid for a write.
        unsafe { out.write(Box::into_raw(handle)) };
        Ok(())
    })
}

/// Receives the next frame in place: `*out_data` points at its `*out_len` bytes in shared
/// memory (8-byte aligned; not NUL-terminated). They stay valid, and the frame stays queued,
/// until `zipc_release`, or the next `zipc_recv` or `zipc_recv_copy` on this consumer (which
/// release it first), or `zipc_consumer_close`.
///
/// `timeout_ns < 0`: wait for a frame as long as it takes; `0`: do not wait
/// (`ZIPC_WOULD_BLOCK` when none is there); `> 0`: wait at most that long (`ZIPC_TIMEOUT`).
///
/// Returns `ZIPC_DISCONNECTED` once the producer closed and every frame it sent was received;
/// `ZIPC_PEER_GONE` likewise when it died; `ZIPC_CORRUPTED` for a garbled ring.
///
/// # Safety
/// `c` is NULL or a live consumer; `out_data` and `out_len` are NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn zipc_recv(
    c: *mut zipc_consumer,
    out_data: *mut *const c_void,
    out_len: *mut usize,
    timeout_ns: i64,
) -> zipc_result {
    boundary("zipc_recv", || {
        // SAFETY: the caller's contract.
        let c = unsafe { handle(c, "c is NULL") }?;
        let out_data = out_arg(out_data, "out_data is NULL")?;
        let out_len = out_arg(out_len, "out_len is NULL")?;
        let frame = c.next(Timeout::from_ns(timeout_ns))?;
        let (ptr, len) = (frame.as_ptr(), frame.len());
        // Queued and in place until `zipc_release` frees it.
        frame.keep();
        c.holding = true;
        // SAFETY: both are not NULL, and the caller made them valid for a write.
        unsafe {
            out_data.write(ptr.cast());
            out_len.write(len);
        }
        Ok(())
    })
}

/// Frees the frame `zipc_recv` handed out; its bytes must not be read after.
///
/// Returns `ZIPC_INVALID_ARGUMENT` when no frame is held.
///
/// # Safety
/// `c` is NULL or a live consumer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn zipc_release(c: *mut zipc_consumer) -> zipc_result {
    boundary("zipc_release", || {
        // SAFETY: the caller's contract.
        let c = unsafe { handle(c, "c is NULL") }?;
        if c.release() {
            Ok(())
        } else {
            Err(Failure::new(
                zipc_result::ZIPC_INVALID_ARGUMENT,
                "no frame held: zipc_release follows a successful zipc_recv",
            ))
        }
    })
}

/// Receives the next frame by copying it into `buf` (room for `cap` bytes); `*out_len` is its
/// length. Waits as `zipc_recv` does, and releases a frame `zipc_recv` still holds first.
///
/// A frame longer than `cap` is not received: the call returns `ZIPC_TOO_LARGE`, writes the
/// length it needs to `*out_len` (the one exception to out-params written only on success),
/// and the frame stays queued for a call with a larger buffer. `buf` may be NULL when `cap`
/// is 0, to learn the next frame's length.
///
/// Otherwise returns as `zipc_recv` does.
///
/// # Safety
/// `c` is NULL or a live consumer; `buf` is NULL or valid for writes of `cap` bytes;
/// `out_len` is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn zipc_recv_copy(
    c: *mut zipc_consumer,
    buf: *mut c_void,
    cap: usize,
    out_len: *mut usize,
    timeout_ns: i64,
) -> zipc_result {
    boundary("zipc_recv_copy", || {
        // SAFETY: the caller's contract.
        let c = unsafe { handle(c, "c is NULL") }?;
        let out_len = out_arg(out_len, "out_len is NULL")?;
        if buf.is_null() && cap > 0 {
            return Err(Failure::null("buf is NULL and cap is not 0"));
        }
        let frame = c.next(Timeout::from_ns(timeout_ns))?;
        let len = frame.len();
        if len > cap {
            // Queued for the next receive, not held: `zipc_release` does not free it.
            frame.keep();
            // SAFETY: `out_len` is not NULL, and the caller made it valid for a write.
            unsafe { out_len.write(len) };
            return Err(Failure::new(
                zipc_result::ZIPC_TOO_LARGE,
                format!(
                    "the next frame, of {len} bytes, does not fit the buffer of {cap}: it \
                     stays queued"
                ),
            ));
        }
        // SAFETY: the frame's `len` bytes are readable; `buf` holds `cap >= len` writable
        // bytes (the caller's contract; not NULL unless `cap`, hence `len`, is 0, when
        // nothing is copied), and the caller's buffer is not the ring.
        unsafe {
            if len > 0 {
                std::ptr::copy_nonoverlapping(frame.as_ptr(), buf.cast::<u8>(), len);
            }
            out_len.write(len);
        }
        Ok(())
    })
}

/// The largest frame this consumer can receive (half the ring, less 8 bytes): a buffer this
/// large fits any frame for `zipc_recv_copy`. 0 for NULL.
///
/// # Safety
/// `c` is NULL or a live consumer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn zipc_consumer_max_frame_len(c: *const zipc_consumer) -> usize {
    let mut max = 0;
    boundary_void("zipc_consumer_max_frame_len", || {
        // SAFETY: the caller's contract.
        if let Some(c) = unsafe { c.as_ref() } {
            max = c.rx.max_frame_len();
        }
    });
    max
}

/// How this consumer waits for frames (default `ZIPC_WAIT_ADAPTIVE`).
///
/// Returns `ZIPC_INVALID_ARGUMENT` for NULL or a value that is not a `zipc_wait`.
///
/// # Safety
/// `c` is NULL or a live consumer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn zipc_consumer_set_wait(
    c: *mut zipc_consumer,
    wait: WaitCode,
) -> zipc_result {
    boundary("zipc_consumer_set_wait", || {
        // SAFETY: the caller's contract.
        let c = unsafe { handle(c, "c is NULL") }?;
        c.rx.set_wait(wait_arg(wait)?);
        Ok(())
    })
}

/// Closes the channel's receiving end and frees the handle; the producer gets
/// `ZIPC_DISCONNECTED`. A frame still held is not released: a consumer that opens the channel
/// next receives it again. NULL is a no-op.
///
/// # Safety
/// `c` is NULL or a live consumer, not used again.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn zipc_consumer_close(c: *mut zipc_consumer) {
    boundary_void("zipc_consumer_close", || {
        if !c.is_null() {
            // SAFETY: a live consumer came from Box::into_raw, and the caller gives it up.
            drop(unsafe { Box::from_raw(c) });
        }
    });
}

//! The sending end: create a named channel, then copy frames in (`zipc_send`) or write them
//! in place (`zipc_loan`, `zipc_commit`).

use crate::result::{Failure, Outcome, Timeout, boundary, boundary_void, zipc_result};
use crate::wait::{WaitCode, wait_arg};
use crate::{handle, name_arg, out_arg};
use std::ffi::{c_char, c_void};
use std::os::fd::OwnedFd;
use std::time::Duration;
use zipc::bytes::{Loan, Producer};

/// The sending end of a channel. Opaque; from `zipc_producer_create` (or
/// `zipc_worker_connect`), freed by `zipc_producer_close` or `zipc_producer_close_checked`.
///
/// A handle is used by one thread at a time (it may move between threads).
pub struct zipc_producer {
    tx: Producer,
    /// What `zipc_loan` lent and `zipc_commit` has not committed yet.
    loan: Option<Lent>,
    /// A worker's control socket, held as long as its producer to the parent: the parent takes
    /// its hang-up for the worker's death.
    _control: Option<OwnedFd>,
}

/// Bytes lent by `zipc_loan`: where they are, and how many.
#[derive(Clone, Copy, Debug)]
struct Lent {
    ptr: *mut u8,
    len: usize,
}

impl zipc_producer {
    pub(crate) fn new(tx: Producer, control: Option<OwnedFd>) -> zipc_producer {
        zipc_producer {
            tx,
            loan: None,
            _control: control,
        }
    }

    #[inline]
    fn loan_for(&mut self, len: usize, timeout: Timeout) -> zipc::Result<Loan<'_>> {
        match timeout {
            Timeout::Forever => self.tx.loan(len),
            Timeout::Now => self.tx.try_loan(len),
            Timeout::After(d) => self.tx.loan_timeout(len, d),
        }
    }

    fn lend(&mut self, len: usize, timeout: Timeout) -> Result<*mut u8, Failure> {
        self.loan = None;
        // The loan ends with this statement, uncommitted, which leaves the ring as it was:
        // `commit` loans the same bytes again.
        let ptr = self.loan_for(len, timeout)?.as_mut_ptr();
        self.loan = Some(Lent { ptr, len });
        Ok(ptr)
    }

    fn commit(&mut self, len: usize) -> Outcome {
        let lent = self.loan.ok_or_else(|| {
            Failure::new(
                zipc_result::ZIPC_INVALID_ARGUMENT,
                "no loan to commit: zipc_commit follows a successful zipc_loan",
            )
        })?;
        if len > lent.len {
            return Err(Failure::new(
                zipc_result::ZIPC_INVALID_ARGUMENT,
                format!(
                    "commit of {len} bytes, {} loaned (the loan is kept)",
                    lent.len
                ),
            ));
        }
        self.loan = None;
        let mut loan = self.tx.try_loan(lent.len)?;
        if loan.as_mut_ptr() != lent.ptr {
            return Err(Failure::new(
                zipc_result::ZIPC_CORRUPTED,
                "the ring moved under the loan: nothing was sent",
            ));
        }
        loan.commit_len(len).map_err(|(_, e)| e)?;
        Ok(())
    }
}

impl std::fmt::Debug for zipc_producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("zipc_producer")
            .field("tx", &self.tx)
            .field("loan", &self.loan)
            .finish_non_exhaustive()
    }
}

/// Creates the named channel `name` (the shared-memory object `/dev/shm/zipc.NAME`, mode
/// 0600) and returns its producer in `*out`. Another process opens it with
/// `zipc_consumer_open` or `zipc_consumer_open_timeout`, before or after the frames are sent.
/// The name is removed when the producer is closed (which waits a while for a consumer to
/// take the frames: see `zipc_producer_set_linger`).
///
/// `capacity` is the ring's size in bytes, rounded up to a power of two and to at least
/// 4096; a frame may carry up to half of it, less 8 bytes.
///
/// Returns `ZIPC_INVALID_ARGUMENT` for a NULL pointer, a capacity of 0 or over 1 TiB, or a
/// name zipc does not accept; `ZIPC_EXISTS` when a live producer holds the name (a stale one,
/// whose producer died, is replaced); `ZIPC_IO` when `/dev/shm` is full.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string; `out` is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn zipc_producer_create(
    name: *const c_char,
    capacity: usize,
    out: *mut *mut zipc_producer,
) -> zipc_result {
    boundary("zipc_producer_create", || {
        // SAFETY: the caller's contract.
        let name = unsafe { name_arg(name) }?;
        let out = out_arg(out, "out is NULL")?;
        let config = zipc::Config::default().capacity(capacity);
        let handle = Box::new(zipc_producer::new(zipc::bytes::create(name, config)?, None));
        // SAFETY: `out` is not NULL, and the caller made it valid for a write.
        unsafe { out.write(Box::into_raw(handle)) };
        Ok(())
    })
}

/// Copies `len` bytes at `data` into the channel as one frame. `data` may be NULL when `len`
/// is 0 (an empty frame).
///
/// `timeout_ns < 0`: wait for space as long as it takes; `0`: do not wait
/// (`ZIPC_WOULD_BLOCK` when the ring is full); `> 0`: wait at most that long
/// (`ZIPC_TIMEOUT`).
///
/// A loan not yet committed is abandoned (nothing of it is sent).
///
/// Returns `ZIPC_TOO_LARGE` beyond `zipc_producer_max_frame_len`; `ZIPC_DISCONNECTED` when
/// the consumer closed its end, `ZIPC_PEER_GONE` when it died; `ZIPC_CORRUPTED` when the
/// consumer garbled the ring.
///
/// # Safety
/// `p` is NULL or a live producer; `data` is NULL or valid for reads of `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn zipc_send(
    p: *mut zipc_producer,
    data: *const c_void,
    len: usize,
    timeout_ns: i64,
) -> zipc_result {
    boundary("zipc_send", || {
        // SAFETY: the caller's contract.
        let p = unsafe { handle(p, "p is NULL") }?;
        p.loan = None;
        let data: &[u8] = match (data.is_null(), len) {
            (_, 0) => &[],
            (true, _) => return Err(Failure::null("data is NULL and len is not 0")),
            // SAFETY: `data` is not NULL and valid for reads of `len` bytes (the caller's
            // contract), which no allocation makes larger than isize::MAX.
            (false, _) => unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) },
        };
        match Timeout::from_ns(timeout_ns) {
            Timeout::Forever => p.tx.send(data),
            Timeout::Now => p.tx.try_send(data),
            Timeout::After(d) => p.tx.send_timeout(data, d),
        }?;
        Ok(())
    })
}

/// Lends `len` bytes of the ring, at `*out_buf` (8-byte aligned), to write a frame in place,
/// waiting for space as long as it takes. `zipc_commit` sends them; a loan that is never
/// committed sends nothing. The bytes stay lent until `zipc_commit`, the next `zipc_loan` or
/// `zipc_send` (which abandon it), or `zipc_producer_close`.
///
/// Returns as `zipc_send` does.
///
/// # Safety
/// `p` is NULL or a live producer; `out_buf` is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn zipc_loan(
    p: *mut zipc_producer,
    len: usize,
    out_buf: *mut *mut c_void,
) -> zipc_result {
    // SAFETY: the same contract.
    unsafe { loan("zipc_loan", p, len, -1, out_buf) }
}

/// As `zipc_loan`, with a timeout as `zipc_send` takes it: `< 0` waits as long as it takes,
/// `0` does not wait (`ZIPC_WOULD_BLOCK`), `> 0` waits at most that long (`ZIPC_TIMEOUT`).
///
/// # Safety
/// As for `zipc_loan`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn zipc_loan_timeout(
    p: *mut zipc_producer,
    len: usize,
    timeout_ns: i64,
    out_buf: *mut *mut c_void,
) -> zipc_result {
    // SAFETY: the same contract.
    unsafe { loan("zipc_loan_timeout", p, len, timeout_ns, out_buf) }
}

/// # Safety
/// As for `zipc_loan`.
#[inline(always)]
unsafe fn loan(
    func: &'static str,
    p: *mut zipc_producer,
    len: usize,
    timeout_ns: i64,
    out_buf: *mut *mut c_void,
) -> zipc_result {
    boundary(func, || {
        // SAFETY: the caller's contract.
        let p = unsafe { handle(p, "p is NULL") }?;
        let out_buf = out_arg(out_buf, "out_buf is NULL")?;
        let ptr = p.lend(len, Timeout::from_ns(timeout_ns))?;
        // SAFETY: `out_buf` is not NULL, and the caller made it valid for a write.
        unsafe { out_buf.write(ptr.cast()) };
        Ok(())
    })
}

/// Sends the first `len` bytes of the current loan as one frame (`len` may be less than was
/// loaned). Never waits.
///
/// Returns `ZIPC_INVALID_ARGUMENT` when there is no loan, or when `len` is more than was
/// loaned (the loan is kept: commit again); `ZIPC_DISCONNECTED` or `ZIPC_PEER_GONE` when the
/// consumer closed or died since the loan (nothing is sent).
///
/// # Safety
/// `p` is NULL or a live producer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn zipc_commit(p: *mut zipc_producer, len: usize) -> zipc_result {
    boundary("zipc_commit", || {
        // SAFETY: the caller's contract.
        unsafe { handle(p, "p is NULL") }?.commit(len)
    })
}

/// The largest frame this producer sends (half the ring, less 8 bytes); 0 for NULL.
///
/// # Safety
/// `p` is NULL or a live producer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn zipc_producer_max_frame_len(p: *const zipc_producer) -> usize {
    let mut max = 0;
    boundary_void("zipc_producer_max_frame_len", || {
        // SAFETY: the caller's contract.
        if let Some(p) = unsafe { p.as_ref() } {
            max = p.tx.max_frame_len();
        }
    });
    max
}

/// How this producer waits for space (default `ZIPC_WAIT_ADAPTIVE`).
///
/// Returns `ZIPC_INVALID_ARGUMENT` for NULL or a value that is not a `zipc_wait`.
///
/// # Safety
/// `p` is NULL or a live producer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn zipc_producer_set_wait(
    p: *mut zipc_producer,
    wait: WaitCode,
) -> zipc_result {
    boundary("zipc_producer_set_wait", || {
        // SAFETY: the caller's contract.
        let p = unsafe { handle(p, "p is NULL") }?;
        p.tx.set_wait(wait_arg(wait)?);
        Ok(())
    })
}

/// Whether a consumer is attached now (it has not closed, and its process lives): `*out` is
/// true or false. Never waits; `zipc_producer_wait_for_consumer` waits.
///
/// Returns `ZIPC_INVALID_ARGUMENT` for a NULL pointer.
///
/// # Safety
/// `p` is NULL or a live producer; `out` is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn zipc_producer_is_connected(
    p: *const zipc_producer,
    out: *mut bool,
) -> zipc_result {
    boundary("zipc_producer_is_connected", || {
        // SAFETY: the caller's contract.
        let p = unsafe { p.as_ref() }.ok_or_else(|| Failure::null("p is NULL"))?;
        let out = out_arg(out, "out is NULL")?;
        let connected = p.tx.is_connected();
        // SAFETY: `out` is not NULL, and the caller made it valid for a write.
        unsafe { out.write(connected) };
        Ok(())
    })
}

/// Waits for a consumer to attach to this producer's channel; returns at once when one is
/// attached.
///
/// `timeout_ns < 0`: wait as long as it takes; `0`: do not wait (`ZIPC_WOULD_BLOCK` when no
/// consumer is attached); `> 0`: wait at most that long (`ZIPC_TIMEOUT`).
///
/// Returns `ZIPC_INVALID_ARGUMENT` for a NULL pointer.
///
/// # Safety
/// `p` is NULL or a live producer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn zipc_producer_wait_for_consumer(
    p: *mut zipc_producer,
    timeout_ns: i64,
) -> zipc_result {
    boundary("zipc_producer_wait_for_consumer", || {
        // SAFETY: the caller's contract.
        let p = unsafe { handle(p, "p is NULL") }?;
        match Timeout::from_ns(timeout_ns) {
            Timeout::Now if p.tx.is_connected() => Ok(()),
            Timeout::Now => Err(Failure::new(
                zipc_result::ZIPC_WOULD_BLOCK,
                "no consumer is attached to the channel",
            )),
            Timeout::Forever => Ok(p.tx.wait_for_consumer(Duration::MAX)?),
            Timeout::After(d) => Ok(p.tx.wait_for_consumer(d)?),
        }
    })
}

/// Sets how long closing this producer (`zipc_producer_close` or
/// `zipc_producer_close_checked`) waits for a consumer to attach while the channel holds
/// frames no live consumer took. Until then the name and the frames stay, so that a consumer
/// that starts late (`zipc_consumer_open_timeout`) still receives every frame. The default is
/// 5 s; only a named channel waits (a worker's channels never do).
///
/// `linger_ns < 0`: wait as long as it takes; `0`: do not wait (the frames no consumer took
/// are dropped with the name); `> 0`: wait at most that long.
///
/// Returns `ZIPC_INVALID_ARGUMENT` for a NULL pointer.
///
/// # Safety
/// `p` is NULL or a live producer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn zipc_producer_set_linger(
    p: *mut zipc_producer,
    linger_ns: i64,
) -> zipc_result {
    boundary("zipc_producer_set_linger", || {
        // SAFETY: the caller's contract.
        let p = unsafe { handle(p, "p is NULL") }?;
        p.tx.set_linger(match Timeout::from_ns(linger_ns) {
            Timeout::Forever => Duration::MAX,
            Timeout::Now => Duration::ZERO,
            Timeout::After(d) => d,
        });
        Ok(())
    })
}

/// Closes the channel's sending end and frees the handle. Every frame sent stays readable; the
/// consumer gets `ZIPC_DISCONNECTED` after the last. A named channel's name is removed.
///
/// While the channel holds frames no live consumer took, the close first waits, up to the
/// linger time (`zipc_producer_set_linger`, 5 s by default), for a consumer to attach; the
/// name and the frames stay until then. `zipc_producer_close_checked` does the same and says
/// whether any frame went undelivered. NULL is a no-op.
///
/// # Safety
/// `p` is NULL or a live producer, not used again.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn zipc_producer_close(p: *mut zipc_producer) {
    boundary_void("zipc_producer_close", || {
        if !p.is_null() {
            // SAFETY: a live producer came from Box::into_raw, and the caller gives it up.
            drop(unsafe { Box::from_raw(p) });
        }
    });
}

/// Closes the channel's sending end and frees the handle, as `zipc_producer_close` does
/// (lingering the same way), and says whether every frame reached a consumer. The handle is
/// freed whatever the result (except for a NULL `p`): it is not used again.
///
/// Returns `ZIPC_OK` when no frame was left undelivered: a live consumer took them (or is
/// attached and holds them), or there were none; `*out_undelivered` is then 0.
/// `ZIPC_UNDELIVERED` when the linger time ran out with frames no consumer took (none
/// attached, or the one attached closed or died): `*out_undelivered` is their count (the
/// second exception to out-params written only on success). `ZIPC_CORRUPTED` when the
/// consumer garbled its position, so that there is no count. `ZIPC_INVALID_ARGUMENT` for a
/// NULL `p`. `out_undelivered` may be NULL.
///
/// # Safety
/// `p` is NULL or a live producer, not used again; `out_undelivered` is NULL or valid for a
/// write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn zipc_producer_close_checked(
    p: *mut zipc_producer,
    out_undelivered: *mut u64,
) -> zipc_result {
    boundary("zipc_producer_close_checked", || {
        if p.is_null() {
            return Err(Failure::null("p is NULL"));
        }
        // SAFETY: a live producer came from Box::into_raw, and the caller gives it up.
        let owned = unsafe { Box::from_raw(p) };
        let zipc_producer {
            tx,
            _control: control,
            ..
        } = *owned;
        // A worker's control socket stays open until the close is done.
        let (undelivered, outcome) = match tx.close() {
            Ok(()) => (Some(0), Ok(())),
            Err(e @ zipc::Error::Undelivered { frames, .. }) => (Some(frames), Err(e.into())),
            Err(e) => (None, Err(e.into())),
        };
        drop(control);
        if let (Some(count), false) = (undelivered, out_undelivered.is_null()) {
            // SAFETY: not NULL, and the caller made it valid for a write.
            unsafe { out_undelivered.write(count) };
        }
        outcome
    })
}

//! The one result enum, the thread-local message of the last failure, and the panic boundary
//! every export runs in.

use std::borrow::Cow;
use std::cell::RefCell;
use std::ffi::{CStr, CString, c_char, c_uint};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

/// What a zipc call did. Every fallible function returns one; `ZIPC_OK` is 0.
///
/// How `zipc::Error` (the Rust API's error) maps onto it:
///
/// | zipc::Error                 | zipc_result             |
/// |-----------------------------|-------------------------|
/// | Timeout                     | ZIPC_TIMEOUT            |
/// | WouldBlock                  | ZIPC_WOULD_BLOCK        |
/// | PeerGone                    | ZIPC_PEER_GONE          |
/// | Disconnected                | ZIPC_DISCONNECTED       |
/// | TooLarge                    | ZIPC_TOO_LARGE          |
/// | Corrupted, Incompatible     | ZIPC_CORRUPTED          |
/// | InvalidArgument, InvalidName| ZIPC_INVALID_ARGUMENT   |
/// | Exists, Busy                | ZIPC_EXISTS             |
/// | NotFound                    | ZIPC_NOT_FOUND          |
/// | NoSpace, Io                 | ZIPC_IO                 |
/// | Undelivered                 | ZIPC_UNDELIVERED        |
///
/// `zipc_last_error_message()` tells which, and why, in words.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum zipc_result {
    /// Success.
    ZIPC_OK = 0,
    /// A call with a positive timeout ran out of time.
    ZIPC_TIMEOUT,
    /// A call with a timeout of 0 found the ring full (send, loan) or empty (receive).
    ZIPC_WOULD_BLOCK,
    /// The peer process died without closing its end. Everything it had committed was
    /// received first.
    ZIPC_PEER_GONE,
    /// The peer closed its end. Everything it had sent was received first.
    ZIPC_DISCONNECTED,
    /// A frame larger than the channel carries (half its capacity, less 8 bytes), or larger
    /// than the buffer given to `zipc_recv_copy`.
    ZIPC_TOO_LARGE,
    /// Shared memory holds what the protocol forbids (a garbled header, position or frame),
    /// or a segment made by an incompatible zipc or for another kind of channel. Nothing was
    /// read or written outside the segment.
    ZIPC_CORRUPTED,
    /// A NULL pointer, a capacity out of range, a name zipc does not accept (empty, longer
    /// than 200 bytes, not UTF-8, or with characters other than ASCII letters, digits, `.`,
    /// `-` and `_`), a call out of turn (`zipc_commit` with no loan, `zipc_release` with no
    /// frame held), or `zipc_worker_connect` in a process no zipc parent started.
    ZIPC_INVALID_ARGUMENT,
    /// A live producer holds that name, or a live consumer already holds that end.
    ZIPC_EXISTS,
    /// No channel of that name exists.
    ZIPC_NOT_FOUND,
    /// An operating-system error, including a full `/dev/shm`.
    ZIPC_IO,
    /// zipc panicked (a bug): the panic was caught at the boundary and did not unwind into
    /// the caller. The handle may be left in any state but is still safe to close.
    ZIPC_PANIC,
    /// `zipc_producer_close_checked` waited the linger time (`zipc_producer_set_linger`) and
    /// no consumer took some of the frames: their count is in its `*out_undelivered`.
    ZIPC_UNDELIVERED,
}

use zipc_result::*;

/// A result as it crosses in from C, as a plain integer: an argument outside the enum's values
/// is not undefined behaviour. `cbindgen.toml` prints it as `zipc_result` (the same ABI).
pub type ResultCode = c_uint;

/// Why a call failed: its result and a message (formatted only when asked for).
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) result: zipc_result,
    pub(crate) message: Cow<'static, str>,
}

impl Failure {
    pub(crate) fn new(result: zipc_result, message: impl Into<Cow<'static, str>>) -> Failure {
        Failure {
            result,
            message: message.into(),
        }
    }

    /// A NULL where a pointer is required.
    pub(crate) fn null(what: &'static str) -> Failure {
        Failure::new(ZIPC_INVALID_ARGUMENT, what)
    }
}

impl From<zipc::Error> for Failure {
    #[cold]
    fn from(e: zipc::Error) -> Failure {
        use zipc::Error as E;
        let result = match &e {
            E::Timeout => ZIPC_TIMEOUT,
            E::WouldBlock => ZIPC_WOULD_BLOCK,
            E::PeerGone => ZIPC_PEER_GONE,
            E::Disconnected => ZIPC_DISCONNECTED,
            E::TooLarge { .. } => ZIPC_TOO_LARGE,
            E::Corrupted(_) | E::Incompatible(_) => ZIPC_CORRUPTED,
            E::InvalidArgument(_) | E::InvalidName(_) => ZIPC_INVALID_ARGUMENT,
            E::Exists(_) | E::Busy(_) => ZIPC_EXISTS,
            E::NotFound(_) => ZIPC_NOT_FOUND,
            E::Undelivered { .. } => ZIPC_UNDELIVERED,
            E::NoSpace { .. } | E::Io(_) => ZIPC_IO,
            // `zipc::Error` is non-exhaustive: a variant added later is an I/O error here
            // until it gets a result of its own (the test `every_error_maps` lists them all).
            _ => ZIPC_IO,
        };
        // The frequent ones (a poll that found nothing) cost no allocation.
        let message = match e {
            E::Timeout => Cow::Borrowed("timed out"),
            E::WouldBlock => Cow::Borrowed("the operation would block"),
            E::PeerGone => Cow::Borrowed("the peer process died"),
            E::Disconnected => Cow::Borrowed("the peer closed the channel"),
            other => Cow::Owned(other.to_string()),
        };
        Failure { result, message }
    }
}

pub(crate) type Outcome = Result<(), Failure>;

/// The last failure on this thread, and its text once asked for.
struct LastError {
    /// Which export failed, and why; `None` once formatted into `text`.
    pending: Option<(&'static str, Failure)>,
    /// What `zipc_last_error_message` returns, once there is something.
    text: Option<CString>,
}

thread_local! {
    static LAST_ERROR: RefCell<LastError> = const {
        RefCell::new(LastError { pending: None, text: None })
    };
}

#[cold]
#[inline(never)]
fn record(func: &'static str, failure: Failure) {
    // During thread teardown the slot may be gone: the message is lost, the result is not.
    let _ = LAST_ERROR.try_with(|last| {
        if let Ok(mut last) = last.try_borrow_mut() {
            last.pending = Some((func, failure));
        }
    });
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic without a message")
}

/// Runs an export's body: `Ok` is `ZIPC_OK`; a failure records its message for
/// `zipc_last_error_message` and returns its result; a panic stops here and is `ZIPC_PANIC`.
#[inline(always)]
pub(crate) fn boundary(func: &'static str, body: impl FnOnce() -> Outcome) -> zipc_result {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => ZIPC_OK,
        Ok(Err(failure)) => {
            let result = failure.result;
            record(func, failure);
            result
        }
        Err(payload) => caught(func, payload),
    }
}

#[cold]
#[inline(never)]
fn caught(func: &'static str, payload: Box<dyn std::any::Any + Send>) -> zipc_result {
    let text = format!("panicked: {}", panic_text(&*payload));
    // A payload whose drop panics too must not unwind from here either.
    let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
    record(func, Failure::new(ZIPC_PANIC, text));
    ZIPC_PANIC
}

/// Runs a `void` export's body (the closes): a panic stops here, recorded like any other.
pub(crate) fn boundary_void(func: &'static str, body: impl FnOnce()) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(body)) {
        caught(func, payload);
    }
}

/// How long a blocking call may wait, from a C `timeout_ns`.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Timeout {
    /// `timeout_ns < 0`.
    Forever,
    /// `timeout_ns == 0`.
    Now,
    /// `timeout_ns > 0`.
    After(Duration),
}

impl Timeout {
    #[inline]
    pub(crate) fn from_ns(ns: i64) -> Timeout {
        match u64::try_from(ns) {
            Err(_) => Timeout::Forever,
            Ok(0) => Timeout::Now,
            Ok(ns) => Timeout::After(Duration::from_nanos(ns)),
        }
    }
}

/// The message of the last call on this thread that failed: which function, and why, in
/// words (for example `zipc_consumer_open: a segment named "orders" was not found`). An empty string when
/// no call on this thread has failed yet.
///
/// The string belongs to zipc: it stays valid until the next failing zipc call on this
/// thread. Successful calls leave it as it was.
#[unsafe(no_mangle)]
pub extern "C" fn zipc_last_error_message() -> *const c_char {
    const EMPTY: &CStr = c"";
    let text = catch_unwind(|| {
        LAST_ERROR
            .try_with(|last| {
                let mut last = last.try_borrow_mut().ok()?;
                if let Some((func, failure)) = last.pending.take() {
                    let mut text = format!("{func}: {}", failure.message).into_bytes();
                    text.retain(|&b| b != 0);
                    last.text = CString::new(text).ok();
                }
                last.text.as_deref().map(CStr::as_ptr)
            })
            .ok()
            .flatten()
    });
    match text {
        Ok(Some(ptr)) => ptr,
        _ => EMPTY.as_ptr(),
    }
}

/// The name of a result as a static string, such as `"ZIPC_PEER_GONE"`;
/// `"ZIPC_UNKNOWN"` for a value that is none of them.
#[unsafe(no_mangle)]
pub extern "C" fn zipc_result_name(r: ResultCode) -> *const c_char {
    const NAMES: [&CStr; 13] = [
        c"ZIPC_OK",
        c"ZIPC_TIMEOUT",
        c"ZIPC_WOULD_BLOCK",
        c"ZIPC_PEER_GONE",
        c"ZIPC_DISCONNECTED",
        c"ZIPC_TOO_LARGE",
        c"ZIPC_CORRUPTED",
        c"ZIPC_INVALID_ARGUMENT",
        c"ZIPC_EXISTS",
        c"ZIPC_NOT_FOUND",
        c"ZIPC_IO",
        c"ZIPC_PANIC",
        c"ZIPC_UNDELIVERED",
    ];
    const _: () = assert!(NAMES.len() == ZIPC_UNDELIVERED as usize + 1);
    NAMES
        .get(r as usize)
        .copied()
        .unwrap_or(c"ZIPC_UNKNOWN")
        .as_ptr()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn last_message() -> String {
        // SAFETY: zipc_last_error_message returns a NUL-terminated string that lives until the
        // next failing call on this thread; it is copied out at once.
        unsafe { CStr::from_ptr(zipc_last_error_message()) }
            .to_str()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn a_panic_stops_at_the_boundary() {
        let r = boundary("zipc_test", || panic!("on purpose"));
        assert_eq!(r, ZIPC_PANIC);
        assert_eq!(last_message(), "zipc_test: panicked: on purpose");
        boundary_void("zipc_test_void", || panic!("{}", String::from("again")));
        assert_eq!(last_message(), "zipc_test_void: panicked: again");
    }

    #[test]
    fn a_failure_is_recorded_and_a_success_leaves_it() {
        let r = boundary("zipc_a", || Err(zipc::Error::NotFound("x".into()).into()));
        assert_eq!(r, ZIPC_NOT_FOUND);
        assert_eq!(boundary("zipc_b", || Ok(())), ZIPC_OK);
        let first = zipc_last_error_message();
        assert_eq!(last_message(), "zipc_a: x was not found");
        assert_eq!(
            first,
            zipc_last_error_message(),
            "asking again keeps the pointer"
        );
    }

    #[test]
    fn every_error_maps() {
        use zipc::Error as E;
        let cases = [
            (E::Timeout, ZIPC_TIMEOUT),
            (E::WouldBlock, ZIPC_WOULD_BLOCK),
            (E::PeerGone, ZIPC_PEER_GONE),
            (E::Disconnected, ZIPC_DISCONNECTED),
            (E::TooLarge { len: 2, max: 1 }, ZIPC_TOO_LARGE),
            (E::Corrupted("c".into()), ZIPC_CORRUPTED),
            (E::Incompatible("i".into()), ZIPC_CORRUPTED),
            (E::InvalidArgument("a".into()), ZIPC_INVALID_ARGUMENT),
            (E::InvalidName("n".into()), ZIPC_INVALID_ARGUMENT),
            (E::Exists("e".into()), ZIPC_EXISTS),
            (E::Busy("b".into()), ZIPC_EXISTS),
            (E::NotFound("f".into()), ZIPC_NOT_FOUND),
            (E::NoSpace { needed: 1 }, ZIPC_IO),
            (E::Io(std::io::Error::other("o")), ZIPC_IO),
            (
                E::Undelivered {
                    frames: 3,
                    linger: Duration::from_millis(20),
                },
                ZIPC_UNDELIVERED,
            ),
        ];
        for (e, want) in cases {
            let text = e.to_string();
            let f = Failure::from(e);
            assert_eq!(f.result, want, "{text}");
            assert_eq!(f.message, text);
        }
    }

    #[test]
    fn names() {
        let name = |r| {
            // SAFETY: zipc_result_name returns static NUL-terminated strings.
            let name = unsafe { CStr::from_ptr(zipc_result_name(r)) };
            name.to_str().unwrap()
        };
        assert_eq!(name(ZIPC_OK as ResultCode), "ZIPC_OK");
        assert_eq!(name(ZIPC_PEER_GONE as ResultCode), "ZIPC_PEER_GONE");
        assert_eq!(name(ZIPC_PANIC as ResultCode), "ZIPC_PANIC");
        assert_eq!(name(ZIPC_UNDELIVERED as ResultCode), "ZIPC_UNDELIVERED");
        assert_eq!(name(13), "ZIPC_UNKNOWN");
        assert_eq!(name(ResultCode::MAX), "ZIPC_UNKNOWN");
    }

    #[test]
    fn timeouts() {
        assert!(matches!(Timeout::from_ns(-1), Timeout::Forever));
        assert!(matches!(Timeout::from_ns(i64::MIN), Timeout::Forever));
        assert!(matches!(Timeout::from_ns(0), Timeout::Now));
        assert!(matches!(Timeout::from_ns(5), Timeout::After(d) if d == Duration::from_nanos(5)));
    }
}

//! How an end waits: `zipc_wait`, for `zipc_producer_set_wait` and `zipc_consumer_set_wait`.

use crate::result::{Failure, zipc_result};
use std::ffi::c_uint;
use zipc::Wait;

/// How an end waits when it must (the ring is empty for a consumer, full for a producer).
/// Each end chooses for itself.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum zipc_wait {
    /// Spin a few microseconds (no syscall), then sleep on a futex. The default.
    ZIPC_WAIT_ADAPTIVE = 0,
    /// Never sleep: poll until the frame (or the space) comes. Lowest latency; a core busy.
    ZIPC_WAIT_SPIN,
    /// Sleep on the futex at once, without spinning. Least CPU.
    ZIPC_WAIT_SLEEP,
}

/// A `zipc_wait` as it crosses in from C: a plain integer, so that a value outside the enum
/// is an error, not undefined behaviour. `cbindgen.toml` prints it as `zipc_wait`.
pub type WaitCode = c_uint;

/// The `Wait` a C caller asked for.
pub(crate) fn wait_arg(code: WaitCode) -> Result<Wait, Failure> {
    const ADAPTIVE: WaitCode = zipc_wait::ZIPC_WAIT_ADAPTIVE as WaitCode;
    const SPIN: WaitCode = zipc_wait::ZIPC_WAIT_SPIN as WaitCode;
    const SLEEP: WaitCode = zipc_wait::ZIPC_WAIT_SLEEP as WaitCode;
    match code {
        ADAPTIVE => Ok(Wait::Adaptive),
        SPIN => Ok(Wait::Spin),
        SLEEP => Ok(Wait::Sleep),
        other => Err(Failure::new(
            zipc_result::ZIPC_INVALID_ARGUMENT,
            format!("{other} is not a zipc_wait"),
        )),
    }
}

//! A worker's side of `zipc::process`: the two channels its parent started it with.

use crate::consumer::zipc_consumer;
use crate::out_arg;
use crate::producer::zipc_producer;
use crate::result::{boundary, zipc_result};

/// In a process started by a zipc parent (`zipc::process::Worker::spawn` or a
/// `zipc::process::Pool`), takes the channels the parent wired it with: `*to_parent` sends to
/// the parent, `*from_parent` receives from it, and tells the parent the worker is ready.
/// Call it once, early in `main`.
///
/// A pool worker answers each frame it receives with exactly one frame, in order, until
/// `zipc_recv` returns `ZIPC_DISCONNECTED`; then it closes both and exits.
///
/// The control socket to the parent is held by `*to_parent`: closing it tells the parent the
/// worker is gone. The worker dies with its parent.
///
/// Returns `ZIPC_INVALID_ARGUMENT` for a NULL pointer, in a process no zipc parent started,
/// when called a second time, or when the parent chose a transport other than shared memory;
/// `ZIPC_PEER_GONE` when the parent is gone.
///
/// # Safety
/// `to_parent` and `from_parent` are NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn zipc_worker_connect(
    to_parent: *mut *mut zipc_producer,
    from_parent: *mut *mut zipc_consumer,
) -> zipc_result {
    boundary("zipc_worker_connect", || {
        let to_parent = out_arg(to_parent, "to_parent is NULL")?;
        let from_parent = out_arg(from_parent, "from_parent is NULL")?;
        // A worker spawned over another transport than shm has no rings to hand out.
        let (tx, rx, control) = zipc::worker::connect()?.into_parts().map_err(|(_, e)| e)?;
        let tx = Box::new(zipc_producer::new(tx, Some(control)));
        let rx = Box::new(zipc_consumer::new(rx));
        // SAFETY: neither is NULL, and the caller made both valid for a write.
        unsafe {
            to_parent.write(Box::into_raw(tx));
            from_parent.write(Box::into_raw(rx));
        }
        Ok(())
    })
}

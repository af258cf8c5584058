//! CPU pinning for `zipc bench`: the parent on one CPU, its peer on another, so that a
//! spinning side never shares a core with the side it waits for (the raw floor spins without
//! ever sleeping; on a shared core it would measure the scheduler's time slice).

use std::io;
use std::mem::size_of;

/// The CPUs this process may run on, in order.
pub(crate) fn allowed() -> io::Result<Vec<usize>> {
    // SAFETY: cpu_set_t is plain bits; all zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, writable cpu_set_t of the size passed.
    if unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let is_set = |cpu: usize| {
        // SAFETY: callers pass indices below the set's size in bits.
        unsafe { libc::CPU_ISSET(cpu, &set) }
    };
    Ok((0..8 * size_of::<libc::cpu_set_t>())
        .filter(|&cpu| is_set(cpu))
        .collect())
}

/// Pins the calling thread (the whole process, when called before any other thread starts)
/// to `cpu`.
pub(crate) fn pin(cpu: usize) -> io::Result<()> {
    let max = 8 * size_of::<libc::cpu_set_t>();
    if cpu >= max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("CPU {cpu} is out of range"),
        ));
    }
    // SAFETY: cpu_set_t is plain bits; all zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` is below the set's size in bits (checked above).
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid cpu_set_t of the size passed.
    if unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

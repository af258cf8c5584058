//! The parts this binary plays when a benchmark re-executes it: the peer of `zipc bench
//! channel`, the pool worker of `zipc bench pool` and the process that exits at once (the
//! bare-spawn baseline). The parent names the part in [`VAR`]; it is read before the command
//! line is parsed (by `main`), so the parts are no commands and `zipc --help` does not list
//! them.

/// The environment variable naming the part, set by the parent that re-executes itself.
pub(crate) const VAR: &str = "ZIPC_BENCH_ROLE";
/// The peer process of `zipc bench channel` (its arguments follow on the command line).
pub(crate) const PEER: &str = "peer";
/// A pool worker that echoes frames (`zipc bench pool`).
pub(crate) const WORKER: &str = "worker";
/// Exits at once (the bare-spawn baseline of `zipc bench pool`).
pub(crate) const EXIT: &str = "exit";

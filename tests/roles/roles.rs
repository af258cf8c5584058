//! The test suite's child processes, not a tool for users: the multi-process tests
//! (tests/*.rs) start this binary as their peer, worker or pool worker, and check what it
//! sends them, how it exits and how it dies.
//!
//! `zipc-test-roles GROUP:ROLE [ARG...]`: GROUP names the test file the role belongs to, ROLE
//! what this process does there. A role that finds something wrong panics, so the process
//! exits with a failure the test sees.

#[path = "../common/mod.rs"]
mod common;
#[path = "../common/shared.rs"]
mod shared;

mod crash;
mod inherit;
mod multiprocess;
mod pool;
mod process;
mod transport;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((role, rest)) = args.split_first() else {
        panic!("usage: zipc-test-roles GROUP:ROLE [ARG...] (this binary is the test suite's)");
    };
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    let Some((group, name)) = role.split_once(':') else {
        panic!("role {role:?} is not GROUP:ROLE");
    };
    match group {
        "crash" => crash::run(name, &rest),
        "inherit" => inherit::run(name, &rest),
        "multiprocess" => multiprocess::run(name, &rest),
        "pool" => pool::run(name, &rest),
        "process" => process::run(name, &rest),
        "transport" => transport::run(name, &rest),
        other => panic!("no group {other:?} (of role {role:?})"),
    }
}

/// The inherited descriptor whose number is `arg`.
fn fd_arg(arg: Option<&&str>) -> std::os::fd::OwnedFd {
    let arg = arg.expect("a descriptor number");
    common::inherited(arg.parse().unwrap_or_else(|_| panic!("fd {arg:?}")))
}

//! `zipc`, the command-line tool. `zipc bench` measures zipc against pipes, Unix sockets and
//! the raw shared-memory floor, between two processes, and prints one table.

mod bench;
mod cpu;
mod floor;
mod peer;
mod pool_bench;
mod report;
mod segments;
mod transport;
mod zerocopy_bench;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Any error, reported as a message.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// `Result` with a [`BoxError`].
pub(crate) type Result<T, E = BoxError> = std::result::Result<T, E>;

#[derive(Parser, Debug)]
#[command(
    name = "zipc",
    version,
    about = "zipc: shared-memory IPC, from the command line"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Measure zipc against pipes, Unix sockets and the raw shared-memory floor, between two
    /// processes, and print one table.
    Bench(bench::BenchArgs),
    /// List the named zipc segments in /dev/shm and whether their owner lives.
    Ls,
    /// Remove the named segments whose owner died (a killed creator cannot unlink its own).
    Clean,
    /// Internal: the peer process that `zipc bench` starts.
    #[command(name = "__peer", hide = true)]
    Peer(peer::PeerArgs),
    /// Internal: a pool worker that echoes frames (`zipc bench --pool`).
    #[command(name = "__worker", hide = true)]
    Worker,
    /// Internal: exits at once (the bare-spawn baseline of `zipc bench --pool`).
    #[command(name = "__exit", hide = true)]
    Exit,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (who, result) = match cli.command {
        Command::Bench(args) => ("zipc bench", bench::run(&args)),
        Command::Worker => ("zipc worker", pool_bench::worker()),
        Command::Exit => ("zipc", Ok(())),
        Command::Ls => ("zipc ls", segments::ls()),
        Command::Clean => ("zipc clean", segments::clean()),
        Command::Peer(args) => ("zipc bench peer", peer::run(args)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{who}: {e}");
            ExitCode::FAILURE
        }
    }
}

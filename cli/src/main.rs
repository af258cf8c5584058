//! `zipc`, the command-line tool. `zipc bench` measures zipc between two processes: its
//! channel against pipes, Unix sockets and the raw shared-memory floor (`channel`, the
//! default), the process layer (`pool`) and the zero-copy paths (`zerocopy`).
//!
//! The processes a benchmark starts are this binary again, in a role chosen by an
//! environment variable before the command line is parsed ([`role`]): they are no commands.

mod channel;
mod cpu;
mod floor;
mod machine;
mod model;
mod peer;
mod pool_bench;
mod pool_report;
mod role;
mod segments;
mod table;
mod targets;
mod transport;
mod zerocopy_bench;
mod zerocopy_report;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Serialize;
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
    /// Measure zipc between two processes and print one table (without a subcommand: `channel`).
    Bench(BenchArgs),
    /// List the named zipc segments in /dev/shm and whether their owner lives.
    Ls,
    /// Remove the named segments whose owner died (a killed creator cannot unlink its own).
    Clean,
}

/// `zipc bench [channel|pool|zerocopy]`; the options without a subcommand are `channel`'s.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
struct BenchArgs {
    #[command(subcommand)]
    which: Option<Bench>,
    #[command(flatten)]
    channel: PinnedArgs,
}

#[derive(Subcommand, Debug)]
enum Bench {
    /// zipc's channel against pipes, Unix sockets and the raw shared-memory floor, between two
    /// processes (the default).
    #[command(visible_alias = "transports")]
    Channel(PinnedArgs),
    /// The process layer: worker spawning, pool dispatch, the batch processor.
    Pool(Options),
    /// The zero-copy paths: sendfile and vmsplice against read/write loops.
    Zerocopy(PinnedArgs),
}

/// How the results are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// A table with notes below it.
    Table,
    /// One JSON document.
    Json,
}

/// The options of every benchmark.
#[derive(Args, Debug)]
pub(crate) struct Options {
    /// Few iterations: a smoke test that finishes in a few seconds.
    #[arg(long)]
    pub(crate) quick: bool,
    /// How to print the results.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub(crate) format: Format,
}

/// The options of a benchmark that pins its two sides to two CPUs.
#[derive(Args, Debug)]
pub(crate) struct PinnedArgs {
    #[command(flatten)]
    pub(crate) options: Options,
    /// Leave both sides unpinned (by default the measuring side runs on the first allowed CPU
    /// and the other on the second).
    #[arg(long)]
    pub(crate) no_pin: bool,
}

/// Prints `results` as `format` says: the table `table` makes of them, or JSON.
pub(crate) fn print<T: Serialize>(
    format: Format,
    results: &T,
    table: impl FnOnce(&T) -> String,
) -> Result<()> {
    match format {
        Format::Table => print!("{}", table(results)),
        Format::Json => println!("{}", serde_json::to_string_pretty(results)?),
    }
    Ok(())
}

/// Plays the part [`role::VAR`] names: who failed, and how it went. `None` when it names
/// none: this process is the tool a user started.
fn play_role() -> Option<(&'static str, Result<()>)> {
    let part = std::env::var_os(role::VAR)?;
    Some(match part.to_str() {
        Some(role::PEER) => ("zipc bench peer", peer::run_from_args()),
        Some(role::WORKER) => ("zipc bench worker", pool_bench::worker()),
        Some(role::EXIT) => ("zipc bench", Ok(())),
        _ => (
            "zipc",
            Err(format!(
                "{} is set to {part:?}, which is none of the parts ({}, {}, {}) that zipc \
                 bench starts this binary as; unset it to run the tool",
                role::VAR,
                role::PEER,
                role::WORKER,
                role::EXIT
            )
            .into()),
        ),
    })
}

fn main() -> ExitCode {
    let (who, result) = match play_role() {
        Some(role) => role,
        None => match Cli::parse().command {
            Command::Bench(args) => match args.which.unwrap_or(Bench::Channel(args.channel)) {
                Bench::Channel(args) => ("zipc bench channel", channel::run(&args)),
                Bench::Pool(options) => ("zipc bench pool", pool_bench::run(&options)),
                Bench::Zerocopy(args) => ("zipc bench zerocopy", zerocopy_bench::run(&args)),
            },
            Command::Ls => ("zipc ls", segments::ls()),
            Command::Clean => ("zipc clean", segments::clean()),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{who}: {e}");
            ExitCode::FAILURE
        }
    }
}

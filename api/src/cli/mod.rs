//! The command line: [`main`] parses the arguments and runs one subcommand, each a module here
//! ([`check`], [`serve`] with `migrate`, [`demo`], [`loadgen`], [`publish`], [`record`],
//! [`replay`], [`silence`]).

pub mod check;
pub mod demo;
pub mod loadgen;
pub mod publish;
pub mod record;
pub mod replay;
pub mod serve;
pub mod silence;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// An SLO and alerting engine driven by traces.
#[derive(Debug, Parser)]
#[command(name = "tracebudget", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate a config file and print what it means: journeys, SLOs and their budgets, every
    /// alert window with its burn factor and how long a total outage takes to fire it.
    /// Exits 0 when valid, 1 with every error listed when not.
    Check {
        /// The TOML config file.
        config: PathBuf,
    },
    /// Run the receivers and the SLI pipeline, with /metrics and the API on `[server].listen`.
    Serve {
        /// The TOML config file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Create or upgrade the database named by `[storage] url` (SQLite file or PostgreSQL) and
    /// exit. `serve` does the same at start-up; running it twice changes nothing.
    Migrate {
        /// The TOML config file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Run the engine on a fresh SQLite file with the demo config and drive it with the load
    /// generator, a scripted incident repeating, so burn rates climb and a page fires and
    /// resolves within minutes; prints the dashboard URL. Ctrl-C stops.
    Demo(demo::Args),
    /// Send realistic traces over OTLP (gRPC or HTTP) for benchmarks, demos and capacity tests.
    Loadgen(loadgen::Args),
    /// Take OTLP/HTTP on `[ingest] otlp_http` and publish it to the `[jetstream]` stream,
    /// partitioned by trace id; a request is answered once JetStream has stored all of it.
    Publish(publish::Args),
    /// Backtest: stream recorded spans (OTLP JSON/protobuf files as the Collector's `file`
    /// exporter writes them, Zipkin v2 JSON; gzip or not; `-` for stdin) through the same
    /// pipeline and alert rules on a virtual clock; print every alert that would have fired and
    /// resolved and each SLO's final figures. Several --config compare side by side.
    Replay(replay::Args),
    /// Run the `[ingest]` receivers and write every request they accept to a file that `replay`
    /// reads, to capture production traffic and backtest on it later.
    Record(record::Args),
    /// Create, list and expire silences of a running server (through its API).
    Silence(silence::Args),
}

/// Parses the command line and runs the subcommand it names.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => check::run(&config),
        Command::Serve { config } => exit(serve::run(&config)),
        Command::Migrate { config } => exit(serve::migrate(&config)),
        Command::Demo(args) => exit(demo::run(args)),
        Command::Loadgen(args) => exit(loadgen::run(args)),
        Command::Silence(args) => exit(silence::run(args)),
        Command::Publish(args) => exit(publish::run(args)),
        Command::Replay(args) => exit(replay::run(args)),
        Command::Record(args) => exit(record::run(args)),
    }
}

fn exit(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

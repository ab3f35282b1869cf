//! The `speil` binary: parses the command line and dispatches to one subcommand; errors become
//! a message and an exit code here and nowhere else.

mod admin;
mod cli;
mod cmd;
mod debug_web;
mod http_client;
mod logging;
mod metrics;
mod shutdown;
mod status;

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let result = match cli.command {
        cli::Command::Run(args) => cmd::run::main(args),
        cli::Command::Demo(args) => cmd::demo::main(args),
        cli::Command::Configure(args) => cmd::configure::main(args),
        cli::Command::Cleanup(args) => cmd::cleanup::main(args),
        cli::Command::CleanupWait(args) => cmd::cleanup::wait(args),
        cli::Command::Status(args) => return cmd::status::main(args),
        cli::Command::Version => {
            cmd::version::main();
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Logging may not be set up (bad flags), so the error goes straight to stderr.
            eprintln!("speil: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

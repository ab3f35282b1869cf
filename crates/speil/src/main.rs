//! The `speil` binary: parses the command line and dispatches to one subcommand; errors become
//! a message and an exit code here and nowhere else.

mod admin;
mod advertise;
mod cli;
mod cmd;
mod http_client;
mod logging;
mod metrics;
mod shutdown;
mod status;

use std::process::ExitCode;

use clap::{CommandFactory as _, FromArgMatches as _};

fn main() -> ExitCode {
    let matches = cli::Cli::command().get_matches();
    let cli = cli::Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let result = match cli.command {
        cli::Command::Run(args) => cmd::run::main(args, None),
        cli::Command::Demo(args) => {
            let given = matches
                .subcommand_matches("demo")
                .expect("the demo subcommand");
            cmd::demo::main(args, given)
        }
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
            if e.downcast_ref::<cli::BadValue>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

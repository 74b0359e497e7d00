//! The `hsmwatch` binary: parses the command line, sets up logging, runs, and maps the result to an exit code.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use hsmwatch::cli::{self, Cli};
use hsmwatch::telemetry;
use tracing_subscriber::EnvFilter;

/// How long the end of a run waits for its last log lines to reach stderr (a blocked stderr must not hold up exit).
const LOG_FLUSH_LIMIT: Duration = Duration::from_secs(1);

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("hsmwatch={}", cli::default_log_level(&cli))));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(telemetry::stderr_writer())
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let code = run(cli);
    telemetry::flush(LOG_FLUSH_LIMIT);
    code
}

fn run(cli: Cli) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            report(&format!("cannot start the async runtime: {error}"));
            return ExitCode::from(cli::EXIT_RUNTIME);
        }
    };
    match runtime.block_on(cli::run(cli)) {
        Ok(()) => ExitCode::from(cli::EXIT_OK),
        // Whoever reads the output stopped reading (`hsmwatch query | head -1`): that is not a failure.
        Err(error) if cli::is_broken_pipe(&error) => ExitCode::from(cli::EXIT_OK),
        Err(error) => {
            report(&format!("{error:#}"));
            ExitCode::from(cli::exit_code(&error))
        }
    }
}

/// The one line a failed run ends with, written so that a closed stderr cannot turn it into a panic.
fn report(message: &str) {
    telemetry::flush(LOG_FLUSH_LIMIT);
    let _ = writeln!(std::io::stderr(), "hsmwatch: {message}");
}

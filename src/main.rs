//! The `hsmwatch` binary: parses the command line, sets up logging, runs, and maps the result to an exit code.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use hsmwatch::cli::{self, Cli};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("hsmwatch={}", cli::default_log_level(&cli))));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("hsmwatch: cannot start the async runtime: {error}");
            return ExitCode::from(cli::EXIT_RUNTIME);
        }
    };
    match runtime.block_on(cli::run(cli)) {
        Ok(()) => ExitCode::from(cli::EXIT_OK),
        Err(error) => {
            eprintln!("hsmwatch: {error:#}");
            ExitCode::from(cli::exit_code(&error))
        }
    }
}

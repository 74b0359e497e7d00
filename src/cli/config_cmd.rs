//! `hsmwatch config example` and `hsmwatch config check FILE`.

use std::path::PathBuf;

use clap::Subcommand;

use crate::config::{Config, EXAMPLE};

/// Configuration subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print a commented configuration file holding every default.
    Example,
    /// Check a configuration file: exits 2 and names the line at fault when it is invalid.
    Check {
        /// The YAML file.
        file: PathBuf,
    },
}

/// Runs a configuration subcommand.
pub fn run(command: ConfigCommand) -> anyhow::Result<()> {
    match command {
        ConfigCommand::Example => print!("{EXAMPLE}"),
        ConfigCommand::Check { file } => {
            Config::load(&file)?;
            println!("{}: ok", file.display());
        }
    }
    Ok(())
}
